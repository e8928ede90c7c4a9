
/*
 * ngx_cost_cap_module: settlement.  A reservation is an estimate: it is
 * given back when the request failed (cost_cap_refund_status) or came too
 * late, and adjusted to the actual cost (cost_cap_actual), on exactly the
 * keys it was reserved on.
 */


#include "ngx_http_cost_cap_module.h"


/* how long a settlement waits for an unreachable Redis */
#define NGX_HTTP_COST_CAP_SETTLE_DEADLINE  30000


static ngx_int_t ngx_http_cost_cap_delta(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, int64_t *delta);
static void ngx_http_cost_cap_settle(ngx_log_t *log, u_char *prefix,
    size_t prefix_len, size_t nwin, ngx_http_cost_cap_win_t *win,
    cc_reserve_reply_t *res, int64_t delta);
static void ngx_http_cost_cap_settled(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_settle_log(ngx_log_t *log, u_char *prefix,
    size_t prefix_len, size_t nwin, ngx_http_cost_cap_win_t *win,
    cc_reserve_reply_t *res, int64_t delta, const char *what);


ngx_int_t
ngx_http_cost_cap_log_handler(ngx_http_request_t *r)
{
    u_char                    prefix[CC_KEY_PREFIX_MAX_LEN];
    size_t                    len;
    int64_t                   delta;
    ngx_http_cost_cap_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx == NULL || !ctx->reserved || ctx->settled) {
        return NGX_OK;
    }

    ctx->settled = 1;

    if (ngx_http_cost_cap_delta(r, ctx, &delta) != NGX_OK || delta == 0) {
        return NGX_OK;
    }

    len = cc_key_prefix((char *) ctx->tenant.data, ctx->tenant.len,
                        (char *) prefix);

    ngx_http_cost_cap_settle(r->connection->log, prefix, len, ctx->nwin,
                             ctx->win, &ctx->reply, delta);

    return NGX_OK;
}


/* what to add to the reservation: minus all of it, or actual - estimate */

static ngx_int_t
ngx_http_cost_cap_delta(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    int64_t *delta)
{
    int                                 rc;
    int64_t                             gpu;
    ngx_str_t                           v;
    ngx_uint_t                          i, status, *s;
    unsigned __int128                   cost;
    ngx_http_cost_cap_loc_conf_t       *lcf;
    ngx_http_cost_cap_model_metrics_t  *mm;

    lcf = ctx->conf;
    status = r->headers_out.status;
    mm = ngx_http_cost_cap_metrics_model(ctx->rule);

    s = lcf->refund_status->elts;

    for (i = 0; i < lcf->refund_status->nelts; i++) {
        if (s[i] == status) {
            *delta = -ctx->estimate.cost;

            if (mm) {
                (void) ngx_atomic_fetch_add(&mm->refunded,
                                            ctx->estimate.cost);
            }

            return NGX_OK;
        }
    }

    if (lcf->actual == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_complex_value(r, lcf->actual, &v) != NGX_OK) {
        return NGX_ERROR;
    }

    if (v.len == 0) {
        return NGX_DECLINED;
    }

    rc = cc_decimal_parse((char *) v.data, v.len, &gpu);

    if (rc != CC_DEC_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cost_cap: ignored actual GPU-seconds \"%V\" of "
                      "tenant \"%V\": %s", &v, &ctx->tenant,
                      rc == CC_DEC_OVERFLOW ? "too large" : "not a number");
        return NGX_DECLINED;
    }

    /* micro-USD = micro-GPU-s * micro-USD per hour / (3600 * 10^6), up */
    cost = (unsigned __int128) gpu * (uint64_t) ctx->gpu_price;
    cost = (cost + 3600 * CC_MICRO - 1) / (3600 * CC_MICRO);

    if (cost > INT64_MAX) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cost_cap: ignored actual GPU-seconds \"%V\" of "
                      "tenant \"%V\": too large", &v, &ctx->tenant);
        return NGX_DECLINED;
    }

    *delta = (int64_t) cost - ctx->estimate.cost;

    if (mm) {
        (void) ngx_atomic_fetch_add(&mm->adjusted, *delta);
        (void) ngx_atomic_fetch_add(&mm->calib_estimated,
                                    ctx->estimate.gpu_seconds);
        (void) ngx_atomic_fetch_add(&mm->calib_actual, gpu);
    }

    return NGX_OK;
}


/*
 * A reservation whose request was already answered (timeout, client
 * abort) is given back at once: counters hold only what was admitted.
 */

void
ngx_http_cost_cap_give_back(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    cc_reserve_reply_t  res;

    if (reply == NULL
        || cc_reserve_reply_parse(reply, op->nwin, &res) != 0
        || !(res.admitted || op->dry)
        || op->estimate == 0)
    {
        return;
    }

    ngx_http_cost_cap_settle(ngx_cycle->log, op->prefix, op->prefix_len,
                             op->nwin, op->win, &res, -op->estimate);
}


static void
ngx_http_cost_cap_settle(ngx_log_t *log, u_char *prefix, size_t prefix_len,
    size_t nwin, ngx_http_cost_cap_win_t *win, cc_reserve_reply_t *res,
    int64_t delta)
{
    int                      argc;
    u_char                   d[NGX_INT64_LEN];
    u_char                   keys[CC_WIN_MAX][sizeof("minute:") - 1
                                              + CC_PERIOD_MAX_LEN];
    u_char                   exp[CC_WIN_MAX][NGX_INT64_LEN];
    size_t                   argvlen[5 + 2 * CC_WIN_MAX];
    ngx_uint_t               i;
    const char              *argv[5 + 2 * CC_WIN_MAX];
    ngx_http_cost_cap_op_t  *op;

    op = ngx_http_cost_cap_redis_op();
    if (op == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "cost_cap: settlement of %L micro-USD on \"%*s\" "
                      "dropped: out of memory", delta, prefix_len, prefix);
        ngx_http_cost_cap_count(settle_drops, 1);
        return;
    }

    op->handler = ngx_http_cost_cap_settled;
    op->deadline = ngx_current_msec + NGX_HTTP_COST_CAP_SETTLE_DEADLINE;
    op->estimate = delta;
    op->nwin = nwin;
    ngx_memcpy(op->win, win, nwin * sizeof(ngx_http_cost_cap_win_t));
    op->res = *res;
    op->prefix_len = prefix_len;
    ngx_memcpy(op->prefix, prefix, prefix_len);

    argc = ngx_http_cost_cap_redis_script(op, &ngx_http_cost_cap_sha_settle,
                                          argv, argvlen);

    argv[argc] = (char *) d;
    argvlen[argc] = ngx_sprintf(d, "%L", delta) - d;
    argc++;

    for (i = 0; i < nwin; i++) {
        argv[argc] = (char *) keys[i];
        argvlen[argc] = ngx_sprintf(keys[i], "%s:%*s",
                                    cc_window_name(win[i].window),
                                    res->win[i].period_len,
                                    res->win[i].period)
                        - keys[i];
        argc++;

        argv[argc] = (char *) exp[i];
        argvlen[argc] = ngx_sprintf(exp[i], "%L",
                                    res->win[i].end
                                    ? res->win[i].end + 86400 : 0)
                        - exp[i];
        argc++;
    }

    if (ngx_http_cost_cap_redis_send(op, argc, argv, argvlen) != NGX_OK) {
        ngx_http_cost_cap_settle_log(log, prefix, prefix_len, nwin, win, res,
                                     delta, "dropped: redis unavailable");
        ngx_http_cost_cap_count(settle_drops, 1);
    }
}


static void
ngx_http_cost_cap_settled(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    if (op->done) {
        return;
    }

    op->done = 1;

    if (reply && reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    if (op->unsent) {
        ngx_http_cost_cap_count(settle_drops, 1);
    }

    ngx_http_cost_cap_settle_log(ngx_cycle->log, op->prefix, op->prefix_len,
                                 op->nwin, op->win, &op->res, op->estimate,
                                 reply ? "failed"
                                 : op->unsent ? "dropped: redis unavailable"
                                 : "unconfirmed: redis did not answer");
}


static void
ngx_http_cost_cap_settle_log(ngx_log_t *log, u_char *prefix,
    size_t prefix_len, size_t nwin, ngx_http_cost_cap_win_t *win,
    cc_reserve_reply_t *res, int64_t delta, const char *what)
{
    u_char      keys[CC_WIN_MAX * (CC_KEY_PREFIX_MAX_LEN + 32)], *p;
    ngx_uint_t  i;

    p = keys;

    for (i = 0; i < nwin; i++) {
        p = ngx_sprintf(p, " %*s%s:%*s", prefix_len, prefix,
                        cc_window_name(win[i].window),
                        res->win[i].period_len, res->win[i].period);
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "cost_cap: settlement of %L micro-USD on%*s %s",
                  delta, p - keys, keys, what);
}

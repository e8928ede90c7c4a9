
/*
 * ngx_cost_cap_module: settlement.  A reservation is an estimate: it is
 * given back when the request failed (cost_cap_refund_status) or came too
 * late, and adjusted to the actual cost (cost_cap_actual), on exactly the
 * keys it was reserved on; a job's create call holds it until the job
 * ends (ngx_http_cost_cap_job.c).
 */


#include "ngx_http_cost_cap_module.h"


static ngx_int_t ngx_http_cost_cap_delta(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, int64_t *delta);


ngx_int_t
ngx_http_cost_cap_log_handler(ngx_http_request_t *r)
{
    int64_t                   delta;
    ngx_http_cost_cap_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx == NULL || ctx->settled) {
        return NGX_OK;
    }

    /* a job's status call or callback: its hold, settled */
    if (ctx->job) {
        ngx_http_cost_cap_job_log(r, ctx);
    }

    /*
     * Admitted unreserved (cost_cap_on_error open): it is charged once
     * Redis answers, by its id; a refund takes that back, whichever comes
     * first.  (Its actual cost is not known to Redis: it stays charged at
     * the estimate.)
     */
    if (!ctx->reserved) {
        if (ctx->result == NGX_HTTP_COST_CAP_ERROR_OPEN && ctx->rsv.nwin
            && ngx_http_cost_cap_delta(r, ctx, &delta) == NGX_OK
            && delta == -ctx->estimate.cost && delta != 0)
        {
            ctx->settled = 1;
            ngx_http_cost_cap_give_back(&ctx->rsv);
        }

        return NGX_OK;
    }

    ctx->settled = 1;

    /* a job's create call: the reservation is held until the job ends */
    if (ngx_http_cost_cap_job_hold(r, ctx) == NGX_OK) {
        return NGX_OK;
    }

    if (ngx_http_cost_cap_delta(r, ctx, &delta) != NGX_OK || delta == 0) {
        return NGX_OK;
    }

    /* admitted from a lease that is still this worker's: settled in it */
    if (ctx->rsv.leased && ngx_http_cost_cap_lease_settle(&ctx->rsv, delta)) {
        return NGX_OK;
    }

    ngx_http_cost_cap_settle(&ctx->rsv, delta);

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

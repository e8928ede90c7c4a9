
/*
 * ngx_cost_cap_module: the operations on a tenant's counters.
 *
 *   reserve  scripts/reserve.lua: every window or none, once per id
 *   cancel   scripts/cancel.lua: a reservation whose reply was lost or
 *            came late is given back by its id, exactly, once
 *   force    scripts/reserve.lua, mode f: a request admitted while Redis
 *            was away (cost_cap_on_error open) is counted when it is back
 *   settle   scripts/settle.lua: a refund or an actual cost, once
 *   event    scripts/event.lua: a threshold crossed, once
 *
 * Each carries a copy of the reservation: the request may be gone when
 * Redis answers.  What charges has its exact inverse; what is given up at
 * its deadline is logged with its keys and amount.
 */


#include "ngx_http_cost_cap_module.h"


#define NGX_HTTP_COST_CAP_KIND_RESERVE  0
#define NGX_HTTP_COST_CAP_KIND_CANCEL   1
#define NGX_HTTP_COST_CAP_KIND_FORCE    2
#define NGX_HTTP_COST_CAP_KIND_SETTLE   3
#define NGX_HTTP_COST_CAP_KIND_EVENT    4
#define NGX_HTTP_COST_CAP_KIND_LEASE    5

/* sent again at most this often for a period boundary */
#define NGX_HTTP_COST_CAP_MAX_STALE     3



typedef struct {
    ngx_http_cost_cap_rsv_t        rsv;
    ngx_http_cost_cap_loc_conf_t  *conf;
    int64_t                        amount;      /* a settlement's */
    ngx_uint_t                     stale;
    ngx_uint_t                     kind;
    unsigned                       open:1;      /* its request was admitted
                                                   unreserved: charge it */
    u_char                         settle_id[NGX_HTTP_COST_CAP_OP_ID_LEN];
} ngx_http_cost_cap_payload_t;


static ngx_http_cost_cap_op_t *ngx_http_cost_cap_rsv_op(
    ngx_http_cost_cap_rsv_t *rsv, ngx_uint_t kind);
static ngx_int_t ngx_http_cost_cap_reserve_build(ngx_http_cost_cap_op_t *op,
    ngx_http_cost_cap_conn_t *c);
static void ngx_http_cost_cap_periods(ngx_http_cost_cap_rsv_t *rsv,
    ngx_http_cost_cap_conn_t *c);
static void ngx_http_cost_cap_reserve_handler(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
static void ngx_http_cost_cap_reserve_fail(ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_reserve_answer(ngx_http_cost_cap_op_t *op,
    cc_reserve_reply_t *res, ngx_int_t rc);
static void ngx_http_cost_cap_reserve_late(ngx_http_cost_cap_op_t *op,
    cc_reserve_reply_t *res);
static void ngx_http_cost_cap_reserve_lost(ngx_http_cost_cap_op_t *op);

static void ngx_http_cost_cap_undo_handler(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
static ngx_int_t ngx_http_cost_cap_send(ngx_http_cost_cap_op_t *op,
    ngx_http_cost_cap_args_t *a);
static void ngx_http_cost_cap_forced(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_lease_orphan(ngx_http_cost_cap_rsv_t *rsv,
    cc_reserve_reply_t *res);
static void ngx_http_cost_cap_late_events(ngx_http_cost_cap_rsv_t *rsv,
    cc_reserve_reply_t *res);
static void ngx_http_cost_cap_events(ngx_http_cost_cap_rsv_t *rsv,
    ngx_str_t *tenant, ngx_str_t *parent, ngx_log_t *log);
static void ngx_http_cost_cap_dropped(ngx_http_cost_cap_op_t *op,
    const char *what);
static void ngx_http_cost_cap_arg_op(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, u_char *id);
static void ngx_http_cost_cap_arg_cat(ngx_http_cost_cap_args_t *a,
    u_char *key, size_t key_len, const char *name, u_char *s, size_t len);
static void ngx_http_cost_cap_arg_add(ngx_http_cost_cap_args_t *a, u_char *s,
    size_t len);
static void ngx_http_cost_cap_arg_end(ngx_http_cost_cap_args_t *a,
    u_char *start);
static void ngx_http_cost_cap_arg_num(ngx_http_cost_cap_args_t *a,
    int64_t v);
static void ngx_http_cost_cap_arg_lease(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, u_char *id);


#define ngx_http_cost_cap_payload(op)                                         \
    ((ngx_http_cost_cap_payload_t *) (op)->payload)


/*
 * Starts the reservation of ctx->rsv (windows, estimate, keys set by the
 * handler).  NGX_OK: the answer comes to ngx_http_cost_cap_reserved();
 * NGX_ERROR: Redis is unavailable now (and under cost_cap_on_error open
 * the request is counted once it is back).
 */

ngx_int_t
ngx_http_cost_cap_reserve(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_http_cost_cap_op_t         *op;
    ngx_http_cost_cap_payload_t    *pl;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;

    ngx_http_cost_cap_op_id(ctx->rsv.id);
    ctx->rsv.mode = ctx->windows ? 'q' : lcf->dry_run ? 'd' : 'r';
    ctx->rsv.slot = cc_key_slot((char *) ctx->rsv.pkey, ctx->rsv.pkey_len);

    op = ngx_http_cost_cap_rsv_op(&ctx->rsv, NGX_HTTP_COST_CAP_KIND_RESERVE);
    if (op == NULL) {
        goto failed;
    }

    pl = ngx_http_cost_cap_payload(op);
    pl->conf = lcf;

    op->data = ctx;
    op->build = ngx_http_cost_cap_reserve_build;
    op->deadline = ngx_current_msec + cmcf->timeout;
    op->request = 1;
    op->fail_fast = 1;

    if (ngx_http_cost_cap_router_send(op) != NGX_OK) {
        ngx_http_cost_cap_op_free(op);
        goto failed;
    }

    if (!op->timer.timer_set) {
        ngx_add_timer(&op->timer, cmcf->timeout);
    }

    ctx->op = op;

    return NGX_OK;

failed:

    if (lcf->on_error == NGX_HTTP_COST_CAP_ON_ERROR_OPEN
        && ctx->rsv.mode != 'q')
    {
        ngx_http_cost_cap_force(&ctx->rsv);
    }

    return NGX_ERROR;
}


/* the request goes away first: a reply that still comes gives it back */

void
ngx_http_cost_cap_reserve_detach(ngx_http_cost_cap_ctx_t *ctx)
{
    ngx_http_cost_cap_op_t  *op;

    op = ctx->op;
    ctx->op = NULL;

    if (op == NULL) {
        return;
    }

    op->data = NULL;
    op->request = 0;
    op->resend = 0;
    ngx_http_cost_cap_payload(op)->open = 0;

    if (op->where == NGX_HTTP_COST_CAP_OP_PIPELINE) {
        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        return;
    }

    if (op->where != NGX_HTTP_COST_CAP_OP_NOWHERE) {
        ngx_http_cost_cap_router_unqueue(op);
    }

    ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
}


/* an operation about a reservation, with its copy */

static ngx_http_cost_cap_op_t *
ngx_http_cost_cap_rsv_op(ngx_http_cost_cap_rsv_t *rsv, ngx_uint_t kind)
{
    ngx_http_cost_cap_op_t       *op;
    ngx_http_cost_cap_payload_t  *pl;

    op = ngx_http_cost_cap_op_alloc();
    if (op == NULL) {
        return NULL;
    }

    pl = ngx_http_cost_cap_payload(op);

    pl->rsv = *rsv;
    pl->conf = NULL;
    pl->amount = 0;
    pl->stale = 0;
    pl->kind = kind;
    pl->open = 0;

    op->handler = (kind == NGX_HTTP_COST_CAP_KIND_RESERVE)
                  ? ngx_http_cost_cap_reserve_handler
                  : ngx_http_cost_cap_undo_handler;
    op->slot = rsv->slot;
    op->resend = 1;
    op->deadline = ngx_current_msec + NGX_HTTP_COST_CAP_SETTLE_DEADLINE;

    return op;
}


/*
 * EVALSHA reserve: the marker, then a counter per window named for the
 * period of the connection's estimate of its server's clock.
 */

static ngx_int_t
ngx_http_cost_cap_reserve_build(ngx_http_cost_cap_op_t *op,
    ngx_http_cost_cap_conn_t *c)
{
    u_char                        layout[4];
    ngx_uint_t                    i, n;
    ngx_http_cost_cap_rsv_t      *rsv;
    ngx_http_cost_cap_args_t      a;
    ngx_http_cost_cap_payload_t  *pl;
    ngx_http_cost_cap_win_t      *w;

    pl = ngx_http_cost_cap_payload(op);
    rsv = &pl->rsv;

    if (!rsv->built) {
        ngx_http_cost_cap_periods(rsv, c);
    }

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_RESERVE);

    n = 0;

    if (rsv->caps) {
        layout[n++] = 'c';
    }

    if (rsv->pcaps) {
        layout[n++] = 'p';
    }

    if (rsv->idem_len) {
        layout[n++] = 'i';
    }

    if (rsv->thresholds) {
        layout[n++] = 'a';
    }

    if (rsv->lease_max) {
        layout[n++] = 'l';
    }

    ngx_http_cost_cap_arg_num(&a, 1 + n + rsv->nwin);
    ngx_http_cost_cap_arg_op(&a, rsv, rsv->id);

    if (rsv->caps) {
        ngx_http_cost_cap_arg_cat(&a, rsv->tkey, rsv->tkey_len, "caps",
                                  NULL, 0);
    }

    if (rsv->pcaps) {
        ngx_http_cost_cap_arg_cat(&a, rsv->pkey, rsv->pkey_len, "caps",
                                  NULL, 0);
    }

    if (rsv->idem_len) {
        ngx_http_cost_cap_arg_idem(&a, rsv);
    }

    if (rsv->thresholds) {
        ngx_http_cost_cap_arg_cat(&a, rsv->pkey, rsv->pkey_len, "alerts",
                                  NULL, 0);
    }

    if (rsv->lease_max) {
        ngx_http_cost_cap_arg_lease(&a, rsv, rsv->id);
    }

    for (i = 0; i < rsv->nwin; i++) {
        ngx_http_cost_cap_arg_key(&a, rsv, i);
    }

    ngx_http_cost_cap_arg(&a, &rsv->mode, 1);
    ngx_http_cost_cap_arg_num(&a, rsv->estimate);
    ngx_http_cost_cap_arg(&a, layout, n);
    ngx_http_cost_cap_arg_num(&a, rsv->nwin);
    ngx_http_cost_cap_arg_num(&a, rsv->ntenant);
    ngx_http_cost_cap_arg_num(&a, NGX_HTTP_COST_CAP_MARKER_TTL);
    ngx_http_cost_cap_arg_num(&a, rsv->idem_ttl);

    if (rsv->thresholds) {
        ngx_http_cost_cap_arg(&a, rsv->thresholds->data,
                              rsv->thresholds->len);

    } else {
        ngx_http_cost_cap_arg(&a, (u_char *) "", 0);
    }

    /* the alerts hash's field prefixes: a tenant's, and its parent's */
    if (rsv->tkey_len == rsv->pkey_len) {
        ngx_http_cost_cap_arg(&a, (u_char *) "tenant", 6);

    } else {
        ngx_http_cost_cap_arg_fmt(&a, "tenant:%*s",
                                  rsv->tkey_len - rsv->pkey_len - 1,
                                  rsv->tkey + rsv->pkey_len);
    }

    ngx_http_cost_cap_arg(&a, (u_char *) "parent", 6);

    for (i = 0; i < rsv->nwin; i++) {
        w = &rsv->win[i];

        ngx_http_cost_cap_arg(&a, (u_char *) cc_window_name(w->window),
                              ngx_strlen(cc_window_name(w->window)));

        if (w->limit < 0) {
            ngx_http_cost_cap_arg(&a, (u_char *) "", 0);

        } else {
            ngx_http_cost_cap_arg_num(&a, w->limit);
        }

        ngx_http_cost_cap_arg_num(&a, w->start);
        ngx_http_cost_cap_arg_num(&a, w->end);
    }

    if (rsv->lease_max) {
        ngx_http_cost_cap_arg_num(&a, rsv->lease_max);
        ngx_http_cost_cap_arg_num(&a, rsv->lease_headroom);
        ngx_http_cost_cap_arg_num(&a, NGX_HTTP_COST_CAP_LEASE_TTL);
    }

    if (a.p > a.last) {
        return NGX_ERROR;
    }

    return ngx_http_cost_cap_conn_format(op, a.argc, a.argv, a.argvlen);
}


/* each window's period at the connection's estimate of its server's time */

static void
ngx_http_cost_cap_periods(ngx_http_cost_cap_rsv_t *rsv,
    ngx_http_cost_cap_conn_t *c)
{
    int64_t                   t;
    ngx_uint_t                i;
    ngx_http_cost_cap_win_t  *w;

    t = ngx_http_cost_cap_redis_time(c) / 1000;

    for (i = 0; i < rsv->nwin; i++) {
        w = &rsv->win[i];

        w->period_len = (u_char) cc_window_period(w->window, t,
                                                  (char *) w->period,
                                                  &w->end);
        w->start = cc_window_start(w->window, t);
    }

    rsv->built = 1;
}


static void
ngx_http_cost_cap_reserve_handler(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event)
{
    cc_reserve_reply_t            res;
    ngx_http_cost_cap_payload_t  *pl;

    pl = ngx_http_cost_cap_payload(op);

    switch (event) {

    case NGX_HTTP_COST_CAP_OP_TIMEOUT:
        /* answered now; a reply that still comes is settled then */
        op->resend = 0;
        ngx_http_cost_cap_reserve_fail(op);
        return;

    case NGX_HTTP_COST_CAP_OP_LOST:
        ngx_http_cost_cap_reserve_fail(op);
        ngx_http_cost_cap_reserve_lost(op);
        return;

    default:
        break;
    }

    if (cc_reserve_reply_parse(reply, pl->rsv.nwin, &res) != 0) {
        if (reply->type != REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "cost_cap: unexpected reply of the reservation "
                          "script");
        }

        res.status = CC_RESERVE_STALE;
        goto failed;
    }

    ngx_http_cost_cap_ops_clock(op->conn, res.now, res.usec, op->start);

    if (res.status == CC_RESERVE_STALE) {
        if (pl->stale++ == NGX_HTTP_COST_CAP_MAX_STALE) {
            goto failed;
        }

        /* a period boundary: nothing was done; the right periods, at once */
        pl->rsv.built = 0;

        if (ngx_http_cost_cap_router_send(op) != NGX_OK) {
            goto failed;
        }

        return;
    }

    if (op->data) {
        ngx_http_cost_cap_reserve_answer(op, &res, NGX_OK);
        return;
    }

    ngx_http_cost_cap_reserve_late(op, &res);
    return;

failed:

    /* nothing was charged */
    ngx_http_cost_cap_reserve_fail(op);

    if (pl->open) {
        ngx_http_cost_cap_force(&pl->rsv);
    }
}


/* Redis unavailable, slow or failing: the request is answered now */

static void
ngx_http_cost_cap_reserve_fail(ngx_http_cost_cap_op_t *op)
{
    ngx_http_cost_cap_payload_t  *pl;

    if (op->data == NULL) {
        return;
    }

    pl = ngx_http_cost_cap_payload(op);
    pl->open = (pl->conf->on_error == NGX_HTTP_COST_CAP_ON_ERROR_OPEN
                && pl->rsv.mode != 'q');

    ngx_http_cost_cap_reserve_answer(op, NULL, NGX_ERROR);
}


/* the request learns the answer, and resumes */

static void
ngx_http_cost_cap_reserve_answer(ngx_http_cost_cap_op_t *op,
    cc_reserve_reply_t *res, ngx_int_t rc)
{
    ngx_uint_t                    i;
    ngx_http_cost_cap_ctx_t      *ctx;
    ngx_http_cost_cap_rsv_t      *rsv;
    ngx_http_cost_cap_payload_t  *pl;

    ctx = op->data;
    pl = ngx_http_cost_cap_payload(op);

    op->data = NULL;
    op->request = 0;
    ctx->op = NULL;

    rsv = &ctx->rsv;

    /* the periods this reservation was charged to, for its settlement */
    ngx_memcpy(rsv->win, pl->rsv.win, sizeof(rsv->win));
    rsv->built = pl->rsv.built;

    if (res) {
        rsv->status = res->status;
        rsv->now = res->now;
        rsv->mask = res->mask;
        rsv->lease = res->lease;

        for (i = 0; i < rsv->nwin; i++) {
            rsv->win[i].spent = res->win[i].spent;
            rsv->win[i].cap = res->win[i].cap;
        }

        rsv->nalerts = res->nalerts;
        ngx_memcpy(rsv->alerts, res->alerts,
                   res->nalerts * sizeof(cc_alert_reply_t));

        if (res->status == CC_RESERVE_BAD_CAP
            || res->status == CC_RESERVE_BAD_COUNTER)
        {
            rsv->bad = (ngx_uint_t) res->extra % rsv->nwin;
            ctx->bad_len = res->bad_len;
            ngx_memcpy(ctx->bad, res->bad, res->bad_len);
        }
    }

    ngx_http_cost_cap_reserved(ctx, rc);

    if (res && rsv->nalerts) {
        ngx_http_cost_cap_events(rsv, &ctx->tenant, &ctx->parent,
                                 ctx->request->connection->log);
    }
}


/* a reply after its request was answered: keep only what was served */

static void
ngx_http_cost_cap_reserve_late(ngx_http_cost_cap_op_t *op,
    cc_reserve_reply_t *res)
{
    ngx_uint_t                    charged;
    ngx_http_cost_cap_payload_t  *pl;

    pl = ngx_http_cost_cap_payload(op);

    charged = (res->status == CC_RESERVE_ADMITTED
               || res->status == CC_RESERVE_LEASED
               || res->status == CC_RESERVE_APPLIED
               || res->status == CC_RESERVE_REFUSED)
              && res->mask != 0;

    if (charged && !pl->open) {
        ngx_http_cost_cap_give_back(&pl->rsv);
        return;
    }

    /* served unreserved: the charge stays, a lease nobody will use goes */
    if (charged) {
        ngx_http_cost_cap_late_events(&pl->rsv, res);
        ngx_http_cost_cap_lease_orphan(&pl->rsv, res);
        return;
    }

    if (!charged && pl->open && res->status != CC_RESERVE_REPLAY) {
        ngx_http_cost_cap_force(&pl->rsv);
    }
}


/* no reply will come: it may have run, or not */

static void
ngx_http_cost_cap_reserve_lost(ngx_http_cost_cap_op_t *op)
{
    ngx_http_cost_cap_payload_t  *pl;

    pl = ngx_http_cost_cap_payload(op);

    if (pl->open) {
        /* counted, unless it ran: the marker tells the script */
        ngx_http_cost_cap_force(&pl->rsv);
        return;
    }

    if (op->unknown && pl->rsv.mode != 'q') {
        ngx_http_cost_cap_give_back(&pl->rsv);
    }
}


/* EVALSHA cancel: the marker, then every window's counter, in order */

void
ngx_http_cost_cap_give_back(ngx_http_cost_cap_rsv_t *from)
{
    ngx_uint_t                    i;
    ngx_http_cost_cap_op_t       *op;
    ngx_http_cost_cap_rsv_t      *rsv;
    ngx_http_cost_cap_args_t      a;
    ngx_http_cost_cap_payload_t  *pl;

    op = ngx_http_cost_cap_rsv_op(from, NGX_HTTP_COST_CAP_KIND_CANCEL);
    if (op == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: give-back of reservation %*s dropped: out "
                      "of memory", (size_t) NGX_HTTP_COST_CAP_OP_ID_LEN,
                      from->id);
        ngx_http_cost_cap_count(settle_drops, 1);
        return;
    }

    pl = ngx_http_cost_cap_payload(op);
    rsv = &pl->rsv;

    if (!rsv->built) {
        ngx_http_cost_cap_periods(rsv, NULL);
    }

    pl->amount = -rsv->estimate;

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_CANCEL);

    ngx_http_cost_cap_arg_num(&a, 1 + (rsv->idem_len != 0)
                                         + (rsv->lease_max != 0)
                                         + rsv->nwin);
    ngx_http_cost_cap_arg_op(&a, rsv, rsv->id);

    if (rsv->idem_len) {
        ngx_http_cost_cap_arg_idem(&a, rsv);
    }

    if (rsv->lease_max) {
        ngx_http_cost_cap_arg_lease(&a, rsv, rsv->id);
    }

    for (i = 0; i < rsv->nwin; i++) {
        ngx_http_cost_cap_arg_key(&a, rsv, i);
    }

    ngx_http_cost_cap_arg_num(&a, rsv->estimate);
    ngx_http_cost_cap_arg_num(&a, NGX_HTTP_COST_CAP_MARKER_TTL);
    ngx_http_cost_cap_arg_fmt(&a, "%s%s", rsv->idem_len ? "i" : "",
                              rsv->lease_max ? "l" : "");

    for (i = 0; i < rsv->nwin; i++) {
        ngx_http_cost_cap_arg_num(&a, rsv->win[i].end
                                            ? rsv->win[i].end + 86400 : 0);
    }

    ngx_http_cost_cap_count(give_backs, 1);

    (void) ngx_http_cost_cap_send(op, &a);
}


/*
 * A request admitted while Redis was away or slow (cost_cap_on_error
 * open) was served: it is charged when Redis answers again, past any cap,
 * unless its reservation ran after all (the marker says so).
 */

void
ngx_http_cost_cap_force(ngx_http_cost_cap_rsv_t *rsv)
{
    ngx_http_cost_cap_op_t  *op;

    if (rsv->estimate == 0 || rsv->nwin == 0) {
        return;
    }

    /* the periods of when it was served, not of when Redis is back */
    if (!rsv->built) {
        ngx_http_cost_cap_periods(rsv, NULL);
    }

    op = ngx_http_cost_cap_rsv_op(rsv, NGX_HTTP_COST_CAP_KIND_FORCE);
    if (op == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: charge of %L micro-USD on \"%*s\" dropped: "
                      "out of memory", rsv->estimate, rsv->tkey_len,
                      rsv->tkey);
        ngx_http_cost_cap_count(settle_drops, 1);
        return;
    }

    ngx_http_cost_cap_payload(op)->rsv.mode = 'f';
    ngx_http_cost_cap_payload(op)->amount = rsv->estimate;

    op->build = ngx_http_cost_cap_reserve_build;

    if (ngx_http_cost_cap_router_send(op) != NGX_OK) {
        ngx_http_cost_cap_dropped(op, "dropped: redis unavailable");
        ngx_http_cost_cap_op_free(op);
    }
}


/*
 * The log phase's settlement: delta (a refund, or actual cost minus the
 * estimate) on the counters the reservation charged, once.
 */

void
ngx_http_cost_cap_settle(ngx_http_cost_cap_rsv_t *rsv, int64_t delta)
{
    ngx_uint_t                    i, idem;
    ngx_http_cost_cap_op_t       *op;
    ngx_http_cost_cap_args_t      a;
    ngx_http_cost_cap_payload_t  *pl;

    if (rsv->mask == 0) {
        return;
    }

    op = ngx_http_cost_cap_rsv_op(rsv, NGX_HTTP_COST_CAP_KIND_SETTLE);
    if (op == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: settlement of %L micro-USD on \"%*s\" "
                      "dropped: out of memory", delta, rsv->tkey_len,
                      rsv->tkey);
        ngx_http_cost_cap_count(settle_drops, 1);
        return;
    }

    pl = ngx_http_cost_cap_payload(op);
    pl->amount = delta;
    ngx_http_cost_cap_op_id(pl->settle_id);

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_SETTLE);

    /* a refund of the whole reservation frees its idempotency key */
    idem = (rsv->idem_len && delta == -rsv->estimate);

    ngx_http_cost_cap_arg_num(&a, 1 + idem
                              + (ngx_uint_t) __builtin_popcountll(rsv->mask));
    ngx_http_cost_cap_arg_op(&a, rsv, pl->settle_id);

    if (idem) {
        ngx_http_cost_cap_arg_idem(&a, rsv);
    }

    for (i = 0; i < rsv->nwin; i++) {
        if (rsv->mask & ((uint64_t) 1 << i)) {
            ngx_http_cost_cap_arg_key(&a, rsv, i);
        }
    }

    ngx_http_cost_cap_arg_num(&a, delta);
    ngx_http_cost_cap_arg_num(&a, NGX_HTTP_COST_CAP_MARKER_TTL);
    ngx_http_cost_cap_arg(&a, (u_char *) "i", idem);
    ngx_http_cost_cap_arg_op(&a, rsv, rsv->id);

    for (i = 0; i < rsv->nwin; i++) {
        if (rsv->mask & ((uint64_t) 1 << i)) {
            ngx_http_cost_cap_arg_num(&a, rsv->win[i].end
                                                ? rsv->win[i].end + 86400
                                                : 0);
        }
    }

    (void) ngx_http_cost_cap_send(op, &a);
}


/*
 * A lease ends (its time, its periods, used up, the worker exits): what was
 * not used of it goes back to the counters it was charged to, once.
 */

void
ngx_http_cost_cap_lease_return(ngx_http_cost_cap_rsv_t *rsv, int64_t unused)
{
    ngx_uint_t                    i;
    ngx_http_cost_cap_op_t       *op;
    ngx_http_cost_cap_args_t      a;
    ngx_http_cost_cap_payload_t  *pl;

    op = ngx_http_cost_cap_rsv_op(rsv, NGX_HTTP_COST_CAP_KIND_LEASE);
    if (op == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: return of %L micro-USD of lease %*s "
                      "dropped: out of memory", unused,
                      (size_t) NGX_HTTP_COST_CAP_OP_ID_LEN, rsv->id);
        ngx_http_cost_cap_count(settle_drops, 1);
        return;
    }

    pl = ngx_http_cost_cap_payload(op);
    pl->amount = -unused;

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_LEASE);

    ngx_http_cost_cap_arg_num(&a, 1 + (ngx_uint_t)
                                         __builtin_popcountll(rsv->mask));
    ngx_http_cost_cap_arg_lease(&a, rsv, rsv->id);

    for (i = 0; i < rsv->nwin; i++) {
        if (rsv->mask & ((uint64_t) 1 << i)) {
            ngx_http_cost_cap_arg_key(&a, rsv, i);
        }
    }

    ngx_http_cost_cap_arg_num(&a, unused);

    for (i = 0; i < rsv->nwin; i++) {
        if (rsv->mask & ((uint64_t) 1 << i)) {
            ngx_http_cost_cap_arg_num(&a, rsv->win[i].end
                                                ? rsv->win[i].end + 86400
                                                : 0);
        }
    }

    ngx_http_cost_cap_count(lease_returns, 1);

    (void) ngx_http_cost_cap_send(op, &a);
}


/* cancel, force, settle, event: retried until their deadline */

static void
ngx_http_cost_cap_undo_handler(ngx_http_cost_cap_op_t *op, redisReply *reply,
    ngx_uint_t event)
{
    ngx_http_cost_cap_payload_t  *pl;

    pl = ngx_http_cost_cap_payload(op);

    if (event == NGX_HTTP_COST_CAP_OP_REPLY) {
        if (reply->type != REDIS_REPLY_ERROR) {
            if (pl->kind == NGX_HTTP_COST_CAP_KIND_FORCE) {
                ngx_http_cost_cap_forced(op, reply);
            }

            return;
        }

        /*
         * -OOM, -NOSCRIPT twice, ...: again, until the deadline; past it,
         * dropped here (the retry would finish the operation inside its
         * own handler, and op_finish() would free it twice)
         */
        if (ngx_http_cost_cap_router_retriable(op)) {
            ngx_http_cost_cap_router_retry(op);
            return;
        }
    }

    if (event == NGX_HTTP_COST_CAP_OP_TIMEOUT) {
        return;
    }

    if (pl->kind == NGX_HTTP_COST_CAP_KIND_EVENT) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "cost_cap: threshold event of \"%*s\" not delivered: "
                      "redis unavailable", pl->rsv.tkey_len, pl->rsv.tkey);
        return;
    }

    ngx_http_cost_cap_count(settle_drops, 1);
    ngx_http_cost_cap_dropped(op, op->unknown
                                  ? "unconfirmed: redis did not answer"
                                  : "dropped: redis unavailable");
}


static ngx_int_t
ngx_http_cost_cap_send(ngx_http_cost_cap_op_t *op, ngx_http_cost_cap_args_t *a)
{
    if (a->p > a->last
        || ngx_http_cost_cap_conn_format(op, a->argc, a->argv, a->argvlen)
           != NGX_OK
        || ngx_http_cost_cap_router_send(op) != NGX_OK)
    {
        ngx_http_cost_cap_count(settle_drops, 1);
        ngx_http_cost_cap_dropped(op, "dropped: redis unavailable");
        ngx_http_cost_cap_op_free(op);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A request served while Redis was away, charged now: the thresholds its
 * charge crossed are events as well (the script has marked them as sent).
 * Or its reservation had run after all, its reply lost: the lease that
 * took is nobody's.
 */

static void
ngx_http_cost_cap_forced(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    cc_reserve_reply_t        res;
    ngx_http_cost_cap_rsv_t  *rsv;

    rsv = &ngx_http_cost_cap_payload(op)->rsv;

    if (cc_reserve_reply_parse(reply, rsv->nwin, &res) != 0) {
        return;
    }

    if (res.status == CC_RESERVE_APPLIED) {
        ngx_http_cost_cap_lease_orphan(rsv, &res);
        return;
    }

    if (res.status == CC_RESERVE_ADMITTED
        || res.status == CC_RESERVE_REFUSED)
    {
        ngx_http_cost_cap_late_events(rsv, &res);
    }
}


/*
 * A lease a reservation took whose request is gone, or whose reply was
 * lost: no worker holds it, it goes back now, on the counters it was
 * charged to (rsv is a copy made before the reply: its mask is the
 * reply's).
 */

static void
ngx_http_cost_cap_lease_orphan(ngx_http_cost_cap_rsv_t *rsv,
    cc_reserve_reply_t *res)
{
    if (res->lease <= 0 || res->mask == 0) {
        return;
    }

    rsv->mask = res->mask;

    ngx_http_cost_cap_lease_return(rsv, res->lease);
}


/*
 * The events of a charge whose request is gone (served open, its
 * reservation answered late or made later): the names come from its
 * keys, costcap:{PARENT}:TENANT: or costcap:{TENANT}:.
 */

static void
ngx_http_cost_cap_late_events(ngx_http_cost_cap_rsv_t *rsv,
    cc_reserve_reply_t *res)
{
    ngx_str_t   tenant, parent;
    ngx_uint_t  i;

    if (res->nalerts == 0) {
        return;
    }

    rsv->now = res->now;
    rsv->lease = res->lease;

    for (i = 0; i < rsv->nwin; i++) {
        rsv->win[i].spent = res->win[i].spent;
        rsv->win[i].cap = res->win[i].cap;
    }

    rsv->nalerts = res->nalerts;
    ngx_memcpy(rsv->alerts, res->alerts,
               res->nalerts * sizeof(cc_alert_reply_t));

    parent.data = rsv->pkey + sizeof("costcap:{") - 1;
    parent.len = rsv->pkey_len - sizeof("costcap:{}:") + 1;

    if (rsv->tkey_len == rsv->pkey_len) {
        tenant = parent;
        ngx_str_null(&parent);

    } else {
        tenant.data = rsv->tkey + rsv->pkey_len;
        tenant.len = rsv->tkey_len - rsv->pkey_len - 1;
    }

    ngx_http_cost_cap_events(rsv, &tenant, &parent, ngx_cycle->log);
}


/*
 * Threshold events: the script decided, atomically and once across every
 * gateway, which were crossed; each goes to the stream, which lives in a
 * slot of its own, and to the log.
 */

static void
ngx_http_cost_cap_events(ngx_http_cost_cap_rsv_t *rsv, ngx_str_t *tenant,
    ngx_str_t *parent, ngx_log_t *log)
{
    u_char                        id[NGX_HTTP_COST_CAP_OP_ID_LEN];
    ngx_uint_t                    i;
    const char                   *level;
    ngx_http_cost_cap_op_t       *op;
    int64_t                       after;
    ngx_http_cost_cap_win_t      *w;
    ngx_http_cost_cap_args_t      a;
    cc_alert_reply_t             *al;
    ngx_http_cost_cap_payload_t  *pl;

    static ngx_str_t  stream = ngx_string("costcap:events");

    for (i = 0; i < rsv->nalerts; i++) {
        al = &rsv->alerts[i];
        w = &rsv->win[al->window];
        level = (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) ? "parent"
                                                             : "tenant";

        /* the counter after the script: a lease is counted at once */
        after = w->spent + rsv->estimate + rsv->lease;

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "cost_cap: %s \"%V\" reached %ui%% of its %s cap in "
                      "%*s (tenant \"%V\", %L of %L micro-USD)", level,
                      w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT
                      ? parent : tenant,
                      (ngx_uint_t) al->percent, cc_window_name(w->window),
                      (size_t) w->period_len, w->period, tenant,
                      after, w->cap);

        op = ngx_http_cost_cap_rsv_op(rsv, NGX_HTTP_COST_CAP_KIND_EVENT);
        if (op == NULL) {
            continue;
        }

        pl = ngx_http_cost_cap_payload(op);
        op->slot = cc_key_slot((char *) stream.data, stream.len);
        ngx_http_cost_cap_op_id(id);

        ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_EVENT);

        ngx_http_cost_cap_arg(&a, (u_char *) "2", 1);
        ngx_http_cost_cap_arg(&a, stream.data, stream.len);
        ngx_http_cost_cap_arg_fmt(&a, "{%V}:op:%*s", &stream,
                                  (size_t) NGX_HTTP_COST_CAP_OP_ID_LEN, id);
        ngx_http_cost_cap_arg_num(&a, NGX_HTTP_COST_CAP_MARKER_TTL);
        ngx_http_cost_cap_arg(&a, (u_char *) "100000", 6);

        ngx_http_cost_cap_arg(&a, (u_char *) "tenant", 6);
        ngx_http_cost_cap_arg(&a, tenant->data, tenant->len);
        ngx_http_cost_cap_arg(&a, (u_char *) "parent", 6);
        ngx_http_cost_cap_arg(&a, parent->data, parent->len);
        ngx_http_cost_cap_arg(&a, (u_char *) "level", 5);
        ngx_http_cost_cap_arg(&a, (u_char *) level, ngx_strlen(level));
        ngx_http_cost_cap_arg(&a, (u_char *) "window", 6);
        ngx_http_cost_cap_arg(&a, (u_char *) cc_window_name(w->window),
                              ngx_strlen(cc_window_name(w->window)));
        ngx_http_cost_cap_arg(&a, (u_char *) "period", 6);
        ngx_http_cost_cap_arg(&a, w->period, w->period_len);
        ngx_http_cost_cap_arg(&a, (u_char *) "percent", 7);
        ngx_http_cost_cap_arg_num(&a, (ngx_uint_t) al->percent);
        ngx_http_cost_cap_arg(&a, (u_char *) "spent", 5);
        ngx_http_cost_cap_arg_num(&a, after);
        ngx_http_cost_cap_arg(&a, (u_char *) "limit", 5);
        ngx_http_cost_cap_arg_num(&a, w->cap);
        ngx_http_cost_cap_arg(&a, (u_char *) "time", 4);
        ngx_http_cost_cap_arg_num(&a, rsv->now);

        pl->amount = 0;

        (void) ngx_http_cost_cap_send(op, &a);
    }
}


/* what is given up is logged: its kind, amount and keys */

static void
ngx_http_cost_cap_dropped(ngx_http_cost_cap_op_t *op, const char *what)
{
    u_char                        keys[NGX_HTTP_COST_CAP_WIN_MAX
                                       * (NGX_HTTP_COST_CAP_TKEY_LEN + 24)];
    u_char                       *p;
    ngx_uint_t                    i;
    ngx_http_cost_cap_rsv_t      *rsv;
    ngx_http_cost_cap_payload_t  *pl;

    static const char  *kinds[] = { "reservation", "give-back", "charge",
                                    "settlement", "event", "lease return" };

    pl = ngx_http_cost_cap_payload(op);
    rsv = &pl->rsv;
    p = keys;

    for (i = 0; i < rsv->nwin; i++) {
        if ((pl->kind == NGX_HTTP_COST_CAP_KIND_SETTLE
             || pl->kind == NGX_HTTP_COST_CAP_KIND_LEASE)
            && !(rsv->mask & ((uint64_t) 1 << i)))
        {
            continue;
        }

        p = ngx_sprintf(p, " %*s%s:%*s",
                        rsv->win[i].level == NGX_HTTP_COST_CAP_LEVEL_PARENT
                        ? rsv->pkey_len : rsv->tkey_len,
                        rsv->win[i].level == NGX_HTTP_COST_CAP_LEVEL_PARENT
                        ? rsv->pkey : rsv->tkey,
                        cc_window_name(rsv->win[i].window),
                        (size_t) rsv->win[i].period_len, rsv->win[i].period);
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "cost_cap: %s of %L micro-USD (reservation %*s) on%*s %s",
                  kinds[pl->kind], pl->amount,
                  (size_t) NGX_HTTP_COST_CAP_OP_ID_LEN, rsv->id,
                  p - keys, keys, what);
}


/* EVALSHA <sha>: how every script call begins; NOSCRIPT loads it */

void
ngx_http_cost_cap_arg_script(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_op_t *op, ngx_uint_t script)
{
    a->p = a->buf;
    a->last = a->buf + sizeof(a->buf);
    a->argc = 0;

    op->script = &ngx_http_cost_cap_scripts[script];

    ngx_http_cost_cap_arg(a, (u_char *) "EVALSHA", 7);
    ngx_http_cost_cap_arg(a, op->script->sha.data, op->script->sha.len);
}


void
ngx_http_cost_cap_arg(ngx_http_cost_cap_args_t *a, u_char *s, size_t len)
{
    if (a->argc == NGX_HTTP_COST_CAP_ARGS) {
        a->p = a->last + 1;
        return;
    }

    a->argv[a->argc] = (char *) s;
    a->argvlen[a->argc] = len;
    a->argc++;
}


void
ngx_http_cost_cap_arg_fmt(ngx_http_cost_cap_args_t *a, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    if (a->p >= a->last) {
        a->p = a->last + 1;
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(a->p, a->last, fmt, args);
    va_end(args);

    if (p == a->last) {
        a->p = a->last + 1;
        return;
    }

    ngx_http_cost_cap_arg(a, a->p, p - a->p);
    a->p = p;
}


/* costcap:{TAG}:lease:ID, of the reservation that took it */

static void
ngx_http_cost_cap_arg_lease(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, u_char *id)
{
    ngx_http_cost_cap_arg_cat(a, rsv->pkey, rsv->pkey_len, "lease:", id,
                              NGX_HTTP_COST_CAP_OP_ID_LEN);
}


/* costcap:{TAG}:[TENANT:]idem:KEY */

void
ngx_http_cost_cap_arg_idem(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv)
{
    ngx_http_cost_cap_arg_cat(a, rsv->tkey, rsv->tkey_len, "idem:",
                              rsv->idem, rsv->idem_len);
}


/* a window's counter: costcap:{TAG}:[TENANT:]WINDOW:PERIOD */

void
ngx_http_cost_cap_arg_key(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, ngx_uint_t i)
{
    u_char                   *start;
    const char               *name;
    ngx_http_cost_cap_win_t  *w;

    w = &rsv->win[i];
    name = cc_window_name(w->window);

    start = a->p;

    if (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) {
        ngx_http_cost_cap_arg_add(a, rsv->pkey, rsv->pkey_len);

    } else {
        ngx_http_cost_cap_arg_add(a, rsv->tkey, rsv->tkey_len);
    }

    ngx_http_cost_cap_arg_add(a, (u_char *) name, ngx_strlen(name));
    ngx_http_cost_cap_arg_add(a, (u_char *) ":", 1);
    ngx_http_cost_cap_arg_add(a, w->period, w->period_len);

    ngx_http_cost_cap_arg_end(a, start);
}


/* costcap:{TAG}:op:ID, an operation's marker */

static void
ngx_http_cost_cap_arg_op(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, u_char *id)
{
    ngx_http_cost_cap_arg_cat(a, rsv->pkey, rsv->pkey_len, "op:", id,
                              NGX_HTTP_COST_CAP_OP_ID_LEN);
}


/* a key of three pieces: the tag's prefix, a name, an id */

static void
ngx_http_cost_cap_arg_cat(ngx_http_cost_cap_args_t *a, u_char *key,
    size_t key_len, const char *name, u_char *s, size_t len)
{
    u_char  *start;

    start = a->p;

    ngx_http_cost_cap_arg_add(a, key, key_len);
    ngx_http_cost_cap_arg_add(a, (u_char *) name, ngx_strlen(name));
    ngx_http_cost_cap_arg_add(a, s, len);

    ngx_http_cost_cap_arg_end(a, start);
}


/* an argument made in the buffer, piece by piece: no printf on the way */

static void
ngx_http_cost_cap_arg_add(ngx_http_cost_cap_args_t *a, u_char *s, size_t len)
{
    if (a->p > a->last || (size_t) (a->last - a->p) < len) {
        a->p = a->last + 1;
        return;
    }

    if (len) {
        a->p = ngx_cpymem(a->p, s, len);
    }
}


static void
ngx_http_cost_cap_arg_end(ngx_http_cost_cap_args_t *a, u_char *start)
{
    if (a->p > a->last) {
        return;
    }

    ngx_http_cost_cap_arg(a, start, a->p - start);
}


static void
ngx_http_cost_cap_arg_num(ngx_http_cost_cap_args_t *a, int64_t v)
{
    u_char    tmp[NGX_INT64_LEN], *p, *start;
    uint64_t  u;

    if (a->p > a->last) {
        return;
    }

    start = a->p;
    u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;
    p = tmp + sizeof(tmp);

    do {
        *--p = (u_char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (v < 0) {
        ngx_http_cost_cap_arg_add(a, (u_char *) "-", 1);
    }

    ngx_http_cost_cap_arg_add(a, p, tmp + sizeof(tmp) - p);
    ngx_http_cost_cap_arg_end(a, start);
}

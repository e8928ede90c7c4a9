
/*
 * ngx_cost_cap_module: a request's budgets (SPEC 11, 12).  The windows a
 * reservation declares: the tenant's (and its parent's), from the
 * configuration or, with cost_cap_caps_from_redis, every window, whose
 * caps the script reads from the caps hashes; their keys under one hash
 * tag; and the answer of a quote or a status request.
 */


#include "ngx_http_cost_cap_module.h"


static ngx_int_t ngx_http_cost_cap_level(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_array_t *limits, ngx_uint_t level,
    ngx_uint_t all);
static u_char *ngx_http_cost_cap_window_json(u_char *p,
    ngx_http_cost_cap_rsv_t *rsv, ngx_http_cost_cap_win_t *w);


/* the parent: validated as the tenant is; empty means none */

ngx_int_t
ngx_http_cost_cap_parent(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    static ngx_str_t  parent = ngx_string("parent");

    if (lcf->parent == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, lcf->parent, &ctx->parent) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->parent.len
        && !cc_tenant_valid((char *) ctx->parent.data, ctx->parent.len))
    {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "tenant_invalid",
                               "The parent must be 1-128 characters of "
                               "A-Z a-z 0-9 . _ ~ : @ + = / -.", &parent);
        ngx_str_null(&ctx->parent);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The keys and windows of ctx->rsv.  Under a parent P the tag is P's:
 * costcap:{P}:WINDOW:PERIOD for P, costcap:{P}:TENANT:WINDOW:PERIOD for
 * the tenant, so that both levels are in one Cluster slot.
 */

ngx_int_t
ngx_http_cost_cap_budget(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_int_t                 rc;
    ngx_http_cost_cap_rsv_t  *rsv;

    rsv = &ctx->rsv;
    rsv->estimate = ctx->estimate.cost;

    if (ctx->parent.len) {
        rsv->pkey_len = cc_key_prefix((char *) ctx->parent.data,
                                      ctx->parent.len, (char *) rsv->pkey);
        rsv->tkey_len = ngx_sprintf(rsv->tkey, "%*s%V:", rsv->pkey_len,
                                    rsv->pkey, &ctx->tenant)
                        - rsv->tkey;

    } else {
        rsv->pkey_len = cc_key_prefix((char *) ctx->tenant.data,
                                      ctx->tenant.len, (char *) rsv->pkey);
        rsv->tkey_len = rsv->pkey_len;
        ngx_memcpy(rsv->tkey, rsv->pkey, rsv->pkey_len);
    }

    rsv->caps = (lcf->caps_from_redis == 1);

    rc = ngx_http_cost_cap_level(r, ctx, lcf->limits,
                                 NGX_HTTP_COST_CAP_LEVEL_TENANT, rsv->caps);
    if (rc != NGX_OK) {
        return rc;
    }

    rsv->ntenant = rsv->nwin;

    if (ctx->parent.len) {
        rsv->pcaps = rsv->caps;

        rc = ngx_http_cost_cap_level(r, ctx, lcf->parent_limits,
                                     NGX_HTTP_COST_CAP_LEVEL_PARENT,
                                     rsv->pcaps);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (lcf->alerts) {
        rsv->thresholds = lcf->alerts;
    }

    /* cost_cap_idempotency: the script charges a key once */
    return ngx_http_cost_cap_idempotency(r, ctx, lcf);
}


/*
 * One level's windows: the configured caps (literals, or variables
 * evaluated now: empty is "not enforced"); with all, every window, those
 * without a configured cap left to the caps hash.
 */

static ngx_int_t
ngx_http_cost_cap_level(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_array_t *limits, ngx_uint_t level, ngx_uint_t all)
{
    int64_t                     amount[CC_WIN_MAX];
    ngx_str_t                   v;
    ngx_uint_t                  i, w;
    ngx_http_cost_cap_win_t    *win;
    ngx_http_cost_cap_limit_t  *limit;

    for (w = 0; w < CC_WIN_MAX; w++) {
        amount[w] = -1;
    }

    limit = limits ? limits->elts : NULL;

    for (i = 0; limits && i < limits->nelts; i++) {

        if (limit[i].value == NULL) {
            amount[limit[i].window] = limit[i].amount;
            continue;
        }

        if (ngx_http_complex_value(r, limit[i].value, &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (v.len == 0) {
            continue;
        }

        if (cc_decimal_parse((char *) v.data, v.len, &amount[limit[i].window])
            != CC_DEC_OK
            || amount[limit[i].window] > NGX_HTTP_COST_CAP_MAX_AMOUNT)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cost_cap: cap \"%V\" of %s \"%V\" for window %s "
                          "is not an amount", &v,
                          level == NGX_HTTP_COST_CAP_LEVEL_PARENT
                          ? "parent" : "tenant",
                          level == NGX_HTTP_COST_CAP_LEVEL_PARENT
                          ? &ctx->parent : &ctx->tenant,
                          cc_window_name(limit[i].window));

            ngx_http_cost_cap_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "cost_cap_misconfigured",
                                   "The spend cap of this tenant is "
                                   "misconfigured.", NULL);
            return NGX_DECLINED;
        }
    }

    /* in the configuration's order; every window when the hash may cap */
    for (i = 0; i < (all ? CC_WIN_MAX : (limits ? limits->nelts : 0)); i++) {
        w = all ? i : limit[i].window;

        if (amount[w] < 0 && !all) {
            continue;
        }

        win = &ctx->rsv.win[ctx->rsv.nwin++];
        win->window = (u_char) w;
        win->level = (u_char) level;
        win->limit = amount[w];
    }

    return NGX_OK;
}


/*
 * What Redis holds is not an amount: a cap in a caps hash, or a counter.
 * The log names the key (the tenant's or the parent's), so that an
 * operator finds what to fix.
 */

void
ngx_http_cost_cap_bad_budget(ngx_http_cost_cap_ctx_t *ctx)
{
    u_char                   *key;
    size_t                    len;
    ngx_http_cost_cap_rsv_t  *rsv;
    ngx_http_cost_cap_win_t  *w;

    rsv = &ctx->rsv;
    w = &rsv->win[rsv->bad];

    key = (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) ? rsv->pkey : rsv->tkey;
    len = (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) ? rsv->pkey_len
                                                       : rsv->tkey_len;

    if (rsv->status == CC_RESERVE_BAD_CAP) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "cost_cap: cap \"%*s\" in %*scaps field %s is not an "
                      "amount (tenant \"%V\")", ctx->bad_len, ctx->bad,
                      len, key, cc_window_name(w->window), &ctx->tenant);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "cost_cap: counter %*s%s:%*s is not an amount (tenant "
                  "\"%V\")", len, key, cc_window_name(w->window),
                  (size_t) w->period_len, w->period, &ctx->tenant);
}


/*
 * A quote or a status: {"estimate": USD, "gpu_seconds": N, "model": "...",
 * "admit": true|false, "windows": [...]}, or {"windows": [...]}.
 */

ngx_int_t
ngx_http_cost_cap_send_windows(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx)
{
    u_char                   *body, *p;
    size_t                    len;
    ngx_uint_t                i, first;
    ngx_http_cost_cap_rsv_t  *rsv;

    rsv = &ctx->rsv;

    len = sizeof("{\"estimate\":,\"gpu_seconds\":,\"model\":,\"admit\":false,"
                 "\"windows\":[]}\n")
          + 2 * CC_DECIMAL_MAX_LEN + 2 + 6 * ctx->model.len
          + rsv->nwin * (sizeof("{\"level\":\"parent\",\"window\":\"minute\","
                                "\"limit\":,\"spent\":,\"remaining\":,"
                                "\"reset_in\":},")
                         + 3 * CC_DECIMAL_MAX_LEN + NGX_INT64_LEN);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "{", 1);

    if (ctx->estimated) {
        p = ngx_cpymem(p, "\"estimate\":", 11);
        p += cc_decimal_format(ctx->estimate.cost, (char *) p);
        p = ngx_cpymem(p, ",\"gpu_seconds\":", 15);
        p += cc_decimal_format(ctx->estimate.gpu_seconds, (char *) p);
        p = ngx_cpymem(p, ",\"model\":", 9);
        p = ngx_http_cost_cap_json_string(p, &ctx->model);
        p = ngx_sprintf(p, ",\"admit\":%s,",
                        rsv->status == CC_RESERVE_REFUSED ? "false" : "true");
    }

    p = ngx_cpymem(p, "\"windows\":[", 11);

    for (i = 0, first = 1; i < rsv->nwin; i++) {
        if (rsv->win[i].cap < 0) {
            continue;
        }

        if (!first) {
            *p++ = ',';
        }

        first = 0;
        p = ngx_http_cost_cap_window_json(p, rsv, &rsv->win[i]);
    }

    p = ngx_cpymem(p, "]}\n", 3);

    return ngx_http_cost_cap_send_json(r, NGX_HTTP_OK, body, p - body);
}


static u_char *
ngx_http_cost_cap_window_json(u_char *p, ngx_http_cost_cap_rsv_t *rsv,
    ngx_http_cost_cap_win_t *w)
{
    p = ngx_sprintf(p, "{\"level\":\"%s\",\"window\":\"%s\",\"limit\":",
                    w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT ? "parent"
                                                               : "tenant",
                    cc_window_name(w->window));
    p += cc_decimal_format(w->cap, (char *) p);
    p = ngx_cpymem(p, ",\"spent\":", 9);
    p += cc_decimal_format(w->spent, (char *) p);
    p = ngx_cpymem(p, ",\"remaining\":", 13);
    p += cc_decimal_format(ngx_max(w->cap - w->spent, 0), (char *) p);

    if (w->end) {
        return ngx_sprintf(p, ",\"reset_in\":%L}", w->end - rsv->now);
    }

    return ngx_cpymem(p, ",\"reset_in\":null}", 17);
}

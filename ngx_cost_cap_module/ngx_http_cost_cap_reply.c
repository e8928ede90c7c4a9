
/*
 * ngx_cost_cap_module: JSON error bodies and X-Cost-Cap-* headers.
 */


#include "ngx_http_cost_cap_module.h"


#define ngx_http_cost_cap_lit(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)

static ngx_int_t ngx_http_cost_cap_error_page(ngx_http_request_t *r,
    ngx_uint_t status);


static const char *
ngx_http_cost_cap_error_type(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_TOO_MANY_REQUESTS:
        return "insufficient_quota";
    case NGX_HTTP_INTERNAL_SERVER_ERROR:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        return "server_error";
    default:
        return "invalid_request_error";
    }
}


ngx_int_t
ngx_http_cost_cap_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, ngx_str_t *message, ngx_str_t *param)
{
    u_char  *body, *p;
    size_t   len;

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        if (ngx_http_cost_cap_set_header(r, "Retry-After", (u_char *) "1", 1)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_cost_cap_error_page(r, status)) {
        return status;
    }

    len = sizeof("{\"error\":{\"type\":\"\",\"code\":\"\",\"message\":,"
                 "\"param\":}}\n") - 1
          + ngx_strlen(ngx_http_cost_cap_error_type(status))
          + ngx_strlen(code)
          + 2 + 6 * message->len
          + (param ? 2 + 6 * param->len : 4);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(body, "{\"error\":{\"type\":\"%s\",\"code\":\"%s\","
                    "\"message\":", ngx_http_cost_cap_error_type(status),
                    code);
    p = ngx_http_cost_cap_json_string(p, message);
    p = ngx_cpymem(p, ",\"param\":", 9);

    if (param) {
        p = ngx_http_cost_cap_json_string(p, param);

    } else {
        p = ngx_cpymem(p, "null", 4);
    }

    p = ngx_cpymem(p, "}}\n", 3);

    return ngx_http_cost_cap_send_json(r, status, body, p - body);
}


ngx_int_t
ngx_http_cost_cap_send_exceeded(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx)
{
    u_char                   *body, *p, *retry_after;
    u_char                    usd[3][CC_DECIMAL_MAX_LEN];
    size_t                    len, l[3], retry_after_len;
    int64_t                   reset;
    ngx_str_t                 window;
    const char               *level;
    ngx_http_cost_cap_win_t  *w;

    w = &ctx->rsv.win[ctx->bind];
    reset = w->end ? w->end - ctx->rsv.now : -1;
    level = (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) ? "parent" : "tenant";

    window.data = (u_char *) cc_window_name(w->window);
    window.len = ngx_strlen(window.data);

    retry_after = NULL;
    retry_after_len = 0;

    if (reset >= 0) {
        retry_after = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (retry_after == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        retry_after_len = ngx_sprintf(retry_after, "%L", reset) - retry_after;

        if (ngx_http_cost_cap_set_header(r, "Retry-After", retry_after,
                                         retry_after_len)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_cost_cap_set_header(r, "x-should-retry", (u_char *) "false",
                                     5)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_cost_cap_error_page(r, NGX_HTTP_TOO_MANY_REQUESTS)) {
        return NGX_HTTP_TOO_MANY_REQUESTS;
    }

    l[0] = cc_decimal_format(w->cap, (char *) usd[0]);
    l[1] = cc_decimal_format(w->spent, (char *) usd[1]);
    l[2] = cc_decimal_format(ctx->estimate.cost, (char *) usd[2]);

    /*
     * Written straight into the body: the tenant (see cc_tenant_valid()),
     * the window and the amounts need no JSON escaping.
     */
    len = sizeof("{\"error\":{\"type\":\"insufficient_quota\",\"code\":"
                 "\"cost_cap_exceeded\",\"message\":\"Spend cap exceeded for "
                 "tenant \\\"\\\": the  window allows  USD and  USD is spent; "
                 "this request is estimated at  USD.\",\"param\":null,"
                 "\"tenant\":\"\",\"level\":\"parent\",\"window\":\"\"") - 1
          + 2 * (ctx->tenant.len + window.len + l[0] + l[1] + l[2])
          + sizeof(",\"limit\":,\"spent\":,\"estimate\":,\"reset_in\":}}\n")
          + 3 * CC_DECIMAL_MAX_LEN + NGX_INT64_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* piece by piece: a runaway tenant is answered this many times */
    p = ngx_http_cost_cap_lit(body, "{\"error\":{\"type\":"
                              "\"insufficient_quota\",\"code\":"
                              "\"cost_cap_exceeded\",\"message\":"
                              "\"Spend cap exceeded for tenant \\\"");
    p = ngx_cpymem(p, ctx->tenant.data, ctx->tenant.len);
    p = ngx_http_cost_cap_lit(p, "\\\": the ");
    p = ngx_cpymem(p, window.data, window.len);
    p = ngx_http_cost_cap_lit(p, " window allows ");
    p = ngx_cpymem(p, usd[0], l[0]);
    p = ngx_http_cost_cap_lit(p, " USD and ");
    p = ngx_cpymem(p, usd[1], l[1]);
    p = ngx_http_cost_cap_lit(p, " USD is spent; this request is estimated"
                              " at ");
    p = ngx_cpymem(p, usd[2], l[2]);
    p = ngx_http_cost_cap_lit(p, " USD.\",\"param\":null,\"tenant\":\"");
    p = ngx_cpymem(p, ctx->tenant.data, ctx->tenant.len);
    p = ngx_http_cost_cap_lit(p, "\",\"level\":\"");
    p = ngx_cpymem(p, level, ngx_strlen(level));
    p = ngx_http_cost_cap_lit(p, "\",\"window\":\"");
    p = ngx_cpymem(p, window.data, window.len);
    p = ngx_http_cost_cap_lit(p, "\",\"limit\":");
    p = ngx_cpymem(p, usd[0], l[0]);
    p = ngx_http_cost_cap_lit(p, ",\"spent\":");
    p = ngx_cpymem(p, usd[1], l[1]);
    p = ngx_http_cost_cap_lit(p, ",\"estimate\":");
    p = ngx_cpymem(p, usd[2], l[2]);

    if (reset >= 0) {
        p = ngx_http_cost_cap_lit(p, ",\"reset_in\":");
        p = ngx_cpymem(p, retry_after, retry_after_len);
        p = ngx_http_cost_cap_lit(p, "}}\n");

    } else {
        p = ngx_http_cost_cap_lit(p, ",\"reset_in\":null}}\n");
    }

    return ngx_http_cost_cap_send_json(r, NGX_HTTP_TOO_MANY_REQUESTS, body,
                                       p - body);
}


ngx_int_t
ngx_http_cost_cap_add_headers(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx)
{
    u_char                   *p;
    int64_t                   remaining;
    ngx_http_cost_cap_win_t  *w;

    p = ngx_pnalloc(r->pool, 3 * CC_DECIMAL_MAX_LEN + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_cost_cap_set_header(r, "X-Cost-Cap-Estimate", p,
                          cc_decimal_format(ctx->estimate.cost, (char *) p))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->result == NGX_HTTP_COST_CAP_DRY_RUN_REJECTED
        && ngx_http_cost_cap_set_header(r, "X-Cost-Cap-Dry-Run",
                                        (u_char *) "rejected", 8)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->bind < 0) {
        return NGX_OK;
    }

    w = &ctx->rsv.win[ctx->bind];

    remaining = ngx_max(w->cap - w->spent - ctx->estimate.cost, 0);

    p += CC_DECIMAL_MAX_LEN;

    if (ngx_http_cost_cap_set_header(r, "X-Cost-Cap-Remaining", p,
                                     cc_decimal_format(remaining, (char *) p))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p += CC_DECIMAL_MAX_LEN;

    if (ngx_http_cost_cap_set_header(r, "X-Cost-Cap-Limit", p,
                                     cc_decimal_format(w->cap, (char *) p))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (w->end == 0) {
        return NGX_OK;
    }

    p += CC_DECIMAL_MAX_LEN;

    return ngx_http_cost_cap_set_header(r, "X-Cost-Cap-Reset", p,
                      ngx_sprintf(p, "%L", w->end - ctx->rsv.now) - p);
}


ngx_int_t
ngx_http_cost_cap_set_header(ngx_http_request_t *r, const char *name,
    u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = value;
    h->value.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* a JSON string: quotes, backslashes and control bytes escaped */

u_char *
ngx_http_cost_cap_json_string(u_char *p, ngx_str_t *s)
{
    u_char      c;
    ngx_uint_t  i;

    static u_char  hex[] = "0123456789abcdef";

    *p++ = '"';

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;

        } else if (c < 0x20 || c == 0x7f) {
            p = ngx_cpymem(p, "\\u00", 4);
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];

        } else {
            *p++ = c;
        }
    }

    *p++ = '"';

    return p;
}


ngx_int_t
ngx_http_cost_cap_send_json(ngx_http_request_t *r, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = body + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}


/*
 * An error_page for the status wins over the JSON body: the phase handler
 * then returns the status and NGINX redirects, as for its own errors.
 */

static ngx_int_t
ngx_http_cost_cap_error_page(ngx_http_request_t *r, ngx_uint_t status)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (r->error_page || clcf->error_pages == NULL || r->uri_changes == 0) {
        return 0;
    }

    err_page = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if (err_page[i].status == (ngx_int_t) status) {
            return 1;
        }
    }

    return 0;
}

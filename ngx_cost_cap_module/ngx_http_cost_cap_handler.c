
/*
 * ngx_cost_cap_module: the pre-content phase handler.  Reads the body,
 * prices the request, reserves the estimate in Redis, and answers.
 */


#include "ngx_http_cost_cap_module.h"


static ngx_http_cost_cap_ctx_t *ngx_http_cost_cap_create_ctx(
    ngx_http_request_t *r);
static void ngx_http_cost_cap_cleanup(void *data);
static ngx_int_t ngx_http_cost_cap_start(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static ngx_int_t ngx_http_cost_cap_media_type(ngx_http_request_t *r);
static void ngx_http_cost_cap_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cost_cap_price(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static ngx_int_t ngx_http_cost_cap_body(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, size_t max, ngx_str_t *body);
static ngx_int_t ngx_http_cost_cap_map(ngx_http_request_t *r,
    ngx_buf_t *b, ngx_str_t *body);
static void ngx_http_cost_cap_unmap(void *data);
static ngx_int_t ngx_http_cost_cap_extract(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    ngx_str_t *body, cc_val_t *vals, cJSON **json);
static ngx_int_t ngx_http_cost_cap_estimate(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    cc_val_t *vals);
static ngx_int_t ngx_http_cost_cap_start_reserve(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static void ngx_http_cost_cap_decide(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf);
static void ngx_http_cost_cap_bind(ngx_http_cost_cap_ctx_t *ctx,
    ngx_uint_t admitted);
static void ngx_http_cost_cap_unavailable(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx);
static ngx_int_t ngx_http_cost_cap_answer(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static void *ngx_http_cost_cap_json_alloc(size_t size);
static void ngx_http_cost_cap_json_free(void *p);


/* cJSON allocates from the request's pool while it parses a body */
static ngx_pool_t  *ngx_http_cost_cap_json_pool;


void
ngx_http_cost_cap_json_init(void)
{
    cJSON_Hooks  hooks;

    hooks.malloc_fn = ngx_http_cost_cap_json_alloc;
    hooks.free_fn = ngx_http_cost_cap_json_free;

    cJSON_InitHooks(&hooks);
}


static void *
ngx_http_cost_cap_json_alloc(size_t size)
{
    if (ngx_http_cost_cap_json_pool) {
        return ngx_palloc(ngx_http_cost_cap_json_pool, size);
    }

    return malloc(size);
}


static void
ngx_http_cost_cap_json_free(void *p)
{
    /* the pool frees what was taken from it */
    if (ngx_http_cost_cap_json_pool == NULL) {
        free(p);
    }
}


ngx_int_t
ngx_http_cost_cap_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_uint_t                     status;
    ngx_http_cost_cap_ctx_t       *ctx;
    ngx_http_cost_cap_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cost_cap_module);

    if (r != r->main) {
        return NGX_DECLINED;
    }

    /* a tenant's budget, read (cost_cap_status) */
    status = lcf->status_on && (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD));

    /*
     * Only requests with a body generate: GET, HEAD, DELETE and OPTIONS
     * (polling a job, downloading its content) pass unpriced.
     */
    if (!status
        && (!lcf->enable
            || !(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))))
    {
        return NGX_DECLINED;
    }

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_cost_cap_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->windows = (status || lcf->quote == 1);

        rc = ngx_http_cost_cap_start(r, ctx, lcf);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    switch (ctx->state) {

    case NGX_HTTP_COST_CAP_STATE_READY:
        rc = ngx_http_cost_cap_price(r, ctx, lcf);
        if (rc != NGX_OK) {
            return rc;
        }

        break;

    case NGX_HTTP_COST_CAP_STATE_BODY:
    case NGX_HTTP_COST_CAP_STATE_REDIS:
        return NGX_AGAIN;

    default: /* NGX_HTTP_COST_CAP_STATE_DONE */
        break;
    }

    if (ctx->state != NGX_HTTP_COST_CAP_STATE_DONE) {
        return NGX_AGAIN;
    }

    /* decide once: an internal redirect or an error_page passes freely */
    if (ctx->acted) {
        return NGX_DECLINED;
    }

    ctx->acted = 1;

    ngx_http_cost_cap_count(results[ctx->result], 1);

    return ngx_http_cost_cap_answer(r, ctx, lcf);
}


/*
 * The context survives internal redirects (which zero module contexts)
 * through its pool cleanup, as in the realip module: a request is priced
 * and charged once.
 */

ngx_http_cost_cap_ctx_t *
ngx_http_cost_cap_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_cost_cap_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_cost_cap_module);

    if (ctx == NULL && (r->main->internal || r->main->filter_finalize)) {
        for (cln = r->main->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_cost_cap_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r->main, ctx, ngx_http_cost_cap_module);
                break;
            }
        }
    }

    return ctx;
}


static ngx_http_cost_cap_ctx_t *
ngx_http_cost_cap_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_cost_cap_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_cost_cap_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_cost_cap_ctx_t));

    ctx->request = r;
    ctx->bind = -1;
    ctx->status = NGX_DECLINED;

    cln->handler = ngx_http_cost_cap_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_cost_cap_module);

    return ctx;
}


static void
ngx_http_cost_cap_cleanup(void *data)
{
    ngx_http_cost_cap_ctx_t  *ctx = data;

    /* a reply still to come finds no request and gives the money back */
    ngx_http_cost_cap_reserve_detach(ctx);
}


/* the tenant and the request's headers; then the body is read */

static ngx_int_t
ngx_http_cost_cap_start(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_int_t  rc;

    static ngx_str_t  tenant = ngx_string("tenant");

    if (ngx_http_complex_value(r, lcf->tenant, &ctx->tenant) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;

    if (ctx->tenant.len == 0) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_UNAUTHORIZED, "tenant_missing",
                               "The request names no tenant.", &tenant);
        return NGX_OK;
    }

    if (!cc_tenant_valid((char *) ctx->tenant.data, ctx->tenant.len)) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "tenant_invalid",
                               "The tenant must be 1-128 characters of "
                               "A-Z a-z 0-9 . _ ~ : @ + = / -.", &tenant);

        /* nothing of an invalid tenant goes to variables or logs */
        ngx_str_null(&ctx->tenant);
        return NGX_OK;
    }

    rc = ngx_http_cost_cap_parent(r, ctx, lcf);

    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a status request has no body to price */
    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))) {
        ctx->state = NGX_HTTP_COST_CAP_STATE_READY;
        return NGX_OK;
    }

    rc = ngx_http_cost_cap_media_type(r);
    ctx->multipart = (rc == NGX_DONE);

    if (rc == NGX_DECLINED) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                               "unsupported_media_type",
                               "The body must be application/json or "
                               "multipart/form-data.", NULL);
        return NGX_OK;
    }

    if (r->headers_in.content_length_n > (off_t) lcf->max_body) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                               "body_too_large",
                               "The request body is larger than the "
                               "gateway inspects.", NULL);
        return NGX_OK;
    }

    ctx->state = NGX_HTTP_COST_CAP_STATE_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_http_cost_cap_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


/* NGX_OK for JSON, NGX_DONE for multipart, NGX_DECLINED for the rest */

static ngx_int_t
ngx_http_cost_cap_media_type(ngx_http_request_t *r)
{
    u_char     *p, *last;
    ngx_str_t  *ct;

    if (r->headers_in.content_type == NULL) {
        return NGX_DECLINED;
    }

    ct = &r->headers_in.content_type->value;
    last = ct->data + ct->len;

    for (p = ct->data; p < last && *p != ';' && *p != ' ' && *p != '\t'; p++)
    {
        /* void */
    }

    if ((size_t) (p - ct->data) == sizeof("application/json") - 1
        && ngx_strncasecmp(ct->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) == 0)
    {
        return NGX_OK;
    }

    if ((size_t) (p - ct->data) == sizeof("multipart/form-data") - 1
        && ngx_strncasecmp(ct->data, (u_char *) "multipart/form-data",
                           sizeof("multipart/form-data") - 1) == 0)
    {
        return NGX_DONE;
    }

    return NGX_DECLINED;
}


static void
ngx_http_cost_cap_body_handler(ngx_http_request_t *r)
{
    ngx_http_cost_cap_ctx_t  *ctx;

    /* no cleanup here: on a read error this is never called */
    ctx = ngx_http_cost_cap_get_ctx(r);
    if (ctx && ctx->state == NGX_HTTP_COST_CAP_STATE_BODY) {
        ctx->state = NGX_HTTP_COST_CAP_STATE_READY;
    }

    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/*
 * The body is read: price the request and start the reservation.  Returns
 * NGX_OK with the state at DONE or REDIS, or an HTTP status.
 */

static ngx_int_t
ngx_http_cost_cap_price(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    cJSON      *json;
    ngx_int_t   rc;
    ngx_str_t   body;
    cc_val_t    vals[CC_FIELD_MAX];

    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))) {
        goto budget;
    }

    rc = ngx_http_cost_cap_body(r, ctx, lcf->max_body, &body);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : rc;
    }

    json = NULL;
    ngx_http_cost_cap_json_pool = r->pool;

    rc = ngx_http_cost_cap_extract(r, ctx, lcf, &body, vals, &json);

    if (rc == NGX_OK) {
        rc = ngx_http_cost_cap_estimate(r, ctx, lcf, vals);
    }

    if (json) {
        cJSON_Delete(json);
    }

    ngx_http_cost_cap_json_pool = NULL;

    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : rc;
    }

budget:

    rc = ngx_http_cost_cap_budget(r, ctx, lcf);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : rc;
    }

    if (ctx->rsv.nwin == 0) {
        ctx->result = ctx->windows ? NGX_HTTP_COST_CAP_QUOTE
                                   : NGX_HTTP_COST_CAP_ADMITTED;
        return NGX_OK;
    }

    return ngx_http_cost_cap_start_reserve(r, ctx, lcf);
}


/*
 * The body as one piece of memory: in place when NGINX kept it in one
 * buffer, else copied from its buffers and temp file.  NGX_DECLINED when
 * it is too large (the error is set).
 */

static ngx_int_t
ngx_http_cost_cap_body(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    size_t max, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    /* never NULL, even empty: the core hands it to memchr() and kin */
    ngx_str_set(body, "");

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                               "body_too_large",
                               "The request body is larger than the "
                               "gateway inspects.", NULL);
        return NGX_DECLINED;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = len;
        return NGX_OK;
    }

    /* a multipart body is scanned where it lies: file parts are not read */
    if (ctx->multipart
        && cl->next == NULL
        && ngx_http_cost_cap_map(r, cl->buf, body) == NGX_OK)
    {
        return NGX_OK;
    }

    /* room for a NUL: JSON is parsed in place */
    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body->data = p;
    body->len = len;
    ctx->body_copied = 1;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            if (b->last > b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                          b->file_pos);

        if (n != b->file_last - b->file_pos) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cost_cap: could not read the body from \"%V\"",
                          &b->file->name);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        p += n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_map(ngx_http_request_t *r, ngx_buf_t *b, ngx_str_t *body)
{
    u_char              *p;
    ngx_str_t           *map;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    p = mmap(NULL, (size_t) b->file_last, PROT_READ, MAP_PRIVATE,
             b->file->fd, 0);

    if (p == MAP_FAILED) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, ngx_errno,
                      "cost_cap: mmap(\"%V\") failed, reading it instead",
                      &b->file->name);
        return NGX_ERROR;
    }

    map = cln->data;
    map->data = p;
    map->len = (size_t) b->file_last;

    cln->handler = ngx_http_cost_cap_unmap;

    body->data = p + b->file_pos;
    body->len = (size_t) (b->file_last - b->file_pos);

    return NGX_OK;
}


static void
ngx_http_cost_cap_unmap(void *data)
{
    ngx_str_t  *map = data;

    (void) munmap(map->data, map->len);
}


/* raw field values from a JSON or multipart body */

static ngx_int_t
ngx_http_cost_cap_extract(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, ngx_str_t *body, cc_val_t *vals,
    cJSON **json)
{
    char        *tmp;
    size_t       blen;
    ngx_uint_t   i;
    ngx_str_t   *ct;
    cc_path_t    paths[CC_FIELD_MAX];
    const char  *b;

    for (i = 0; i < CC_FIELD_MAX; i++) {
        paths[i].data = (char *) lcf->fields[i].data;
        paths[i].len = lcf->fields[i].len;
    }

    if (!ctx->multipart) {
        tmp = ctx->body_copied ? (char *) body->data
                               : ngx_pnalloc(r->pool, body->len + 1);
        if (tmp == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *json = cc_json_parse((char *) body->data, body->len, tmp);

        if (*json == NULL) {
            ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_json",
                                   "The body is not a JSON object.", NULL);
            return NGX_DECLINED;
        }

        cc_json_extract(*json, paths, vals);
        return NGX_OK;
    }

    ct = &r->headers_in.content_type->value;

    if (cc_multipart_boundary((char *) ct->data, ct->len, &b, &blen) != 0
        || cc_multipart_extract((char *) body->data, body->len, b, blen,
                                paths, vals)
           != 0)
    {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_multipart",
                               "The body is not valid multipart/form-data.",
                               NULL);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_estimate(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals)
{
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    cc_dims_t                   dims;
    cc_field_e                  bad;
    ngx_http_cost_cap_model_t  *m;

    if (cc_dims_from_vals(vals, &dims, &bad) != 0) {
        goto invalid;
    }

    ctx->model.data = ngx_pnalloc(r->pool, dims.model_len);
    if (ctx->model.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->model.data, dims.model, dims.model_len);
    ctx->model.len = dims.model_len;

    m = lcf->models->elts;

    for (i = 0; i < lcf->models->nelts; i++) {
        if (m[i].regex == NULL) {
            if (m[i].pattern.len == ctx->model.len
                && ngx_strncmp(m[i].pattern.data, ctx->model.data,
                               ctx->model.len) == 0)
            {
                break;
            }

            continue;
        }

        rc = ngx_regex_exec(m[i].regex, &ctx->model, NULL, 0);

        if (rc >= 0) {
            break;
        }

        if (rc != NGX_REGEX_NO_MATCHED) {
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          ngx_regex_exec_n " failed: %i on \"%V\" using "
                          "\"%V\"", rc, &ctx->model, &m[i].pattern);
        }
    }

    if (i == lcf->models->nelts) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "unknown_model",
                               "No pricing rule matches the model.",
                               &lcf->fields[CC_FIELD_MODEL]);
        return NGX_DECLINED;
    }

    if (cc_estimate(&m[i].rule, &dims, lcf->gpu_price, &ctx->estimate, &bad)
        != 0)
    {
        goto invalid;
    }

    /* Redis' Lua counts in doubles: amounts stay exact up to 2^53 */
    if (ctx->estimate.cost > NGX_HTTP_COST_CAP_MAX_AMOUNT) {
        bad = CC_FIELD_NONE;
        goto invalid;
    }

    ctx->estimated = 1;
    ctx->rule = &m[i];
    ctx->conf = lcf;
    ctx->gpu_price = m[i].rule.gpu_price >= 0 ? m[i].rule.gpu_price
                                              : lcf->gpu_price;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cost_cap: tenant \"%V\" model \"%V\" estimate %L "
                   "gpu_us %L", &ctx->tenant, &ctx->model,
                   ctx->estimate.cost, ctx->estimate.gpu_seconds);

    return NGX_OK;

invalid:

    ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                           bad == CC_FIELD_NONE
                           ? "The request's estimated cost is too large."
                           : "A parameter is missing, of the wrong type, "
                             "or out of range.",
                           bad == CC_FIELD_NONE ? NULL : &lcf->fields[bad]);
    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_cost_cap_start_reserve(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf)
{
    if (ngx_http_cost_cap_reserve(ctx, lcf) != NGX_OK) {
        ngx_http_cost_cap_unavailable(r, ctx);
        return NGX_OK;
    }

    ctx->state = NGX_HTTP_COST_CAP_STATE_REDIS;

    /* a client that goes away while Redis answers ends the request */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_OK;
}


/* the reservation's answer (NGX_OK), or Redis is unavailable or slow */

void
ngx_http_cost_cap_reserved(ngx_http_cost_cap_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t              *c;
    ngx_http_request_t            *r;
    ngx_http_cost_cap_loc_conf_t  *lcf;

    r = ctx->request;
    c = r->connection;
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cost_cap_module);

    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;

    if (rc == NGX_OK) {
        ngx_http_cost_cap_decide(ctx, lcf);

    } else {
        ngx_http_cost_cap_unavailable(r, ctx);
    }

    /* resume in the request's own event: no request code runs here */
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_post_event(c->write, &ngx_posted_events);
}


static void
ngx_http_cost_cap_decide(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_http_cost_cap_rsv_t            *rsv;
    ngx_http_cost_cap_model_metrics_t  *mm;

    rsv = &ctx->rsv;

    if (rsv->mode == 'q'
        && (rsv->status == CC_RESERVE_ADMITTED
            || rsv->status == CC_RESERVE_REFUSED))
    {
        /* a quote or a status: nothing was charged */
        rsv->mask = 0;
        ctx->result = NGX_HTTP_COST_CAP_QUOTE;
        return;
    }

    switch (rsv->status) {

    case CC_RESERVE_ADMITTED:
    case CC_RESERVE_APPLIED:
        ngx_http_cost_cap_bind(ctx, 1);
        ctx->result = NGX_HTTP_COST_CAP_ADMITTED;
        break;

    case CC_RESERVE_REFUSED:
        ngx_http_cost_cap_bind(ctx, 0);

        if (rsv->mode != 'd') {
            ctx->result = NGX_HTTP_COST_CAP_REJECTED;
            ctx->status = NGX_HTTP_TOO_MANY_REQUESTS;
            return;
        }

        ctx->result = NGX_HTTP_COST_CAP_DRY_RUN_REJECTED;
        break;

    case CC_RESERVE_REPLAY:
        /* an idempotent retry: admitted, charged by the first request */
        rsv->mask = 0;
        ctx->result = NGX_HTTP_COST_CAP_ADMITTED;
        return;

    case CC_RESERVE_CONFLICT:
        rsv->mask = 0;
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_CONFLICT,
                               "idempotency_key_reused",
                               "The idempotency key was used for a request "
                               "of another price.", NULL);
        return;

    case CC_RESERVE_BAD_CAP:
    case CC_RESERVE_BAD_COUNTER:
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "cost_cap: %s of tenant \"%V\" for window %s in "
                      "Redis is not an amount",
                      rsv->status == CC_RESERVE_BAD_CAP ? "cap" : "counter",
                      &ctx->tenant,
                      cc_window_name(rsv->win[rsv->bad].window));

        rsv->mask = 0;
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                               "cost_cap_misconfigured",
                               "The spend cap of this tenant is "
                               "misconfigured.", NULL);
        return;

    default:
        rsv->mask = 0;
        ngx_http_cost_cap_unavailable(ctx->request, ctx);
        return;
    }

    ctx->reserved = (rsv->mask != 0);

    mm = ngx_http_cost_cap_metrics_model(ctx->rule);
    if (mm && ctx->reserved) {
        (void) ngx_atomic_fetch_add(&mm->admitted, ctx->estimate.cost);
        (void) ngx_atomic_fetch_add(&mm->estimated_gpu,
                                    ctx->estimate.gpu_seconds);
    }
}


/*
 * The window reported: admitted, the one with the least left after this
 * request; refused, among those crossed, the one that resets last (so
 * that Retry-After is honest).
 */

static void
ngx_http_cost_cap_bind(ngx_http_cost_cap_ctx_t *ctx, ngx_uint_t admitted)
{
    int64_t                   left, best, end, last;
    ngx_uint_t                i;
    ngx_http_cost_cap_win_t  *w;

    best = INT64_MAX;
    last = -1;

    for (i = 0; i < ctx->rsv.nwin; i++) {
        w = &ctx->rsv.win[i];

        if (w->cap < 0) {
            continue;
        }

        left = w->cap - w->spent - ctx->estimate.cost;

        if (admitted) {
            if (left < best) {
                best = left;
                ctx->bind = i;
            }

            continue;
        }

        end = w->end ? w->end : INT64_MAX;

        if (left < 0 && end > last) {
            last = end;
            ctx->bind = i;
        }
    }
}


static void
ngx_http_cost_cap_unavailable(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx)
{
    ngx_http_cost_cap_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cost_cap_module);

    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;

    /* a quote without Redis is no answer: never open */
    if (lcf->on_error == NGX_HTTP_COST_CAP_ON_ERROR_OPEN && !ctx->windows) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cost_cap: redis unavailable, request of tenant "
                      "\"%V\" admitted unreserved (cost_cap_on_error open)",
                      &ctx->tenant);

        ctx->result = NGX_HTTP_COST_CAP_ERROR_OPEN;
        return;
    }

    ngx_http_cost_cap_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                           "cost_cap_unavailable",
                           "The spend cap service is unavailable; retry "
                           "shortly.", NULL);
    ctx->result = NGX_HTTP_COST_CAP_ERROR;
}


static ngx_int_t
ngx_http_cost_cap_answer(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_int_t  rc;

    if (ctx->status == NGX_DECLINED && ctx->windows) {
        rc = ngx_http_cost_cap_send_windows(r, ctx);
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    if (ctx->status == NGX_DECLINED) {
        if (lcf->headers && ctx->estimated
            && ngx_http_cost_cap_add_headers(r, ctx) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_DECLINED;
    }

    if (ctx->status == NGX_HTTP_TOO_MANY_REQUESTS) {
        rc = ngx_http_cost_cap_send_exceeded(r, ctx);

    } else {
        rc = ngx_http_cost_cap_send_error(r, ctx->status, ctx->code,
                                          &ctx->message, ctx->param);
    }

    ngx_http_finalize_request(r, rc);
    return NGX_DONE;
}


void
ngx_http_cost_cap_fail(ngx_http_cost_cap_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *param)
{
    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;
    ctx->status = status;
    ctx->code = code;
    ctx->message.data = (u_char *) message;
    ctx->message.len = ngx_strlen(message);
    ctx->param = param;

    if (ctx->result == NGX_HTTP_COST_CAP_OFF) {
        ctx->result = NGX_HTTP_COST_CAP_INVALID;
    }
}


/*
 * ngx_cost_cap_module: the pre-content phase handler.  Reads the body,
 * prices the request, reserves the estimate in Redis, and answers.
 */


#include "ngx_http_cost_cap_module.h"


/* a JSON body in a temp file is read this much at a time */
#define NGX_HTTP_COST_CAP_CHUNK  65536


static void ngx_http_cost_cap_cleanup(void *data);
static ngx_int_t ngx_http_cost_cap_start(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static ngx_int_t ngx_http_cost_cap_media_type(ngx_http_request_t *r);
static void ngx_http_cost_cap_body_handler(ngx_http_request_t *r);
static void ngx_http_cost_cap_body_failed(ngx_http_cost_cap_ctx_t *ctx);
static ngx_int_t ngx_http_cost_cap_price(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static ngx_int_t ngx_http_cost_cap_extract(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    cc_val_t *vals);
static ngx_int_t ngx_http_cost_cap_json(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    off_t len, cc_val_t *vals);
static ngx_int_t ngx_http_cost_cap_json_file(ngx_http_request_t *r,
    cc_json_t *j, ngx_buf_t *b, u_char **chunk);
static ngx_int_t ngx_http_cost_cap_multipart(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    off_t len, cc_val_t *vals);
static ngx_int_t ngx_http_cost_cap_body(ngx_http_request_t *r, off_t len,
    ngx_str_t *body);
static ngx_int_t ngx_http_cost_cap_map(ngx_http_request_t *r,
    ngx_buf_t *b, ngx_str_t *body);
static void ngx_http_cost_cap_unmap(void *data);
static ngx_int_t ngx_http_cost_cap_variables(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals);
static ngx_int_t ngx_http_cost_cap_estimate(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    cc_val_t *vals);
static ngx_http_cost_cap_model_t *ngx_http_cost_cap_select(
    ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals, unsigned *named);
static ngx_int_t ngx_http_cost_cap_match(ngx_http_request_t *r,
    ngx_http_cost_cap_model_t *m, ngx_str_t *model);
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

    /* a job's status call or callback: read, never priced (SPEC 10) */
    if (lcf->job && lcf->job->mode != NGX_HTTP_COST_CAP_JOB_CREATE) {
        return ngx_http_cost_cap_job_handler(r, lcf);
    }

    /* a tenant's budget, read (cost_cap_status) */
    status = lcf->status_on && (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD));

    /* a status location only answers reads, as stub_status does */
    if (lcf->status_on && !status && !lcf->enable) {
        return NGX_HTTP_NOT_ALLOWED;
    }

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
        /*
         * Back here before the body was read: NGINX gave up reading it
         * (too large, bad chunking, a temp file error) and an error_page
         * sent the request on; it was neither priced nor charged.
         */
        ngx_http_cost_cap_body_failed(ctx);
        return NGX_DECLINED;

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


ngx_http_cost_cap_ctx_t *
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
        ngx_http_cost_cap_body_failed(ctx);
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}


/*
 * NGINX answers the request itself: decided, so that an error_page to a
 * location where cost_cap is on passes instead of waiting for a body that
 * never comes.
 */

static void
ngx_http_cost_cap_body_failed(ngx_http_cost_cap_ctx_t *ctx)
{
    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;

    if (ctx->acted) {
        return;
    }

    ctx->acted = 1;
    ctx->result = NGX_HTTP_COST_CAP_INVALID;
    ngx_http_cost_cap_count(results[ctx->result], 1);
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
    ngx_int_t   rc;
    cc_val_t   *vals;

    ctx->state = NGX_HTTP_COST_CAP_STATE_DONE;

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT|NGX_HTTP_PATCH))) {
        goto budget;
    }

    vals = ngx_palloc(r->pool, lcf->fields->nelts * sizeof(cc_val_t));
    if (vals == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_cost_cap_extract(r, ctx, lcf, vals);

    if (rc == NGX_OK) {
        rc = ngx_http_cost_cap_estimate(r, ctx, lcf, vals);
    }

    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : rc;
    }

budget:

    rc = ngx_http_cost_cap_budget(r, ctx, lcf);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_OK : rc;
    }

    if (ctx->rsv.nwin == 0) {
        /* no window to check: admitted, and a quote says so */
        ctx->rsv.status = CC_RESERVE_ADMITTED;
        ctx->result = ctx->windows ? NGX_HTTP_COST_CAP_QUOTE
                                   : NGX_HTTP_COST_CAP_ADMITTED;
        return NGX_OK;
    }

    return ngx_http_cost_cap_start_reserve(r, ctx, lcf);
}


/*
 * The raw value of every field: from the body (JSON or multipart), then
 * from variables.  NGX_DECLINED when the request is refused (the error is
 * set).
 */

static ngx_int_t
ngx_http_cost_cap_extract(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals)
{
    off_t         len;
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > (off_t) lcf->max_body) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                               "body_too_large",
                               "The request body is larger than the "
                               "gateway inspects.", NULL);
        return NGX_DECLINED;
    }

    rc = ctx->multipart ? ngx_http_cost_cap_multipart(r, ctx, lcf, len, vals)
                        : ngx_http_cost_cap_json(r, ctx, lcf, len, vals);

    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_cost_cap_variables(r, lcf, vals);
}


/*
 * A JSON body is scanned where it lies, buffer after buffer, a temp file
 * a chunk at a time: no copy of the body, no tree of it.
 */

static ngx_int_t
ngx_http_cost_cap_json(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, off_t len, cc_val_t *vals)
{
    int           rc;
    char         *buf;
    size_t        size;
    u_char       *chunk;
    ngx_buf_t    *b;
    cc_json_t    *j;
    ngx_chain_t  *cl;

    /* room for every value: never more than the body holds */
    size = ngx_min((size_t) len, lcf->fields->nelts * CC_VAL_MAX_LEN);

    j = ngx_palloc(r->pool, sizeof(cc_json_t));
    buf = ngx_pnalloc(r->pool, size + 1);

    if (j == NULL || buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cc_json_init(j, lcf->paths, lcf->fields->nelts, vals, buf, size)
        != 0)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chunk = NULL;
    cl = r->request_body ? r->request_body->bufs : NULL;

    for ( /* void */ ; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            rc = cc_json_feed(j, (char *) b->pos, b->last - b->pos);

        } else if (ngx_http_cost_cap_json_file(r, j, b, &chunk) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            rc = cc_json_end(j);
        }

        if (rc == CC_JSON_INVALID || rc == CC_JSON_DUPLICATE) {
            break;
        }
    }

    switch (cc_json_end(j)) {

    case CC_JSON_OK:
        return NGX_OK;

    case CC_JSON_DUPLICATE:
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                               "A parameter is given twice, or under a key "
                               "that differs from it only in case.",
                               &((ngx_http_cost_cap_field_t *)
                                 lcf->fields->elts)[j->bad].param);
        return NGX_DECLINED;

    default:
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_json",
                               "The body is not a JSON object.", NULL);
        return NGX_DECLINED;
    }
}


static ngx_int_t
ngx_http_cost_cap_json_file(ngx_http_request_t *r, cc_json_t *j,
    ngx_buf_t *b, u_char **chunk)
{
    int      rc;
    off_t    pos;
    size_t   n;
    ssize_t  got;

    if (*chunk == NULL) {
        *chunk = ngx_pnalloc(r->pool, NGX_HTTP_COST_CAP_CHUNK);
        if (*chunk == NULL) {
            return NGX_ERROR;
        }
    }

    for (pos = b->file_pos; pos < b->file_last; pos += got) {
        n = (size_t) ngx_min(b->file_last - pos, NGX_HTTP_COST_CAP_CHUNK);

        got = ngx_read_file(b->file, *chunk, n, pos);

        if (got != (ssize_t) n) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "cost_cap: could not read the body from \"%V\"",
                          &b->file->name);
            return NGX_ERROR;
        }

        rc = cc_json_feed(j, (char *) *chunk, n);

        if (rc == CC_JSON_INVALID || rc == CC_JSON_DUPLICATE) {
            break;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_multipart(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf,
    off_t len, cc_val_t *vals)
{
    int          rc;
    size_t       blen, bad;
    ngx_int_t    n;
    ngx_str_t   *ct, body;
    const char  *b;

    n = ngx_http_cost_cap_body(r, len, &body);
    if (n != NGX_OK) {
        return n;
    }

    ct = &r->headers_in.content_type->value;
    bad = 0;
    rc = CC_MULTIPART_INVALID;

    if (cc_multipart_boundary((char *) ct->data, ct->len, &b, &blen) == 0) {
        rc = cc_multipart_extract((char *) body.data, body.len, b, blen,
                                  lcf->paths, lcf->fields->nelts, vals, &bad);
    }

    switch (rc) {

    case CC_MULTIPART_OK:
        return NGX_OK;

    case CC_MULTIPART_DUPLICATE:
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                               "A parameter is given twice, or under a name "
                               "that differs from it only in case.",
                               &((ngx_http_cost_cap_field_t *)
                                 lcf->fields->elts)[bad].param);
        return NGX_DECLINED;

    default:
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_multipart",
                               "The body is not valid multipart/form-data.",
                               NULL);
        return NGX_DECLINED;
    }
}


/*
 * A multipart body as one piece of memory: in place when NGINX kept it in
 * one buffer, a temp file mapped (file parts are never read), else copied.
 */

static ngx_int_t
ngx_http_cost_cap_body(ngx_http_request_t *r, off_t len, ngx_str_t *body)
{
    u_char       *p;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    /* never NULL, even empty: the core hands it to memchr() and kin */
    ngx_str_set(body, "");

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = len;
        return NGX_OK;
    }

    if (cl->next == NULL && ngx_http_cost_cap_map(r, cl->buf, body) == NGX_OK)
    {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body->data = p;
    body->len = len;

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


/* fields from variables (cost_cap_field NAME $value): empty is absent */

static ngx_int_t
ngx_http_cost_cap_variables(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals)
{
    ngx_str_t                   v;
    ngx_uint_t                  i;
    ngx_http_cost_cap_field_t  *fl;

    fl = lcf->fields->elts;

    for (i = 0; i < lcf->fields->nelts; i++) {
        if (fl[i].value == NULL) {
            continue;
        }

        if (ngx_http_complex_value(r, fl[i].value, &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        vals[i].type = (v.len == 0) ? CC_VAL_ABSENT
                       : (v.len > CC_VAL_MAX_LEN) ? CC_VAL_LONG
                       : CC_VAL_STRING;
        vals[i].str = (char *) v.data;
        vals[i].len = v.len;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_estimate(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals)
{
    unsigned                    named;
    cc_dims_t                   dims;
    cc_field_e                  bad;
    ngx_http_cost_cap_model_t  *m;
    ngx_http_cost_cap_field_t  *fl;

    fl = lcf->fields->elts;

    m = ngx_http_cost_cap_select(r, ctx, lcf, vals, &named);
    if (m == NULL) {
        return ctx->status == NGX_DECLINED ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                           : NGX_DECLINED;
    }

    if (cc_dims_from_vals(vals, named, &dims, &bad) != 0
        || cc_estimate(&m->rule, &dims, lcf->gpu_price, &ctx->estimate, &bad)
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
    ctx->rule = m;
    ctx->conf = lcf;
    ctx->gpu_price = m->rule.gpu_price >= 0 ? m->rule.gpu_price
                                            : lcf->gpu_price;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cost_cap: tenant \"%V\" model \"%V\" estimate %L "
                   "gpu_us %L", &ctx->tenant, &ctx->model,
                   ctx->estimate.cost, ctx->estimate.gpu_seconds);

    return NGX_OK;

invalid:

    /* a missing size where the backend reads width and height only */
    if (bad == CC_FIELD_SIZE && fl[CC_FIELD_SIZE].off
        && !fl[CC_FIELD_WIDTH].off)
    {
        bad = CC_FIELD_WIDTH;
    }

    ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                           bad == CC_FIELD_NONE
                           ? "The request's estimated cost is too large."
                           : "A parameter is missing, of the wrong type, "
                             "or out of range.",
                           bad == CC_FIELD_NONE ? NULL : &fl[bad].param);
    return NGX_DECLINED;
}


/*
 * The first rule whose pattern matches the model and whose when= all
 * hold.  NULL with the error set when none does (or with ctx->status
 * still NGX_DECLINED on an allocation failure); *named is the built-in
 * fields whose value a when= of the rule lists.
 */

static ngx_http_cost_cap_model_t *
ngx_http_cost_cap_select(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf, cc_val_t *vals, unsigned *named)
{
    ngx_uint_t                  i, k, n, f, idx, unmet, matched;
    cc_val_t                   *v;
    ngx_http_cost_cap_when_t   *w;
    ngx_http_cost_cap_field_t  *fl;
    ngx_http_cost_cap_model_t  *m;

    fl = lcf->fields->elts;
    v = &vals[CC_FIELD_MODEL];

    if (v->type != CC_VAL_STRING && v->type != CC_VAL_LONG) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                               "A parameter is missing, of the wrong type, "
                               "or out of range.", &fl[CC_FIELD_MODEL].param);
        return NULL;
    }

    /* too long to be a model's name: no pattern is tried on it */
    if (v->type == CC_VAL_STRING) {
        ctx->model.data = ngx_pnalloc(r->pool, v->len);
        if (ctx->model.data == NULL) {
            return NULL;
        }

        ngx_memcpy(ctx->model.data, v->str, v->len);
        ctx->model.len = v->len;
    }

    m = lcf->models->elts;
    unmet = CC_FIELD_NONE;
    matched = 0;

    for (i = 0, k = 0; i < lcf->models->nelts; i++, k += n) {
        w = m[i].when ? m[i].when->elts : NULL;
        n = m[i].when ? m[i].when->nelts : 0;

        if (v->type != CC_VAL_STRING
            || ngx_http_cost_cap_match(r, &m[i], &ctx->model) != NGX_OK)
        {
            continue;
        }

        matched = 1;

        for (f = 0; f < n; f++) {
            idx = lcf->when_fields[k + f];

            if (!cc_when_holds(w[f].values, w[f].nvalues, &vals[idx])) {
                unmet = idx;
                break;
            }
        }

        if (f < n) {
            continue;
        }

        /* a value not of its form ("auto") that the rule lists itself */
        *named = 0;

        for (f = 0; f < n; f++) {
            idx = lcf->when_fields[k + f];

            if (idx < CC_FIELD_MAX
                && cc_when_names(w[f].values, w[f].nvalues, &vals[idx]))
            {
                *named |= 1u << idx;
            }
        }

        return &m[i];
    }

    if (!matched) {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "unknown_model",
                               "No pricing rule matches the model.",
                               &fl[CC_FIELD_MODEL].param);
        return NULL;
    }

    ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                           "The model is not priced for this value of the "
                           "parameter.", &fl[unmet].param);
    return NULL;
}


/* NGX_OK when the rule's pattern matches the model */

static ngx_int_t
ngx_http_cost_cap_match(ngx_http_request_t *r, ngx_http_cost_cap_model_t *m,
    ngx_str_t *model)
{
    ngx_int_t  rc;

    if (m->regex == NULL) {
        if (m->pattern.len == model->len
            && ngx_strncmp(m->pattern.data, model->data, model->len) == 0)
        {
            return NGX_OK;
        }

        return NGX_DECLINED;
    }

    rc = ngx_regex_exec(m->regex, model, NULL, 0);

    if (rc >= 0) {
        return NGX_OK;
    }

    if (rc != NGX_REGEX_NO_MATCHED) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      ngx_regex_exec_n " failed: %i on \"%V\" using \"%V\"",
                      rc, model, &m->pattern);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_cost_cap_start_reserve(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf)
{
    /* a window this worker saw crossed: 429 without a round trip */
    if (lcf->reject_cache && !lcf->dry_run && !ctx->windows
        && ngx_http_cost_cap_reject_cached(ctx))
    {
        ctx->rsv.mode = 'r';
        ctx->cached = 1;
        ngx_http_cost_cap_decide(ctx, lcf);
        return NGX_OK;
    }

    /* admitted from a lease of this worker, or one may be asked for */
    if (lcf->lease && !lcf->dry_run && !ctx->windows
        && ngx_http_cost_cap_lease_admit(ctx, lcf))
    {
        ctx->rsv.mode = 'r';
        ngx_http_cost_cap_decide(ctx, lcf);
        return NGX_OK;
    }

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

    ngx_http_cost_cap_lease_answer(ctx, lcf);

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
    case CC_RESERVE_LEASED:
    case CC_RESERVE_APPLIED:
        ngx_http_cost_cap_bind(ctx, 1);
        ctx->result = NGX_HTTP_COST_CAP_ADMITTED;
        break;

    case CC_RESERVE_REFUSED:
        ngx_http_cost_cap_bind(ctx, 0);

        if (rsv->mode != 'd') {
            ctx->result = NGX_HTTP_COST_CAP_REJECTED;
            ctx->status = NGX_HTTP_TOO_MANY_REQUESTS;

            /* what Redis answered, not what the cache did */
            if (lcf->reject_cache && !ctx->cached) {
                ngx_http_cost_cap_reject_remember(ctx, lcf->reject_cache);
            }

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
        ngx_http_cost_cap_bad_budget(ctx);

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

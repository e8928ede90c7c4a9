
/*
 * ngx_cost_cap_module: asynchronous generation jobs and idempotent
 * retries (SPEC 10).
 *
 *   create   the answer of a priced create call names its job: the
 *            reservation becomes a hold, costcap:{TAG}:[TENANT:]job:ID
 *            (scripts/hold.lua), with a pointer costcap:job:ID for the
 *            backend's callback and an entry in costcap:jobs:expiry
 *   poll     the answer of a status call says the job failed or
 *            succeeded: the hold is settled (scripts/release.lua), once
 *   webhook  the backend's callback says so: the same, found through the
 *            pointer
 *   expiry   one timer per worker takes the holds whose ttl is over
 *            (scripts/claim.lua) and keeps or refunds them
 *
 * Response bodies are read as they pass, as ngx_http_sub_filter_module
 * sees them: their first 64 KB go through the core's JSON scanner, which
 * keeps only the values at the configured paths; no buffer is copied or
 * held back.  A hold is settled on the counters it lists, the periods it
 * was charged to.
 */


#include "ngx_http_cost_cap_module.h"


/* the first bytes of a response read for its id and status */
#define NGX_HTTP_COST_CAP_JOB_BODY_MAX   65536

/* a callback's body in a temp file is read this much at a time */
#define NGX_HTTP_COST_CAP_JOB_CHUNK      16384

/* a hold outlives its ttl by this much, for the sweeper to settle it */
#define NGX_HTTP_COST_CAP_JOB_GRACE      86400

/* an outcome that found no hold waits this long for it, seconds */
#define NGX_HTTP_COST_CAP_JOB_EARLY      300

#define NGX_HTTP_COST_CAP_JOB_REREADS    3

#define NGX_HTTP_COST_CAP_SWEEP          1000
#define NGX_HTTP_COST_CAP_SWEEP_AGAIN    10
#define NGX_HTTP_COST_CAP_SWEEP_BATCH    32
#define NGX_HTTP_COST_CAP_SWEEP_LEASE    60

/* "costcap:{TAG}:[TENANT:]job:ID" */
#define NGX_HTTP_COST_CAP_HOLD_LEN       (NGX_HTTP_COST_CAP_TKEY_LEN          \
                                          + sizeof("job:") - 1                \
                                          + NGX_HTTP_COST_CAP_JOB_LEN)

/* the operations */
#define NGX_HTTP_COST_CAP_JOB_OP_HOLD     0    /* hold.lua */
#define NGX_HTTP_COST_CAP_JOB_OP_POINTER  1    /* pointer.lua */
#define NGX_HTTP_COST_CAP_JOB_OP_INDEX    2    /* ZADD costcap:jobs:expiry */
#define NGX_HTTP_COST_CAP_JOB_OP_RELEASE  3    /* release.lua */
#define NGX_HTTP_COST_CAP_JOB_OP_UNINDEX  4    /* ZREM */
#define NGX_HTTP_COST_CAP_JOB_OP_UNPOINT  5    /* DEL costcap:job:ID */
#define NGX_HTTP_COST_CAP_JOB_OP_FIND     6    /* GET costcap:job:ID */
#define NGX_HTTP_COST_CAP_JOB_OP_MARK     7    /* SET costcap:job:ID NX */
#define NGX_HTTP_COST_CAP_JOB_OP_CLAIM    8    /* claim.lua */


struct ngx_http_cost_cap_job_ctx_s {
    ngx_http_cost_cap_job_conf_t  *conf;
    cc_json_t                     *json;        /* the body, scanned */
    cc_val_t                       vals[NGX_HTTP_COST_CAP_JOB_PATHS];
    size_t                         len;         /* fed to it */
    int                            rc;          /* CC_JSON_* */
    ngx_str_t                      id;
    int64_t                        gpu;         /* actual, micro GPU-s;
                                                   -1: none */
    u_char                         outcome;     /* 0, 'f' or 's' */
    unsigned                       capture:1;   /* scanning the body */
    unsigned                       read:1;      /* id and outcome known */
    unsigned                       body:1;      /* a callback's, read */
    unsigned                       acted:1;
    unsigned                       done:1;      /* settled */
};


/* what an operation about a hold carries: the request may be gone */
typedef struct {
    ngx_uint_t                     kind;
    u_char                         outcome;     /* f s e k x */
    int64_t                        gpu;         /* actual, micro GPU-s */
    int64_t                        amount;      /* the hold's, micro-USD */
    int64_t                        delta;       /* what the settlement adds */
    int64_t                        estimate;    /* micro GPU-s */
    ngx_uint_t                     rereads;
    size_t                         key_len;
    size_t                         id_len;
    size_t                         model_len;

    /* not zeroed for a new one: written before they are read */
    u_char                         key[NGX_HTTP_COST_CAP_HOLD_LEN];
    u_char                         id[NGX_HTTP_COST_CAP_JOB_LEN];
    u_char                         model[NGX_HTTP_COST_CAP_NAME_LEN];
} ngx_http_cost_cap_job_pl_t;


typedef char  ngx_http_cost_cap_job_pl_fits[
    sizeof(ngx_http_cost_cap_job_pl_t)
    <= sizeof(((ngx_http_cost_cap_op_t *) 0)->payload) ? 1 : -1];


/* a hold as release.lua answers it: HGETALL's fields */
typedef struct {
    ngx_str_t                      reservation;
    ngx_str_t                      amount;
    ngx_str_t                      gpu_estimate;
    ngx_str_t                      gpu_price;
    ngx_str_t                      model;
    ngx_str_t                      tag;
    ngx_str_t                      keys;
    ngx_str_t                      expiries;
    ngx_str_t                      on_expiry;
    ngx_str_t                      idem;
    ngx_str_t                      job;
} ngx_http_cost_cap_hold_t;


static char *ngx_http_cost_cap_job_param(ngx_conf_t *cf,
    ngx_http_cost_cap_job_conf_t *jcf, ngx_str_t *v);
static char *ngx_http_cost_cap_job_src(ngx_conf_t *cf,
    ngx_http_cost_cap_src_t *src, ngx_str_t *v);
static char *ngx_http_cost_cap_job_cond(ngx_conf_t *cf,
    ngx_http_cost_cap_cond_t *cond, ngx_str_t *v);
static void ngx_http_cost_cap_job_paths(ngx_http_cost_cap_job_conf_t *jcf);
static ngx_int_t ngx_http_cost_cap_job_path_valid(ngx_str_t *path);
static ngx_int_t ngx_http_cost_cap_job_scan(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc);
static ngx_int_t ngx_http_cost_cap_job_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_cost_cap_job_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_cost_cap_job_poll(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf);
static ngx_int_t ngx_http_cost_cap_job_capture(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc);
static void ngx_http_cost_cap_job_feed(ngx_http_cost_cap_job_ctx_t *jc,
    ngx_chain_t *in);
static ngx_int_t ngx_http_cost_cap_job_webhook(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf);
static void ngx_http_cost_cap_job_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_cost_cap_job_request_body(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc, size_t max);
static void ngx_http_cost_cap_job_read(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc);
static ngx_int_t ngx_http_cost_cap_job_value(ngx_http_request_t *r,
    ngx_http_cost_cap_src_t *src, cc_val_t *v);
static ngx_uint_t ngx_http_cost_cap_job_match(ngx_http_cost_cap_cond_t *c,
    cc_val_t *v);
static ngx_uint_t ngx_http_cost_cap_job_id(cc_val_t *v, ngx_str_t *id);
static ngx_int_t ngx_http_cost_cap_job_prefix(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
static ngx_int_t ngx_http_cost_cap_job_send_hold(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_job_pl_t *pl, time_t x);
static void ngx_http_cost_cap_job_arg_keys(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, ngx_uint_t expiries);
static void ngx_http_cost_cap_job_index(ngx_http_cost_cap_job_pl_t *pl,
    time_t x);
static void ngx_http_cost_cap_job_pointer(ngx_http_cost_cap_job_pl_t *pl,
    ngx_http_cost_cap_rsv_t *rsv, time_t x);
static void ngx_http_cost_cap_job_release(ngx_http_cost_cap_job_pl_t *from,
    u_char outcome, int64_t gpu);
static void ngx_http_cost_cap_job_release_hold(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static ngx_int_t ngx_http_cost_cap_job_parse_hold(redisReply *reply,
    ngx_http_cost_cap_hold_t *h);
static ngx_int_t ngx_http_cost_cap_job_hold_keys(
    ngx_http_cost_cap_job_pl_t *pl, ngx_http_cost_cap_hold_t *h,
    ngx_str_t *keys, ngx_str_t *exp, ngx_uint_t *n);
static void ngx_http_cost_cap_job_delta(ngx_http_cost_cap_job_pl_t *pl,
    ngx_http_cost_cap_hold_t *h);
static ngx_uint_t ngx_http_cost_cap_job_split(ngx_str_t *s, ngx_str_t *parts,
    ngx_uint_t max);
static void ngx_http_cost_cap_job_simple(ngx_http_cost_cap_job_pl_t *from,
    ngx_uint_t kind, time_t x);
static ngx_http_cost_cap_op_t *ngx_http_cost_cap_job_op(ngx_uint_t kind,
    ngx_http_cost_cap_job_pl_t *from);
static void ngx_http_cost_cap_job_marker(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_job_pl_t *pl);
static ngx_int_t ngx_http_cost_cap_job_send(ngx_http_cost_cap_op_t *op,
    ngx_http_cost_cap_args_t *a, u_char *key, size_t len);
static void ngx_http_cost_cap_job_args(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_job_handler_op(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
static void ngx_http_cost_cap_job_retry(ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_job_held(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_job_pointed(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_job_released(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_job_found(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_job_claimed(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static ngx_uint_t ngx_http_cost_cap_job_early(ngx_http_cost_cap_op_t *op,
    u_char *s, size_t len, u_char *g, size_t glen);
static void ngx_http_cost_cap_job_settled(ngx_http_cost_cap_job_pl_t *pl);
static void ngx_http_cost_cap_job_dropped(ngx_http_cost_cap_op_t *op,
    const char *what);
static size_t ngx_http_cost_cap_job_tag(u_char *key, size_t len);
static void ngx_http_cost_cap_job_sweep(ngx_event_t *ev);
static void ngx_http_cost_cap_job_rearm(ngx_msec_t delay);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;

static ngx_str_t  ngx_http_cost_cap_job_index_key =
    ngx_string("costcap:jobs:expiry");

static ngx_event_t  ngx_http_cost_cap_job_sweep_ev;
static ngx_uint_t   ngx_http_cost_cap_job_sweeping;


/* configuration */

/*
 * cost_cap_job create id=SOURCE [ttl=T] [on_expiry=keep|refund]
 * cost_cap_job poll id=SOURCE status=PATH failed=V|... [succeeded=V|...]
 *     [actual=SOURCE]
 * cost_cap_job webhook id=SOURCE status=PATH failed=... [succeeded=...]
 *     [actual=SOURCE]
 */

char *
ngx_http_cost_cap_job_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    char                           *rv;
    ngx_str_t                      *value, status;
    ngx_uint_t                      i;
    ngx_http_cost_cap_job_conf_t   *jcf;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    if (lcf->job) {
        return "is duplicate";
    }

    value = cf->args->elts;

    jcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cost_cap_job_conf_t));
    if (jcf == NULL) {
        return NGX_CONF_ERROR;
    }

    jcf->ttl = 86400;

    if (ngx_strcmp(value[1].data, "create") == 0) {
        jcf->mode = NGX_HTTP_COST_CAP_JOB_CREATE;

    } else if (ngx_strcmp(value[1].data, "poll") == 0) {
        jcf->mode = NGX_HTTP_COST_CAP_JOB_POLL;

    } else if (ngx_strcmp(value[1].data, "webhook") == 0) {
        jcf->mode = NGX_HTTP_COST_CAP_JOB_WEBHOOK;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid mode \"%V\" of \"cost_cap_job\", use "
                           "create, poll or webhook", &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&status);

    for (i = 2; i < cf->args->nelts; i++) {

        if (jcf->mode != NGX_HTTP_COST_CAP_JOB_CREATE
            && ngx_strncmp(value[i].data, "status=", 7) == 0)
        {
            status.data = value[i].data + 7;
            status.len = value[i].len - 7;

            if (ngx_http_cost_cap_job_path_valid(&status) != NGX_OK) {
                goto invalid;
            }

            continue;
        }

        rv = ngx_http_cost_cap_job_param(cf, jcf, &value[i]);

        if (rv == NGX_CONF_ERROR) {
            return rv;
        }

        if (rv != NGX_CONF_OK) {
            goto invalid;
        }
    }

    if (jcf->id.path.len == 0 && jcf->id.value == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_job %V\" requires \"id=\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (jcf->mode != NGX_HTTP_COST_CAP_JOB_CREATE) {
        if (jcf->failed.values == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_job %V\" requires \"failed=\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        if (jcf->failed.path.len == 0) {
            jcf->failed.path = status;
        }

        if (jcf->succeeded.values && jcf->succeeded.path.len == 0) {
            jcf->succeeded.path = status;
        }

        if (jcf->failed.path.len == 0
            || (jcf->succeeded.values && jcf->succeeded.path.len == 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_job %V\" requires \"status=\" "
                               "(or failed= and succeeded= of the form "
                               "PATH:V1|V2)", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    ngx_http_cost_cap_job_paths(jcf);

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cost_cap_module);
    cmcf->jobs = 1;

    lcf->job = jcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"cost_cap_job %V\"",
                       &value[i], &value[1]);
    return NGX_CONF_ERROR;
}


/* NGX_CONF_OK, NGX_CONF_ERROR (said), or anything else: invalid */

static char *
ngx_http_cost_cap_job_param(ngx_conf_t *cf, ngx_http_cost_cap_job_conf_t *jcf,
    ngx_str_t *v)
{
    ngx_str_t   s;
    ngx_uint_t  create;

    create = (jcf->mode == NGX_HTTP_COST_CAP_JOB_CREATE);

    if (ngx_strncmp(v->data, "id=", 3) == 0) {
        s.data = v->data + 3;
        s.len = v->len - 3;
        return ngx_http_cost_cap_job_src(cf, &jcf->id, &s);
    }

    if (create && ngx_strncmp(v->data, "ttl=", 4) == 0) {
        s.data = v->data + 4;
        s.len = v->len - 4;
        jcf->ttl = ngx_parse_time(&s, 1);
        return (jcf->ttl == (time_t) NGX_ERROR || jcf->ttl == 0)
               ? "invalid" : NGX_CONF_OK;
    }

    if (create && ngx_strcmp(v->data, "on_expiry=keep") == 0) {
        jcf->refund = 0;
        return NGX_CONF_OK;
    }

    if (create && ngx_strcmp(v->data, "on_expiry=refund") == 0) {
        jcf->refund = 1;
        return NGX_CONF_OK;
    }

    if (create) {
        return "invalid";
    }

    if (ngx_strncmp(v->data, "failed=", 7) == 0) {
        s.data = v->data + 7;
        s.len = v->len - 7;
        return ngx_http_cost_cap_job_cond(cf, &jcf->failed, &s);
    }

    if (ngx_strncmp(v->data, "succeeded=", 10) == 0) {
        s.data = v->data + 10;
        s.len = v->len - 10;
        return ngx_http_cost_cap_job_cond(cf, &jcf->succeeded, &s);
    }

    if (ngx_strncmp(v->data, "actual=", 7) == 0) {
        s.data = v->data + 7;
        s.len = v->len - 7;
        return ngx_http_cost_cap_job_src(cf, &jcf->actual, &s);
    }

    return "invalid";
}


/* a dotted path in the body, or a value with variables */

static char *
ngx_http_cost_cap_job_src(ngx_conf_t *cf, ngx_http_cost_cap_src_t *src,
    ngx_str_t *v)
{
    ngx_http_compile_complex_value_t  ccv;

    if (src->path.len || src->value) {
        return "duplicate";
    }

    if (ngx_http_script_variables_count(v) == 0) {
        if (ngx_http_cost_cap_job_path_valid(v) != NGX_OK) {
            return "invalid";
        }

        src->path = *v;
        return NGX_CONF_OK;
    }

    src->value = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (src->value == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = v;
    ccv.complex_value = src->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* V1|V2|... or PATH:V1|V2|...; "*" is any value, "-" is absent */

static char *
ngx_http_cost_cap_job_cond(ngx_conf_t *cf, ngx_http_cost_cap_cond_t *cond,
    ngx_str_t *v)
{
    u_char      *p, *last, *bar;
    cc_str_t    *s;
    ngx_uint_t   n;

    if (cond->values) {
        return "duplicate";
    }

    p = v->data;
    last = v->data + v->len;

    bar = ngx_strlchr(p, last, ':');

    if (bar) {
        cond->path.data = p;
        cond->path.len = bar - p;

        if (ngx_http_cost_cap_job_path_valid(&cond->path) != NGX_OK) {
            return "invalid";
        }

        p = bar + 1;
    }

    for (n = 1, bar = p; (bar = ngx_strlchr(bar, last, '|')); bar++, n++) {
        /* void */
    }

    cond->values = ngx_palloc(cf->pool, n * sizeof(cc_str_t));
    if (cond->values == NULL) {
        return NGX_CONF_ERROR;
    }

    for (cond->nvalues = 0; cond->nvalues < n; cond->nvalues++) {
        bar = ngx_strlchr(p, last, '|');

        s = &cond->values[cond->nvalues];
        s->data = (char *) p;
        s->len = (bar ? bar : last) - p;

        if (s->len == 0) {
            return "invalid";
        }

        p = bar + 1;
    }

    return NGX_CONF_OK;
}


/* what the scanner reads: each path once */

static void
ngx_http_cost_cap_job_paths(ngx_http_cost_cap_job_conf_t *jcf)
{
    ngx_str_t  *p[NGX_HTTP_COST_CAP_JOB_PATHS];
    ngx_uint_t  i;

    p[0] = &jcf->id.path;
    p[1] = &jcf->failed.path;
    p[2] = &jcf->succeeded.path;
    p[3] = &jcf->actual.path;

    for (i = 0; i < NGX_HTTP_COST_CAP_JOB_PATHS; i++) {
        jcf->paths[i].data = (char *) p[i]->data;
        jcf->paths[i].len = p[i]->len;
    }

    if (p[2]->len && p[2]->len == p[1]->len
        && ngx_strncmp(p[2]->data, p[1]->data, p[1]->len) == 0)
    {
        jcf->paths[2].len = 0;
    }
}


/* a path the core's scanner takes */

static ngx_int_t
ngx_http_cost_cap_job_path_valid(ngx_str_t *path)
{
    return cc_json_path_valid((char *) path->data, path->len) ? NGX_OK
                                                             : NGX_ERROR;
}


/* cost_cap_idempotency VALUE [ttl=T] */

char *
ngx_http_cost_cap_idempotency_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    ngx_str_t                         *value, s;
    ngx_uint_t                         i;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->idem) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->idem = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lcf->idem == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lcf->idem;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lcf->idem_ttl = 86400;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            lcf->idem_ttl = ngx_parse_time(&s, 1);

            if (lcf->idem_ttl != (time_t) NGX_ERROR && lcf->idem_ttl > 0) {
                continue;
            }
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of "
                           "\"cost_cap_idempotency\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* inheritance of cost_cap_idempotency; what cost_cap_job requires */

char *
ngx_http_cost_cap_job_merge(ngx_conf_t *cf, ngx_http_cost_cap_loc_conf_t *conf,
    ngx_http_cost_cap_loc_conf_t *prev)
{
    ngx_http_cost_cap_job_conf_t   *jcf;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    if (conf->idem == NULL) {
        conf->idem = prev->idem;
        conf->idem_ttl = prev->idem_ttl;
    }

    jcf = conf->job;
    if (jcf == NULL) {
        return NGX_CONF_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cost_cap_module);

    if (cmcf->addrs == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_job\" requires \"cost_cap_redis\"");
        return NGX_CONF_ERROR;
    }

    if (jcf->mode == NGX_HTTP_COST_CAP_JOB_CREATE && !conf->enable) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_job create\" requires \"cost_cap on\"");
        return NGX_CONF_ERROR;
    }

    if (jcf->mode == NGX_HTTP_COST_CAP_JOB_POLL && conf->tenant == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_job poll\" requires "
                           "\"cost_cap_tenant\"");
        return NGX_CONF_ERROR;
    }

    /* the Redis client runs where jobs are settled, priced or not */
    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_cost_cap_job_init(ngx_conf_t *cf)
{
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cost_cap_module);

    /* inert without cost_cap_job: no filter */
    if (!cmcf->jobs) {
        return NGX_OK;
    }

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_cost_cap_job_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_cost_cap_job_body_filter;

    return NGX_OK;
}


/* idempotency: the key of a priced request (SPEC 10) */

ngx_int_t
ngx_http_cost_cap_idempotency(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_str_t  v;

    static ngx_str_t  param = ngx_string("idempotency_key");

    if (lcf->idem == NULL || ctx->windows) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, lcf->idem, &v) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (v.len == 0) {
        return NGX_OK;
    }

    /* it goes into a key name: bounded, and of a safe alphabet */
    if (v.len > NGX_HTTP_COST_CAP_IDEM_LEN
        || !cc_tenant_valid((char *) v.data, v.len))
    {
        ngx_http_cost_cap_fail(ctx, NGX_HTTP_BAD_REQUEST, "invalid_parameter",
                               "The idempotency key must be 1-128 "
                               "characters of A-Z a-z 0-9 . _ ~ : @ + = / -.",
                               &param);
        return NGX_DECLINED;
    }

    ngx_memcpy(ctx->rsv.idem, v.data, v.len);
    ctx->rsv.idem_len = v.len;
    ctx->rsv.idem_ttl = (ngx_uint_t) lcf->idem_ttl;

    return NGX_OK;
}


/* response bodies: the first bytes of those a job is read from */

static ngx_int_t
ngx_http_cost_cap_job_header_filter(ngx_http_request_t *r)
{
    ngx_http_cost_cap_ctx_t       *ctx;
    ngx_http_cost_cap_job_ctx_t   *jc;
    ngx_http_cost_cap_job_conf_t  *jcf;
    ngx_http_cost_cap_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_cost_cap_module);

    if (lcf->job && lcf->job->mode == NGX_HTTP_COST_CAP_JOB_POLL) {
        if (ngx_http_cost_cap_job_poll(r, lcf) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx == NULL || !ctx->reserved || ctx->conf == NULL
        || ctx->job != NULL)
    {
        return ngx_http_next_header_filter(r);
    }

    jcf = ctx->conf->job;

    if (jcf && jcf->mode == NGX_HTTP_COST_CAP_JOB_CREATE
        && jcf->id.path.len)
    {
        jc = ngx_pcalloc(r->pool, sizeof(ngx_http_cost_cap_job_ctx_t));
        if (jc == NULL) {
            return NGX_ERROR;
        }

        jc->conf = jcf;
        ctx->job = jc;

        if (ngx_http_cost_cap_job_capture(r, jc) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_next_header_filter(r);
}


/* a status call: its tenant, and its body */

static ngx_int_t
ngx_http_cost_cap_job_poll(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_http_cost_cap_ctx_t      *ctx;
    ngx_http_cost_cap_job_ctx_t  *jc;

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_cost_cap_create_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    if (ctx->job) {
        return NGX_OK;
    }

    jc = ngx_pcalloc(r->pool, sizeof(ngx_http_cost_cap_job_ctx_t));
    if (jc == NULL) {
        return NGX_ERROR;
    }

    ctx->job = jc;

    switch (ngx_http_cost_cap_job_prefix(r, ctx, lcf)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        /* no tenant, or not one: nothing of theirs to settle */
        return NGX_OK;

    default:
        return NGX_ERROR;
    }

    jc->conf = lcf->job;

    return ngx_http_cost_cap_job_capture(r, jc);
}


/* the tenant's keys, as the reservation names them */

static ngx_int_t
ngx_http_cost_cap_job_prefix(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_str_t                 tenant;
    ngx_http_cost_cap_rsv_t  *rsv;

    if (ngx_http_complex_value(r, lcf->tenant, &tenant) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!cc_tenant_valid((char *) tenant.data, tenant.len)) {
        return NGX_DECLINED;
    }

    ctx->tenant = tenant;

    switch (ngx_http_cost_cap_parent(r, ctx, lcf)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return NGX_DECLINED;

    default:
        return NGX_ERROR;
    }

    rsv = &ctx->rsv;

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

    return NGX_OK;
}


/* scanned as it passes if it may say something: a 2xx, not compressed */

static ngx_int_t
ngx_http_cost_cap_job_capture(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc)
{
    ngx_table_elt_t  *ce;

    if (r->headers_out.status < 200 || r->headers_out.status > 299
        || r->header_only)
    {
        return NGX_OK;
    }

    ce = r->headers_out.content_encoding;

    if (ce && ce->hash && ce->value.len
        && !(ce->value.len == 8
             && ngx_strncasecmp(ce->value.data, (u_char *) "identity", 8)
                == 0))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "cost_cap: job answer is \"%V\"-encoded: not read "
                      "(proxy_set_header Accept-Encoding \"\")", &ce->value);
        return NGX_OK;
    }

    if (ngx_http_cost_cap_job_scan(r, jc) != NGX_OK) {
        return NGX_ERROR;
    }

    jc->capture = 1;

    return NGX_OK;
}


/* the scanner, for the paths id=, failed=, succeeded= and actual= read */

static ngx_int_t
ngx_http_cost_cap_job_scan(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc)
{
    char  *buf;

    jc->json = ngx_palloc(r->pool, sizeof(cc_json_t));
    buf = ngx_pnalloc(r->pool,
                      NGX_HTTP_COST_CAP_JOB_PATHS * CC_VAL_MAX_LEN);

    if (jc->json == NULL || buf == NULL) {
        return NGX_ERROR;
    }

    /* the scanner keeps paths: the configuration's */
    if (cc_json_init(jc->json, jc->conf->paths, NGX_HTTP_COST_CAP_JOB_PATHS,
                     jc->vals, buf,
                     NGX_HTTP_COST_CAP_JOB_PATHS * CC_VAL_MAX_LEN)
        != 0)
    {
        return NGX_ERROR;
    }

    jc->rc = CC_JSON_MORE;

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_job_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_cost_cap_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_cost_cap_module);

    if (ctx && ctx->job && ctx->job->capture && r == r->main && in) {
        ngx_http_cost_cap_job_feed(ctx->job, in);
    }

    /* the buffers go on as they came: never held, never changed */
    return ngx_http_next_body_filter(r, in);
}


/* the first 64 KB that pass, to the scanner; what is in a file, not */

static void
ngx_http_cost_cap_job_feed(ngx_http_cost_cap_job_ctx_t *jc, ngx_chain_t *in)
{
    size_t        n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    for (cl = in; cl && jc->capture; cl = cl->next) {
        b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            n = b->last - b->pos;

        } else if (b->in_file) {
            n = NGX_HTTP_COST_CAP_JOB_BODY_MAX + 1;

        } else {
            n = 0;
        }

        if (jc->len + n > NGX_HTTP_COST_CAP_JOB_BODY_MAX) {
            /* cut: what was read is no answer */
            jc->rc = CC_JSON_MORE;
            jc->capture = 0;
            return;
        }

        if (n) {
            jc->len += n;
            jc->rc = cc_json_feed(jc->json, (char *) b->pos, n);

            if (jc->rc != CC_JSON_MORE && jc->rc != CC_JSON_OK) {
                jc->capture = 0;
                return;
            }
        }

        if (b->last_buf) {
            jc->rc = cc_json_end(jc->json);
            jc->capture = 0;
        }
    }
}


/* precontent: a callback's body is read; a status call passes */

ngx_int_t
ngx_http_cost_cap_job_handler(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    if (lcf->job->mode == NGX_HTTP_COST_CAP_JOB_WEBHOOK) {
        return ngx_http_cost_cap_job_webhook(r, lcf);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_cost_cap_job_webhook(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    ngx_int_t                   rc;
    ngx_http_cost_cap_ctx_t    *ctx;
    ngx_http_core_loc_conf_t   *clcf;
    ngx_http_cost_cap_job_ctx_t  *jc;

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx == NULL) {
        if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT))) {
            return NGX_DECLINED;
        }

        ctx = ngx_http_cost_cap_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        jc = ngx_pcalloc(r->pool, sizeof(ngx_http_cost_cap_job_ctx_t));
        if (jc == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        jc->conf = lcf->job;
        ctx->job = jc;

        rc = ngx_http_read_client_request_body(r,
                                       ngx_http_cost_cap_job_body_handler);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        ngx_http_finalize_request(r, NGX_DONE);
        return NGX_DONE;
    }

    jc = ctx->job;

    if (jc == NULL || jc->acted) {
        return NGX_DECLINED;
    }

    if (!jc->body) {
        return NGX_AGAIN;
    }

    jc->acted = 1;

    if (ngx_http_cost_cap_job_request_body(r, jc, lcf->max_body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a location that passes the callback on answers it; else 204 */
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->handler == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_NO_CONTENT);
        return NGX_DONE;
    }

    return NGX_DECLINED;
}


static void
ngx_http_cost_cap_job_body_handler(ngx_http_request_t *r)
{
    ngx_http_cost_cap_ctx_t  *ctx;

    /* no cleanup here: on a read error this is never called */
    ctx = ngx_http_cost_cap_get_ctx(r);

    if (ctx && ctx->job) {
        ctx->job->body = 1;
    }

    r->preserve_body = 1;
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


/* a callback's body, up to cost_cap_max_body, through the scanner */

static ngx_int_t
ngx_http_cost_cap_job_request_body(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc, size_t max)
{
    off_t         len, pos;
    size_t        n;
    u_char       *chunk;
    ssize_t       got;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > (off_t) max) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cost_cap: job callback of %O bytes not read "
                      "(cost_cap_max_body)", len);
        return NGX_OK;
    }

    if (ngx_http_cost_cap_job_scan(r, jc) != NGX_OK) {
        return NGX_ERROR;
    }

    chunk = NULL;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            jc->rc = cc_json_feed(jc->json, (char *) b->pos, b->last - b->pos);
            continue;
        }

        if (chunk == NULL) {
            chunk = ngx_pnalloc(r->pool, NGX_HTTP_COST_CAP_JOB_CHUNK);
            if (chunk == NULL) {
                return NGX_ERROR;
            }
        }

        for (pos = b->file_pos; pos < b->file_last; pos += got) {
            n = (size_t) ngx_min(b->file_last - pos,
                                 NGX_HTTP_COST_CAP_JOB_CHUNK);

            got = ngx_read_file(b->file, chunk, n, pos);

            if (got != (ssize_t) n) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "cost_cap: could not read the job callback "
                              "from \"%V\"", &b->file->name);
                return NGX_ERROR;
            }

            jc->rc = cc_json_feed(jc->json, (char *) chunk, n);
        }
    }

    jc->rc = cc_json_end(jc->json);

    return NGX_OK;
}


/*
 * The job's id, its outcome and its actual GPU-seconds, once: from the
 * body read (whole, and one JSON object) or from variables.
 */

static void
ngx_http_cost_cap_job_read(ngx_http_request_t *r,
    ngx_http_cost_cap_job_ctx_t *jc)
{
    int64_t                        gpu;
    ngx_uint_t                     body;
    cc_val_t                       vals[NGX_HTTP_COST_CAP_JOB_PATHS];
    ngx_http_cost_cap_job_conf_t  *jcf;

    if (jc->read) {
        return;
    }

    jc->read = 1;
    jc->capture = 0;
    jc->gpu = -1;

    jcf = jc->conf;

    /* a body cut, not JSON, or read twice under a key: nothing read */
    body = (jc->json && jc->rc == CC_JSON_OK);

    if (body) {
        ngx_memcpy(vals, jc->vals, sizeof(vals));

        if (jcf->paths[2].len == 0) {
            vals[2] = vals[1];
        }

    } else {
        ngx_memzero(vals, sizeof(vals));
    }

    if (jcf->id.value
        && ngx_http_cost_cap_job_value(r, &jcf->id, &vals[0]) != NGX_OK)
    {
        return;
    }

    if (vals[0].type != CC_VAL_ABSENT
        && !ngx_http_cost_cap_job_id(&vals[0], &jc->id))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "cost_cap: job id not used: not a string or number "
                      "of 1-256 of A-Z a-z 0-9 . _ ~ : @ + = / -");
    }

    if (jcf->mode == NGX_HTTP_COST_CAP_JOB_CREATE || !body) {
        return;
    }

    if (ngx_http_cost_cap_job_match(&jcf->failed, &vals[1])) {
        jc->outcome = 'f';

    } else if (jcf->succeeded.values
               && ngx_http_cost_cap_job_match(&jcf->succeeded, &vals[2]))
    {
        jc->outcome = 's';

    } else {
        return;
    }

    if (jcf->actual.value
        && ngx_http_cost_cap_job_value(r, &jcf->actual, &vals[3]) != NGX_OK)
    {
        return;
    }

    if (jc->outcome != 's' || vals[3].type == CC_VAL_ABSENT) {
        return;
    }

    if (cc_val_number(&vals[3], &gpu) == 0 && gpu >= 0) {
        jc->gpu = gpu;
        return;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "cost_cap: ignored actual GPU-seconds of job \"%V\": not "
                  "a number", &jc->id);
}


static ngx_int_t
ngx_http_cost_cap_job_value(ngx_http_request_t *r,
    ngx_http_cost_cap_src_t *src, cc_val_t *v)
{
    ngx_str_t  s;

    if (ngx_http_complex_value(r, src->value, &s) != NGX_OK) {
        return NGX_ERROR;
    }

    v->type = s.len ? CC_VAL_STRING : CC_VAL_ABSENT;
    v->str = (char *) s.data;
    v->len = s.len;

    return NGX_OK;
}


/* as when= compares; and "*": any value (not absent, not null) */

static ngx_uint_t
ngx_http_cost_cap_job_match(ngx_http_cost_cap_cond_t *c, cc_val_t *v)
{
    ngx_uint_t  i;

    for (i = 0; i < c->nvalues; i++) {
        if (c->values[i].len == 1 && c->values[i].data[0] == '*'
            && v->type != CC_VAL_ABSENT)
        {
            return 1;
        }
    }

    return cc_when_holds(c->values, c->nvalues, v);
}


/* it goes into key names: a string or a number, bounded, of a safe set */

static ngx_uint_t
ngx_http_cost_cap_job_id(cc_val_t *v, ngx_str_t *id)
{
    u_char      c;
    ngx_uint_t  i;

    static u_char  safe[] = "._~:@+=/-";

    if ((v->type != CC_VAL_STRING && v->type != CC_VAL_NUMBER)
        || v->len == 0 || v->len > NGX_HTTP_COST_CAP_JOB_LEN)
    {
        return 0;
    }

    for (i = 0; i < v->len; i++) {
        c = v->str[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || ngx_strlchr(safe, safe + sizeof(safe) - 1, c))
        {
            continue;
        }

        return 0;
    }

    id->data = (u_char *) v->str;
    id->len = v->len;

    return 1;
}


ngx_int_t
ngx_http_cost_cap_job_variable(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_str_t *id)
{
    ngx_http_cost_cap_job_ctx_t   *jc;
    ngx_http_cost_cap_job_conf_t  *jcf;

    ngx_str_null(id);

    jc = ctx->job;

    if (jc == NULL && ctx->reserved && ctx->conf && ctx->conf->job) {
        jcf = ctx->conf->job;

        /* an id from a variable: nothing was copied */
        if (jcf->mode != NGX_HTTP_COST_CAP_JOB_CREATE || jcf->id.path.len) {
            return NGX_OK;
        }

        jc = ngx_pcalloc(r->pool, sizeof(ngx_http_cost_cap_job_ctx_t));
        if (jc == NULL) {
            return NGX_ERROR;
        }

        jc->conf = jcf;
        ctx->job = jc;
    }

    /* not before the body has passed */
    if (jc == NULL || jc->conf == NULL || jc->capture) {
        return NGX_OK;
    }

    ngx_http_cost_cap_job_read(r, jc);

    *id = jc->id;

    return NGX_OK;
}


/*
 * The log phase of a create call answered 2xx with a job id: the
 * reservation becomes the job's hold.  NGX_DECLINED: no hold, the
 * reservation is settled as any other.
 */

ngx_int_t
ngx_http_cost_cap_job_hold(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx)
{
    size_t                         len;
    time_t                         x;
    ngx_str_t                      id;
    ngx_http_cost_cap_rsv_t       *rsv;
    ngx_http_cost_cap_job_pl_t     pl;
    ngx_http_cost_cap_job_conf_t  *jcf;

    jcf = ctx->conf ? ctx->conf->job : NULL;

    if (jcf == NULL || jcf->mode != NGX_HTTP_COST_CAP_JOB_CREATE
        || r->headers_out.status < 200 || r->headers_out.status > 299)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_cost_cap_job_variable(r, ctx, &id) != NGX_OK
        || id.len == 0)
    {
        return NGX_DECLINED;
    }

    rsv = &ctx->rsv;

    if (rsv->mask == 0) {
        return NGX_DECLINED;
    }

    /*
     * Admitted from a lease: charged in it, with no reservation of its
     * own; the hold gets an id.  Its refund on the counters and the
     * lease's return of what it did not use add up to the job's cost.
     */
    if (rsv->leased) {
        ngx_http_cost_cap_op_id(rsv->id);
    }

    /* the ttl counts from the reservation, in Redis' time */
    x = (time_t) rsv->now + jcf->ttl;

    ngx_memzero(&pl, offsetof(ngx_http_cost_cap_job_pl_t, key));
    pl.gpu = -1;

    pl.amount = rsv->estimate;
    pl.key_len = ngx_sprintf(pl.key, "%*sjob:%V", rsv->tkey_len, rsv->tkey,
                             &id)
                 - pl.key;
    pl.id_len = id.len;
    ngx_memcpy(pl.id, id.data, id.len);

    len = ngx_min(ctx->rule->pattern.len, NGX_HTTP_COST_CAP_NAME_LEN);
    pl.model_len = len;
    ngx_memcpy(pl.model, ctx->rule->pattern.data, len);

    if (ngx_http_cost_cap_job_send_hold(ctx, &pl, x) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "cost_cap: job \"%V\" of tenant \"%V\" not held: "
                      "its reservation of %L micro-USD stays charged",
                      &id, &ctx->tenant, rsv->estimate);
        return NGX_DECLINED;
    }

    ngx_http_cost_cap_job_index(&pl, x);
    ngx_http_cost_cap_job_pointer(&pl, rsv, x);

    return NGX_OK;
}


/* EVALSHA hold: the hold's fields, as an operator reads them */

static ngx_int_t
ngx_http_cost_cap_job_send_hold(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_job_pl_t *pl, time_t x)
{
    ngx_http_cost_cap_op_t        *op;
    ngx_http_cost_cap_rsv_t       *rsv;
    ngx_http_cost_cap_args_t       a;
    ngx_http_cost_cap_job_conf_t  *jcf;

    rsv = &ctx->rsv;
    jcf = ctx->conf->job;

    op = ngx_http_cost_cap_job_op(NGX_HTTP_COST_CAP_JOB_OP_HOLD, pl);
    if (op == NULL) {
        return NGX_ERROR;
    }

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_HOLD);

    ngx_http_cost_cap_arg(&a, (u_char *) "2", 1);
    ngx_http_cost_cap_arg(&a, pl->key, pl->key_len);
    ngx_http_cost_cap_job_marker(&a, pl);

    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_MARKER_TTL);
    ngx_http_cost_cap_arg_fmt(&a, "%T", x + NGX_HTTP_COST_CAP_JOB_GRACE);

    ngx_http_cost_cap_arg(&a, (u_char *) "reservation", 11);
    ngx_http_cost_cap_arg(&a, rsv->id, NGX_HTTP_COST_CAP_OP_ID_LEN);
    ngx_http_cost_cap_arg(&a, (u_char *) "job", 3);
    ngx_http_cost_cap_arg(&a, pl->id, pl->id_len);
    ngx_http_cost_cap_arg(&a, (u_char *) "tenant", 6);
    ngx_http_cost_cap_arg(&a, ctx->tenant.data, ctx->tenant.len);
    ngx_http_cost_cap_arg(&a, (u_char *) "amount", 6);
    ngx_http_cost_cap_arg_fmt(&a, "%L", rsv->estimate);
    ngx_http_cost_cap_arg(&a, (u_char *) "gpu_estimate", 12);
    ngx_http_cost_cap_arg_fmt(&a, "%L", ctx->estimate.gpu_seconds);
    ngx_http_cost_cap_arg(&a, (u_char *) "gpu_price", 9);
    ngx_http_cost_cap_arg_fmt(&a, "%L", ctx->gpu_price);
    ngx_http_cost_cap_arg(&a, (u_char *) "model", 5);
    ngx_http_cost_cap_arg(&a, ctx->rule->pattern.data,
                          ctx->rule->pattern.len);
    ngx_http_cost_cap_arg(&a, (u_char *) "tag", 3);
    ngx_http_cost_cap_arg(&a, rsv->pkey, rsv->pkey_len);
    ngx_http_cost_cap_arg(&a, (u_char *) "keys", 4);
    ngx_http_cost_cap_job_arg_keys(&a, rsv, 0);
    ngx_http_cost_cap_arg(&a, (u_char *) "expiries", 8);
    ngx_http_cost_cap_job_arg_keys(&a, rsv, 1);
    ngx_http_cost_cap_arg(&a, (u_char *) "expires_at", 10);
    ngx_http_cost_cap_arg_fmt(&a, "%T", x);
    ngx_http_cost_cap_arg(&a, (u_char *) "on_expiry", 9);

    if (jcf->refund) {
        ngx_http_cost_cap_arg(&a, (u_char *) "refund", 6);

    } else {
        ngx_http_cost_cap_arg(&a, (u_char *) "keep", 4);
    }

    if (rsv->idem_len) {
        ngx_http_cost_cap_arg(&a, (u_char *) "idempotency_key", 15);
        ngx_http_cost_cap_arg_idem(&a, rsv);
    }

    return ngx_http_cost_cap_job_send(op, &a, pl->key, pl->key_len);
}


/* the charged counters, or when each expires, as one field */

static void
ngx_http_cost_cap_job_arg_keys(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, ngx_uint_t expiries)
{
    u_char                   *p, *start;
    ngx_uint_t                i;
    ngx_http_cost_cap_win_t  *w;

    if (a->p >= a->last) {
        a->p = a->last + 1;
        return;
    }

    start = a->p;
    p = start;

    for (i = 0; i < rsv->nwin; i++) {
        if (!(rsv->mask & ((uint64_t) 1 << i))) {
            continue;
        }

        w = &rsv->win[i];

        if (p != start) {
            p = ngx_slprintf(p, a->last, " ");
        }

        if (expiries) {
            p = ngx_slprintf(p, a->last, "%L",
                             w->end ? w->end + 86400 : (int64_t) 0);
            continue;
        }

        if (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) {
            p = ngx_slprintf(p, a->last, "%*s", rsv->pkey_len, rsv->pkey);

        } else {
            p = ngx_slprintf(p, a->last, "%*s", rsv->tkey_len, rsv->tkey);
        }

        p = ngx_slprintf(p, a->last, "%s:%*s", cc_window_name(w->window),
                         (size_t) w->period_len, w->period);
    }

    if (p == a->last) {
        a->p = a->last + 1;
        return;
    }

    ngx_http_cost_cap_arg(a, start, p - start);
    a->p = p;
}


/* ZADD costcap:jobs:expiry: the sweeper finds the hold at its expiry */

static void
ngx_http_cost_cap_job_index(ngx_http_cost_cap_job_pl_t *pl, time_t x)
{
    ngx_http_cost_cap_job_simple(pl, NGX_HTTP_COST_CAP_JOB_OP_INDEX, x);
}


/* EVALSHA pointer: costcap:job:ID -> the hold's prefix, for callbacks */

static void
ngx_http_cost_cap_job_pointer(ngx_http_cost_cap_job_pl_t *pl,
    ngx_http_cost_cap_rsv_t *rsv, time_t x)
{
    ngx_http_cost_cap_op_t    *op;
    ngx_http_cost_cap_args_t   a;

    op = ngx_http_cost_cap_job_op(NGX_HTTP_COST_CAP_JOB_OP_POINTER, pl);
    if (op == NULL) {
        return;
    }

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_POINTER);

    ngx_http_cost_cap_arg(&a, (u_char *) "1", 1);
    ngx_http_cost_cap_arg_fmt(&a, "costcap:job:%*s", pl->id_len, pl->id);
    ngx_http_cost_cap_arg(&a, rsv->tkey, rsv->tkey_len);
    ngx_http_cost_cap_arg_fmt(&a, "%T", x + NGX_HTTP_COST_CAP_JOB_GRACE);

    (void) ngx_http_cost_cap_job_send(op, &a, (u_char *) a.argv[3],
                                      a.argvlen[3]);
}


/*
 * The log phase of a status call or a callback answered 2xx: a job that
 * failed or succeeded settles its hold.
 */

void
ngx_http_cost_cap_job_log(ngx_http_request_t *r, ngx_http_cost_cap_ctx_t *ctx)
{
    ngx_http_cost_cap_rsv_t       *rsv;
    ngx_http_cost_cap_job_pl_t     pl;
    ngx_http_cost_cap_job_ctx_t   *jc;
    ngx_http_cost_cap_job_conf_t  *jcf;

    jc = ctx->job;

    if (jc == NULL || jc->conf == NULL || jc->done
        || jc->conf->mode == NGX_HTTP_COST_CAP_JOB_CREATE)
    {
        return;
    }

    jc->done = 1;
    jcf = jc->conf;

    if (r->headers_out.status < 200 || r->headers_out.status > 299) {
        return;
    }

    ngx_http_cost_cap_job_read(r, jc);

    if (jc->id.len == 0 || jc->outcome == 0) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "cost_cap: job \"%V\" %s, actual %L", &jc->id,
                   jc->outcome == 'f' ? "failed" : "succeeded", jc->gpu);

    ngx_memzero(&pl, offsetof(ngx_http_cost_cap_job_pl_t, key));

    pl.id_len = jc->id.len;
    ngx_memcpy(pl.id, jc->id.data, jc->id.len);
    pl.outcome = jc->outcome;
    pl.gpu = jc->gpu;

    if (jcf->mode == NGX_HTTP_COST_CAP_JOB_WEBHOOK) {
        ngx_http_cost_cap_job_simple(&pl, NGX_HTTP_COST_CAP_JOB_OP_FIND, 0);
        return;
    }

    /* a status call: the hold is the tenant's own, or none */
    rsv = &ctx->rsv;
    pl.key_len = ngx_sprintf(pl.key, "%*sjob:%V", rsv->tkey_len, rsv->tkey,
                             &jc->id)
                 - pl.key;

    ngx_http_cost_cap_job_release(&pl, jc->outcome, jc->gpu);
}


/*
 * EVALSHA release, first call: no counters declared (they are only known
 * from the hold).  It answers the hold, or settles nothing.
 */

static void
ngx_http_cost_cap_job_release(ngx_http_cost_cap_job_pl_t *from,
    u_char outcome, int64_t gpu)
{
    ngx_http_cost_cap_op_t      *op;
    ngx_http_cost_cap_args_t     a;
    ngx_http_cost_cap_job_pl_t  *pl;

    op = ngx_http_cost_cap_job_op(NGX_HTTP_COST_CAP_JOB_OP_RELEASE, from);
    if (op == NULL) {
        return;
    }

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;
    pl->outcome = outcome;
    pl->gpu = gpu;
    pl->rereads = 0;

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_RELEASE);

    ngx_http_cost_cap_arg(&a, (u_char *) "2", 1);
    ngx_http_cost_cap_arg(&a, pl->key, pl->key_len);
    ngx_http_cost_cap_job_marker(&a, pl);

    ngx_http_cost_cap_arg(&a, (u_char *) "", 0);
    ngx_http_cost_cap_arg(&a, &pl->outcome, 1);
    ngx_http_cost_cap_arg(&a, (u_char *) "0", 1);
    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_MARKER_TTL);
    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_JOB_EARLY);
    ngx_http_cost_cap_arg(&a, (u_char *) "", 0);

    if (gpu >= 0) {
        ngx_http_cost_cap_arg_fmt(&a, "%L", gpu);

    } else {
        ngx_http_cost_cap_arg(&a, (u_char *) "", 0);
    }

    (void) ngx_http_cost_cap_job_send(op, &a, pl->key, pl->key_len);
}


/*
 * EVALSHA release with the hold's counters declared, as it was read: it
 * applies only if the hold is still that one.
 */

static void
ngx_http_cost_cap_job_release_hold(ngx_http_cost_cap_op_t *from,
    redisReply *reply)
{
    ngx_str_t                    keys[NGX_HTTP_COST_CAP_WIN_MAX];
    ngx_str_t                    exp[NGX_HTTP_COST_CAP_WIN_MAX];
    ngx_uint_t                   i, n, idem;
    ngx_http_cost_cap_op_t      *op;
    ngx_http_cost_cap_hold_t     h;
    ngx_http_cost_cap_args_t     a;
    ngx_http_cost_cap_job_pl_t  *pl;

    pl = (ngx_http_cost_cap_job_pl_t *) from->payload;

    if (ngx_http_cost_cap_job_parse_hold(reply, &h) != NGX_OK
        || ngx_http_cost_cap_job_hold_keys(pl, &h, keys, exp, &n) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: hold \"%*s\" is malformed: not settled",
                      pl->key_len, pl->key);
        return;
    }

    op = ngx_http_cost_cap_job_op(NGX_HTTP_COST_CAP_JOB_OP_RELEASE, pl);
    if (op == NULL) {
        ngx_http_cost_cap_job_dropped(from, "dropped: out of memory");
        return;
    }

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    ngx_http_cost_cap_job_delta(pl, &h);

    idem = (h.idem.len && (pl->outcome == 'f' || pl->outcome == 'e'));

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_RELEASE);

    ngx_http_cost_cap_arg_fmt(&a, "%ui", 2 + n + idem);
    ngx_http_cost_cap_arg(&a, pl->key, pl->key_len);
    ngx_http_cost_cap_job_marker(&a, pl);

    for (i = 0; i < n; i++) {
        ngx_http_cost_cap_arg(&a, keys[i].data, keys[i].len);
    }

    if (idem) {
        ngx_http_cost_cap_arg(&a, h.idem.data, h.idem.len);
    }

    ngx_http_cost_cap_arg(&a, h.reservation.data, h.reservation.len);
    ngx_http_cost_cap_arg(&a, &pl->outcome, 1);
    ngx_http_cost_cap_arg_fmt(&a, "%L", pl->delta);
    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_MARKER_TTL);
    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_JOB_EARLY);
    ngx_http_cost_cap_arg(&a, (u_char *) (idem ? "i" : ""), idem);
    ngx_http_cost_cap_arg(&a, (u_char *) "", 0);

    for (i = 0; i < n; i++) {
        ngx_http_cost_cap_arg(&a, exp[i].data, exp[i].len);
    }

    (void) ngx_http_cost_cap_job_send(op, &a, pl->key, pl->key_len);
}


/*
 * The hold's counters and their expiries, one of each per window, all
 * under the hold's own tag: a damaged hold never writes another slot.
 */

static ngx_int_t
ngx_http_cost_cap_job_hold_keys(ngx_http_cost_cap_job_pl_t *pl,
    ngx_http_cost_cap_hold_t *h, ngx_str_t *keys, ngx_str_t *exp,
    ngx_uint_t *n)
{
    ngx_uint_t  i;

    *n = ngx_http_cost_cap_job_split(&h->keys, keys,
                                     NGX_HTTP_COST_CAP_WIN_MAX);

    if (*n == 0
        || ngx_http_cost_cap_job_split(&h->expiries, exp,
                                       NGX_HTTP_COST_CAP_WIN_MAX)
           != *n
        || h->tag.len == 0 || h->tag.len > pl->key_len
        || ngx_strncmp(pl->key, h->tag.data, h->tag.len) != 0)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < *n; i++) {
        if (keys[i].len <= h->tag.len
            || ngx_strncmp(keys[i].data, h->tag.data, h->tag.len) != 0)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * What the settlement adds to each counter: a failed or expired-refunded
 * job its whole amount back, a succeeded one with actual GPU-seconds the
 * cost at the rule's GPU price (rounded up) minus the amount.
 */

static void
ngx_http_cost_cap_job_delta(ngx_http_cost_cap_job_pl_t *pl,
    ngx_http_cost_cap_hold_t *h)
{
    int64_t            price, cost;
    unsigned __int128  c;

    pl->amount = ngx_max(ngx_atoof(h->amount.data, h->amount.len), 0);
    pl->estimate = ngx_atoof(h->gpu_estimate.data, h->gpu_estimate.len);
    price = ngx_atoof(h->gpu_price.data, h->gpu_price.len);

    pl->model_len = ngx_min(h->model.len, NGX_HTTP_COST_CAP_NAME_LEN);
    ngx_memcpy(pl->model, h->model.data, pl->model_len);

    if (pl->id_len == 0 && h->job.len <= NGX_HTTP_COST_CAP_JOB_LEN) {
        pl->id_len = h->job.len;
        ngx_memcpy(pl->id, h->job.data, h->job.len);
    }

    if (pl->outcome == 'x') {
        pl->outcome = (h->on_expiry.len == 6) ? 'e' : 'k';
    }

    switch (pl->outcome) {

    case 'f':
    case 'e':
        pl->delta = -pl->amount;
        return;

    case 's':
        if (pl->gpu < 0 || price < 0) {
            pl->delta = 0;
            return;
        }

        /* micro-USD = micro-GPU-s * micro-USD per hour / 3.6e9, up */
        c = (unsigned __int128) pl->gpu * (uint64_t) price;
        c = (c + 3600 * CC_MICRO - 1) / (3600 * CC_MICRO);
        cost = (c > NGX_HTTP_COST_CAP_MAX_AMOUNT)
               ? NGX_HTTP_COST_CAP_MAX_AMOUNT : (int64_t) c;
        pl->delta = cost - pl->amount;
        return;

    default: /* 'k' */
        pl->delta = 0;
        return;
    }
}


/* {3, field, value, ...}: the fields a settlement reads */

static ngx_int_t
ngx_http_cost_cap_job_parse_hold(redisReply *reply,
    ngx_http_cost_cap_hold_t *h)
{
    size_t        i, j;
    ngx_str_t    *dst;
    redisReply  **e;

    static struct {
        ngx_str_t  name;
        size_t     offset;
    } fields[] = {
        { ngx_string("reservation"),
          offsetof(ngx_http_cost_cap_hold_t, reservation) },
        { ngx_string("amount"), offsetof(ngx_http_cost_cap_hold_t, amount) },
        { ngx_string("gpu_estimate"),
          offsetof(ngx_http_cost_cap_hold_t, gpu_estimate) },
        { ngx_string("gpu_price"),
          offsetof(ngx_http_cost_cap_hold_t, gpu_price) },
        { ngx_string("model"), offsetof(ngx_http_cost_cap_hold_t, model) },
        { ngx_string("tag"), offsetof(ngx_http_cost_cap_hold_t, tag) },
        { ngx_string("keys"), offsetof(ngx_http_cost_cap_hold_t, keys) },
        { ngx_string("expiries"),
          offsetof(ngx_http_cost_cap_hold_t, expiries) },
        { ngx_string("on_expiry"),
          offsetof(ngx_http_cost_cap_hold_t, on_expiry) },
        { ngx_string("idempotency_key"),
          offsetof(ngx_http_cost_cap_hold_t, idem) },
        { ngx_string("job"), offsetof(ngx_http_cost_cap_hold_t, job) },
        { ngx_null_string, 0 }
    };

    ngx_memzero(h, sizeof(ngx_http_cost_cap_hold_t));

    e = reply->element;

    for (i = 1; i + 1 < reply->elements; i += 2) {
        if (e[i]->type != REDIS_REPLY_STRING
            || e[i + 1]->type != REDIS_REPLY_STRING)
        {
            return NGX_ERROR;
        }

        for (j = 0; fields[j].name.len; j++) {
            if (fields[j].name.len == e[i]->len
                && ngx_strncmp(fields[j].name.data, e[i]->str, e[i]->len)
                   == 0)
            {
                dst = (ngx_str_t *) ((u_char *) h + fields[j].offset);
                dst->data = (u_char *) e[i + 1]->str;
                dst->len = e[i + 1]->len;
                break;
            }
        }
    }

    if (h->reservation.len == 0 || h->amount.len == 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* "a b c" into its parts; 0 when there are more than max */

static ngx_uint_t
ngx_http_cost_cap_job_split(ngx_str_t *s, ngx_str_t *parts, ngx_uint_t max)
{
    u_char      *p, *last, *sp;
    ngx_uint_t   n;

    p = s->data;
    last = s->data + s->len;
    n = 0;

    while (p < last) {
        if (n == max) {
            return 0;
        }

        sp = ngx_strlchr(p, last, ' ');

        parts[n].data = p;
        parts[n].len = (sp ? sp : last) - p;

        if (parts[n].len == 0) {
            return 0;
        }

        n++;

        if (sp == NULL) {
            break;
        }

        p = sp + 1;
    }

    return n;
}


/*
 * The plain commands: ZADD and ZREM of the expiry index, DEL, GET and
 * SET NX of the pointer.  Each is idempotent: sent again, it does the
 * same, and what a late one leaves (an index entry, a pointer without a
 * hold) finds no hold and is cleaned up.
 */

static void
ngx_http_cost_cap_job_simple(ngx_http_cost_cap_job_pl_t *from,
    ngx_uint_t kind, time_t x)
{
    u_char                     *key;
    size_t                      len;
    ngx_http_cost_cap_op_t     *op;
    ngx_http_cost_cap_args_t    a;
    ngx_http_cost_cap_job_pl_t *pl;

    op = ngx_http_cost_cap_job_op(kind, from);
    if (op == NULL) {
        return;
    }

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    ngx_http_cost_cap_job_args(&a, op);

    switch (kind) {

    case NGX_HTTP_COST_CAP_JOB_OP_INDEX:
    case NGX_HTTP_COST_CAP_JOB_OP_UNINDEX:
        if (kind == NGX_HTTP_COST_CAP_JOB_OP_INDEX) {
            ngx_http_cost_cap_arg(&a, (u_char *) "ZADD", 4);

        } else {
            ngx_http_cost_cap_arg(&a, (u_char *) "ZREM", 4);
        }

        ngx_http_cost_cap_arg(&a, ngx_http_cost_cap_job_index_key.data,
                              ngx_http_cost_cap_job_index_key.len);

        if (kind == NGX_HTTP_COST_CAP_JOB_OP_INDEX) {
            ngx_http_cost_cap_arg_fmt(&a, "%T", x);
        }

        ngx_http_cost_cap_arg(&a, pl->key, pl->key_len);

        key = ngx_http_cost_cap_job_index_key.data;
        len = ngx_http_cost_cap_job_index_key.len;
        break;

    default: /* UNPOINT, FIND, MARK */
        ngx_http_cost_cap_arg(&a, (u_char *)
                              (kind == NGX_HTTP_COST_CAP_JOB_OP_UNPOINT ? "DEL"
                               : kind == NGX_HTTP_COST_CAP_JOB_OP_FIND ? "GET"
                               : "SET"),
                              3);
        ngx_http_cost_cap_arg_fmt(&a, "costcap:job:%*s", pl->id_len, pl->id);

        key = (u_char *) a.argv[1];
        len = a.argvlen[1];

        if (kind == NGX_HTTP_COST_CAP_JOB_OP_MARK) {
            /* what the callback said, for a hold still to come */
            if (pl->gpu >= 0) {
                ngx_http_cost_cap_arg_fmt(&a, "~%c:%L", pl->outcome,
                                          pl->gpu);

            } else {
                ngx_http_cost_cap_arg_fmt(&a, "~%c:", pl->outcome);
            }

            ngx_http_cost_cap_arg(&a, (u_char *) "NX", 2);
            ngx_http_cost_cap_arg(&a, (u_char *) "EX", 2);
            ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_JOB_EARLY);
        }

        break;
    }

    (void) ngx_http_cost_cap_job_send(op, &a, key, len);
}


static ngx_http_cost_cap_op_t *
ngx_http_cost_cap_job_op(ngx_uint_t kind, ngx_http_cost_cap_job_pl_t *from)
{
    ngx_http_cost_cap_op_t      *op;
    ngx_http_cost_cap_job_pl_t  *pl;

    op = ngx_http_cost_cap_op_alloc();
    if (op == NULL) {
        return NULL;
    }

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    if (from) {
        ngx_memcpy(pl, from, sizeof(ngx_http_cost_cap_job_pl_t));

    } else {
        ngx_memzero(pl, sizeof(ngx_http_cost_cap_job_pl_t));
        pl->gpu = -1;
    }

    pl->kind = kind;

    op->handler = ngx_http_cost_cap_job_handler_op;
    op->resend = 1;
    op->deadline = ngx_current_msec + NGX_HTTP_COST_CAP_SETTLE_DEADLINE;

    return op;
}


/* this operation's marker, costcap:{TAG}:op:ID, in the hold's slot */

static void
ngx_http_cost_cap_job_marker(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_job_pl_t *pl)
{
    u_char  id[NGX_HTTP_COST_CAP_OP_ID_LEN];

    ngx_http_cost_cap_op_id(id);

    ngx_http_cost_cap_arg_fmt(a, "%*sop:%*s",
                              ngx_http_cost_cap_job_tag(pl->key, pl->key_len),
                              pl->key, (size_t) NGX_HTTP_COST_CAP_OP_ID_LEN,
                              id);
}


/* "costcap:{TAG}:" of a key */

static size_t
ngx_http_cost_cap_job_tag(u_char *key, size_t len)
{
    u_char  *p;

    p = ngx_strlchr(key, key + len, '}');

    if (p == NULL || p + 1 >= key + len || p[1] != ':') {
        return 0;
    }

    return p + 2 - key;
}


static ngx_int_t
ngx_http_cost_cap_job_send(ngx_http_cost_cap_op_t *op,
    ngx_http_cost_cap_args_t *a, u_char *key, size_t len)
{
    op->slot = cc_key_slot((char *) key, len);

    if (a->p > a->last
        || ngx_http_cost_cap_conn_format(op, a->argc, a->argv, a->argvlen)
           != NGX_OK
        || ngx_http_cost_cap_router_send(op) != NGX_OK)
    {
        ngx_http_cost_cap_job_dropped(op, "dropped: redis unavailable");
        ngx_http_cost_cap_op_free(op);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a command that is not a script */

static void
ngx_http_cost_cap_job_args(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_op_t *op)
{
    a->p = a->buf;
    a->last = a->buf + sizeof(a->buf);
    a->argc = 0;

    op->script = NULL;
}


static void
ngx_http_cost_cap_job_handler_op(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event)
{
    ngx_http_cost_cap_job_pl_t  *pl;

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    if (event == NGX_HTTP_COST_CAP_OP_TIMEOUT) {
        return;
    }

    if (event == NGX_HTTP_COST_CAP_OP_LOST) {
        ngx_http_cost_cap_job_dropped(op, op->unknown
                                          ? "unconfirmed: redis did not "
                                            "answer"
                                          : "dropped: redis unavailable");
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_cost_cap_job_retry(op);
        return;
    }

    switch (pl->kind) {

    case NGX_HTTP_COST_CAP_JOB_OP_HOLD:
        ngx_http_cost_cap_job_held(op, reply);
        break;

    case NGX_HTTP_COST_CAP_JOB_OP_POINTER:
        ngx_http_cost_cap_job_pointed(op, reply);
        break;

    case NGX_HTTP_COST_CAP_JOB_OP_RELEASE:
        ngx_http_cost_cap_job_released(op, reply);
        break;

    case NGX_HTTP_COST_CAP_JOB_OP_FIND:
        ngx_http_cost_cap_job_found(op, reply);
        break;

    case NGX_HTTP_COST_CAP_JOB_OP_CLAIM:
        ngx_http_cost_cap_job_claimed(op, reply);
        break;

    default:
        break;
    }
}


/*
 * -OOM, a script's error, -NOSCRIPT twice: again shortly, until the
 * deadline.  The command goes on in a new operation: op itself is freed
 * when its handler returns, whatever the retry did.
 */

static void
ngx_http_cost_cap_job_retry(ngx_http_cost_cap_op_t *op)
{
    ngx_http_cost_cap_op_t  *next;

    next = ngx_http_cost_cap_op_alloc();
    if (next == NULL) {
        ngx_http_cost_cap_job_dropped(op, "dropped: out of memory");
        return;
    }

    ngx_memcpy(next->payload, op->payload,
               sizeof(ngx_http_cost_cap_job_pl_t));

    next->handler = op->handler;
    next->resend = op->resend;
    next->deadline = op->deadline;
    next->slot = op->slot;
    next->script = op->script;

    if (op->cmd != op->cmd_buf) {
        next->cmd = op->cmd;
        op->cmd = op->cmd_buf;

    } else {
        ngx_memcpy(next->cmd_buf, op->cmd_buf, op->cmd_len);
    }

    next->cmd_len = op->cmd_len;

    ngx_http_cost_cap_router_retry(next);
}


/* hold.lua: {1|0, outcome, gpu} made, {3} another reservation's */

static void
ngx_http_cost_cap_job_held(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    ngx_http_cost_cap_job_pl_t  *pl;

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_cost_cap_job_dropped(op, "unexpected reply");
        return;
    }

    if (reply->element[0]->integer == 3) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "cost_cap: job \"%*s\" is held by another reservation: "
                      "this one, of %L micro-USD, stays charged",
                      pl->id_len, pl->id, pl->amount);
        return;
    }

    ngx_http_cost_cap_count(jobs_opened, 1);
    ngx_http_cost_cap_count(jobs_held, pl->amount);

    /* a poll or a callback came first: settle now */
    if (reply->elements == 3
        && reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        (void) ngx_http_cost_cap_job_early(op,
                                           (u_char *) reply->element[1]->str,
                                           reply->element[1]->len,
                                           (u_char *) reply->element[2]->str,
                                           reply->element[2]->len);
    }
}


/* pointer.lua: "" or what a callback that came first said, "~f:" */

static void
ngx_http_cost_cap_job_pointed(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    u_char  *p, *last, *colon;

    if (reply->type != REDIS_REPLY_STRING || reply->len < 3
        || reply->str[0] != '~')
    {
        return;
    }

    p = (u_char *) reply->str + 1;
    last = (u_char *) reply->str + reply->len;
    colon = ngx_strlchr(p, last, ':');

    if (colon == NULL) {
        return;
    }

    (void) ngx_http_cost_cap_job_early(op, p, colon - p, colon + 1,
                                       last - colon - 1);
}


/* an outcome that came before its hold: "f" or "s", and GPU-seconds */

static ngx_uint_t
ngx_http_cost_cap_job_early(ngx_http_cost_cap_op_t *op, u_char *s,
    size_t len, u_char *g, size_t glen)
{
    int64_t                      gpu;
    ngx_http_cost_cap_job_pl_t  *pl;

    if (len != 1 || (s[0] != 'f' && s[0] != 's')) {
        return 0;
    }

    gpu = glen ? ngx_atoof(g, glen) : -1;

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "cost_cap: job \"%*s\" %s before its hold was made",
                  pl->id_len, pl->id, s[0] == 'f' ? "failed" : "succeeded");

    ngx_http_cost_cap_job_release(pl, s[0], gpu);

    return 1;
}


static void
ngx_http_cost_cap_job_released(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    ngx_http_cost_cap_job_pl_t  *pl;

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_cost_cap_job_dropped(op, "unexpected reply");
        return;
    }

    switch (reply->element[0]->integer) {

    case 0:     /* this settlement, applied before its reply was lost */
    case 1:
        ngx_http_cost_cap_job_settled(pl);
        ngx_http_cost_cap_job_simple(pl, NGX_HTTP_COST_CAP_JOB_OP_UNINDEX, 0);

        if (pl->id_len) {
            ngx_http_cost_cap_job_simple(pl, NGX_HTTP_COST_CAP_JOB_OP_UNPOINT,
                                         0);
        }

        return;

    case 2:     /* no hold: a stale index entry, or none of this tenant */
        if (pl->outcome == 'x') {
            ngx_http_cost_cap_job_simple(pl, NGX_HTTP_COST_CAP_JOB_OP_UNINDEX,
                                         0);
        }

        return;

    case 3:     /* the hold as it is: with its counters, again */
        if (pl->rereads++ == NGX_HTTP_COST_CAP_JOB_REREADS) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "cost_cap: hold \"%*s\" changed while settled: "
                          "given up", pl->key_len, pl->key);
            return;
        }

        ngx_http_cost_cap_job_release_hold(op, reply);
        return;

    default:    /* 4: expired, or not yet */
        if (pl->outcome == 'e' || pl->outcome == 'k') {
            /* not yet due (a clock, a hold made again): at its time */
            if (reply->elements == 2
                && reply->element[1]->type == REDIS_REPLY_INTEGER)
            {
                ngx_http_cost_cap_job_simple(pl, NGX_HTTP_COST_CAP_JOB_OP_INDEX,
                                        (time_t) reply->element[1]->integer);
            }

            return;
        }

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "cost_cap: job \"%*s\" ended after its hold expired: "
                      "the expiry settles it", pl->id_len, pl->id);
        return;
    }
}


/* GET costcap:job:ID: the hold's prefix, or what an early callback said */

static void
ngx_http_cost_cap_job_found(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    u_char                      *p, *last;
    size_t                       len;
    ngx_http_cost_cap_job_pl_t  *pl;

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    if (reply->type == REDIS_REPLY_NIL) {
        /* no hold yet, or none: the outcome waits for one a while */
        ngx_http_cost_cap_job_simple(pl, NGX_HTTP_COST_CAP_JOB_OP_MARK, 0);
        return;
    }

    if (reply->type != REDIS_REPLY_STRING || reply->len == 0
        || reply->str[0] == '~')
    {
        return;
    }

    p = (u_char *) reply->str;
    last = p + reply->len;

    len = (ngx_strlchr(p, last, ' ') ? ngx_strlchr(p, last, ' ') : last) - p;

    if (len < sizeof("costcap:{") || len > NGX_HTTP_COST_CAP_TKEY_LEN
        || ngx_strncmp(p, "costcap:{", 9) != 0
        || ngx_http_cost_cap_job_tag(p, len) == 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: job pointer \"costcap:job:%*s\" is "
                      "malformed", pl->id_len, pl->id);
        return;
    }

    pl->key_len = ngx_sprintf(pl->key, "%*sjob:%*s", len, p, pl->id_len,
                              pl->id)
                  - pl->key;

    ngx_http_cost_cap_job_release(pl, pl->outcome, pl->gpu);
}


/* the sweeper: hold keys whose expiry has come */

static void
ngx_http_cost_cap_job_claimed(ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    size_t                       i;
    redisReply                  *e;
    ngx_http_cost_cap_job_pl_t   pl;

    ngx_memzero(&pl, offsetof(ngx_http_cost_cap_job_pl_t, key));
    pl.gpu = -1;

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_cost_cap_job_rearm(NGX_HTTP_COST_CAP_SWEEP);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING || e->len > sizeof(pl.key)
            || ngx_http_cost_cap_job_tag((u_char *) e->str, e->len) == 0)
        {
            continue;
        }

        pl.key_len = e->len;
        ngx_memcpy(pl.key, e->str, e->len);

        ngx_http_cost_cap_job_release(&pl, 'x', -1);
    }

    ngx_http_cost_cap_job_rearm(reply->elements
                                == NGX_HTTP_COST_CAP_SWEEP_BATCH
                                ? NGX_HTTP_COST_CAP_SWEEP_AGAIN
                                : NGX_HTTP_COST_CAP_SWEEP);
}


/* counted by the NGINX whose settlement applied */

static void
ngx_http_cost_cap_job_settled(ngx_http_cost_cap_job_pl_t *pl)
{
    ngx_http_cost_cap_model_metrics_t  *mm;

    ngx_http_cost_cap_count(jobs_held, -pl->amount);

    mm = ngx_http_cost_cap_metrics_model_name(pl->model, pl->model_len);

    switch (pl->outcome) {

    case 'f':
        ngx_http_cost_cap_count(jobs_failed, 1);
        break;

    case 's':
        ngx_http_cost_cap_count(jobs_succeeded, 1);
        break;

    case 'e':
        ngx_http_cost_cap_count(jobs_refunded, 1);
        break;

    default: /* 'k' */
        ngx_http_cost_cap_count(jobs_kept, 1);
        break;
    }

    if (mm == NULL) {
        return;
    }

    if (pl->outcome == 'f' || pl->outcome == 'e') {
        (void) ngx_atomic_fetch_add(&mm->refunded, pl->amount);
        return;
    }

    if (pl->outcome == 's' && pl->gpu >= 0) {
        (void) ngx_atomic_fetch_add(&mm->adjusted, pl->delta);
        (void) ngx_atomic_fetch_add(&mm->calib_estimated, pl->estimate);
        (void) ngx_atomic_fetch_add(&mm->calib_actual, pl->gpu);
    }
}


/* what is given up is logged, with the hold and its amount */

static void
ngx_http_cost_cap_job_dropped(ngx_http_cost_cap_op_t *op, const char *what)
{
    ngx_uint_t                   level;
    ngx_http_cost_cap_job_pl_t  *pl;

    static const char  *kinds[] = { "hold", "job pointer",
                                    "expiry index entry", "settlement",
                                    "expiry index removal",
                                    "job pointer removal", "job lookup",
                                    "job outcome", "expiry sweep" };

    pl = (ngx_http_cost_cap_job_pl_t *) op->payload;

    if (pl->kind == NGX_HTTP_COST_CAP_JOB_OP_CLAIM) {
        ngx_http_cost_cap_job_rearm(NGX_HTTP_COST_CAP_SWEEP);
        return;
    }

    level = NGX_LOG_WARN;

    if (pl->kind == NGX_HTTP_COST_CAP_JOB_OP_HOLD
        || pl->kind == NGX_HTTP_COST_CAP_JOB_OP_RELEASE
        || pl->kind == NGX_HTTP_COST_CAP_JOB_OP_FIND)
    {
        level = NGX_LOG_ERR;
        ngx_http_cost_cap_count(settle_drops, 1);
    }

    ngx_log_error(level, ngx_cycle->log, 0,
                  "cost_cap: %s of job \"%*s\" (hold \"%*s\", %L micro-USD) "
                  "%s", kinds[pl->kind], pl->id_len, pl->id, pl->key_len,
                  pl->key, pl->amount, what);
}


/* the expiry sweeper: one per worker, one claim at a time */

ngx_int_t
ngx_http_cost_cap_job_init_process(ngx_cycle_t *cycle)
{
    ngx_event_t                    *ev;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;

    if (cmcf == NULL || !cmcf->jobs) {
        return NGX_OK;
    }

    ev = &ngx_http_cost_cap_job_sweep_ev;
    ngx_memzero(ev, sizeof(ngx_event_t));

    /* data is read as a connection by NGINX's debug log of timers */
    ev->handler = ngx_http_cost_cap_job_sweep;
    ev->data = ev;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_http_cost_cap_job_sweeping = 0;

    ngx_add_timer(ev, NGX_HTTP_COST_CAP_SWEEP + ngx_random() % 250);

    return NGX_OK;
}


static void
ngx_http_cost_cap_job_sweep(ngx_event_t *ev)
{
    ngx_http_cost_cap_op_t    *op;
    ngx_http_cost_cap_args_t   a;

    if (ngx_exiting || ngx_quit || ngx_terminate
        || ngx_http_cost_cap_job_sweeping)
    {
        return;
    }

    op = ngx_http_cost_cap_job_op(NGX_HTTP_COST_CAP_JOB_OP_CLAIM, NULL);
    if (op == NULL) {
        ngx_http_cost_cap_job_rearm(NGX_HTTP_COST_CAP_SWEEP);
        return;
    }

    op->deadline = ngx_current_msec + NGX_HTTP_COST_CAP_SWEEP;

    ngx_http_cost_cap_arg_script(&a, op, NGX_HTTP_COST_CAP_LUA_CLAIM);

    ngx_http_cost_cap_arg(&a, (u_char *) "1", 1);
    ngx_http_cost_cap_arg(&a, ngx_http_cost_cap_job_index_key.data,
                          ngx_http_cost_cap_job_index_key.len);
    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_SWEEP_BATCH);
    ngx_http_cost_cap_arg_fmt(&a, "%d", NGX_HTTP_COST_CAP_SWEEP_LEASE);

    ngx_http_cost_cap_job_sweeping = 1;

    /* a failed send rearms through the drop */
    (void) ngx_http_cost_cap_job_send(op, &a,
                                      ngx_http_cost_cap_job_index_key.data,
                                      ngx_http_cost_cap_job_index_key.len);
}


static void
ngx_http_cost_cap_job_rearm(ngx_msec_t delay)
{
    ngx_http_cost_cap_job_sweeping = 0;

    if (ngx_exiting || ngx_quit || ngx_terminate
        || ngx_http_cost_cap_job_sweep_ev.handler == NULL
        || ngx_http_cost_cap_job_sweep_ev.timer_set)
    {
        return;
    }

    ngx_add_timer(&ngx_http_cost_cap_job_sweep_ev, delay);
}

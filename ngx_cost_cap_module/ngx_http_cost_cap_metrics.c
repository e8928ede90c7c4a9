
/*
 * ngx_cost_cap_module: counters of the whole NGINX (every worker) in a
 * shared memory zone that survives reloads, and the cost_cap_metrics
 * location answering them in the Prometheus text format.
 */


#include "ngx_http_cost_cap_module.h"


#define NGX_HTTP_COST_CAP_SHM_SIZE  (256 * 1024)


static ngx_int_t ngx_http_cost_cap_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_cost_cap_metrics_handler(ngx_http_request_t *r);
static u_char *ngx_http_cost_cap_metrics_models(u_char *p,
    ngx_uint_t nmodels, const char *name, const char *help, size_t field);
static u_char *ngx_http_cost_cap_metrics_label(u_char *p,
    ngx_http_cost_cap_model_metrics_t *m);
static u_char *ngx_http_cost_cap_metrics_micro(u_char *p, ngx_atomic_t *v);


ngx_http_cost_cap_metrics_t  *ngx_http_cost_cap_metrics;

/* bucket bounds of the Redis latency histogram, in microseconds */
static ngx_uint_t  ngx_http_cost_cap_buckets[NGX_HTTP_COST_CAP_BUCKETS] = {
    250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000
};


/* one metrics slot per cost_cap_model pattern, shared by all locations */

ngx_int_t
ngx_http_cost_cap_metrics_add_model(ngx_conf_t *cf, ngx_str_t *pattern,
    ngx_uint_t *index)
{
    ngx_str_t                      *name;
    ngx_uint_t                      i;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cost_cap_module);

    name = cmcf->model_names.elts;

    for (i = 0; i < cmcf->model_names.nelts; i++) {
        if (name[i].len == pattern->len
            && ngx_strncmp(name[i].data, pattern->data, pattern->len) == 0)
        {
            *index = i;
            return NGX_OK;
        }
    }

    name = ngx_array_push(&cmcf->model_names);
    if (name == NULL) {
        return NGX_ERROR;
    }

    *name = *pattern;
    *index = i;

    return NGX_OK;
}


ngx_int_t
ngx_http_cost_cap_metrics_zone(ngx_conf_t *cf)
{
    ngx_str_t                       name = ngx_string("cost_cap_metrics");
    ngx_shm_zone_t                 *shm_zone;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cost_cap_module);

    shm_zone = ngx_shared_memory_add(cf, &name, NGX_HTTP_COST_CAP_SHM_SIZE,
                                     &ngx_http_cost_cap_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_cost_cap_metrics_init_zone;
    shm_zone->data = cmcf;

    cmcf->model_slots = ngx_pcalloc(cf->pool, (cmcf->model_names.nelts + 1)
                                              * sizeof(ngx_uint_t));
    if (cmcf->model_slots == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_str_t                          *name;
    ngx_uint_t                          i, j;
    ngx_slab_pool_t                    *shpool;
    ngx_http_cost_cap_metrics_t        *mt;
    ngx_http_cost_cap_main_conf_t      *cmcf;
    ngx_http_cost_cap_model_metrics_t  *m;

    cmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        mt = data;

    } else {
        mt = ngx_slab_calloc(shpool, sizeof(ngx_http_cost_cap_metrics_t));
        if (mt == NULL) {
            return NGX_ERROR;
        }
    }

    shm_zone->data = mt;
    ngx_http_cost_cap_metrics = mt;

    /* only the master writes names, at configuration time */
    name = cmcf->model_names.elts;

    for (i = 0; i < cmcf->model_names.nelts; i++) {
        m = mt->models;

        for (j = 0; j < mt->nmodels; j++) {
            if (m[j].len == ngx_min(name[i].len, NGX_HTTP_COST_CAP_NAME_LEN)
                && ngx_strncmp(m[j].name, name[i].data, m[j].len) == 0)
            {
                break;
            }
        }

        if (j == mt->nmodels) {
            if (j == NGX_HTTP_COST_CAP_MODELS - 1) {
                /* the last slot collects what does not fit, as "_other" */
                m[j].len = sizeof("_other") - 1;
                ngx_memcpy(m[j].name, "_other", m[j].len);
                mt->nmodels = NGX_HTTP_COST_CAP_MODELS;

            } else if (j == NGX_HTTP_COST_CAP_MODELS) {
                j = NGX_HTTP_COST_CAP_MODELS - 1;

            } else {
                m[j].len = ngx_min(name[i].len, NGX_HTTP_COST_CAP_NAME_LEN);
                ngx_memcpy(m[j].name, name[i].data, m[j].len);
                mt->nmodels++;
            }
        }

        cmcf->model_slots[i] = j;
    }

    return NGX_OK;
}


ngx_http_cost_cap_model_metrics_t *
ngx_http_cost_cap_metrics_model(ngx_http_cost_cap_model_t *model)
{
    ngx_http_cost_cap_main_conf_t  *cmcf;

    if (ngx_http_cost_cap_metrics == NULL || model == NULL) {
        return NULL;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_cost_cap_module);

    return &ngx_http_cost_cap_metrics->models[cmcf->model_slots[model->metric]];
}


/* a model's counters by its pattern: a hold settled after it was made */

ngx_http_cost_cap_model_metrics_t *
ngx_http_cost_cap_metrics_model_name(u_char *name, size_t len)
{
    ngx_uint_t                    i, n;
    ngx_http_cost_cap_metrics_t  *mt;

    mt = ngx_http_cost_cap_metrics;
    if (mt == NULL || len == 0) {
        return NULL;
    }

    n = ngx_min(mt->nmodels, NGX_HTTP_COST_CAP_MODELS);
    len = ngx_min(len, NGX_HTTP_COST_CAP_NAME_LEN);

    for (i = 0; i < n; i++) {
        if (mt->models[i].len == len
            && ngx_strncmp(mt->models[i].name, name, len) == 0)
        {
            return &mt->models[i];
        }
    }

    return NULL;
}


void
ngx_http_cost_cap_metrics_latency(ngx_msec_int_t us)
{
    ngx_uint_t                    i;
    ngx_http_cost_cap_metrics_t  *mt;

    mt = ngx_http_cost_cap_metrics;
    if (mt == NULL) {
        return;
    }

    for (i = 0; i < NGX_HTTP_COST_CAP_BUCKETS; i++) {
        if ((ngx_uint_t) us <= ngx_http_cost_cap_buckets[i]) {
            break;
        }
    }

    /* buckets are stored non-cumulative; the handler adds them up */
    (void) ngx_atomic_fetch_add(&mt->latency[i], 1);
    (void) ngx_atomic_fetch_add(&mt->latency_us, us);
}


char *
ngx_http_cost_cap_metrics_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_cost_cap_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_cost_cap_metrics_handler(ngx_http_request_t *r)
{
    u_char                       *p, *body;
    size_t                        len;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    i, total, nmodels;
    ngx_chain_t                   out;
    ngx_http_cost_cap_metrics_t  *mt;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mt = ngx_http_cost_cap_metrics;
    if (mt == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    /* read once: a reload may add models while this worker writes */
    nmodels = ngx_min(mt->nmodels, NGX_HTTP_COST_CAP_MODELS);

    len = 16384 + nmodels * 6 * (NGX_HTTP_COST_CAP_NAME_LEN * 2 + 128);

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body, "# HELP cost_cap_requests_total Requests decided "
                   "by the cost cap, by result.\n"
                   "# TYPE cost_cap_requests_total counter\n",
                   sizeof("# HELP cost_cap_requests_total Requests decided "
                          "by the cost cap, by result.\n"
                          "# TYPE cost_cap_requests_total counter\n") - 1);

    for (i = 1; i < NGX_HTTP_COST_CAP_RESULTS; i++) {
        p = ngx_sprintf(p, "cost_cap_requests_total{result=\"%V\"} %uA\n",
                        &ngx_http_cost_cap_results[i], mt->results[i]);
    }

    p = ngx_http_cost_cap_metrics_models(p, nmodels, "admitted_usd_total",
            "Spend reserved by admitted requests, USD.",
            offsetof(ngx_http_cost_cap_model_metrics_t, admitted));
    p = ngx_http_cost_cap_metrics_models(p, nmodels, "refunded_usd_total",
            "Reservations given back on a refund status, USD.",
            offsetof(ngx_http_cost_cap_model_metrics_t, refunded));
    p = ngx_http_cost_cap_metrics_models(p, nmodels, "adjusted_usd_total",
            "Actual cost minus estimate, for requests with actual cost, USD.",
            offsetof(ngx_http_cost_cap_model_metrics_t, adjusted));
    p = ngx_http_cost_cap_metrics_models(p, nmodels,
            "estimated_gpu_seconds_total",
            "Estimated GPU-seconds of admitted requests.",
            offsetof(ngx_http_cost_cap_model_metrics_t, estimated_gpu));
    p = ngx_http_cost_cap_metrics_models(p, nmodels,
            "calibration_estimated_gpu_seconds_total",
            "Estimated GPU-seconds of requests that reported actual ones.",
            offsetof(ngx_http_cost_cap_model_metrics_t, calib_estimated));
    p = ngx_http_cost_cap_metrics_models(p, nmodels,
            "calibration_actual_gpu_seconds_total",
            "Actual GPU-seconds reported (cost_cap_actual).",
            offsetof(ngx_http_cost_cap_model_metrics_t, calib_actual));

    p = ngx_sprintf(p, "# HELP cost_cap_redis_latency_seconds Round trip "
                    "of a Redis script call.\n"
                    "# TYPE cost_cap_redis_latency_seconds histogram\n");

    total = 0;

    for (i = 0; i < NGX_HTTP_COST_CAP_BUCKETS; i++) {
        total += mt->latency[i];
        p = ngx_cpymem(p, "cost_cap_redis_latency_seconds_bucket{le=\"",
                       sizeof("cost_cap_redis_latency_seconds_bucket{le=\"")
                       - 1);
        p += cc_decimal_format(ngx_http_cost_cap_buckets[i], (char *) p);
        p = ngx_sprintf(p, "\"} %ui\n", total);
    }

    total += mt->latency[NGX_HTTP_COST_CAP_BUCKETS];

    p = ngx_sprintf(p, "cost_cap_redis_latency_seconds_bucket{le=\"+Inf\"} "
                    "%ui\ncost_cap_redis_latency_seconds_sum ", total);
    p = ngx_http_cost_cap_metrics_micro(p, &mt->latency_us);
    p = ngx_sprintf(p, "\ncost_cap_redis_latency_seconds_count %ui\n", total);

    p = ngx_sprintf(p,
        "# HELP cost_cap_redis_errors_total Redis failures: connections "
        "lost or refused, timeouts, error replies.\n"
        "# TYPE cost_cap_redis_errors_total counter\n"
        "cost_cap_redis_errors_total %uA\n"
        "# HELP cost_cap_redis_reconnects_total Connections opened after "
        "the first.\n"
        "# TYPE cost_cap_redis_reconnects_total counter\n"
        "cost_cap_redis_reconnects_total %uA\n"
        "# HELP cost_cap_settlement_retries_total Settlements queued for "
        "a retry while Redis was unreachable.\n"
        "# TYPE cost_cap_settlement_retries_total counter\n"
        "cost_cap_settlement_retries_total %uA\n"
        "# HELP cost_cap_settlement_drops_total Settlements given up "
        "(logged with tenant, keys and amount).\n"
        "# TYPE cost_cap_settlement_drops_total counter\n"
        "cost_cap_settlement_drops_total %uA\n"
        "# HELP cost_cap_give_backs_total Reservations given back by id: "
        "their reply came after the request was answered, or was lost.\n"
        "# TYPE cost_cap_give_backs_total counter\n"
        "cost_cap_give_backs_total %uA\n"
        "# HELP cost_cap_redis_retries_total Commands sent again after a "
        "reply that says they did not run (TRYAGAIN, LOADING, BUSY, "
        "MASTERDOWN, CLUSTERDOWN, READONLY).\n"
        "# TYPE cost_cap_redis_retries_total counter\n"
        "cost_cap_redis_retries_total %uA\n"
        "# HELP cost_cap_redis_redirects_total Cluster redirections "
        "followed (MOVED, ASK).\n"
        "# TYPE cost_cap_redis_redirects_total counter\n"
        "cost_cap_redis_redirects_total %uA\n"
        "# HELP cost_cap_redis_stalls_total Connections closed because "
        "their replies stopped coming.\n"
        "# TYPE cost_cap_redis_stalls_total counter\n"
        "cost_cap_redis_stalls_total %uA\n"
        "# HELP cost_cap_reject_cache_hits_total Requests answered 429 from "
        "the reject cache, without a round trip.\n"
        "# TYPE cost_cap_reject_cache_hits_total counter\n"
        "cost_cap_reject_cache_hits_total %uA\n"
        "# HELP cost_cap_leases_total Leases taken (cost_cap_lease).\n"
        "# TYPE cost_cap_leases_total counter\n"
        "cost_cap_leases_total %uA\n"
        "# HELP cost_cap_lease_admitted_total Requests admitted from a "
        "lease, without a round trip.\n"
        "# TYPE cost_cap_lease_admitted_total counter\n"
        "cost_cap_lease_admitted_total %uA\n"
        "# HELP cost_cap_lease_returns_total Leases ended, their unused "
        "part given back.\n"
        "# TYPE cost_cap_lease_returns_total counter\n"
        "cost_cap_lease_returns_total %uA\n",
        mt->redis_errors, mt->reconnects, mt->settle_retries,
        mt->settle_drops, mt->give_backs, mt->redis_retries,
        mt->redis_redirects, mt->stalls, mt->cache_hits, mt->leases,
        mt->leased, mt->lease_returns);

    p = ngx_sprintf(p,
        "# HELP cost_cap_jobs_opened_total Holds made: reservations of job "
        "create calls kept until the job ends.\n"
        "# TYPE cost_cap_jobs_opened_total counter\n"
        "cost_cap_jobs_opened_total %uA\n"
        "# HELP cost_cap_jobs_settled_total Holds settled by the job's "
        "outcome (a status call or a callback).\n"
        "# TYPE cost_cap_jobs_settled_total counter\n"
        "cost_cap_jobs_settled_total{outcome=\"succeeded\"} %uA\n"
        "cost_cap_jobs_settled_total{outcome=\"failed\"} %uA\n"
        "# HELP cost_cap_jobs_expired_total Holds whose ttl ended unsettled, "
        "by on_expiry (policy).\n"
        "# TYPE cost_cap_jobs_expired_total counter\n"
        "cost_cap_jobs_expired_total{policy=\"keep\"} %uA\n"
        "cost_cap_jobs_expired_total{policy=\"refund\"} %uA\n"
        "# HELP cost_cap_jobs_held_usd Held by open holds: made minus "
        "settled by this NGINX (summed over instances), USD.\n"
        "# TYPE cost_cap_jobs_held_usd gauge\n"
        "cost_cap_jobs_held_usd ",
        mt->jobs_opened, mt->jobs_succeeded, mt->jobs_failed, mt->jobs_kept,
        mt->jobs_refunded);

    p += cc_decimal_format((int64_t) mt->jobs_held, (char *) p);
    *p++ = LF;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = p - body;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = body;
    b->last = p;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_cost_cap_metrics_models(u_char *p, ngx_uint_t nmodels,
    const char *name, const char *help, size_t field)
{
    ngx_uint_t                          i;
    ngx_http_cost_cap_metrics_t        *mt;
    ngx_http_cost_cap_model_metrics_t  *m;

    mt = ngx_http_cost_cap_metrics;

    p = ngx_sprintf(p, "# HELP cost_cap_%s %s\n# TYPE cost_cap_%s counter\n",
                    name, help, name);

    for (i = 0; i < nmodels; i++) {
        m = &mt->models[i];

        p = ngx_sprintf(p, "cost_cap_%s", name);
        p = ngx_http_cost_cap_metrics_label(p, m);
        *p++ = ' ';
        p = ngx_http_cost_cap_metrics_micro(p,
                                      (ngx_atomic_t *) ((u_char *) m + field));
        *p++ = LF;
    }

    return p;
}


static u_char *
ngx_http_cost_cap_metrics_label(u_char *p,
    ngx_http_cost_cap_model_metrics_t *m)
{
    u_char      c;
    ngx_uint_t  i;

    p = ngx_cpymem(p, "{model=\"", 8);

    for (i = 0; i < m->len; i++) {
        c = m->name[i];

        if (c == '"' || c == '\\') {
            *p++ = '\\';

        } else if (c == LF) {
            *p++ = '\\';
            c = 'n';
        }

        *p++ = c;
    }

    return ngx_cpymem(p, "\"}", 2);
}


static u_char *
ngx_http_cost_cap_metrics_micro(u_char *p, ngx_atomic_t *v)
{
    return p + cc_decimal_format((int64_t) *v, (char *) p);
}


/*
 * ngx_cost_cap_module: hard GPU spending caps in front of generation APIs.
 */


#ifndef _NGX_HTTP_COST_CAP_MODULE_H_INCLUDED_
#define _NGX_HTTP_COST_CAP_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "cc_window.h"
#include "cc_val.h"
#include "cc_price.h"
#include "cc_json.h"
#include "cc_multipart.h"
#include "cc_script.h"
#include "cc_slot.h"
#include "ngx_http_cost_cap_redis.h"
#include "ngx_http_cost_cap_lua.h"


#define NGX_HTTP_COST_CAP_ON_ERROR_CLOSED  0
#define NGX_HTTP_COST_CAP_ON_ERROR_OPEN    1

#define NGX_HTTP_COST_CAP_DEFAULT_PRICE    3500000     /* 3.50 USD */

/* Lua numbers are doubles: caps stay exact up to 2^53 micro-USD */
#define NGX_HTTP_COST_CAP_MAX_AMOUNT       9007199254740991LL

/* how long a settlement or a give-back waits for an unreachable Redis */
#define NGX_HTTP_COST_CAP_SETTLE_DEADLINE  30000

/* how long Redis keeps an operation's marker: longer than any resend */
#define NGX_HTTP_COST_CAP_MARKER_TTL       60000

/* how long Redis keeps a lease's record: longer than any lease lives */
#define NGX_HTTP_COST_CAP_LEASE_TTL        600000

#define NGX_HTTP_COST_CAP_LEVEL_TENANT     0
#define NGX_HTTP_COST_CAP_LEVEL_PARENT     1

/* cost_cap_job */
#define NGX_HTTP_COST_CAP_JOB_CREATE       1
#define NGX_HTTP_COST_CAP_JOB_POLL         2
#define NGX_HTTP_COST_CAP_JOB_WEBHOOK      3

/* a job id as it goes into costcap:{TAG}:[TENANT:]job:ID */
#define NGX_HTTP_COST_CAP_JOB_LEN          256


/* $cost_cap_result */
typedef enum {
    NGX_HTTP_COST_CAP_OFF = 0,
    NGX_HTTP_COST_CAP_ADMITTED,
    NGX_HTTP_COST_CAP_REJECTED,
    NGX_HTTP_COST_CAP_INVALID,
    NGX_HTTP_COST_CAP_ERROR,
    NGX_HTTP_COST_CAP_ERROR_OPEN,
    NGX_HTTP_COST_CAP_DRY_RUN_REJECTED,
    NGX_HTTP_COST_CAP_QUOTE
} ngx_http_cost_cap_result_e;


/* where a request is in the module */
typedef enum {
    NGX_HTTP_COST_CAP_STATE_BODY = 0,           /* being read */
    NGX_HTTP_COST_CAP_STATE_READY,              /* read, to be priced */
    NGX_HTTP_COST_CAP_STATE_REDIS,
    NGX_HTTP_COST_CAP_STATE_DONE
} ngx_http_cost_cap_state_e;


typedef struct {
    ngx_uint_t                  window;         /* cc_window_e */
    int64_t                     amount;         /* micro-USD, literal */
    ngx_http_complex_value_t   *value;          /* or a variable */
} ngx_http_cost_cap_limit_t;


/* when=FIELD:V1|V2 of a cost_cap_model */
typedef struct {
    ngx_str_t                   field;
    cc_str_t                   *values;         /* "-": absent */
    ngx_uint_t                  nvalues;
} ngx_http_cost_cap_when_t;


typedef struct {
    ngx_str_t                   pattern;
    ngx_regex_t                *regex;          /* NULL: exact match */
    ngx_uint_t                  metric;         /* its metrics slot */
    ngx_array_t                *when;           /* ngx_http_cost_cap_when_t */
    cc_rule_t                   rule;
} ngx_http_cost_cap_model_t;


/* cost_cap_field: where a field's value comes from */
typedef struct {
    ngx_str_t                   name;
    ngx_str_t                   path;           /* in the body; empty: not
                                                   read from the body */
    ngx_http_complex_value_t   *value;          /* or per request */
    ngx_str_t                   param;          /* an error's: the path, or
                                                   the name */
    unsigned                    off:1;
} ngx_http_cost_cap_field_t;


#define NGX_HTTP_COST_CAP_RESULTS   8
#define NGX_HTTP_COST_CAP_BUCKETS   10
#define NGX_HTTP_COST_CAP_MODELS    128
#define NGX_HTTP_COST_CAP_NAME_LEN  64


/* counters of one cost_cap_model pattern, in millionths */
typedef struct {
    ngx_atomic_t                admitted;       /* micro-USD */
    ngx_atomic_t                refunded;
    ngx_atomic_t                adjusted;       /* signed */
    ngx_atomic_t                estimated_gpu;  /* micro GPU-s */
    ngx_atomic_t                calib_estimated;
    ngx_atomic_t                calib_actual;
    size_t                      len;
    u_char                      name[NGX_HTTP_COST_CAP_NAME_LEN];
} ngx_http_cost_cap_model_metrics_t;


/* the shared memory zone */
typedef struct {
    ngx_atomic_t                results[NGX_HTTP_COST_CAP_RESULTS];
    ngx_atomic_t                latency[NGX_HTTP_COST_CAP_BUCKETS + 1];
    ngx_atomic_t                latency_us;
    ngx_atomic_t                redis_errors;
    ngx_atomic_t                reconnects;
    ngx_atomic_t                settle_retries;
    ngx_atomic_t                settle_drops;
    ngx_atomic_t                redis_retries;
    ngx_atomic_t                redis_redirects;
    ngx_atomic_t                stalls;
    ngx_atomic_t                give_backs;
    ngx_atomic_t                cache_hits;
    ngx_atomic_t                leases;
    ngx_atomic_t                leased;         /* requests admitted from
                                                   a lease */
    ngx_atomic_t                lease_returns;
    ngx_atomic_t                policy;         /* eviction policy seen */

    /* holds of async jobs (SPEC 10) */
    ngx_atomic_t                jobs_opened;
    ngx_atomic_t                jobs_succeeded;
    ngx_atomic_t                jobs_failed;
    ngx_atomic_t                jobs_kept;      /* expired, kept */
    ngx_atomic_t                jobs_refunded;  /* expired, refunded */
    ngx_atomic_t                jobs_held;      /* micro-USD, signed: opened
                                                   minus settled here */
    ngx_uint_t                  nmodels;
    ngx_http_cost_cap_model_metrics_t  models[NGX_HTTP_COST_CAP_MODELS];
} ngx_http_cost_cap_metrics_t;


#define ngx_http_cost_cap_count(field, n)                                     \
    if (ngx_http_cost_cap_metrics) {                                          \
        (void) ngx_atomic_fetch_add(&ngx_http_cost_cap_metrics->field, n);    \
    }


typedef struct {
    ngx_array_t                *addrs;          /* ngx_http_cost_cap_addr_t;
                                                   NULL: no Redis */
    ngx_uint_t                  mode;
    ngx_str_t                   master;         /* sentinel: its name */
    ngx_str_t                   password;
    ngx_str_t                   user;
    ngx_str_t                   sentinel_password;
    ngx_str_t                   sentinel_user;
    ngx_int_t                   db;
    ngx_msec_t                  timeout;
    ngx_msec_t                  connect_timeout;
    ngx_uint_t                  max_inflight;
    ngx_uint_t                  enabled;        /* cost_cap on somewhere */

    ngx_resolver_t             *resolver;       /* the http block's */
    ngx_msec_t                  resolver_timeout;

    ngx_flag_t                  ssl_enable;
    ngx_ssl_t                  *ssl;
    ngx_flag_t                  ssl_verify;
    ngx_uint_t                  ssl_verify_depth;
    ngx_uint_t                  ssl_protocols;
    ngx_str_t                   ssl_trusted_certificate;
    ngx_str_t                   ssl_name;
    ngx_str_t                   ssl_certificate;
    ngx_str_t                   ssl_certificate_key;

    ngx_uint_t                  jobs;           /* cost_cap_job somewhere:
                                                   expired holds are swept */

    ngx_array_t                 model_names;    /* ngx_str_t: metrics */
    ngx_uint_t                 *model_slots;
} ngx_http_cost_cap_main_conf_t;


/* cost_cap_job: where a job's id, outcome or actual cost is read */
typedef struct {
    ngx_str_t                   path;           /* dotted, in the body */
    ngx_http_complex_value_t   *value;          /* or a value with variables */
} ngx_http_cost_cap_src_t;


/* failed=, succeeded=: a path, and the values that say so */
typedef struct {
    ngx_str_t                   path;           /* default: status= */
    cc_str_t                   *values;         /* "*" present, "-" absent;
                                                   NULL: not configured */
    ngx_uint_t                  nvalues;
} ngx_http_cost_cap_cond_t;


/* the body paths a job location reads: id=, failed=, succeeded=, actual= */
#define NGX_HTTP_COST_CAP_JOB_PATHS  4

typedef struct {
    ngx_uint_t                  mode;           /* NGX_HTTP_COST_CAP_JOB_* */
    ngx_http_cost_cap_src_t     id;
    ngx_http_cost_cap_src_t     actual;         /* GPU-seconds */
    ngx_http_cost_cap_cond_t    failed;
    ngx_http_cost_cap_cond_t    succeeded;
    time_t                      ttl;
    ngx_uint_t                  refund;         /* on_expiry=refund */
    cc_path_t                   paths[NGX_HTTP_COST_CAP_JOB_PATHS];
                                                /* for the scanner; a
                                                   succeeded= on failed='s
                                                   path is read once */
} ngx_http_cost_cap_job_conf_t;


typedef struct ngx_http_cost_cap_job_ctx_s   ngx_http_cost_cap_job_ctx_t;


typedef struct {
    ngx_flag_t                  enable;
    ngx_http_complex_value_t   *tenant;
    ngx_array_t                *limits;         /* ngx_http_cost_cap_limit_t */
    ngx_array_t                *models;         /* ngx_http_cost_cap_model_t */
    int64_t                     gpu_price;      /* micro-USD / GPU-hour */

    /*
     * ngx_http_cost_cap_field_t: those set at this level; once merged,
     * every field read here: the built-ins in cc_field_e order, then the
     * named ones; paths[] their body paths, when_fields[] the field of
     * each when= of the models, in order
     */
    ngx_array_t                *fields;
    cc_path_t                  *paths;
    ngx_uint_t                 *when_fields;
    ngx_flag_t                  fields_merged;

    size_t                      max_body;
    ngx_uint_t                  on_error;
    ngx_flag_t                  dry_run;
    ngx_flag_t                  headers;
    ngx_array_t                *refund_status;  /* ngx_uint_t */
    ngx_http_complex_value_t   *actual;

    /* SPEC 11, 12 */
    ngx_http_complex_value_t   *parent;
    ngx_array_t                *parent_limits;  /* ngx_http_cost_cap_limit_t */
    ngx_flag_t                  caps_from_redis;
    ngx_str_t                  *alerts;         /* "50 80 100" */
    ngx_flag_t                  quote;
    ngx_flag_t                  status_on;

    /* SPEC 13 */
    ngx_msec_t                  reject_cache;   /* 0: off */
    int64_t                     lease;          /* micro-USD; 0: off */
    ngx_msec_t                  lease_ttl;
    ngx_uint_t                  lease_headroom;

    /* SPEC 10 */
    ngx_http_cost_cap_job_conf_t  *job;         /* this location's only */
    ngx_http_complex_value_t   *idem;           /* cost_cap_idempotency */
    time_t                      idem_ttl;
} ngx_http_cost_cap_loc_conf_t;


/* a window of this request: its cap, its period, and what Redis said */
typedef struct {
    int64_t                     limit;          /* configured; -1: none */
    int64_t                     start;          /* the period, in Redis */
    int64_t                     end;            /* time; end 0: total */
    int64_t                     spent;          /* before this request */
    int64_t                     cap;            /* enforced; -1: not */
    u_char                      window;         /* cc_window_e */
    u_char                      level;          /* tenant or parent */
    u_char                      period_len;
    u_char                      period[CC_PERIOD_MAX_LEN];
} ngx_http_cost_cap_win_t;


#define NGX_HTTP_COST_CAP_WIN_MAX   CC_RESERVE_WIN_MAX

/* an idempotency key as it goes into costcap:{TAG}:[TENANT:]idem:KEY */
#define NGX_HTTP_COST_CAP_IDEM_LEN  128

/* "costcap:{PARENT}:TENANT:" */
#define NGX_HTTP_COST_CAP_TKEY_LEN  (CC_KEY_PREFIX_MAX_LEN                    \
                                     + CC_TENANT_MAX_LEN + 1)


/*
 * A reservation: its id, its windows and keys, and the script's answer.
 * A copy travels with each operation about it (the request may be gone).
 */
typedef struct {
    u_char                      id[NGX_HTTP_COST_CAP_OP_ID_LEN];
    int64_t                     estimate;
    int64_t                     now;            /* Redis time, answered */
    uint64_t                    mask;           /* the windows charged */
    ngx_int_t                   status;         /* CC_RESERVE_* */
    ngx_uint_t                  bad;            /* BAD_*: the window */
    ngx_uint_t                  slot;
    ngx_uint_t                  nwin;
    ngx_uint_t                  ntenant;        /* the tenant's windows
                                                   first, the parent's after */
    ngx_http_cost_cap_win_t     win[NGX_HTTP_COST_CAP_WIN_MAX];
    size_t                      pkey_len;       /* "costcap:{TAG}:" */
    size_t                      tkey_len;       /* the tenant's keys */
    u_char                      pkey[CC_KEY_PREFIX_MAX_LEN];
    u_char                      tkey[NGX_HTTP_COST_CAP_TKEY_LEN];
    size_t                      nalerts;
    cc_alert_reply_t            alerts[CC_RESERVE_ALERT_MAX];

    /* what the script reads besides the counters (SPEC 10, 11) */
    ngx_str_t                  *thresholds;     /* cost_cap_alert: "50 80" */
    ngx_uint_t                  idem_ttl;       /* seconds */
    size_t                      idem_len;       /* cost_cap_idempotency */
    u_char                      idem[NGX_HTTP_COST_CAP_IDEM_LEN];

    /* a lease (SPEC 13): asked for with it, or admitted from one */
    int64_t                     lease_max;      /* 0: none asked for */
    ngx_uint_t                  lease_headroom;
    int64_t                     lease;          /* granted */
    u_char                      lease_id[NGX_HTTP_COST_CAP_OP_ID_LEN];

    u_char                      mode;           /* 'r', 'd', 'f', 'q' */
    unsigned                    caps:1;         /* the tenant's caps hash */
    unsigned                    pcaps:1;        /* the parent's */
    unsigned                    built:1;        /* periods are set */
    unsigned                    leased:1;       /* admitted from a lease */
} ngx_http_cost_cap_rsv_t;


typedef struct {
    ngx_http_cost_cap_state_e   state;
    ngx_http_cost_cap_result_e  result;
    ngx_int_t                   status;         /* decided: NGX_DECLINED or
                                                   an HTTP status */
    const char                 *code;           /* the error's */
    ngx_str_t                   message;
    ngx_str_t                  *param;
    ngx_http_request_t         *request;
    ngx_http_cost_cap_op_t     *op;

    ngx_http_cost_cap_loc_conf_t  *conf;        /* where it was priced */
    ngx_http_cost_cap_model_t  *rule;
    ngx_str_t                   tenant;
    ngx_str_t                   parent;
    ngx_str_t                   model;
    cc_estimate_t               estimate;
    int64_t                     gpu_price;      /* micro-USD / GPU-hour */

    ngx_http_cost_cap_rsv_t     rsv;
    ngx_http_cost_cap_job_ctx_t  *job;          /* a job's id and outcome */
    ngx_int_t                   bind;           /* index into rsv.win: the
                                                   one reported, -1 none */
    size_t                      bad_len;        /* a malformed cap's value */
    u_char                      bad[CC_RESERVE_BAD_MAX];
    unsigned                    reserved:1;
    unsigned                    estimated:1;
    unsigned                    acted:1;
    unsigned                    settled:1;
    unsigned                    multipart:1;
    unsigned                    windows:1;      /* answered with them: a
                                                   quote or a status */
    unsigned                    cached:1;       /* refused by the reject
                                                   cache */
} ngx_http_cost_cap_ctx_t;


extern ngx_module_t  ngx_http_cost_cap_module;


/* handler */
ngx_int_t ngx_http_cost_cap_handler(ngx_http_request_t *r);
ngx_http_cost_cap_ctx_t *ngx_http_cost_cap_create_ctx(ngx_http_request_t *r);
void ngx_http_cost_cap_fail(ngx_http_cost_cap_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *param);

/* settle */
ngx_int_t ngx_http_cost_cap_log_handler(ngx_http_request_t *r);
ngx_http_cost_cap_ctx_t *ngx_http_cost_cap_get_ctx(ngx_http_request_t *r);
void ngx_http_cost_cap_reserved(ngx_http_cost_cap_ctx_t *ctx, ngx_int_t rc);

/* budgets: the windows of a request, quotes and status (budget.c) */
ngx_int_t ngx_http_cost_cap_budget(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
ngx_int_t ngx_http_cost_cap_parent(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);
void ngx_http_cost_cap_bad_budget(ngx_http_cost_cap_ctx_t *ctx);
ngx_int_t ngx_http_cost_cap_send_windows(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx);

/* the reject cache and leases (ngx_http_cost_cap_lease.c) */
ngx_uint_t ngx_http_cost_cap_reject_cached(ngx_http_cost_cap_ctx_t *ctx);
void ngx_http_cost_cap_reject_remember(ngx_http_cost_cap_ctx_t *ctx,
    ngx_msec_t ttl);
void ngx_http_cost_cap_reject_exit(void);
ngx_uint_t ngx_http_cost_cap_lease_admit(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf);
void ngx_http_cost_cap_lease_answer(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf);
ngx_uint_t ngx_http_cost_cap_lease_settle(ngx_http_cost_cap_rsv_t *rsv,
    int64_t delta);
void ngx_http_cost_cap_lease_exit(void);

/* room for the formatted keys and numbers of one command */
#define NGX_HTTP_COST_CAP_ARGS      (3 + 5 + NGX_HTTP_COST_CAP_WIN_MAX        \
                                     + 10 + 4 * NGX_HTTP_COST_CAP_WIN_MAX)

typedef struct {
    u_char                     *p;
    u_char                     *last;
    int                         argc;
    const char                 *argv[NGX_HTTP_COST_CAP_ARGS];
    size_t                      argvlen[NGX_HTTP_COST_CAP_ARGS];
    u_char                      buf[8192];
} ngx_http_cost_cap_args_t;


/* reservations (ngx_http_cost_cap_reserve.c) */
ngx_int_t ngx_http_cost_cap_reserve(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf);
void ngx_http_cost_cap_reserve_detach(ngx_http_cost_cap_ctx_t *ctx);
void ngx_http_cost_cap_force(ngx_http_cost_cap_rsv_t *rsv);
void ngx_http_cost_cap_give_back(ngx_http_cost_cap_rsv_t *rsv);
void ngx_http_cost_cap_settle(ngx_http_cost_cap_rsv_t *rsv, int64_t delta);
void ngx_http_cost_cap_arg_script(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_op_t *op, ngx_uint_t script);
void ngx_http_cost_cap_arg(ngx_http_cost_cap_args_t *a, u_char *s,
    size_t len);
void ngx_http_cost_cap_arg_fmt(ngx_http_cost_cap_args_t *a,
    const char *fmt, ...);
void ngx_http_cost_cap_arg_key(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv, ngx_uint_t i);
void ngx_http_cost_cap_arg_idem(ngx_http_cost_cap_args_t *a,
    ngx_http_cost_cap_rsv_t *rsv);
void ngx_http_cost_cap_lease_return(ngx_http_cost_cap_rsv_t *rsv,
    int64_t unused);

/* async jobs and idempotency (ngx_http_cost_cap_job.c) */
char *ngx_http_cost_cap_job_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cost_cap_idempotency_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_cost_cap_job_merge(ngx_conf_t *cf,
    ngx_http_cost_cap_loc_conf_t *conf, ngx_http_cost_cap_loc_conf_t *prev);
ngx_int_t ngx_http_cost_cap_job_init(ngx_conf_t *cf);
ngx_int_t ngx_http_cost_cap_job_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_cost_cap_job_handler(ngx_http_request_t *r,
    ngx_http_cost_cap_loc_conf_t *lcf);
ngx_int_t ngx_http_cost_cap_job_hold(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx);
void ngx_http_cost_cap_job_log(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx);
ngx_int_t ngx_http_cost_cap_job_variable(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_str_t *id);
ngx_int_t ngx_http_cost_cap_idempotency(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx, ngx_http_cost_cap_loc_conf_t *lcf);

/* reply */
ngx_int_t ngx_http_cost_cap_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, ngx_str_t *message,
    ngx_str_t *param);
ngx_int_t ngx_http_cost_cap_send_exceeded(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx);
ngx_int_t ngx_http_cost_cap_add_headers(ngx_http_request_t *r,
    ngx_http_cost_cap_ctx_t *ctx);
ngx_int_t ngx_http_cost_cap_set_header(ngx_http_request_t *r,
    const char *name, u_char *value, size_t len);
ngx_int_t ngx_http_cost_cap_send_json(ngx_http_request_t *r,
    ngx_uint_t status, u_char *body, size_t len);
u_char *ngx_http_cost_cap_json_string(u_char *p, ngx_str_t *s);

/* $cost_cap_result and the metrics' result labels, by result */
extern ngx_str_t  ngx_http_cost_cap_results[NGX_HTTP_COST_CAP_RESULTS];

/* metrics */
extern ngx_http_cost_cap_metrics_t  *ngx_http_cost_cap_metrics;

ngx_int_t ngx_http_cost_cap_metrics_add_model(ngx_conf_t *cf,
    ngx_str_t *pattern, ngx_uint_t *index);
ngx_int_t ngx_http_cost_cap_metrics_zone(ngx_conf_t *cf);
ngx_http_cost_cap_model_metrics_t *ngx_http_cost_cap_metrics_model(
    ngx_http_cost_cap_model_t *model);
ngx_http_cost_cap_model_metrics_t *ngx_http_cost_cap_metrics_model_name(
    u_char *name, size_t len);
void ngx_http_cost_cap_metrics_latency(ngx_msec_int_t us);
char *ngx_http_cost_cap_metrics_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* configuration of the Redis client (ngx_http_cost_cap_redis_conf.c) */
char *ngx_http_cost_cap_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_cost_cap_redis_init_conf(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf);
#if (NGX_HTTP_SSL)
extern ngx_conf_bitmask_t  ngx_http_cost_cap_ssl_protocols[];
#endif

/* the worker's main configuration */
extern ngx_http_cost_cap_main_conf_t  *ngx_http_cost_cap_main_conf;


#endif /* _NGX_HTTP_COST_CAP_MODULE_H_INCLUDED_ */

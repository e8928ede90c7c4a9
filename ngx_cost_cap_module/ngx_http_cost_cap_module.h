
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


#define NGX_HTTP_COST_CAP_ON_ERROR_CLOSED  0
#define NGX_HTTP_COST_CAP_ON_ERROR_OPEN    1

#define NGX_HTTP_COST_CAP_DEFAULT_PRICE    3500000     /* 3.50 USD */

/* Lua numbers are doubles: caps stay exact up to 2^53 micro-USD */
#define NGX_HTTP_COST_CAP_MAX_AMOUNT       9007199254740991LL


/* $cost_cap_result */
typedef enum {
    NGX_HTTP_COST_CAP_OFF = 0,
    NGX_HTTP_COST_CAP_ADMITTED,
    NGX_HTTP_COST_CAP_REJECTED,
    NGX_HTTP_COST_CAP_INVALID,
    NGX_HTTP_COST_CAP_ERROR,
    NGX_HTTP_COST_CAP_ERROR_OPEN,
    NGX_HTTP_COST_CAP_DRY_RUN_REJECTED
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


#define NGX_HTTP_COST_CAP_RESULTS   7
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
    ngx_uint_t                  nmodels;
    ngx_http_cost_cap_model_metrics_t  models[NGX_HTTP_COST_CAP_MODELS];
} ngx_http_cost_cap_metrics_t;


#define ngx_http_cost_cap_count(field, n)                                     \
    if (ngx_http_cost_cap_metrics) {                                          \
        (void) ngx_atomic_fetch_add(&ngx_http_cost_cap_metrics->field, n);    \
    }


typedef struct {
    ngx_addr_t                 *addr;           /* NULL: no Redis */
    ngx_str_t                   password;
    ngx_str_t                   user;
    ngx_int_t                   db;
    ngx_msec_t                  timeout;
    ngx_msec_t                  connect_timeout;
    ngx_uint_t                  max_inflight;
    ngx_array_t                 model_names;    /* ngx_str_t: metrics */
    ngx_uint_t                 *model_slots;
    ngx_flag_t                  enabled;        /* cost_cap on somewhere */
} ngx_http_cost_cap_main_conf_t;


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
} ngx_http_cost_cap_loc_conf_t;


typedef struct ngx_http_cost_cap_op_s  ngx_http_cost_cap_op_t;

typedef void (*ngx_http_cost_cap_op_handler_pt)(ngx_http_cost_cap_op_t *op,
    redisReply *reply);


/* a window of this request: its cap, and what Redis said of it */
typedef struct {
    ngx_uint_t                  window;
    int64_t                     limit;
} ngx_http_cost_cap_win_t;


/*
 * One Redis command in flight.  It lives on the heap and outlives the
 * request that sent it: a request that goes away only clears op->data.
 */
struct ngx_http_cost_cap_op_s {
    ngx_queue_t                      queue;
    ngx_event_t                      timer;     /* reply timeout, or the
                                                   retry deadline */
    ngx_http_cost_cap_op_handler_pt  handler;   /* NULL: the client's own */
    void                            *data;      /* the request's ctx */
    u_char                          *cmd;       /* formatted, kept for a
                                                   NOSCRIPT or a retry */
    size_t                           cmd_len;
    uint64_t                         end;       /* its last byte's offset
                                                   in the connection */
    uint64_t                         start;     /* microseconds */
    ngx_msec_t                       deadline;  /* retried until then, if
                                                   it did not reach Redis */
    unsigned                         retried:1;
    unsigned                         retrying:1;
    unsigned                         requeued:1;
    unsigned                         unsent:1;  /* surely not applied */
    unsigned                         done:1;    /* answered or timed out */
    unsigned                         dry:1;

    /* the keys: to give a late reservation back, or to log a settlement */
    int64_t                          estimate;
    size_t                           nwin;

    /* not zeroed for a new operation: written before they are read */
    ngx_http_cost_cap_win_t          win[CC_WIN_MAX];
    cc_reserve_reply_t               res;
    size_t                           prefix_len;
    u_char                           prefix[CC_KEY_PREFIX_MAX_LEN];
    u_char                           cmd_buf[320];  /* most commands */
};


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
    ngx_str_t                   model;
    cc_estimate_t               estimate;
    int64_t                     gpu_price;      /* micro-USD / GPU-hour */

    size_t                      nwin;
    ngx_http_cost_cap_win_t     win[CC_WIN_MAX];
    cc_reserve_reply_t          reply;
    ngx_int_t                   bind;           /* index into win: the one
                                                   reported, -1 none */
    unsigned                    reserved:1;
    unsigned                    estimated:1;
    unsigned                    acted:1;
    unsigned                    settled:1;
    unsigned                    multipart:1;
} ngx_http_cost_cap_ctx_t;


extern ngx_module_t  ngx_http_cost_cap_module;


/* handler */
ngx_int_t ngx_http_cost_cap_handler(ngx_http_request_t *r);

/* settle */
ngx_int_t ngx_http_cost_cap_log_handler(ngx_http_request_t *r);
void ngx_http_cost_cap_give_back(ngx_http_cost_cap_op_t *op,
    redisReply *reply);
ngx_http_cost_cap_ctx_t *ngx_http_cost_cap_get_ctx(ngx_http_request_t *r);

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

/* $cost_cap_result and the metrics' result labels, by result */
extern ngx_str_t  ngx_http_cost_cap_results[NGX_HTTP_COST_CAP_RESULTS];

/* metrics */
extern ngx_http_cost_cap_metrics_t  *ngx_http_cost_cap_metrics;

ngx_int_t ngx_http_cost_cap_metrics_add_model(ngx_conf_t *cf,
    ngx_str_t *pattern, ngx_uint_t *index);
ngx_int_t ngx_http_cost_cap_metrics_zone(ngx_conf_t *cf);
ngx_http_cost_cap_model_metrics_t *ngx_http_cost_cap_metrics_model(
    ngx_http_cost_cap_model_t *model);
void ngx_http_cost_cap_metrics_latency(ngx_msec_int_t us);
char *ngx_http_cost_cap_metrics_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* redis */
extern ngx_str_t  ngx_http_cost_cap_sha_reserve;
extern ngx_str_t  ngx_http_cost_cap_sha_settle;

ngx_http_cost_cap_op_t *ngx_http_cost_cap_redis_op(void);
void ngx_http_cost_cap_redis_free_op(ngx_http_cost_cap_op_t *op);
int ngx_http_cost_cap_redis_script(ngx_http_cost_cap_op_t *op,
    ngx_str_t *sha, const char **argv, size_t *argvlen);
ngx_int_t ngx_http_cost_cap_redis_send(ngx_http_cost_cap_op_t *op,
    int argc, const char **argv, const size_t *argvlen);
ngx_int_t ngx_http_cost_cap_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_cost_cap_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_cost_cap_redis_init_scripts(void);


#endif /* _NGX_HTTP_COST_CAP_MODULE_H_INCLUDED_ */

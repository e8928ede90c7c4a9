
/*
 * ngx_cost_cap_module: directives, configuration, variables, init.
 */


#include "ngx_http_cost_cap_module.h"


static ngx_int_t ngx_http_cost_cap_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_cost_cap_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void *ngx_http_cost_cap_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_cost_cap_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_cost_cap_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_cost_cap_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_uint_t ngx_http_cost_cap_secret_name(ngx_str_t *name);
static char *ngx_http_cost_cap_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cost_cap_model(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cost_cap_model_param(ngx_conf_t *cf,
    ngx_http_cost_cap_model_t *m, ngx_str_t *param);
static char *ngx_http_cost_cap_model_when(ngx_conf_t *cf,
    ngx_http_cost_cap_model_t *m, ngx_str_t *val);
static ngx_uint_t ngx_http_cost_cap_name_valid(ngx_str_t *name);
static char *ngx_http_cost_cap_gpu_price(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cost_cap_field(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_http_cost_cap_field_t *ngx_http_cost_cap_field_find(
    ngx_array_t *fields, ngx_str_t *name);
static char *ngx_http_cost_cap_merge_fields(ngx_conf_t *cf,
    ngx_http_cost_cap_loc_conf_t *conf, ngx_http_cost_cap_loc_conf_t *prev);
static ngx_int_t ngx_http_cost_cap_add_named(ngx_array_t *all,
    ngx_array_t *fields);
static char *ngx_http_cost_cap_merge_when(ngx_conf_t *cf,
    ngx_http_cost_cap_loc_conf_t *conf);
static char *ngx_http_cost_cap_refund_status(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_cost_cap_max_body(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_cost_cap_on_error(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_cost_cap_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_cost_cap_init_process(ngx_cycle_t *cycle);
static void ngx_http_cost_cap_exit_process(ngx_cycle_t *cycle);


static ngx_command_t  ngx_http_cost_cap_commands[] = {

    { ngx_string("cost_cap"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cost_cap_loc_conf_t, enable),
      NULL },

    { ngx_string("cost_cap_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_cost_cap_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_tenant"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cost_cap_loc_conf_t, tenant),
      NULL },

    { ngx_string("cost_cap_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_cost_cap_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_cost_cap_model,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_gpu_price"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cost_cap_gpu_price,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_field"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_cost_cap_field,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cost_cap_max_body,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_on_error"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_cost_cap_on_error,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cost_cap_loc_conf_t, dry_run),
      NULL },

    { ngx_string("cost_cap_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cost_cap_loc_conf_t, headers),
      NULL },

    { ngx_string("cost_cap_refund_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_cost_cap_refund_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("cost_cap_actual"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_cost_cap_loc_conf_t, actual),
      NULL },

    { ngx_string("cost_cap_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_cost_cap_metrics_set,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_cost_cap_module_ctx = {
    ngx_http_cost_cap_add_variables,       /* preconfiguration */
    ngx_http_cost_cap_init,                /* postconfiguration */

    ngx_http_cost_cap_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_cost_cap_create_loc_conf,     /* create location configuration */
    ngx_http_cost_cap_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_cost_cap_module = {
    NGX_MODULE_V1,
    &ngx_http_cost_cap_module_ctx,         /* module context */
    ngx_http_cost_cap_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_cost_cap_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_cost_cap_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


/* data of each variable: what ngx_http_cost_cap_variable returns */
enum {
    NGX_HTTP_COST_CAP_VAR_TENANT = 0,
    NGX_HTTP_COST_CAP_VAR_MODEL,
    NGX_HTTP_COST_CAP_VAR_GPU_SECONDS,
    NGX_HTTP_COST_CAP_VAR_ESTIMATE,
    NGX_HTTP_COST_CAP_VAR_SPENT,
    NGX_HTTP_COST_CAP_VAR_REMAINING,
    NGX_HTTP_COST_CAP_VAR_RESULT
};


static ngx_http_variable_t  ngx_http_cost_cap_vars[] = {

    { ngx_string("cost_cap_tenant"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_TENANT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cost_cap_model"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cost_cap_gpu_seconds"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_GPU_SECONDS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cost_cap_estimate"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_ESTIMATE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cost_cap_spent"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_SPENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cost_cap_remaining"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_REMAINING, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("cost_cap_result"), NULL, ngx_http_cost_cap_variable,
      NGX_HTTP_COST_CAP_VAR_RESULT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_str_t  ngx_http_cost_cap_results[NGX_HTTP_COST_CAP_RESULTS] = {
    ngx_string("off"),
    ngx_string("admitted"),
    ngx_string("rejected"),
    ngx_string("invalid"),
    ngx_string("error"),
    ngx_string("error_open"),
    ngx_string("dry_run_rejected")
};


static ngx_int_t
ngx_http_cost_cap_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_cost_cap_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    int64_t                   micro;
    ngx_str_t                 s;
    ngx_http_cost_cap_ctx_t  *ctx;

    ctx = ngx_http_cost_cap_get_ctx(r);

    if (data == NGX_HTTP_COST_CAP_VAR_RESULT) {
        s = ngx_http_cost_cap_results[ctx ? ctx->result : 0];
        goto found;
    }

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_COST_CAP_VAR_TENANT:
        s = ctx->tenant;
        goto found;

    case NGX_HTTP_COST_CAP_VAR_MODEL:
        s = ctx->model;
        goto found;

    case NGX_HTTP_COST_CAP_VAR_GPU_SECONDS:
        micro = ctx->estimate.gpu_seconds;
        break;

    case NGX_HTTP_COST_CAP_VAR_ESTIMATE:
        micro = ctx->estimate.cost;
        break;

    case NGX_HTTP_COST_CAP_VAR_SPENT:
        if (ctx->bind < 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        micro = ctx->reply.win[ctx->bind].spent;
        break;

    default: /* NGX_HTTP_COST_CAP_VAR_REMAINING */
        if (ctx->bind < 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        micro = ctx->win[ctx->bind].limit - ctx->reply.win[ctx->bind].spent
                - ctx->estimate.cost;
        micro = ngx_max(micro, 0);
        break;
    }

    if (!ctx->estimated) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, CC_DECIMAL_MAX_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    s.data = p;
    s.len = cc_decimal_format(micro, (char *) p);

found:

    if (s.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s.len;
    v->data = s.data;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static void *
ngx_http_cost_cap_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cost_cap_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cmcf->addr = NULL;
     *     cmcf->password = { 0, NULL };
     *     cmcf->user = { 0, NULL };
     *     cmcf->db = 0;
     *     cmcf->enabled = 0;
     */

    cmcf->timeout = 100;
    cmcf->connect_timeout = 100;
    cmcf->max_inflight = 8192;

    if (ngx_array_init(&cmcf->model_names, cf->pool, 8, sizeof(ngx_str_t))
        != NGX_OK)
    {
        return NULL;
    }

    return cmcf;
}


static void *
ngx_http_cost_cap_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_cost_cap_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_cost_cap_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->tenant = NULL;
     *     conf->limits = NULL;
     *     conf->models = NULL;
     *     conf->fields = NULL;
     *     conf->paths = NULL;
     *     conf->when_fields = NULL;
     *     conf->fields_merged = 0;
     *     conf->refund_status = NULL;
     *     conf->actual = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->gpu_price = -1;
    conf->max_body = NGX_CONF_UNSET_SIZE;
    conf->on_error = NGX_CONF_UNSET_UINT;
    conf->dry_run = NGX_CONF_UNSET;
    conf->headers = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_cost_cap_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_cost_cap_loc_conf_t *prev = parent;
    ngx_http_cost_cap_loc_conf_t *conf = child;

    ngx_uint_t                      i, *s;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    static ngx_uint_t  refund[] = { 500, 502, 503, 504 };

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    if (conf->tenant == NULL) {
        conf->tenant = prev->tenant;
    }

    if (conf->limits == NULL) {
        conf->limits = prev->limits;
    }

    if (conf->models == NULL) {
        conf->models = prev->models;
    }

    if (conf->gpu_price < 0) {
        conf->gpu_price = (prev->gpu_price < 0)
                          ? NGX_HTTP_COST_CAP_DEFAULT_PRICE : prev->gpu_price;
    }

    if (ngx_http_cost_cap_merge_fields(cf, conf, prev) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_size_value(conf->max_body, prev->max_body, 1024 * 1024);
    ngx_conf_merge_uint_value(conf->on_error, prev->on_error,
                              NGX_HTTP_COST_CAP_ON_ERROR_CLOSED);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_value(conf->headers, prev->headers, 1);

    if (conf->refund_status == NULL) {
        conf->refund_status = prev->refund_status;
    }

    if (conf->refund_status == NULL) {
        conf->refund_status = ngx_array_create(cf->pool, 4,
                                               sizeof(ngx_uint_t));
        if (conf->refund_status == NULL) {
            return NGX_CONF_ERROR;
        }

        for (i = 0; i < sizeof(refund) / sizeof(refund[0]); i++) {
            s = ngx_array_push(conf->refund_status);
            if (s == NULL) {
                return NGX_CONF_ERROR;
            }

            *s = refund[i];
        }
    }

    if (conf->actual == NULL) {
        conf->actual = prev->actual;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->tenant == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap on\" requires \"cost_cap_tenant\"");
        return NGX_CONF_ERROR;
    }

    if (conf->models == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap on\" requires at least one "
                           "\"cost_cap_model\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_http_cost_cap_merge_when(cf, conf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_cost_cap_module);
    cmcf->enabled = 1;

    if (conf->limits && cmcf->addr == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_limit\" requires \"cost_cap_redis\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_main_conf_t *cmcf = conf;

    u_char      *eq;
    ngx_str_t   *value, s;
    ngx_url_t    u;
    ngx_int_t    n;
    ngx_msec_t  *t;
    ngx_uint_t   i;

    if (cmcf->addr) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of \"cost_cap_redis\"",
                               u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no address in \"%V\" of \"cost_cap_redis\"",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    cmcf->addr = &u.addrs[0];

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            cmcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0
            && value[i].len > 9)
        {
            cmcf->password.data = value[i].data + 9;
            cmcf->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0 && value[i].len > 5) {
            cmcf->user.data = value[i].data + 5;
            cmcf->user.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            t = &cmcf->timeout;

        } else if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;
            t = &cmcf->connect_timeout;

        } else {
            goto unknown;
        }

        *t = ngx_parse_time(&s, 0);
        if (*t == (ngx_msec_t) NGX_ERROR || *t == 0) {
            goto invalid;
        }
    }

    if (cmcf->user.len && cmcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_redis\" user= requires password=");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"cost_cap_redis\"",
                       &value[i]);
    return NGX_CONF_ERROR;

unknown:

    /* a misspelt password ("Password=", "passwd=") keeps its value hidden */
    eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
    s.data = value[i].data;
    s.len = eq ? (size_t) (eq - s.data) : value[i].len;

    if (ngx_http_cost_cap_secret_name(&s)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown parameter \"%V=...\" of "
                           "\"cost_cap_redis\"", &s);
        return NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown parameter \"%V\" of \"cost_cap_redis\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static ngx_uint_t
ngx_http_cost_cap_secret_name(ngx_str_t *name)
{
    ngx_uint_t  i;

    static char  *secret[] = { "pass", "pw", "secret", "auth", "token",
                               "cred", "key" };

    for (i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
        if (ngx_strlcasestrn(name->data, name->data + name->len,
                             (u_char *) secret[i], ngx_strlen(secret[i]) - 1)
            != NULL)
        {
            return 1;
        }
    }

    return 0;
}


static char *
ngx_http_cost_cap_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    int                                 w;
    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_cost_cap_limit_t          *limit;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;

    if (ngx_strncmp(value[2].data, "per=", 4) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of \"cost_cap_limit\", "
                           "expected \"per=WINDOW\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    w = cc_window_parse((char *) value[2].data + 4, value[2].len - 4);
    if (w < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid window \"%V\" of \"cost_cap_limit\", "
                           "use minute, hour, day, week, month or total",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    if (lcf->limits == NULL) {
        lcf->limits = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_cost_cap_limit_t));
        if (lcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    limit = lcf->limits->elts;
    for (i = 0; i < lcf->limits->nelts; i++) {
        if (limit[i].window == (ngx_uint_t) w) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_limit\" \"%V\" is duplicate",
                               &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    limit = ngx_array_push(lcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_http_cost_cap_limit_t));
    limit->window = w;

    if (ngx_http_script_variables_count(&value[1])) {
        limit->value = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (limit->value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &value[1];
        ccv.complex_value = limit->value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (cc_decimal_parse((char *) value[1].data, value[1].len, &limit->amount)
        != CC_DEC_OK
        || limit->amount > NGX_HTTP_COST_CAP_MAX_AMOUNT)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid amount \"%V\" of \"cost_cap_limit\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    char                       *rv;
    u_char                      errstr[NGX_MAX_CONF_ERRSTR];
    ngx_str_t                  *value;
    ngx_uint_t                  i, priced;
    ngx_regex_compile_t         rc;
    ngx_http_cost_cap_model_t  *m;

    value = cf->args->elts;

    if (lcf->models == NULL) {
        lcf->models = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_http_cost_cap_model_t));
        if (lcf->models == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    m = ngx_array_push(lcf->models);
    if (m == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_cost_cap_model_t));
    m->pattern = value[1];
    m->rule.gpu_price = -1;

    if (ngx_http_cost_cap_metrics_add_model(cf, &value[1], &m->metric)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (value[1].len > 1 && value[1].data[0] == '~') {
        ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

        rc.pattern.data = value[1].data + 1;
        rc.pattern.len = value[1].len - 1;

        if (rc.pattern.data[0] == '*') {
            rc.pattern.data++;
            rc.pattern.len--;
            rc.options = NGX_REGEX_CASELESS;
        }

        rc.pool = cf->pool;
        rc.err.len = NGX_MAX_CONF_ERRSTR;
        rc.err.data = errstr;

        if (rc.pattern.len == 0 || ngx_regex_compile(&rc) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid regex \"%V\" of \"cost_cap_model\": "
                               "%V", &value[1], &rc.err);
            return NGX_CONF_ERROR;
        }

        m->regex = rc.regex;
    }

    priced = 0;

    for (i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "usd_per_", 8) == 0) {
            priced = 1;
        }

        rv = ngx_http_cost_cap_model_param(cf, m, &value[i]);
        if (rv != NGX_CONF_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s \"%V\" of \"cost_cap_model\" \"%V\"",
                               rv, &value[i], &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (m->rule.per_mpx_frame == 0 && !priced) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_model\" \"%V\" requires "
                           "\"per_mpx_frame=\" or a list price "
                           "(\"usd_per_output=\", \"usd_per_second=\", "
                           "\"usd_per_mpx=\")", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_model_param(ngx_conf_t *cf, ngx_http_cost_cap_model_t *m,
    ngx_str_t *param)
{
    u_char      *eq;
    int64_t      v, *p;
    ngx_str_t    name, val;
    ngx_uint_t   whole, positive;
    cc_rule_t   *rule;

    eq = ngx_strlchr(param->data, param->data + param->len, '=');
    if (eq == NULL) {
        return "invalid parameter";
    }

    name.data = param->data;
    name.len = eq - param->data;
    val.data = eq + 1;
    val.len = param->data + param->len - val.data;

    rule = &m->rule;

    if (name.len == 4 && ngx_strncmp(name.data, "when", 4) == 0) {
        return ngx_http_cost_cap_model_when(cf, m, &val);
    }

    if (name.len == 12 && ngx_strncmp(name.data, "default_size", 12) == 0) {
        if (cc_size_parse((char *) val.data, val.len, &rule->default_width,
                          &rule->default_height)
            != 0)
        {
            return "invalid size";
        }

        return NGX_CONF_OK;
    }

    whole = 0;
    positive = 1;

#define ngx_http_cost_cap_param(str, field, w, pos)                           \
    if (name.len == sizeof(str) - 1                                           \
        && ngx_strncmp(name.data, str, sizeof(str) - 1) == 0)                 \
    {                                                                         \
        p = &rule->field; whole = w; positive = pos;                          \
        goto found;                                                           \
    }

    ngx_http_cost_cap_param("per_mpx_frame", per_mpx_frame, 0, 1);
    ngx_http_cost_cap_param("base", base, 0, 0);
    ngx_http_cost_cap_param("usd_per_output", usd_per_output, 0, 0);
    ngx_http_cost_cap_param("usd_per_second", usd_per_second, 0, 0);
    ngx_http_cost_cap_param("usd_per_mpx", usd_per_mpx, 0, 0);
    ngx_http_cost_cap_param("fps", fps, 0, 1);
    ngx_http_cost_cap_param("ref_steps", ref_steps, 0, 1);
    ngx_http_cost_cap_param("default_seconds", default_seconds, 0, 1);
    ngx_http_cost_cap_param("max_seconds", max_seconds, 0, 1);
    ngx_http_cost_cap_param("max_pixels", max_pixels, 1, 1);
    ngx_http_cost_cap_param("max_n", max_n, 1, 1);
    ngx_http_cost_cap_param("gpu_price", gpu_price, 0, 0);

#undef ngx_http_cost_cap_param

    return "unknown parameter";

found:

    if (cc_decimal_parse((char *) val.data, val.len, &v) != CC_DEC_OK
        || (positive && v == 0)
        || (whole && v % CC_MICRO))
    {
        return "invalid value";
    }

    *p = whole ? v / CC_MICRO : v;

    return NGX_CONF_OK;
}


/* when=FIELD:V1|V2|...: FIELD is resolved where the rule is used */

static char *
ngx_http_cost_cap_model_when(ngx_conf_t *cf, ngx_http_cost_cap_model_t *m,
    ngx_str_t *val)
{
    u_char                    *p, *last, *colon, *bar;
    ngx_uint_t                 n;
    cc_str_t                  *v;
    ngx_http_cost_cap_when_t  *w;

    last = val->data + val->len;
    colon = ngx_strlchr(val->data, last, ':');

    if (colon == NULL) {
        return "invalid condition";
    }

    if (m->when == NULL) {
        m->when = ngx_array_create(cf->pool, 2,
                                   sizeof(ngx_http_cost_cap_when_t));
        if (m->when == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    w = ngx_array_push(m->when);
    if (w == NULL) {
        return NGX_CONF_ERROR;
    }

    w->field.data = val->data;
    w->field.len = colon - val->data;

    if (!ngx_http_cost_cap_name_valid(&w->field)) {
        return "invalid field in condition";
    }

    n = 1;

    for (p = colon + 1; p < last; p++) {
        n += (*p == '|');
    }

    w->values = ngx_palloc(cf->pool, n * sizeof(cc_str_t));
    if (w->values == NULL) {
        return NGX_CONF_ERROR;
    }

    w->nvalues = n;
    v = w->values;

    for (p = colon + 1; /* void */ ; p = bar + 1) {
        bar = ngx_strlchr(p, last, '|');

        v->data = (char *) p;
        v->len = (bar ? bar : last) - p;

        if (v->len == 0) {
            return "empty value in condition";
        }

        v++;

        if (bar == NULL) {
            break;
        }
    }

    return NGX_CONF_OK;
}


/* a field's name: 1-64 of [A-Za-z0-9_-] */

static ngx_uint_t
ngx_http_cost_cap_name_valid(ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i;

    if (name->len == 0 || name->len > 64) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static char *
ngx_http_cost_cap_gpu_price(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->gpu_price >= 0) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cc_decimal_parse((char *) value[1].data, value[1].len,
                         &lcf->gpu_price)
        != CC_DEC_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid price \"%V\" of \"cost_cap_gpu_price\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_field(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_cost_cap_field_t         *fl;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    if (cc_field_parse((char *) value[1].data, value[1].len) < 0
        && !ngx_http_cost_cap_name_valid(&value[1]))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid field name \"%V\" of \"cost_cap_field\", "
                           "use 1-64 of A-Z a-z 0-9 _ -", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (lcf->fields == NULL) {
        lcf->fields = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_http_cost_cap_field_t));
        if (lcf->fields == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_cost_cap_field_find(lcf->fields, &value[1])) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_field\" \"%V\" is duplicate",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    fl = ngx_array_push(lcf->fields);
    if (fl == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(fl, sizeof(ngx_http_cost_cap_field_t));
    fl->name = value[1];
    fl->param = value[1];

    if (value[2].len == 3 && ngx_strncmp(value[2].data, "off", 3) == 0) {
        if (cc_field_parse((char *) value[1].data, value[1].len)
            == CC_FIELD_MODEL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_field\" \"model\" cannot be "
                               "\"off\": every request names a model");
            return NGX_CONF_ERROR;
        }

        fl->off = 1;
        return NGX_CONF_OK;
    }

    /* a value with variables stands in for the body: a URI capture, a map */
    if (ngx_http_script_variables_count(&value[2])) {
        fl->value = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (fl->value == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &value[2];
        ccv.complex_value = fl->value;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (!cc_json_path_valid((char *) value[2].data, value[2].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid path \"%V\" of \"cost_cap_field\" "
                           "\"%V\"", &value[2], &value[1]);
        return NGX_CONF_ERROR;
    }

    fl->path = value[2];
    fl->param = value[2];

    return NGX_CONF_OK;
}


static ngx_http_cost_cap_field_t *
ngx_http_cost_cap_field_find(ngx_array_t *fields, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_cost_cap_field_t  *fl;

    if (fields == NULL) {
        return NULL;
    }

    fl = fields->elts;

    for (i = 0; i < fields->nelts; i++) {
        if (fl[i].name.len == name->len
            && ngx_strncmp(fl[i].name.data, name->data, name->len) == 0)
        {
            return &fl[i];
        }
    }

    return NULL;
}


/*
 * The fields read at this level: per name, this level's cost_cap_field,
 * else the enclosing level's, else (built-ins) the default path.  The
 * top level has no enclosing one: prev is NULL for it.
 */

static char *
ngx_http_cost_cap_merge_fields(ngx_conf_t *cf,
    ngx_http_cost_cap_loc_conf_t *conf, ngx_http_cost_cap_loc_conf_t *prev)
{
    ngx_str_t                   name;
    ngx_uint_t                  i, n;
    ngx_array_t                *all, *up;
    const char                 *path;
    ngx_http_cost_cap_field_t  *fl, *f;

    if (conf->fields_merged) {
        return NGX_CONF_OK;
    }

    up = NULL;

    if (prev) {
        if (ngx_http_cost_cap_merge_fields(cf, prev, NULL) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

        up = prev->fields;
    }

    n = CC_FIELD_MAX + (conf->fields ? conf->fields->nelts : 0)
        + (up ? up->nelts : 0);

    all = ngx_array_create(cf->pool, n, sizeof(ngx_http_cost_cap_field_t));
    if (all == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < CC_FIELD_MAX; i++) {
        name.data = (u_char *) cc_field_name(i);
        name.len = ngx_strlen(name.data);

        fl = ngx_array_push(all);
        if (fl == NULL) {
            return NGX_CONF_ERROR;
        }

        f = ngx_http_cost_cap_field_find(conf->fields, &name);

        if (f == NULL) {
            f = ngx_http_cost_cap_field_find(up, &name);
        }

        if (f) {
            *fl = *f;
            continue;
        }

        ngx_memzero(fl, sizeof(ngx_http_cost_cap_field_t));
        path = cc_field_default_path(i);
        fl->name = name;
        fl->path.data = (u_char *) path;
        fl->path.len = ngx_strlen(path);
        fl->param = fl->path;
    }

    /* named fields: this level's, then those inherited */
    if (ngx_http_cost_cap_add_named(all, conf->fields) != NGX_OK
        || ngx_http_cost_cap_add_named(all, up) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (all->nelts > CC_JSON_PATHS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many \"cost_cap_field\" names: at most %d "
                           "with the built-in ones",
                           CC_JSON_PATHS_MAX);
        return NGX_CONF_ERROR;
    }

    conf->paths = ngx_palloc(cf->pool, all->nelts * sizeof(cc_path_t));
    if (conf->paths == NULL) {
        return NGX_CONF_ERROR;
    }

    fl = all->elts;

    for (i = 0; i < all->nelts; i++) {
        conf->paths[i].data = (char *) fl[i].path.data;
        conf->paths[i].len = fl[i].off ? 0 : fl[i].path.len;
    }

    conf->fields = all;
    conf->fields_merged = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_cost_cap_add_named(ngx_array_t *all, ngx_array_t *fields)
{
    ngx_uint_t                  i;
    ngx_http_cost_cap_field_t  *f, *fl;

    if (fields == NULL) {
        return NGX_OK;
    }

    f = fields->elts;

    for (i = 0; i < fields->nelts; i++) {
        if (cc_field_parse((char *) f[i].name.data, f[i].name.len) >= 0
            || ngx_http_cost_cap_field_find(all, &f[i].name))
        {
            continue;
        }

        fl = ngx_array_push(all);
        if (fl == NULL) {
            return NGX_ERROR;
        }

        *fl = f[i];
    }

    return NGX_OK;
}


/* the field of every when= of the models used here */

static char *
ngx_http_cost_cap_merge_when(ngx_conf_t *cf,
    ngx_http_cost_cap_loc_conf_t *conf)
{
    ngx_uint_t                  i, k, n;
    ngx_http_cost_cap_when_t   *w;
    ngx_http_cost_cap_field_t  *fl;
    ngx_http_cost_cap_model_t  *m;

    m = conf->models->elts;
    n = 0;

    for (i = 0; i < conf->models->nelts; i++) {
        n += m[i].when ? m[i].when->nelts : 0;
    }

    conf->when_fields = ngx_palloc(cf->pool, (n + 1) * sizeof(ngx_uint_t));
    if (conf->when_fields == NULL) {
        return NGX_CONF_ERROR;
    }

    n = 0;

    for (i = 0; i < conf->models->nelts; i++) {
        if (m[i].when == NULL) {
            continue;
        }

        w = m[i].when->elts;

        for (k = 0; k < m[i].when->nelts; k++) {
            fl = ngx_http_cost_cap_field_find(conf->fields, &w[k].field);

            if (fl == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "unknown field \"%V\" in \"when=\" of "
                                   "\"cost_cap_model\" \"%V\": declare it "
                                   "with \"cost_cap_field\"",
                                   &w[k].field, &m[i].pattern);
                return NGX_CONF_ERROR;
            }

            conf->when_fields[n++] = fl - (ngx_http_cost_cap_field_t *)
                                          conf->fields->elts;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_refund_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value;
    ngx_uint_t   i, *s;

    if (lcf->refund_status) {
        return "is duplicate";
    }

    lcf->refund_status = ngx_array_create(cf->pool, cf->args->nelts,
                                          sizeof(ngx_uint_t));
    if (lcf->refund_status == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        n = ngx_atoi(value[i].data, value[i].len);
        if (n < 100 || n > 599) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid status \"%V\" of "
                               "\"cost_cap_refund_status\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(lcf->refund_status);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = n;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_max_body(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (lcf->max_body != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[1]);
    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid size \"%V\" of \"cost_cap_max_body\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->max_body = size;

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_on_error(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->on_error != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "closed") == 0) {
        lcf->on_error = NGX_HTTP_COST_CAP_ON_ERROR_CLOSED;

    } else if (ngx_strcmp(value[1].data, "open") == 0) {
        lcf->on_error = NGX_HTTP_COST_CAP_ON_ERROR_OPEN;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" of \"cost_cap_on_error\", "
                           "use \"closed\" or \"open\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_cost_cap_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cost_cap_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_cost_cap_log_handler;

    if (ngx_http_cost_cap_metrics_zone(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_cost_cap_redis_init_scripts();
}


static ngx_int_t
ngx_http_cost_cap_init_process(ngx_cycle_t *cycle)
{
    ngx_http_cost_cap_main_conf_t  *cmcf;

    /* the cache manager and loader serve no requests */
    if (ngx_process == NGX_PROCESS_HELPER) {
        return NGX_OK;
    }

    /* inert where "cost_cap" is on in no location: no Redis connection */
    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_cost_cap_module);
    if (cmcf == NULL || !cmcf->enabled) {
        return NGX_OK;
    }

    return ngx_http_cost_cap_redis_init_process(cycle);
}


static void
ngx_http_cost_cap_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_cost_cap_redis_exit_process(cycle);
}


/*
 * ngx_cost_cap_module: the configuration of the Redis client:
 * cost_cap_redis (addresses, mode, credentials, timeouts) and
 * cost_cap_redis_ssl* (TLS, with the proxy_ssl_* meanings).
 */


#include "ngx_http_cost_cap_module.h"


static char *ngx_http_cost_cap_redis_addr(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf, ngx_str_t *value);
static char *ngx_http_cost_cap_redis_param(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf, ngx_str_t *value);
static ngx_uint_t ngx_http_cost_cap_secret_name(ngx_str_t *name);
static ngx_int_t ngx_http_cost_cap_redis_resolve(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_cost_cap_redis_ssl(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf);
#endif


#if (NGX_HTTP_SSL)

ngx_conf_bitmask_t  ngx_http_cost_cap_ssl_protocols[] = {
    { ngx_string("SSLv2"), NGX_SSL_SSLv2 },
    { ngx_string("SSLv3"), NGX_SSL_SSLv3 },
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};

#endif


/*
 * cost_cap_redis ADDR... [mode=single|cluster|sentinel] [master=NAME]
 *     [db=N] [password=P] [user=U] [sentinel_password=P] [sentinel_user=U]
 *     [timeout=T] [connect_timeout=T]
 */

char *
ngx_http_cost_cap_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_cost_cap_main_conf_t *cmcf = conf;

    char        *rv;
    ngx_str_t   *value;
    ngx_uint_t   i, unix_addr;

    if (cmcf->addrs) {
        return "is duplicate";
    }

    cmcf->addrs = ngx_array_create(cf->pool, 3,
                                   sizeof(ngx_http_cost_cap_addr_t));
    if (cmcf->addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    unix_addr = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        /* every parameter has a '=': an address has none */
        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')) {
            rv = ngx_http_cost_cap_redis_param(cf, cmcf, &value[i]);

        } else {
            unix_addr |= (ngx_strncmp(value[i].data, "unix:", 5) == 0);
            rv = ngx_http_cost_cap_redis_addr(cf, cmcf, &value[i]);
        }

        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (cmcf->addrs->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_redis\" requires an address");
        return NGX_CONF_ERROR;
    }

    if (cmcf->user.len && cmcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_redis\" user= requires password=");
        return NGX_CONF_ERROR;
    }

    if (cmcf->sentinel_user.len && cmcf->sentinel_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_redis\" sentinel_user= requires "
                           "sentinel_password=");
        return NGX_CONF_ERROR;
    }

    switch (cmcf->mode) {

    case NGX_HTTP_COST_CAP_MODE_SINGLE:
        if (cmcf->addrs->nelts > 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_redis\" takes one address in "
                               "mode=single; use mode=cluster or "
                               "mode=sentinel for more");
            return NGX_CONF_ERROR;
        }

        break;

    case NGX_HTTP_COST_CAP_MODE_CLUSTER:
        if (cmcf->db) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_redis\" mode=cluster requires "
                               "db=0: a Redis Cluster has one database");
            return NGX_CONF_ERROR;
        }

        break;

    default: /* NGX_HTTP_COST_CAP_MODE_SENTINEL */
        if (cmcf->master.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"cost_cap_redis\" mode=sentinel requires "
                               "master=NAME");
            return NGX_CONF_ERROR;
        }

        break;
    }

    if (cmcf->mode != NGX_HTTP_COST_CAP_MODE_SENTINEL && cmcf->master.len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_redis\" master= requires "
                           "mode=sentinel");
        return NGX_CONF_ERROR;
    }

    if (unix_addr && cmcf->mode != NGX_HTTP_COST_CAP_MODE_SINGLE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"cost_cap_redis\" takes a unix: address in "
                           "mode=single only");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * host:port, [v6]:port or unix:/path.  A name is resolved when the
 * configuration is complete: by the http block's resolver at every
 * connect if there is one, else here, once.
 */

static char *
ngx_http_cost_cap_redis_addr(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf, ngx_str_t *value)
{
    ngx_url_t                  u;
    ngx_http_cost_cap_addr_t  *addr;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"%V\" of \"cost_cap_redis\"",
                               u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    addr = ngx_array_push(cmcf->addrs);
    if (addr == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(addr, sizeof(ngx_http_cost_cap_addr_t));

    addr->name = *value;
    addr->host = u.host;
    addr->port = u.port;

    if (u.naddrs) {
        /* an address, not a name */
        addr->sockaddr = u.addrs[0].sockaddr;
        addr->socklen = u.addrs[0].socklen;
        addr->name = u.addrs[0].name;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_cost_cap_redis_param(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf, ngx_str_t *value)
{
    u_char      *eq;
    ngx_int_t    n;
    ngx_str_t    name, v, *str;
    ngx_msec_t  *t;

    eq = ngx_strlchr(value->data, value->data + value->len, '=');

    name.data = value->data;
    name.len = eq - value->data;
    v.data = eq + 1;
    v.len = value->data + value->len - v.data;

#define ngx_http_cost_cap_is(s)                                               \
    (name.len == sizeof(s) - 1 && ngx_strncmp(name.data, s, name.len) == 0)

    str = NULL;
    t = NULL;

    if (ngx_http_cost_cap_is("mode")) {
        if (v.len == 6 && ngx_strncmp(v.data, "single", 6) == 0) {
            cmcf->mode = NGX_HTTP_COST_CAP_MODE_SINGLE;

        } else if (v.len == 7 && ngx_strncmp(v.data, "cluster", 7) == 0) {
            cmcf->mode = NGX_HTTP_COST_CAP_MODE_CLUSTER;

        } else if (v.len == 8 && ngx_strncmp(v.data, "sentinel", 8) == 0) {
            cmcf->mode = NGX_HTTP_COST_CAP_MODE_SENTINEL;

        } else {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    if (ngx_http_cost_cap_is("db")) {
        n = ngx_atoi(v.data, v.len);
        if (n == NGX_ERROR) {
            goto invalid;
        }

        cmcf->db = n;
        return NGX_CONF_OK;
    }

    if (ngx_http_cost_cap_is("master")) {
        str = &cmcf->master;

    } else if (ngx_http_cost_cap_is("password")) {
        str = &cmcf->password;

    } else if (ngx_http_cost_cap_is("user")) {
        str = &cmcf->user;

    } else if (ngx_http_cost_cap_is("sentinel_password")) {
        str = &cmcf->sentinel_password;

    } else if (ngx_http_cost_cap_is("sentinel_user")) {
        str = &cmcf->sentinel_user;

    } else if (ngx_http_cost_cap_is("timeout")) {
        t = &cmcf->timeout;

    } else if (ngx_http_cost_cap_is("connect_timeout")) {
        t = &cmcf->connect_timeout;
    }

#undef ngx_http_cost_cap_is

    if (str) {
        if (v.len == 0) {
            goto invalid;
        }

        *str = v;
        return NGX_CONF_OK;
    }

    if (t) {
        *t = ngx_parse_time(&v, 0);
        if (*t == (ngx_msec_t) NGX_ERROR || *t == 0) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    /* a misspelt password ("Password=", "passwd=") keeps its value hidden */
    if (ngx_http_cost_cap_secret_name(&name)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown parameter \"%V=...\" of "
                           "\"cost_cap_redis\"", &name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown parameter \"%V\" of \"cost_cap_redis\"",
                       value);
    return NGX_CONF_ERROR;

invalid:

    if (ngx_http_cost_cap_secret_name(&name)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V=...\" of "
                           "\"cost_cap_redis\"", &name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"cost_cap_redis\"",
                       value);
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


/* the whole http block is read: names, and the TLS context */

ngx_int_t
ngx_http_cost_cap_redis_init_conf(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf)
{
    if (cmcf->addrs == NULL) {
        return NGX_OK;
    }

    if (ngx_http_cost_cap_redis_resolve(cf, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cmcf->ssl_enable <= 0) {
        return NGX_OK;
    }

#if (NGX_HTTP_SSL)
    return ngx_http_cost_cap_redis_ssl(cf, cmcf);
#else
    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "\"cost_cap_redis_ssl\" requires NGINX built with "
                  "the http_ssl_module");
    return NGX_ERROR;
#endif
}


static ngx_int_t
ngx_http_cost_cap_redis_resolve(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf)
{
    ngx_url_t                  u;
    ngx_uint_t                 i;
    ngx_http_cost_cap_addr_t  *addr;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* a resolver with name servers in the http block */
    if (clcf->resolver && clcf->resolver->connections.nelts) {
        cmcf->resolver = clcf->resolver;
    }

    addr = cmcf->addrs->elts;

    for (i = 0; i < cmcf->addrs->nelts; i++) {
        if (addr[i].sockaddr) {
            continue;
        }

        if (cmcf->resolver) {
            addr[i].resolve = 1;
            continue;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = addr[i].name;
        u.default_port = 6379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "host not found in \"%V\" of \"cost_cap_redis\"",
                          &addr[i].name);
            return NGX_ERROR;
        }

        addr[i].sockaddr = u.addrs[0].sockaddr;
        addr[i].socklen = u.addrs[0].socklen;
    }

    return NGX_OK;
}


#if (NGX_HTTP_SSL)

/* as ngx_http_proxy_set_ssl() does for proxy_ssl_* */

static ngx_int_t
ngx_http_cost_cap_redis_ssl(ngx_conf_t *cf,
    ngx_http_cost_cap_main_conf_t *cmcf)
{
    ngx_str_t            ciphers = ngx_string("DEFAULT");
    ngx_pool_cleanup_t  *cln;

    cmcf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (cmcf->ssl == NULL) {
        return NGX_ERROR;
    }

    cmcf->ssl->log = cf->log;

    if (ngx_ssl_create(cmcf->ssl, cmcf->ssl_protocols, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(cmcf->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = cmcf->ssl;

    if (ngx_ssl_ciphers(cf, cmcf->ssl, &ciphers, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cmcf->ssl_certificate.len) {
        if (cmcf->ssl_certificate_key.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "no \"cost_cap_redis_ssl_certificate_key\" is "
                          "defined for certificate \"%V\"",
                          &cmcf->ssl_certificate);
            return NGX_ERROR;
        }

        if (ngx_ssl_certificate(cf, cmcf->ssl, &cmcf->ssl_certificate,
                                &cmcf->ssl_certificate_key, NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (cmcf->ssl_verify > 0) {
        if (cmcf->ssl_trusted_certificate.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "no \"cost_cap_redis_ssl_trusted_certificate\" "
                          "for \"cost_cap_redis_ssl_verify\"");
            return NGX_ERROR;
        }

        if (ngx_ssl_trusted_certificate(cf, cmcf->ssl,
                                        &cmcf->ssl_trusted_certificate,
                                        cmcf->ssl_verify_depth)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}

#endif

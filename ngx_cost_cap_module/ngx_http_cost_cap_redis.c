
/*
 * ngx_cost_cap_module: one connection to a Redis server or a Sentinel.
 *
 * NGINX owns the socket (ngx_event_connect_peer, c->send, c->recv, its SSL
 * layer, resolver and timers); hiredis only parses replies.  Commands are
 * appended to one output buffer, written once per event loop iteration (a
 * posted write event), and replies come back in order, matched to the
 * queue of operations.  The handshake (AUTH, SELECT, ROLE, TIME, SCRIPT
 * LOAD) is pipelined first, under the connect timeout; a connection whose
 * replies stop coming is closed and made again, with backoff and jitter.
 */


#include "ngx_http_cost_cap_module.h"

#include <netinet/tcp.h>


#define NGX_HTTP_COST_CAP_BACKOFF_MIN   50
#define NGX_HTTP_COST_CAP_BACKOFF_MAX   500

/* replies that stop for this long (the timeout, several times over) */
#define ngx_http_cost_cap_stall_time()                                        \
    ngx_max(8 * ngx_http_cost_cap_main_conf->timeout, 2000)


static void ngx_http_cost_cap_conn_resolved(ngx_resolver_ctx_t *ctx);
static ngx_int_t ngx_http_cost_cap_conn_open(ngx_http_cost_cap_conn_t *c);
static ngx_int_t ngx_http_cost_cap_conn_requeue(ngx_http_cost_cap_conn_t *c,
    ngx_queue_t *early);
static void ngx_http_cost_cap_conn_keepalive(ngx_connection_t *pc);
static void ngx_http_cost_cap_conn_write_handler(ngx_event_t *wev);
static void ngx_http_cost_cap_conn_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_cost_cap_conn_test_connect(ngx_connection_t *pc);
static void ngx_http_cost_cap_conn_up(ngx_http_cost_cap_conn_t *c);
#if (NGX_HTTP_SSL)
static void ngx_http_cost_cap_conn_ssl(ngx_http_cost_cap_conn_t *c);
static void ngx_http_cost_cap_conn_ssl_handshaked(ngx_connection_t *pc);
static ngx_int_t ngx_http_cost_cap_conn_ssl_name(ngx_http_cost_cap_conn_t *c,
    ngx_connection_t *pc);
static ngx_int_t ngx_http_cost_cap_conn_ssl_verify(
    ngx_http_cost_cap_conn_t *c, ngx_connection_t *pc);
#endif
static ngx_int_t ngx_http_cost_cap_conn_process(ngx_http_cost_cap_conn_t *c);
static ngx_int_t ngx_http_cost_cap_conn_reply(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op, redisReply *reply);
static ngx_int_t ngx_http_cost_cap_conn_internal(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op, redisReply *reply);
static ngx_uint_t ngx_http_cost_cap_conn_routine(redisReply *reply);
static void ngx_http_cost_cap_conn_stall_handler(ngx_event_t *ev);
static void ngx_http_cost_cap_conn_reconnect_handler(ngx_event_t *ev);
static void ngx_http_cost_cap_conn_close(ngx_http_cost_cap_conn_t *c);


ngx_http_cost_cap_conn_t *
ngx_http_cost_cap_conn_create(ngx_http_cost_cap_addr_t *addr,
    ngx_http_cost_cap_conn_role_e role, void *data)
{
    ngx_http_cost_cap_conn_t  *c;

    c = ngx_calloc(sizeof(ngx_http_cost_cap_conn_t), ngx_cycle->log);
    if (c == NULL) {
        return NULL;
    }

    c->role = role;
    c->data = data;
    c->addr = *addr;

    if (addr->sockaddr) {
        ngx_http_cost_cap_conn_set_addr(c, addr->sockaddr, addr->socklen);
    }

    c->log = *ngx_cycle->log;
    c->log_level = ngx_cycle->log->log_level;

    ngx_queue_init(&c->ops);

    c->reconnect.handler = ngx_http_cost_cap_conn_reconnect_handler;
    c->reconnect.data = c;
    c->reconnect.log = &c->log;
    c->reconnect.cancelable = 1;

    c->stall.handler = ngx_http_cost_cap_conn_stall_handler;
    c->stall.data = c;
    c->stall.log = &c->log;

    return c;
}


/* the router took the operations: what is left is the connection's own */

void
ngx_http_cost_cap_conn_destroy(ngx_http_cost_cap_conn_t *c)
{
    ngx_queue_t  *q;

    ngx_http_cost_cap_conn_close(c);

    while (!ngx_queue_empty(&c->ops)) {
        q = ngx_queue_head(&c->ops);
        ngx_queue_remove(q);
        ngx_http_cost_cap_op_free(ngx_queue_data(q, ngx_http_cost_cap_op_t,
                                                 queue));
    }

    if (c->reconnect.timer_set) {
        ngx_del_timer(&c->reconnect);
    }

    if (c->owned) {
        ngx_free(c->addr.name.data);
    }

    ngx_free(c->out);
    ngx_free(c);
}


/* a new address (a Sentinel's answer, a MOVED); used at the next connect */

void
ngx_http_cost_cap_conn_set_addr(ngx_http_cost_cap_conn_t *c,
    struct sockaddr *sa, socklen_t len)
{
    len = ngx_min(len, (socklen_t) sizeof(ngx_sockaddr_t));

    ngx_memcpy(&c->sockaddr, sa, len);
    c->addr.sockaddr = &c->sockaddr.sockaddr;
    c->addr.socklen = len;
}


/* usable now: operations appended are sent as soon as it is up */

ngx_uint_t
ngx_http_cost_cap_conn_usable(ngx_http_cost_cap_conn_t *c)
{
    return c->state != NGX_HTTP_COST_CAP_CONN_DOWN
           || (!c->reconnect.timer_set
               && ngx_http_cost_cap_conn_connect(c) == NGX_OK);
}


ngx_int_t
ngx_http_cost_cap_conn_connect(ngx_http_cost_cap_conn_t *c)
{
    ngx_resolver_ctx_t             *ctx, temp;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    if (c->state != NGX_HTTP_COST_CAP_CONN_DOWN) {
        return NGX_OK;
    }

    cmcf = ngx_http_cost_cap_main_conf;

    if (c->tried) {
        ngx_http_cost_cap_count(reconnects, 1);
    }

    c->tried = 1;
    c->connect_start = ngx_current_msec;

    /* the whole of connect, resolve, TLS and handshake: connect_timeout */
    ngx_add_timer(&c->stall, cmcf->connect_timeout);

    if (!c->addr.resolve) {
        return ngx_http_cost_cap_conn_open(c);
    }

    /* a name, and a resolver: resolved at every connect (failover by DNS) */
    temp.name = c->addr.host;

    ctx = ngx_resolve_start(cmcf->resolver, &temp);
    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_http_cost_cap_conn_fail(c, "could not resolve");
        return NGX_ERROR;
    }

    ctx->name = c->addr.host;
    ctx->handler = ngx_http_cost_cap_conn_resolved;
    ctx->data = c;
    ctx->timeout = cmcf->resolver_timeout;
    ctx->cancelable = 1;

    c->resolving = ctx;
    c->state = NGX_HTTP_COST_CAP_CONN_RESOLVING;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        c->resolving = NULL;
        ngx_http_cost_cap_conn_fail(c, "could not resolve");
        return NGX_ERROR;
    }

    /* the handler may have run already, and failed */
    return c->state == NGX_HTTP_COST_CAP_CONN_DOWN ? NGX_ERROR : NGX_OK;
}


static void
ngx_http_cost_cap_conn_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_http_cost_cap_conn_t  *c;

    c = ctx->data;
    c->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                      "cost_cap: redis \"%V\" could not be resolved (%i: %s)",
                      &c->addr.host, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);
        ngx_http_cost_cap_conn_fail(c, "could not resolve");
        return;
    }

    ngx_http_cost_cap_conn_set_addr(c, ctx->addrs[0].sockaddr,
                                    ctx->addrs[0].socklen);
    ngx_inet_set_port(&c->sockaddr.sockaddr, c->addr.port);

    ngx_resolve_name_done(ctx);

    (void) ngx_http_cost_cap_conn_open(c);
}


static ngx_int_t
ngx_http_cost_cap_conn_open(ngx_http_cost_cap_conn_t *c)
{
    ngx_int_t          rc;
    ngx_queue_t        early;
    ngx_connection_t  *pc;

    ngx_memzero(&c->peer, sizeof(ngx_peer_connection_t));

    c->peer.sockaddr = c->addr.sockaddr;
    c->peer.socklen = c->addr.socklen;
    c->peer.name = &c->addr.name;
    c->peer.get = ngx_event_get_peer;
    c->peer.log = &c->log;
    c->peer.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&c->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        c->peer.connection = NULL;
        ngx_http_cost_cap_conn_fail(c, "could not connect");
        return NGX_ERROR;
    }

    pc = c->peer.connection;
    pc->data = c;
    pc->read->handler = ngx_http_cost_cap_conn_read_handler;
    pc->write->handler = ngx_http_cost_cap_conn_write_handler;

    /* what the SSL layer allocates for the connection lives here */
    pc->pool = ngx_create_pool(128, &c->log);
    if (pc->pool == NULL) {
        ngx_http_cost_cap_conn_fail(c, "out of memory");
        return NGX_ERROR;
    }

    if (c->addr.sockaddr->sa_family != AF_UNIX) {
        ngx_http_cost_cap_conn_keepalive(pc);
    }

    c->reader = redisReaderCreateWithFunctions(&cc_reply_functions);
    if (c->reader == NULL) {
        ngx_http_cost_cap_conn_fail(c, "out of memory");
        return NGX_ERROR;
    }

    /*
     * what was appended while the name was being resolved was never
     * written: it follows the handshake, bytes and replies in one order
     */
    ngx_queue_init(&early);

    if (!ngx_queue_empty(&c->ops)) {
        early = c->ops;
        early.next->prev = &early;
        early.prev->next = &early;
        ngx_queue_init(&c->ops);
        c->nops = 0;
    }

    c->out_pos = 0;
    c->out_len = 0;
    c->appended = 0;
    c->written = 0;
    c->state = NGX_HTTP_COST_CAP_CONN_CONNECTING;

    /* queued first, sent once connected: what requests send follows */
    if (ngx_http_cost_cap_ops_handshake(c) != NGX_OK
        || ngx_http_cost_cap_conn_requeue(c, &early) != NGX_OK)
    {
        ngx_queue_add(&c->ops, &early);
        ngx_http_cost_cap_conn_fail(c, "out of memory");
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {
        ngx_http_cost_cap_conn_write_handler(pc->write);
    }

    return c->state == NGX_HTTP_COST_CAP_CONN_DOWN ? NGX_ERROR : NGX_OK;
}


/* appended again, in order; what could not be is left in early */

static ngx_int_t
ngx_http_cost_cap_conn_requeue(ngx_http_cost_cap_conn_t *c,
    ngx_queue_t *early)
{
    ngx_queue_t             *q;
    ngx_http_cost_cap_op_t  *op;

    while (!ngx_queue_empty(early)) {
        q = ngx_queue_head(early);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);

        if (ngx_http_cost_cap_conn_append(c, op) != NGX_OK) {
            ngx_queue_insert_head(early, q);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a peer that vanishes without a RST is found by TCP as well */

static void
ngx_http_cost_cap_conn_keepalive(ngx_connection_t *pc)
{
    int  on, idle, intvl, cnt;

    on = 1;
    idle = 30;
    intvl = 10;
    cnt = 3;

    (void) setsockopt(pc->fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(int));
#if (NGX_HAVE_KEEPALIVE_TUNABLE)
    (void) setsockopt(pc->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(int));
    (void) setsockopt(pc->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
                      sizeof(int));
    (void) setsockopt(pc->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(int));
#endif
}


ngx_int_t
ngx_http_cost_cap_conn_format(ngx_http_cost_cap_op_t *op, int argc,
    const char **argv, const size_t *argvlen)
{
    size_t  len;

    if (op->cmd != op->cmd_buf) {
        ngx_free(op->cmd);
        op->cmd = op->cmd_buf;
    }

    len = cc_resp_command(NULL, argc, argv, argvlen);

    if (len > sizeof(op->cmd_buf)) {
        op->cmd = ngx_alloc(len, ngx_cycle->log);
        if (op->cmd == NULL) {
            op->cmd = op->cmd_buf;
            return NGX_ERROR;
        }
    }

    op->cmd_len = cc_resp_command((char *) op->cmd, argc, argv, argvlen);

    return NGX_OK;
}


/* the connection's own command (handshake, ASKING, SUBSCRIBE, ...) */

ngx_int_t
ngx_http_cost_cap_conn_command(ngx_http_cost_cap_conn_t *c, const char *what,
    ngx_http_cost_cap_op_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    ngx_http_cost_cap_op_t  *op;

    op = ngx_http_cost_cap_op_alloc();
    if (op == NULL) {
        return NGX_ERROR;
    }

    op->internal = 1;
    op->what = what;
    op->handler = handler;

    if (ngx_http_cost_cap_conn_format(op, argc, argv, argvlen) != NGX_OK
        || ngx_http_cost_cap_conn_append(c, op) != NGX_OK)
    {
        ngx_http_cost_cap_op_free(op);
        return NGX_ERROR;
    }

    /* before the connection is up, or behind the handshake: part of it */
    if (c->state != NGX_HTTP_COST_CAP_CONN_UP || c->handshake) {
        op->hs = 1;
        c->handshake++;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cost_cap_conn_append(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op)
{
    u_char            *p;
    size_t             size;
    ngx_connection_t  *pc;

    if (c->nops >= ngx_http_cost_cap_main_conf->max_inflight
        && !op->internal)
    {
        return NGX_ERROR;
    }

    if (op->build && op->build(op, c) != NGX_OK) {
        return NGX_ERROR;
    }

    if (c->out_len + op->cmd_len > c->out_size) {
        size = ngx_max(c->out_size * 2, c->out_len + op->cmd_len);
        size = ngx_max(size, 16384);

        p = ngx_alloc(size, &c->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (c->out) {
            ngx_memcpy(p, c->out + c->out_pos, c->out_len - c->out_pos);
            ngx_free(c->out);
        }

        c->out_len -= c->out_pos;
        c->out_pos = 0;
        c->out = p;
        c->out_size = size;
    }

    ngx_memcpy(c->out + c->out_len, op->cmd, op->cmd_len);
    c->out_len += op->cmd_len;
    c->appended += op->cmd_len;

    op->end = c->appended;
    op->start = ngx_http_cost_cap_now_us();
    op->conn = c;
    op->where = NGX_HTTP_COST_CAP_OP_PIPELINE;

    ngx_queue_insert_tail(&c->ops, &op->queue);
    c->nops++;

    if (!c->stall.timer_set) {
        ngx_add_timer(&c->stall, ngx_http_cost_cap_stall_time());
    }

    /* one write per event loop iteration carries every queued command */
    pc = c->peer.connection;

    if (c->state == NGX_HTTP_COST_CAP_CONN_UP && !pc->write->posted) {
        ngx_post_event(pc->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_cost_cap_conn_write_handler(ngx_event_t *wev)
{
    ssize_t                    n;
    ngx_connection_t          *pc;
    ngx_http_cost_cap_conn_t  *c;

    pc = wev->data;
    c = pc->data;

    if (c->state == NGX_HTTP_COST_CAP_CONN_CONNECTING) {
        if (ngx_http_cost_cap_conn_test_connect(pc) != NGX_OK) {
            ngx_http_cost_cap_conn_fail(c, "connect failed");
            return;
        }

#if (NGX_HTTP_SSL)
        if (ngx_http_cost_cap_main_conf->ssl) {
            ngx_http_cost_cap_conn_ssl(c);
            return;
        }
#endif

        c->state = NGX_HTTP_COST_CAP_CONN_UP;
    }

    if (c->state != NGX_HTTP_COST_CAP_CONN_UP) {
        return;
    }

    while (c->out_pos < c->out_len) {
        n = pc->send(pc, c->out + c->out_pos, c->out_len - c->out_pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_cost_cap_conn_fail(c, "write event failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_cost_cap_conn_fail(c, "send failed");
            return;
        }

        c->out_pos += n;
        c->written += n;
    }

    c->out_pos = 0;
    c->out_len = 0;
}


static void
ngx_http_cost_cap_conn_read_handler(ngx_event_t *rev)
{
    u_char                     buf[16384];
    ssize_t                    n;
    ngx_connection_t          *pc;
    ngx_http_cost_cap_conn_t  *c;

    pc = rev->data;
    c = pc->data;

    /* worker_shutdown_timeout closes every connection this way: no waiting */
    if (pc->close) {
        c->forced = 1;
        ngx_http_cost_cap_conn_fail(c, "worker shutting down");
        return;
    }

    if (c->state == NGX_HTTP_COST_CAP_CONN_CONNECTING) {
        /* an error, or Redis talking first: let the write side decide */
        ngx_http_cost_cap_conn_write_handler(pc->write);

        if (c->state != NGX_HTTP_COST_CAP_CONN_UP) {
            return;
        }
    }

    for ( ;; ) {
        n = pc->recv(pc, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_cost_cap_conn_fail(c, "connection closed");
            return;
        }

        if (redisReaderFeed(c->reader, (char *) buf, n) != REDIS_OK
            || ngx_http_cost_cap_conn_process(c) != NGX_OK)
        {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_cost_cap_conn_fail(c, "read event failed");
    }
}


static ngx_int_t
ngx_http_cost_cap_conn_test_connect(ngx_connection_t *pc)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(pc->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(pc, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* connected (and TLS done): the handshake and what follows it go out */

static void
ngx_http_cost_cap_conn_up(ngx_http_cost_cap_conn_t *c)
{
    ngx_connection_t  *pc;

    pc = c->peer.connection;

    pc->read->handler = ngx_http_cost_cap_conn_read_handler;
    pc->write->handler = ngx_http_cost_cap_conn_write_handler;

    c->state = NGX_HTTP_COST_CAP_CONN_UP;

    ngx_http_cost_cap_conn_write_handler(pc->write);

    if (c->state == NGX_HTTP_COST_CAP_CONN_UP && pc->read->ready) {
        ngx_http_cost_cap_conn_read_handler(pc->read);
    }
}


#if (NGX_HTTP_SSL)

static void
ngx_http_cost_cap_conn_ssl(ngx_http_cost_cap_conn_t *c)
{
    ngx_int_t          rc;
    ngx_connection_t  *pc;

    pc = c->peer.connection;

    if (ngx_ssl_create_connection(ngx_http_cost_cap_main_conf->ssl, pc,
                                  NGX_SSL_CLIENT)
        != NGX_OK
        || ngx_http_cost_cap_conn_ssl_name(c, pc) != NGX_OK)
    {
        ngx_http_cost_cap_conn_fail(c, "SSL connection failed");
        return;
    }

    c->state = NGX_HTTP_COST_CAP_CONN_SSL;

    rc = ngx_ssl_handshake(pc);

    if (rc == NGX_AGAIN) {
        pc->ssl->handler = ngx_http_cost_cap_conn_ssl_handshaked;
        return;
    }

    ngx_http_cost_cap_conn_ssl_handshaked(pc);
}


static void
ngx_http_cost_cap_conn_ssl_handshaked(ngx_connection_t *pc)
{
    ngx_http_cost_cap_conn_t  *c;

    c = pc->data;

    if (!pc->ssl->handshaked) {
        ngx_http_cost_cap_conn_fail(c, "SSL handshake failed");
        return;
    }

    if (ngx_http_cost_cap_conn_ssl_verify(c, pc) != NGX_OK) {
        ngx_http_cost_cap_conn_fail(c, "SSL certificate not trusted");
        return;
    }

    ngx_http_cost_cap_conn_up(c);
}


/* SNI: cost_cap_redis_ssl_name, else the host unless it is an address */

static ngx_int_t
ngx_http_cost_cap_conn_ssl_name(ngx_http_cost_cap_conn_t *c,
    ngx_connection_t *pc)
{
    u_char                          name[256];
    ngx_str_t                      *host;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;
    host = cmcf->ssl_name.len ? &cmcf->ssl_name : &c->addr.host;

    if (host->len == 0 || host->len >= sizeof(name)
        || host->data[0] == '['
        || ngx_inet_addr(host->data, host->len) != INADDR_NONE)
    {
        return NGX_OK;
    }

    (void) ngx_cpystrn(name, host->data, host->len + 1);

    if (SSL_set_tlsext_host_name(pc->ssl->connection, (char *) name) == 0) {
        ngx_ssl_error(NGX_LOG_ERR, &c->log, 0,
                      "SSL_set_tlsext_host_name(\"%s\") failed", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_conn_ssl_verify(ngx_http_cost_cap_conn_t *c,
    ngx_connection_t *pc)
{
    long                            rc;
    u_char                          ip[NGX_INET_ADDRSTRLEN + 1];
    X509                           *cert;
    ngx_str_t                      *name;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;

    if (!cmcf->ssl_verify) {
        return NGX_OK;
    }

    rc = SSL_get_verify_result(pc->ssl->connection);

    if (rc != X509_V_OK) {
        ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                      "cost_cap: redis %V: SSL certificate verify error: "
                      "(%l:%s)", &c->addr.name, rc,
                      X509_verify_cert_error_string(rc));
        return NGX_ERROR;
    }

    name = cmcf->ssl_name.len ? &cmcf->ssl_name : &c->addr.host;

    /* an address is checked against the certificate's IP names */
    if (ngx_inet_addr(name->data, name->len) != INADDR_NONE) {
        (void) ngx_cpystrn(ip, name->data,
                           ngx_min(name->len + 1, sizeof(ip)));

        cert = SSL_get_peer_certificate(pc->ssl->connection);
        rc = cert && X509_check_ip_asc(cert, (char *) ip, 0) == 1;
        X509_free(cert);

        if (rc) {
            return NGX_OK;
        }

    } else if (ngx_ssl_check_host(pc, name) == NGX_OK) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                  "cost_cap: redis %V: SSL certificate does not match \"%V\"",
                  &c->addr.name, name);

    return NGX_ERROR;
}

#endif


static ngx_int_t
ngx_http_cost_cap_conn_process(ngx_http_cost_cap_conn_t *c)
{
    void                    *p;
    ngx_queue_t             *q;
    ngx_http_cost_cap_op_t  *op;

    for ( ;; ) {
        if (redisReaderGetReply(c->reader, &p) != REDIS_OK) {
            ngx_http_cost_cap_conn_fail(c, "protocol error");
            return NGX_ERROR;
        }

        if (p == NULL) {
            return NGX_OK;
        }

        if (c->role == NGX_HTTP_COST_CAP_CONN_SUBSCRIBER
            && ngx_queue_empty(&c->ops))
        {
            ngx_http_cost_cap_router_push(c, p);
            cc_reply_free(p);

            if (c->state == NGX_HTTP_COST_CAP_CONN_DOWN) {
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_queue_empty(&c->ops)) {
            cc_reply_free(p);
            ngx_http_cost_cap_conn_fail(c, "unexpected reply");
            return NGX_ERROR;
        }

        q = ngx_queue_head(&c->ops);
        ngx_queue_remove(q);
        c->nops--;

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        op->where = NGX_HTTP_COST_CAP_OP_NOWHERE;

        if (ngx_http_cost_cap_conn_reply(c, op, p) != NGX_OK) {
            return NGX_ERROR;
        }

        if (c->nops == 0 && c->stall.timer_set) {
            ngx_del_timer(&c->stall);
        }
    }
}


/* one reply, for the operation at the head of the queue */

static ngx_int_t
ngx_http_cost_cap_conn_reply(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    ngx_uint_t  error, level;

    error = (reply->type == REDIS_REPLY_ERROR);

    if (op->internal) {
        return ngx_http_cost_cap_conn_internal(c, op, reply);
    }

    if (!error) {
        c->erred = 0;
        c->slow = 0;
        c->backoff = 0;
        c->log.log_level = c->log_level;

        ngx_http_cost_cap_metrics_latency(ngx_http_cost_cap_now_us()
                                          - op->start);
        ngx_http_cost_cap_op_finish(op, reply, NGX_HTTP_COST_CAP_OP_REPLY);
        cc_reply_free(reply);

        return c->state == NGX_HTTP_COST_CAP_CONN_DOWN ? NGX_ERROR : NGX_OK;
    }

    if (op->script && !op->noscript
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the scripts were flushed: load this one and send op again */
        cc_reply_free(reply);
        op->noscript = 1;

        if (ngx_http_cost_cap_ops_load_script(c, op->script) != NGX_OK
            || ngx_http_cost_cap_conn_append(c, op) != NGX_OK)
        {
            ngx_http_cost_cap_router_lost(op);
            ngx_http_cost_cap_conn_fail(c, "out of memory");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    /*
     * Once until a command succeeds, not once per request; a Cluster's
     * redirections and TRYAGAIN during a resharding are routine: info.
     */
    level = ngx_http_cost_cap_conn_routine(reply) ? NGX_LOG_INFO
                                                  : NGX_LOG_ERR;

    if (!c->erred) {
        c->erred = 1;
        ngx_log_error(level, &c->log, 0, "cost_cap: redis %V answered: %*s",
                      &c->addr.name, (size_t) reply->len, reply->str);
    }

    if (level == NGX_LOG_ERR) {
        ngx_http_cost_cap_count(redis_errors, 1);
    }

    ngx_http_cost_cap_router_error(c, op, reply);
    cc_reply_free(reply);

    return c->state == NGX_HTTP_COST_CAP_CONN_DOWN ? NGX_ERROR : NGX_OK;
}


static ngx_uint_t
ngx_http_cost_cap_conn_routine(redisReply *reply)
{
    return (reply->len >= 6 && ngx_strncmp(reply->str, "MOVED ", 6) == 0)
           || (reply->len >= 4 && ngx_strncmp(reply->str, "ASK ", 4) == 0)
           || (reply->len >= 8 && ngx_strncmp(reply->str, "TRYAGAIN", 8) == 0);
}


/*
 * A reply to the connection's own command: a handshake that fails closes
 * the connection; the router's commands (ROLE, CLUSTER SLOTS, SENTINEL)
 * have handlers.
 */

static ngx_int_t
ngx_http_cost_cap_conn_internal(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    ngx_uint_t  hs;

    hs = op->hs;

    if (hs) {
        c->handshake--;
    }

    if (op->handler) {
        op->handler(op, reply, NGX_HTTP_COST_CAP_OP_REPLY);

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                      "cost_cap: redis %V: %s failed: %*s", &c->addr.name,
                      op->what, (size_t) reply->len, reply->str);
        cc_reply_free(reply);
        ngx_http_cost_cap_op_free(op);
        ngx_http_cost_cap_conn_fail(c, "handshake failed");
        return NGX_ERROR;
    }

    cc_reply_free(reply);
    ngx_http_cost_cap_op_free(op);

    if (c->state == NGX_HTTP_COST_CAP_CONN_DOWN) {
        return NGX_ERROR;
    }

    /* the handshake's last reply: what waited for this connection goes */
    if (hs && c->handshake == 0) {
        ngx_http_cost_cap_router_ready(c);
    }

    return c->state == NGX_HTTP_COST_CAP_CONN_DOWN ? NGX_ERROR : NGX_OK;
}


/*
 * The connect timer while connecting (until the handshake's last reply),
 * then the age of the oldest operation: a peer that stopped answering
 * without closing (a host gone, NAT state lost) is not waited on.
 */

static void
ngx_http_cost_cap_conn_stall_handler(ngx_event_t *ev)
{
    ngx_msec_t                 stall, age;
    ngx_queue_t               *q;
    ngx_http_cost_cap_op_t    *op;
    ngx_http_cost_cap_conn_t  *c;

    c = ev->data;

    if (c->state != NGX_HTTP_COST_CAP_CONN_UP || c->handshake) {
        ngx_http_cost_cap_conn_fail(c, c->state
                                       == NGX_HTTP_COST_CAP_CONN_UP
                                       ? "handshake timed out"
                                       : "connect timed out");
        return;
    }

    if (ngx_queue_empty(&c->ops)) {
        return;
    }

    stall = ngx_http_cost_cap_stall_time();

    q = ngx_queue_head(&c->ops);
    op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
    age = (ngx_msec_t) ((ngx_http_cost_cap_now_us() - op->start) / 1000);

    if (age >= stall) {
        ngx_http_cost_cap_count(stalls, 1);
        ngx_http_cost_cap_conn_fail(c, "not answering");
        return;
    }

    ngx_add_timer(&c->stall, stall - age);
}


/* closes the connection, hands every operation back, schedules a retry */

void
ngx_http_cost_cap_conn_fail(ngx_http_cost_cap_conn_t *c, const char *reason)
{
    ngx_msec_t               delay;
    ngx_queue_t              ops, *q;
    ngx_http_cost_cap_op_t  *op;

    ngx_log_error(NGX_LOG_ERR, &c->log, 0,
                  "cost_cap: redis %V: %s, retrying", &c->addr.name, reason);

    ngx_http_cost_cap_count(redis_errors, 1);

    /* once per reconnect cycle: quiet until a reply succeeds */
    c->log.log_level = ngx_min(c->log_level, NGX_LOG_CRIT);

    ngx_http_cost_cap_conn_close(c);

    ngx_queue_init(&ops);

    if (!ngx_queue_empty(&c->ops)) {
        ops = c->ops;
        ops.next->prev = &ops;
        ops.prev->next = &ops;
        ngx_queue_init(&c->ops);
    }

    c->nops = 0;
    c->handshake = 0;

    c->backoff = c->backoff
                 ? ngx_min(c->backoff * 2, NGX_HTTP_COST_CAP_BACKOFF_MAX)
                 : NGX_HTTP_COST_CAP_BACKOFF_MIN;

    /* jitter: the workers of every gateway do not come back at once */
    delay = c->backoff / 2 + (ngx_msec_t) ngx_random() % (c->backoff / 2 + 1);

    /* a worker that shuts down still delivers what it owes */
    if (!ngx_terminate && !c->forced
        && (!(ngx_exiting || ngx_quit) || !ngx_queue_empty(&ops)
            || ngx_http_cost_cap_router_active())
        && !c->reconnect.timer_set)
    {
        ngx_add_timer(&c->reconnect, delay);
    }

    if (c->forced) {
        ngx_http_cost_cap_router_forced();
    }

    /* handed back in order, once the connection is down */
    while (!ngx_queue_empty(&ops)) {
        q = ngx_queue_head(&ops);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        op->where = NGX_HTTP_COST_CAP_OP_NOWHERE;
        op->conn = NULL;

        if (op->internal) {
            if (op->handler) {
                op->handler(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
            }

            ngx_http_cost_cap_op_free(op);
            continue;
        }

        /* written whole: it may have run, and its reply is lost */
        if (op->end <= c->written) {
            op->unknown = 1;
        }

        ngx_http_cost_cap_router_lost(op);
    }

    ngx_http_cost_cap_router_down(c);
}


static void
ngx_http_cost_cap_conn_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_cost_cap_conn_t  *c;

    c = ev->data;

    if (c->state == NGX_HTTP_COST_CAP_CONN_DOWN) {
        (void) ngx_http_cost_cap_conn_connect(c);
    }
}


static void
ngx_http_cost_cap_conn_close(ngx_http_cost_cap_conn_t *c)
{
    ngx_connection_t  *pc;

    if (c->resolving) {
        ngx_resolve_name_done(c->resolving);
        c->resolving = NULL;
    }

    pc = c->peer.connection;

    if (pc) {
#if (NGX_HTTP_SSL)
        if (pc->ssl) {
            pc->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(pc);
        }
#endif
        if (pc->pool) {
            ngx_destroy_pool(pc->pool);
            pc->pool = NULL;
        }

        ngx_close_connection(pc);
        c->peer.connection = NULL;
    }

    if (c->reader) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }

    if (c->stall.timer_set) {
        ngx_del_timer(&c->stall);
    }

    c->out_pos = 0;
    c->out_len = 0;
    c->state = NGX_HTTP_COST_CAP_CONN_DOWN;
}


uint64_t
ngx_http_cost_cap_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

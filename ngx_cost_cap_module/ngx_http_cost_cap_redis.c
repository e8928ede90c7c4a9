
/*
 * ngx_cost_cap_module: the per-worker Redis client.
 *
 * NGINX owns the socket (ngx_event_connect_peer, c->send, c->recv, NGINX
 * timers); hiredis only formats commands and parses replies.  One
 * pipelined connection per worker: commands are appended to one output
 * buffer, written once per event loop iteration (a posted write event),
 * and replies come back in order, matched to the queue of operations.
 */


#include "ngx_http_cost_cap_module.h"
#include "cc_sha1.h"


#define NGX_HTTP_COST_CAP_BACKOFF_MIN  50
#define NGX_HTTP_COST_CAP_BACKOFF_MAX  500
#define NGX_HTTP_COST_CAP_MAX_RETRY    4096
#define NGX_HTTP_COST_CAP_FREE_OPS     256


typedef enum {
    NGX_HTTP_COST_CAP_REDIS_DOWN = 0,
    NGX_HTTP_COST_CAP_REDIS_CONNECTING,
    NGX_HTTP_COST_CAP_REDIS_UP
} ngx_http_cost_cap_redis_state_e;


typedef struct {
    ngx_http_cost_cap_redis_state_e  state;
    ngx_peer_connection_t            peer;
    redisReader                     *reader;

    u_char                          *out;
    size_t                           out_pos;
    size_t                           out_len;
    size_t                           out_size;

    ngx_queue_t                      ops;       /* awaiting replies, FIFO */
    ngx_uint_t                       nops;
    uint64_t                         appended;  /* bytes, this connection */
    uint64_t                         written;

    ngx_queue_t                      retry;     /* waiting for Redis */
    ngx_uint_t                       nretry;

    ngx_event_t                      reconnect;
    ngx_msec_t                       backoff;

    /* errors are logged once per reconnect cycle: log is quieted after */
    ngx_log_t                        log;
    ngx_uint_t                       log_level;
    unsigned                         slow:1;
    unsigned                         erred:1;
    unsigned                         connected:1;   /* tried before */
    unsigned                         forced:1;      /* shutdown timeout */

    ngx_http_cost_cap_main_conf_t   *conf;
} ngx_http_cost_cap_redis_t;


static ngx_int_t ngx_http_cost_cap_redis_connect(
    ngx_http_cost_cap_redis_t *rds);
static void ngx_http_cost_cap_redis_handshake(ngx_http_cost_cap_redis_t *rds);
static ngx_int_t ngx_http_cost_cap_redis_internal(
    ngx_http_cost_cap_redis_t *rds, const char *what, int argc,
    const char **argv, const size_t *argvlen);
static ngx_int_t ngx_http_cost_cap_redis_format(ngx_http_cost_cap_op_t *op,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_cost_cap_redis_load_scripts(
    ngx_http_cost_cap_redis_t *rds);
static ngx_int_t ngx_http_cost_cap_redis_append(
    ngx_http_cost_cap_redis_t *rds, ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_redis_write_handler(ngx_event_t *wev);
static void ngx_http_cost_cap_redis_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_cost_cap_redis_test_connect(ngx_connection_t *c);
static ngx_int_t ngx_http_cost_cap_redis_process(
    ngx_http_cost_cap_redis_t *rds);
static ngx_int_t ngx_http_cost_cap_redis_error(
    ngx_http_cost_cap_redis_t *rds, ngx_http_cost_cap_op_t *op,
    redisReply *reply);
static void ngx_http_cost_cap_redis_ok(ngx_http_cost_cap_redis_t *rds);
static void ngx_http_cost_cap_redis_fail(ngx_http_cost_cap_redis_t *rds,
    const char *reason);
static void ngx_http_cost_cap_redis_close(ngx_http_cost_cap_redis_t *rds);
static void ngx_http_cost_cap_redis_reconnect(ngx_event_t *ev);
static void ngx_http_cost_cap_redis_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_cost_cap_redis_retry(ngx_http_cost_cap_redis_t *rds,
    ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_redis_resend(ngx_http_cost_cap_redis_t *rds);
static void ngx_http_cost_cap_redis_lost(ngx_http_cost_cap_op_t *op);
static uint64_t ngx_http_cost_cap_now_us(void);


ngx_str_t  ngx_http_cost_cap_sha_reserve;
ngx_str_t  ngx_http_cost_cap_sha_settle;

static u_char     ngx_http_cost_cap_sha[2][40];
static ngx_str_t  ngx_http_cost_cap_scripts[2];

static ngx_http_cost_cap_redis_t  *ngx_http_cost_cap_redis;

/* operations are reused: no allocation per request once warm */
static ngx_queue_t                 ngx_http_cost_cap_free_ops;
static ngx_uint_t                  ngx_http_cost_cap_nfree;


ngx_int_t
ngx_http_cost_cap_redis_init_scripts(void)
{
    ngx_http_cost_cap_scripts[0].data = (u_char *) cc_script_reserve;
    ngx_http_cost_cap_scripts[0].len = ngx_strlen(cc_script_reserve);
    ngx_http_cost_cap_scripts[1].data = (u_char *) cc_script_settle;
    ngx_http_cost_cap_scripts[1].len = ngx_strlen(cc_script_settle);

    cc_sha1_hex(cc_script_reserve, ngx_http_cost_cap_scripts[0].len,
                (char *) ngx_http_cost_cap_sha[0]);
    cc_sha1_hex(cc_script_settle, ngx_http_cost_cap_scripts[1].len,
                (char *) ngx_http_cost_cap_sha[1]);

    ngx_http_cost_cap_sha_reserve.data = ngx_http_cost_cap_sha[0];
    ngx_http_cost_cap_sha_reserve.len = 40;
    ngx_http_cost_cap_sha_settle.data = ngx_http_cost_cap_sha[1];
    ngx_http_cost_cap_sha_settle.len = 40;

    return NGX_OK;
}


ngx_int_t
ngx_http_cost_cap_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_http_cost_cap_redis_t      *rds;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_cost_cap_module);
    if (cmcf == NULL || cmcf->addr == NULL) {
        return NGX_OK;
    }

    rds = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cost_cap_redis_t));
    if (rds == NULL) {
        return NGX_ERROR;
    }

    rds->conf = cmcf;
    rds->log = *cycle->log;
    rds->log_level = cycle->log->log_level;

    ngx_queue_init(&rds->ops);
    ngx_queue_init(&rds->retry);
    ngx_queue_init(&ngx_http_cost_cap_free_ops);

    rds->reconnect.handler = ngx_http_cost_cap_redis_reconnect;
    rds->reconnect.data = rds;
    rds->reconnect.log = &rds->log;
    rds->reconnect.cancelable = 1;

    ngx_http_cost_cap_redis = rds;

    /* connect early, so that the first request finds the handshake done */
    (void) ngx_http_cost_cap_redis_connect(rds);

    return NGX_OK;
}


void
ngx_http_cost_cap_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                *q;
    ngx_http_cost_cap_op_t     *op;
    ngx_http_cost_cap_redis_t  *rds;

    rds = ngx_http_cost_cap_redis;
    if (rds == NULL) {
        return;
    }

    ngx_http_cost_cap_redis_close(rds);

    while (!ngx_queue_empty(&rds->ops)) {
        q = ngx_queue_head(&rds->ops);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        ngx_http_cost_cap_redis_free_op(op);
    }

    /* what still waits for Redis is dropped, and its handler logs it */
    while (!ngx_queue_empty(&rds->retry)) {
        q = ngx_queue_head(&rds->retry);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        op->unsent = 1;
        ngx_http_cost_cap_redis_lost(op);
    }

    if (rds->reconnect.timer_set) {
        ngx_del_timer(&rds->reconnect);
    }

    while (!ngx_queue_empty(&ngx_http_cost_cap_free_ops)) {
        q = ngx_queue_head(&ngx_http_cost_cap_free_ops);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_cost_cap_op_t, queue));
    }

    ngx_free(rds->out);
    ngx_http_cost_cap_redis = NULL;
}


ngx_http_cost_cap_op_t *
ngx_http_cost_cap_redis_op(void)
{
    ngx_queue_t             *q;
    ngx_http_cost_cap_op_t  *op;

    if (ngx_http_cost_cap_nfree) {
        q = ngx_queue_head(&ngx_http_cost_cap_free_ops);
        ngx_queue_remove(q);
        ngx_http_cost_cap_nfree--;
        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);

    } else {
        op = ngx_alloc(sizeof(ngx_http_cost_cap_op_t), ngx_cycle->log);
        if (op == NULL) {
            return NULL;
        }
    }

    ngx_memzero(op, offsetof(ngx_http_cost_cap_op_t, win));

    op->cmd = op->cmd_buf;

    op->timer.handler = ngx_http_cost_cap_redis_timeout;
    op->timer.data = op;
    op->timer.log = ngx_cycle->log;

    return op;
}


void
ngx_http_cost_cap_redis_free_op(ngx_http_cost_cap_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->cmd != op->cmd_buf) {
        ngx_free(op->cmd);
    }

    if (ngx_http_cost_cap_redis == NULL
        || ngx_http_cost_cap_nfree >= NGX_HTTP_COST_CAP_FREE_OPS)
    {
        ngx_free(op);
        return;
    }

    ngx_queue_insert_head(&ngx_http_cost_cap_free_ops, &op->queue);
    ngx_http_cost_cap_nfree++;
}


/*
 * Queues op's command.  On NGX_ERROR (no Redis, Redis down, too many in
 * flight) op is freed and its handler is never called; on NGX_OK the
 * handler is called once for the reply, the timeout or the connection's
 * loss (reply NULL), and once more for a reply that arrives after the
 * timeout.
 */

/* EVALSHA <sha> 1 <the op's key prefix>: how every script call begins */

int
ngx_http_cost_cap_redis_script(ngx_http_cost_cap_op_t *op, ngx_str_t *sha,
    const char **argv, size_t *argvlen)
{
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = (char *) sha->data;
    argvlen[1] = sha->len;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) op->prefix;
    argvlen[3] = op->prefix_len;

    return 4;
}


static ngx_int_t
ngx_http_cost_cap_redis_format(ngx_http_cost_cap_op_t *op, int argc,
    const char **argv, const size_t *argvlen)
{
    size_t  len;

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


ngx_int_t
ngx_http_cost_cap_redis_send(ngx_http_cost_cap_op_t *op, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_cost_cap_redis_t  *rds;

    rds = ngx_http_cost_cap_redis;

    if (rds == NULL
        || rds->nops >= rds->conf->max_inflight
        || ngx_http_cost_cap_redis_format(op, argc, argv, argvlen) != NGX_OK)
    {
        goto failed;
    }

    if (rds->state == NGX_HTTP_COST_CAP_REDIS_DOWN
        && (rds->reconnect.timer_set
            || ngx_http_cost_cap_redis_connect(rds) != NGX_OK))
    {
        if (op->deadline && ngx_http_cost_cap_redis_retry(rds, op) == NGX_OK)
        {
            return NGX_OK;
        }

        goto failed;
    }

    if (ngx_http_cost_cap_redis_append(rds, op) != NGX_OK) {
        goto failed;
    }

    op->start = ngx_http_cost_cap_now_us();
    ngx_add_timer(&op->timer, rds->conf->timeout);

    return NGX_OK;

failed:

    ngx_http_cost_cap_redis_free_op(op);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_cost_cap_redis_connect(ngx_http_cost_cap_redis_t *rds)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    ngx_memzero(&rds->peer, sizeof(ngx_peer_connection_t));

    rds->peer.sockaddr = rds->conf->addr->sockaddr;
    rds->peer.socklen = rds->conf->addr->socklen;
    rds->peer.name = &rds->conf->addr->name;
    rds->peer.get = ngx_event_get_peer;
    rds->peer.log = &rds->log;
    rds->peer.log_error = NGX_ERROR_ERR;

    if (rds->connected) {
        ngx_http_cost_cap_count(reconnects, 1);
    }

    rds->connected = 1;

    rc = ngx_event_connect_peer(&rds->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        rds->peer.connection = NULL;
        ngx_http_cost_cap_redis_fail(rds, "could not connect");
        return NGX_ERROR;
    }

    c = rds->peer.connection;
    c->data = rds;
    c->read->handler = ngx_http_cost_cap_redis_read_handler;
    c->write->handler = ngx_http_cost_cap_redis_write_handler;

    rds->reader = redisReaderCreateWithFunctions(&cc_reply_functions);
    if (rds->reader == NULL) {
        ngx_http_cost_cap_redis_fail(rds, "out of memory");
        return NGX_ERROR;
    }

    rds->out_pos = 0;
    rds->out_len = 0;
    rds->appended = 0;
    rds->written = 0;

    if (rc == NGX_AGAIN) {
        rds->state = NGX_HTTP_COST_CAP_REDIS_CONNECTING;
        ngx_add_timer(c->write, rds->conf->connect_timeout);

    } else {
        rds->state = NGX_HTTP_COST_CAP_REDIS_UP;
    }

    ngx_http_cost_cap_redis_handshake(rds);

    if (rds->state == NGX_HTTP_COST_CAP_REDIS_DOWN) {
        return NGX_ERROR;
    }

    ngx_http_cost_cap_redis_resend(rds);

    return NGX_OK;
}


/*
 * AUTH, SELECT and the scripts go first on every new connection; what
 * requests send is pipelined right behind them.
 */

static void
ngx_http_cost_cap_redis_handshake(ngx_http_cost_cap_redis_t *rds)
{
    int                             argc;
    u_char                          db[NGX_INT_T_LEN];
    size_t                          argvlen[3];
    const char                     *argv[3];
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = rds->conf;

    if (cmcf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (cmcf->user.len) {
            argv[argc] = (char *) cmcf->user.data;
            argvlen[argc++] = cmcf->user.len;
        }

        argv[argc] = (char *) cmcf->password.data;
        argvlen[argc++] = cmcf->password.len;

        if (ngx_http_cost_cap_redis_internal(rds, "AUTH", argc, argv, argvlen)
            != NGX_OK)
        {
            return;
        }
    }

    if (cmcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", cmcf->db) - db;

        if (ngx_http_cost_cap_redis_internal(rds, "SELECT", 2, argv, argvlen)
            != NGX_OK)
        {
            return;
        }
    }

    ngx_http_cost_cap_redis_load_scripts(rds);
}


static void
ngx_http_cost_cap_redis_load_scripts(ngx_http_cost_cap_redis_t *rds)
{
    size_t       argvlen[3];
    ngx_uint_t   i;
    const char  *argv[3];

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;

    for (i = 0; i < 2; i++) {
        argv[2] = (char *) ngx_http_cost_cap_scripts[i].data;
        argvlen[2] = ngx_http_cost_cap_scripts[i].len;

        if (ngx_http_cost_cap_redis_internal(rds, "SCRIPT LOAD", 3, argv,
                                             argvlen)
            != NGX_OK)
        {
            return;
        }
    }
}


/* an operation of the client itself: no request, no timer, no handler */

static ngx_int_t
ngx_http_cost_cap_redis_internal(ngx_http_cost_cap_redis_t *rds,
    const char *what, int argc, const char **argv, const size_t *argvlen)
{
    ngx_http_cost_cap_op_t  *op;

    op = ngx_http_cost_cap_redis_op();
    if (op == NULL) {
        goto failed;
    }

    op->data = (void *) what;

    if (ngx_http_cost_cap_redis_format(op, argc, argv, argvlen) != NGX_OK) {
        ngx_http_cost_cap_redis_free_op(op);
        goto failed;
    }

    if (ngx_http_cost_cap_redis_append(rds, op) != NGX_OK) {
        ngx_http_cost_cap_redis_free_op(op);
        goto failed;
    }

    return NGX_OK;

failed:

    ngx_http_cost_cap_redis_fail(rds, "out of memory");

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_cost_cap_redis_append(ngx_http_cost_cap_redis_t *rds,
    ngx_http_cost_cap_op_t *op)
{
    u_char            *p;
    size_t             size;
    ngx_connection_t  *c;

    if (rds->out_len + op->cmd_len > rds->out_size) {
        size = ngx_max(rds->out_size * 2, rds->out_len + op->cmd_len);
        size = ngx_max(size, 16384);

        p = ngx_alloc(size, &rds->log);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (rds->out) {
            ngx_memcpy(p, rds->out + rds->out_pos,
                       rds->out_len - rds->out_pos);
            ngx_free(rds->out);
        }

        rds->out_len -= rds->out_pos;
        rds->out_pos = 0;
        rds->out = p;
        rds->out_size = size;
    }

    ngx_memcpy(rds->out + rds->out_len, op->cmd, op->cmd_len);
    rds->out_len += op->cmd_len;
    rds->appended += op->cmd_len;
    op->end = rds->appended;

    ngx_queue_insert_tail(&rds->ops, &op->queue);
    rds->nops++;

    /* one write per event loop iteration carries every queued command */
    c = rds->peer.connection;

    if (rds->state == NGX_HTTP_COST_CAP_REDIS_UP && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_http_cost_cap_redis_write_handler(ngx_event_t *wev)
{
    ssize_t                     n;
    ngx_connection_t           *c;
    ngx_http_cost_cap_redis_t  *rds;

    c = wev->data;
    rds = c->data;

    if (wev->timedout) {
        ngx_http_cost_cap_redis_fail(rds, "connect timed out");
        return;
    }

    if (rds->state == NGX_HTTP_COST_CAP_REDIS_CONNECTING) {
        if (ngx_http_cost_cap_redis_test_connect(c) != NGX_OK) {
            ngx_http_cost_cap_redis_fail(rds, "connect failed");
            return;
        }

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        rds->state = NGX_HTTP_COST_CAP_REDIS_UP;
    }

    while (rds->out_pos < rds->out_len) {
        n = c->send(c, rds->out + rds->out_pos, rds->out_len - rds->out_pos);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_cost_cap_redis_fail(rds, "write event failed");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_cost_cap_redis_fail(rds, "send failed");
            return;
        }

        rds->out_pos += n;
        rds->written += n;
    }

    rds->out_pos = 0;
    rds->out_len = 0;
}


static void
ngx_http_cost_cap_redis_read_handler(ngx_event_t *rev)
{
    u_char                      buf[16384];
    ssize_t                     n;
    ngx_connection_t           *c;
    ngx_http_cost_cap_redis_t  *rds;

    c = rev->data;
    rds = c->data;

    /* worker_shutdown_timeout closes every connection this way: no waiting */
    if (c->close) {
        rds->forced = 1;
        ngx_http_cost_cap_redis_fail(rds, "worker shutting down");
        return;
    }

    if (rds->state == NGX_HTTP_COST_CAP_REDIS_CONNECTING) {
        /* an error, or Redis talking first: let the write side decide */
        ngx_http_cost_cap_redis_write_handler(c->write);

        if (rds->state != NGX_HTTP_COST_CAP_REDIS_UP) {
            return;
        }
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_cost_cap_redis_fail(rds, "connection closed");
            return;
        }

        if (redisReaderFeed(rds->reader, (char *) buf, n) != REDIS_OK
            || ngx_http_cost_cap_redis_process(rds) != NGX_OK)
        {
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_cost_cap_redis_fail(rds, "read event failed");
    }
}


static ngx_int_t
ngx_http_cost_cap_redis_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_redis_process(ngx_http_cost_cap_redis_t *rds)
{
    void                    *p;
    ngx_int_t                rc;
    ngx_queue_t             *q;
    redisReply              *reply;
    ngx_http_cost_cap_op_t  *op;

    for ( ;; ) {
        if (redisReaderGetReply(rds->reader, &p) != REDIS_OK) {
            ngx_http_cost_cap_redis_fail(rds, "protocol error");
            return NGX_ERROR;
        }

        if (p == NULL) {
            return NGX_OK;
        }

        reply = p;

        if (ngx_queue_empty(&rds->ops)) {
            cc_reply_free(reply);
            ngx_http_cost_cap_redis_fail(rds, "unexpected reply");
            return NGX_ERROR;
        }

        q = ngx_queue_head(&rds->ops);
        ngx_queue_remove(q);
        rds->nops--;

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);

        if (reply->type != REDIS_REPLY_ERROR) {
            rds->erred = 0;

        } else {
            rc = ngx_http_cost_cap_redis_error(rds, op, reply);

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (rc == NGX_AGAIN) {
                continue;
            }
        }

        ngx_http_cost_cap_redis_ok(rds);

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        if (op->handler) {
            ngx_http_cost_cap_metrics_latency(ngx_http_cost_cap_now_us()
                                              - op->start);
            op->handler(op, reply);
        }

        cc_reply_free(reply);
        ngx_http_cost_cap_redis_free_op(op);
    }
}


/*
 * An error reply: a failed handshake closes the connection (NGX_ERROR);
 * NOSCRIPT loads the scripts and sends the command again (NGX_AGAIN); any
 * other goes to the operation's handler (NGX_OK).
 */

static ngx_int_t
ngx_http_cost_cap_redis_error(ngx_http_cost_cap_redis_t *rds,
    ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    if (op->handler == NULL) {
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "cost_cap: redis %s failed: %*s",
                      (char *) op->data, (size_t) reply->len, reply->str);
        cc_reply_free(reply);
        ngx_http_cost_cap_redis_free_op(op);
        ngx_http_cost_cap_redis_fail(rds, "handshake failed");
        return NGX_ERROR;
    }

    if (!op->retried
        && reply->len >= 8
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* the scripts were flushed: load them and send op again */
        cc_reply_free(reply);
        op->retried = 1;
        ngx_http_cost_cap_redis_load_scripts(rds);

        if (rds->state == NGX_HTTP_COST_CAP_REDIS_DOWN) {
            ngx_http_cost_cap_redis_lost(op);
            return NGX_ERROR;
        }

        if (ngx_http_cost_cap_redis_append(rds, op) != NGX_OK) {
            ngx_http_cost_cap_redis_lost(op);
            ngx_http_cost_cap_redis_fail(rds, "out of memory");
            return NGX_ERROR;
        }

        return NGX_AGAIN;
    }

    ngx_http_cost_cap_count(redis_errors, 1);

    /* once until a command succeeds, not once per request */
    if (!rds->erred) {
        rds->erred = 1;
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "cost_cap: redis %V answered: %*s",
                      &rds->conf->addr->name, (size_t) reply->len, reply->str);
    }

    return NGX_OK;
}


static void
ngx_http_cost_cap_redis_ok(ngx_http_cost_cap_redis_t *rds)
{
    rds->backoff = 0;
    rds->slow = 0;
    rds->log.log_level = rds->log_level;
}


/* closes the connection, fails every operation, and schedules a retry */

static void
ngx_http_cost_cap_redis_fail(ngx_http_cost_cap_redis_t *rds,
    const char *reason)
{
    ngx_queue_t             *q;
    ngx_http_cost_cap_op_t  *op;

    ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                  "cost_cap: redis %V: %s, retrying",
                  &rds->conf->addr->name, reason);

    ngx_http_cost_cap_count(redis_errors, 1);

    /* once per reconnect cycle: quiet until a reply succeeds */
    rds->log.log_level = ngx_min(rds->log_level, NGX_LOG_CRIT);

    ngx_http_cost_cap_redis_close(rds);

    while (!ngx_queue_empty(&rds->ops)) {
        q = ngx_queue_head(&rds->ops);
        ngx_queue_remove(q);
        rds->nops--;

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);

        /* a command cut short never ran: it may be sent again */
        if (op->end > rds->written) {
            op->unsent = 1;

            if (op->deadline
                && ngx_http_cost_cap_redis_retry(rds, op) == NGX_OK)
            {
                continue;
            }
        }

        ngx_http_cost_cap_redis_lost(op);
    }

    rds->backoff = rds->backoff
                   ? ngx_min(rds->backoff * 2, NGX_HTTP_COST_CAP_BACKOFF_MAX)
                   : NGX_HTTP_COST_CAP_BACKOFF_MIN;

    /* a worker that shuts down still delivers its queued settlements */
    if (!ngx_terminate
        && (!(ngx_exiting || ngx_quit) || rds->nretry))
    {
        ngx_add_timer(&rds->reconnect, rds->backoff);
    }
}


static void
ngx_http_cost_cap_redis_close(ngx_http_cost_cap_redis_t *rds)
{
    if (rds->peer.connection) {
        ngx_close_connection(rds->peer.connection);
        rds->peer.connection = NULL;
    }

    if (rds->reader) {
        redisReaderFree(rds->reader);
        rds->reader = NULL;
    }

    rds->out_pos = 0;
    rds->out_len = 0;
    rds->state = NGX_HTTP_COST_CAP_REDIS_DOWN;
}


static void
ngx_http_cost_cap_redis_reconnect(ngx_event_t *ev)
{
    ngx_http_cost_cap_redis_t  *rds;

    rds = ev->data;

    if (rds->state == NGX_HTTP_COST_CAP_REDIS_DOWN) {
        (void) ngx_http_cost_cap_redis_connect(rds);
    }
}


static void
ngx_http_cost_cap_redis_timeout(ngx_event_t *ev)
{
    ngx_http_cost_cap_op_t     *op;
    ngx_http_cost_cap_redis_t  *rds;

    op = ev->data;
    rds = ngx_http_cost_cap_redis;

    if (op->retrying) {
        /* the deadline passed while Redis was away */
        ngx_queue_remove(&op->queue);
        rds->nretry--;
        op->unsent = 1;
        ngx_http_cost_cap_redis_lost(op);
        return;
    }

    ngx_http_cost_cap_count(redis_errors, 1);

    if (rds && !rds->slow) {
        rds->slow = 1;
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "cost_cap: redis %V timed out",
                      &rds->conf->addr->name);
    }

    /* the operation stays queued: its reply, if any, is still to come */
    op->handler(op, NULL);
}


/* keeps an operation that never reached Redis for the next connection */

static ngx_int_t
ngx_http_cost_cap_redis_retry(ngx_http_cost_cap_redis_t *rds,
    ngx_http_cost_cap_op_t *op)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (op->deadline - ngx_current_msec);

    if (rds->nretry >= NGX_HTTP_COST_CAP_MAX_RETRY || left <= 0
        || rds->forced)
    {
        return NGX_DECLINED;
    }

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    /* a worker that shuts down waits for it, until the deadline at most */
    ngx_add_timer(&op->timer, left);

    if (!op->requeued) {
        op->requeued = 1;
        ngx_http_cost_cap_count(settle_retries, 1);
    }

    op->retrying = 1;
    ngx_queue_insert_tail(&rds->retry, &op->queue);
    rds->nretry++;

    return NGX_OK;
}


static void
ngx_http_cost_cap_redis_resend(ngx_http_cost_cap_redis_t *rds)
{
    ngx_queue_t             *q;
    ngx_http_cost_cap_op_t  *op;

    while (!ngx_queue_empty(&rds->retry)) {
        q = ngx_queue_head(&rds->retry);
        ngx_queue_remove(q);
        rds->nretry--;

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        op->retrying = 0;

        if (op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        if (ngx_http_cost_cap_redis_append(rds, op) != NGX_OK) {
            op->unsent = 1;
            ngx_http_cost_cap_redis_lost(op);
            continue;
        }

        op->start = ngx_http_cost_cap_now_us();
        ngx_add_timer(&op->timer, rds->conf->timeout);
    }
}


/* an operation that gets no reply: its handler learns it, then it goes */

static void
ngx_http_cost_cap_redis_lost(ngx_http_cost_cap_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->handler) {
        op->handler(op, NULL);
    }

    ngx_http_cost_cap_redis_free_op(op);
}


static uint64_t
ngx_http_cost_cap_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/*
 * ngx_cost_cap_module: the life of an operation (allocation from a free
 * list, ids, the end of its wait, its end), the scripts, and what every
 * new connection says first.
 */


/* the bodies of the scripts, generated from scripts/ by the config script */
#define NGX_HTTP_COST_CAP_LUA_BODIES  1

#include "ngx_http_cost_cap_module.h"
#include "cc_sha1.h"

#include <sys/random.h>


#define NGX_HTTP_COST_CAP_FREE_OPS  256


static ngx_int_t ngx_http_cost_cap_ops_auth(ngx_http_cost_cap_conn_t *c);
static void ngx_http_cost_cap_ops_time(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
static void ngx_http_cost_cap_ops_policy(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);


ngx_http_cost_cap_script_t  ngx_http_cost_cap_scripts[NGX_HTTP_COST_CAP_LUA_N];

/* operations are reused: no allocation per request once warm */
static ngx_queue_t  ngx_http_cost_cap_free_ops;
static ngx_uint_t   ngx_http_cost_cap_nfree;
static ngx_uint_t   ngx_http_cost_cap_ops_ready;

/* the last offset of a Redis clock learned, for what has no connection */
static ngx_msec_int_t  ngx_http_cost_cap_clock;

/* ids: this worker's random prefix and a counter */
static uint64_t     ngx_http_cost_cap_id_prefix;
static uint64_t     ngx_http_cost_cap_id_seq;


/* at configuration time: every script and its SHA1 */

ngx_int_t
ngx_http_cost_cap_ops_init_scripts(ngx_conf_t *cf)
{
    ngx_uint_t                   i;
    ngx_http_cost_cap_script_t  *s;

    for (i = 0; i < NGX_HTTP_COST_CAP_LUA_N; i++) {
        s = &ngx_http_cost_cap_scripts[i];

        s->body.data = (u_char *) ngx_http_cost_cap_lua[i];
        s->body.len = ngx_strlen(ngx_http_cost_cap_lua[i]);

        cc_sha1_hex((char *) s->body.data, s->body.len, (char *) s->hex);

        s->sha.data = s->hex;
        s->sha.len = 40;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_cost_cap_ops_init_process(ngx_cycle_t *cycle)
{
    ngx_queue_init(&ngx_http_cost_cap_free_ops);
    ngx_http_cost_cap_nfree = 0;
    ngx_http_cost_cap_ops_ready = 1;

    /* ids must not repeat across workers, gateways and restarts */
    if (getrandom(&ngx_http_cost_cap_id_prefix, sizeof(uint64_t),
                  GRND_NONBLOCK)
        != sizeof(uint64_t))
    {
        ngx_http_cost_cap_id_prefix = ((uint64_t) ngx_random() << 32)
                                      ^ ((uint64_t) ngx_pid << 16)
                                      ^ (uint64_t) ngx_time();
    }

    return ngx_http_cost_cap_router_init(cycle);
}


void
ngx_http_cost_cap_ops_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t  *q;

    if (!ngx_http_cost_cap_ops_ready) {
        return;
    }

    ngx_http_cost_cap_router_exit();
    ngx_http_cost_cap_lease_exit();
    ngx_http_cost_cap_reject_exit();

    ngx_http_cost_cap_ops_ready = 0;

    while (!ngx_queue_empty(&ngx_http_cost_cap_free_ops)) {
        q = ngx_queue_head(&ngx_http_cost_cap_free_ops);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_cost_cap_op_t, queue));
    }

    ngx_http_cost_cap_nfree = 0;
}


ngx_http_cost_cap_op_t *
ngx_http_cost_cap_op_alloc(void)
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

    ngx_memzero(op, offsetof(ngx_http_cost_cap_op_t, cmd_buf));

    op->cmd = op->cmd_buf;

    op->timer.handler = ngx_http_cost_cap_op_timeout;
    op->timer.data = op;
    op->timer.log = ngx_cycle->log;

    return op;
}


void
ngx_http_cost_cap_op_free(ngx_http_cost_cap_op_t *op)
{
    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    if (op->cmd != op->cmd_buf) {
        ngx_free(op->cmd);
    }

    if (!ngx_http_cost_cap_ops_ready
        || ngx_http_cost_cap_nfree >= NGX_HTTP_COST_CAP_FREE_OPS)
    {
        ngx_free(op);
        return;
    }

    ngx_queue_insert_head(&ngx_http_cost_cap_free_ops, &op->queue);
    ngx_http_cost_cap_nfree++;
}


/* 24 hex digits: 16 of the worker's random prefix, 8 of a counter */

void
ngx_http_cost_cap_op_id(u_char *id)
{
    (void) ngx_sprintf(id, "%016uxL%08uxD",
                       ngx_http_cost_cap_id_prefix,
                       (uint32_t) ngx_http_cost_cap_id_seq++);

    if ((uint32_t) ngx_http_cost_cap_id_seq == 0) {
        ngx_http_cost_cap_id_prefix++;
    }
}


/*
 * The handler learns op's fate; op is freed unless the handler queued it
 * again (a resend with the right periods, a retry).
 */

void
ngx_http_cost_cap_op_finish(ngx_http_cost_cap_op_t *op, redisReply *reply,
    ngx_uint_t event)
{
    if (op->handler) {
        op->handler(op, reply, event);
    }

    if (op->where == NGX_HTTP_COST_CAP_OP_NOWHERE) {
        ngx_http_cost_cap_op_free(op);
    }
}


/*
 * A request's timeout while its command is in a pipeline: the request is
 * answered, the reply may still come.  The deadline of an operation that
 * waits for a connection: it ends there.
 */

void
ngx_http_cost_cap_op_timeout(ngx_event_t *ev)
{
    ngx_http_cost_cap_op_t  *op;

    op = ev->data;

    if (op->where == NGX_HTTP_COST_CAP_OP_PIPELINE) {
        ngx_http_cost_cap_count(redis_errors, 1);

        if (op->conn && !op->conn->slow) {
            op->conn->slow = 1;
            ngx_log_error(NGX_LOG_ERR, &op->conn->log, 0,
                          "cost_cap: redis %V timed out",
                          &op->conn->addr.name);
        }

        op->request = 0;
        op->handler(op, NULL, NGX_HTTP_COST_CAP_OP_TIMEOUT);
        return;
    }

    if (op->where != NGX_HTTP_COST_CAP_OP_NOWHERE) {
        ngx_http_cost_cap_router_unqueue(op);
    }

    ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
}


/*
 * What a new connection sends first, pipelined: AUTH, and to a node
 * SELECT, ROLE (behind Sentinels), TIME (its clock names the periods),
 * INFO memory (the eviction policy, once), SCRIPT LOAD; to a subscriber
 * SUBSCRIBE +switch-master and the promotion of a replica.
 */

ngx_int_t
ngx_http_cost_cap_ops_handshake(ngx_http_cost_cap_conn_t *c)
{
    u_char                          db[NGX_INT_T_LEN];
    ngx_uint_t                      i;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;

    if (ngx_http_cost_cap_ops_auth(c) != NGX_OK) {
        return NGX_ERROR;
    }

    if (c->role == NGX_HTTP_COST_CAP_CONN_SUBSCRIBER) {
        return ngx_http_cost_cap_conn_command(c, "SUBSCRIBE", NULL, 3,
                   (const char *[]) { "SUBSCRIBE", "+switch-master",
                                      "+failover-state-send-slaveof-noone" },
                   (size_t []) { 9, 14, 34 });
    }

    if (c->role == NGX_HTTP_COST_CAP_CONN_SENTINEL) {
        return NGX_OK;
    }

    if (cmcf->db
        && ngx_http_cost_cap_conn_command(c, "SELECT", NULL, 2,
               (const char *[]) { "SELECT", (char *) db },
               (size_t []) { 6, ngx_sprintf(db, "%i", cmcf->db) - db })
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (cmcf->mode == NGX_HTTP_COST_CAP_MODE_SENTINEL
        && ngx_http_cost_cap_conn_command(c, "ROLE",
                                          ngx_http_cost_cap_router_role, 1,
                                          (const char *[]) { "ROLE" },
                                          (size_t []) { 4 })
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_cost_cap_conn_command(c, "TIME", ngx_http_cost_cap_ops_time,
                                       1, (const char *[]) { "TIME" },
                                       (size_t []) { 4 })
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_cost_cap_metrics && !ngx_http_cost_cap_metrics->policy
        && ngx_http_cost_cap_conn_command(c, "INFO",
                                          ngx_http_cost_cap_ops_policy, 2,
                                          (const char *[]) { "INFO",
                                                             "memory" },
                                          (size_t []) { 4, 6 })
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_COST_CAP_LUA_N; i++) {
        if (ngx_http_cost_cap_ops_load_script(c,
                                              &ngx_http_cost_cap_scripts[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_cost_cap_ops_auth(ngx_http_cost_cap_conn_t *c)
{
    int                             argc;
    size_t                          argvlen[3];
    ngx_str_t                      *user, *pass;
    const char                     *argv[3];
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;

    if (c->role == NGX_HTTP_COST_CAP_CONN_NODE) {
        user = &cmcf->user;
        pass = &cmcf->password;

    } else {
        user = &cmcf->sentinel_user;
        pass = &cmcf->sentinel_password;
    }

    if (pass->len == 0) {
        return NGX_OK;
    }

    argc = 0;
    argv[argc] = "AUTH";
    argvlen[argc++] = 4;

    if (user->len) {
        argv[argc] = (char *) user->data;
        argvlen[argc++] = user->len;
    }

    argv[argc] = (char *) pass->data;
    argvlen[argc++] = pass->len;

    return ngx_http_cost_cap_conn_command(c, "AUTH", NULL, argc, argv,
                                          argvlen);
}


ngx_int_t
ngx_http_cost_cap_ops_load_script(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_script_t *script)
{
    return ngx_http_cost_cap_conn_command(c, "SCRIPT LOAD", NULL, 3,
               (const char *[]) { "SCRIPT", "LOAD",
                                  (char *) script->body.data },
               (size_t []) { 6, 4, script->body.len });
}


/* the server's clock against ours, from a reply sent at op->start */

void
ngx_http_cost_cap_ops_clock(ngx_http_cost_cap_conn_t *c, int64_t sec,
    int64_t usec, uint64_t start)
{
    int64_t       rtt, local;
    ngx_time_t   *tp;

    if (c == NULL || sec <= 0) {
        return;
    }

    tp = ngx_timeofday();

    rtt = (int64_t) (ngx_http_cost_cap_now_us() - start) / 1000;
    local = (int64_t) tp->sec * 1000 + tp->msec - rtt / 2;

    c->clock = (ngx_msec_int_t) (sec * 1000 + usec / 1000 - local);
    ngx_http_cost_cap_clock = c->clock;
}


/* now on the clock of c's server (or of the last one heard), in ms */

int64_t
ngx_http_cost_cap_redis_time(ngx_http_cost_cap_conn_t *c)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec
           + (c ? c->clock : ngx_http_cost_cap_clock);
}


static void
ngx_http_cost_cap_ops_time(ngx_http_cost_cap_op_t *op, redisReply *reply,
    ngx_uint_t event)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    ngx_http_cost_cap_ops_clock(op->conn,
                                ngx_atoi((u_char *) reply->element[0]->str,
                                         reply->element[0]->len),
                                ngx_atoi((u_char *) reply->element[1]->str,
                                         reply->element[1]->len),
                                op->start);
}


/* an evicted counter is lost spend: said once, for the whole NGINX */

static void
ngx_http_cost_cap_ops_policy(ngx_http_cost_cap_op_t *op, redisReply *reply,
    ngx_uint_t event)
{
    u_char  *p, *last, *eol;

    static u_char  key[] = "maxmemory_policy:";

    if (reply == NULL || reply->type != REDIS_REPLY_STRING
        || ngx_http_cost_cap_metrics == NULL || op->conn == NULL)
    {
        return;
    }

    p = (u_char *) reply->str;
    last = p + reply->len;

    p = ngx_strlcasestrn(p, last, key, sizeof(key) - 2);
    if (p == NULL) {
        return;
    }

    p += sizeof(key) - 1;

    for (eol = p; eol < last && *eol != CR && *eol != LF; eol++) {
        /* void */
    }

    if (!ngx_atomic_cmp_set(&ngx_http_cost_cap_metrics->policy, 0, 1)) {
        return;
    }

    if (eol - p == 10 && ngx_strncmp(p, "noeviction", 10) == 0) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "cost_cap: redis %V runs with maxmemory-policy \"%*s\": "
                  "an evicted counter is lost spend, use \"noeviction\"",
                  &op->conn->addr.name, eol - p, p);
}

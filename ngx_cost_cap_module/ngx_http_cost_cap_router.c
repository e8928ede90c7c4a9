
/*
 * ngx_cost_cap_module: which connection an operation goes to.
 *
 *   single    the one node of cost_cap_redis;
 *   sentinel  the master the Sentinels name (SENTINEL
 *             get-master-addr-by-name, checked with ROLE), found again on
 *             -READONLY, a connection loss or a +switch-master message;
 *             the worker stays subscribed on every Sentinel, since only
 *             the one that leads a failover says when it promotes a
 *             replica, and from then on the old master's writes are lost;
 *   cluster   the master of the operation's hash slot, from a slot map
 *             built from CLUSTER SLOTS (as hiredis-cluster and redis-py
 *             do): MOVED updates it and sends again, ASK sends ASKING and
 *             the command to the named node once; the map is refreshed
 *             after MOVED, a connection loss or CLUSTERDOWN, a few times a
 *             second at most.
 *
 * What cannot be sent now waits: for a connection or a slot map, until
 * its deadline; after a reply that says it did not run (-TRYAGAIN,
 * -LOADING, -BUSY, -MASTERDOWN, -CLUSTERDOWN, -READONLY), a short while.
 */


#include "ngx_http_cost_cap_module.h"


#define NGX_HTTP_COST_CAP_SLOTS          16384
#define NGX_HTTP_COST_CAP_MAX_REDIRECTS  16
#define NGX_HTTP_COST_CAP_RETRY_DELAY    20
#define NGX_HTTP_COST_CAP_REFRESH_MIN    200
#define NGX_HTTP_COST_CAP_DISCOVER_MIN   100
#define NGX_HTTP_COST_CAP_MAX_WAITING    16384

/* Sentinel: the event of a replica being promoted, and how long to wait
 * for the failover's +switch-master before asking again */
#define NGX_HTTP_COST_CAP_PROMOTING      "+failover-state-send-slaveof-noone"
#define NGX_HTTP_COST_CAP_PROMOTING_MAX  10000


typedef struct {
    ngx_uint_t                 mode;
    ngx_http_cost_cap_conn_t  *conns;       /* every node and Sentinel */
    ngx_http_cost_cap_conn_t  *master;      /* single: the node */

    /* cluster */
    ngx_http_cost_cap_conn_t **slots;
    ngx_event_t                refresh;
    ngx_msec_t                 refreshed;
    ngx_uint_t                 seed;

    /* sentinel */
    ngx_http_cost_cap_conn_t **sentinels;
    ngx_uint_t                 nsentinels;
    ngx_uint_t                 sentinel;    /* the one asked */
    ngx_uint_t                 asked;       /* in this round */

    ngx_event_t                discover;
    ngx_msec_t                 discover_backoff;

    ngx_queue_t                waiting;     /* for a connection or a map */
    ngx_uint_t                 nwaiting;
    ngx_queue_t                delayed;     /* sent again shortly */
    ngx_event_t                retry;

    unsigned                   refreshing:1;
    unsigned                   discovering:1;
    unsigned                   promoting:1; /* a Sentinel failover runs */
    unsigned                   known:1;     /* the master, or the map */
    unsigned                   forced:1;    /* worker_shutdown_timeout */
} ngx_http_cost_cap_router_t;


static ngx_http_cost_cap_conn_t *ngx_http_cost_cap_router_node(
    ngx_http_cost_cap_router_t *rt, ngx_str_t *host, ngx_str_t *port);
static ngx_http_cost_cap_conn_t *ngx_http_cost_cap_router_add(
    ngx_http_cost_cap_router_t *rt, ngx_http_cost_cap_addr_t *addr,
    ngx_http_cost_cap_conn_role_e role);
static ngx_http_cost_cap_conn_t *ngx_http_cost_cap_router_route(
    ngx_http_cost_cap_router_t *rt, ngx_http_cost_cap_op_t *op);
static ngx_int_t ngx_http_cost_cap_router_wait(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_router_requeued(ngx_http_cost_cap_op_t *op);
static void ngx_http_cost_cap_router_flush(ngx_http_cost_cap_router_t *rt,
    ngx_queue_t *queue);
static void ngx_http_cost_cap_router_retry_handler(ngx_event_t *ev);
static void ngx_http_cost_cap_router_redirect(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_op_t *op, redisReply *reply, ngx_uint_t ask);
static void ngx_http_cost_cap_router_refresh(ngx_http_cost_cap_router_t *rt);
static void ngx_http_cost_cap_router_refresh_handler(ngx_event_t *ev);
static void ngx_http_cost_cap_router_slots(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
static ngx_int_t ngx_http_cost_cap_router_slot_range(
    ngx_http_cost_cap_router_t *rt, ngx_http_cost_cap_conn_t *from,
    redisReply *range);
static void ngx_http_cost_cap_router_discover(ngx_http_cost_cap_router_t *rt);
static void ngx_http_cost_cap_router_discover_handler(ngx_event_t *ev);
static void ngx_http_cost_cap_router_master_addr(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event);
static void ngx_http_cost_cap_router_switch(ngx_http_cost_cap_router_t *rt,
    ngx_str_t *host, ngx_str_t *port);
static void ngx_http_cost_cap_router_promoting(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_conn_t *c, redisReply *msg);
static ngx_int_t ngx_http_cost_cap_router_parse(ngx_str_t *host,
    ngx_str_t *port, ngx_http_cost_cap_addr_t *addr, ngx_sockaddr_t *sa);
static ngx_int_t ngx_http_cost_cap_router_name(ngx_str_t *host,
    ngx_str_t *port, ngx_http_cost_cap_addr_t *addr);
static ngx_uint_t ngx_http_cost_cap_router_prefix(redisReply *reply,
    const char *prefix);


static ngx_http_cost_cap_router_t  *ngx_http_cost_cap_router;


ngx_int_t
ngx_http_cost_cap_router_init(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_cost_cap_addr_t       *addr;
    ngx_http_cost_cap_conn_t       *c;
    ngx_http_cost_cap_router_t     *rt;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    cmcf = ngx_http_cost_cap_main_conf;

    /* the time cached at configuration would count against connect_timeout */
    ngx_time_update();

    rt = ngx_pcalloc(cycle->pool, sizeof(ngx_http_cost_cap_router_t));
    if (rt == NULL) {
        return NGX_ERROR;
    }

    rt->mode = cmcf->mode;

    ngx_queue_init(&rt->waiting);
    ngx_queue_init(&rt->delayed);

    rt->retry.handler = ngx_http_cost_cap_router_retry_handler;
    rt->retry.data = rt;
    rt->retry.log = cycle->log;

    rt->refresh.handler = ngx_http_cost_cap_router_refresh_handler;
    rt->refresh.data = rt;
    rt->refresh.log = cycle->log;
    rt->refresh.cancelable = 1;

    rt->discover.handler = ngx_http_cost_cap_router_discover_handler;
    rt->discover.data = rt;
    rt->discover.log = cycle->log;
    rt->discover.cancelable = 1;

    ngx_http_cost_cap_router = rt;

    addr = cmcf->addrs->elts;

    switch (rt->mode) {

    case NGX_HTTP_COST_CAP_MODE_CLUSTER:
        rt->slots = ngx_pcalloc(cycle->pool, NGX_HTTP_COST_CAP_SLOTS
                                * sizeof(ngx_http_cost_cap_conn_t *));
        if (rt->slots == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < cmcf->addrs->nelts; i++) {
            if (ngx_http_cost_cap_router_add(rt, &addr[i],
                                             NGX_HTTP_COST_CAP_CONN_NODE)
                == NULL)
            {
                return NGX_ERROR;
            }
        }

        ngx_http_cost_cap_router_refresh(rt);
        break;

    case NGX_HTTP_COST_CAP_MODE_SENTINEL:
        rt->nsentinels = cmcf->addrs->nelts;
        rt->sentinels = ngx_pcalloc(cycle->pool, rt->nsentinels
                                    * sizeof(ngx_http_cost_cap_conn_t *));
        if (rt->sentinels == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < rt->nsentinels; i++) {
            rt->sentinels[i] = ngx_http_cost_cap_router_add(rt, &addr[i],
                                             NGX_HTTP_COST_CAP_CONN_SENTINEL);
            if (rt->sentinels[i] == NULL) {
                return NGX_ERROR;
            }
        }

        /*
         * Every Sentinel tells this worker of a failover as it happens:
         * the leader alone says when it promotes a replica.
         */
        for (i = 0; i < rt->nsentinels; i++) {
            c = ngx_http_cost_cap_router_add(rt, &addr[i],
                                           NGX_HTTP_COST_CAP_CONN_SUBSCRIBER);
            if (c == NULL) {
                return NGX_ERROR;
            }

            (void) ngx_http_cost_cap_conn_connect(c);
        }

        /* the master's address comes from a Sentinel */
        rt->master = ngx_http_cost_cap_router_add(rt, &addr[0],
                                                  NGX_HTTP_COST_CAP_CONN_NODE);
        if (rt->master == NULL) {
            return NGX_ERROR;
        }

        rt->master->addr.resolve = 0;
        rt->sentinel = ngx_random() % rt->nsentinels;

        ngx_http_cost_cap_router_discover(rt);
        break;

    default: /* NGX_HTTP_COST_CAP_MODE_SINGLE */
        c = ngx_http_cost_cap_router_add(rt, &addr[0],
                                         NGX_HTTP_COST_CAP_CONN_NODE);
        if (c == NULL) {
            return NGX_ERROR;
        }

        rt->master = c;
        rt->known = 1;

        /* connect early, so that the first request finds it up */
        (void) ngx_http_cost_cap_conn_connect(c);
        break;
    }

    return NGX_OK;
}


/* the worker exits: what is still owed is dropped, and logged as such */

void
ngx_http_cost_cap_router_exit(void)
{
    ngx_queue_t                 *q;
    ngx_http_cost_cap_op_t      *op;
    ngx_http_cost_cap_conn_t    *c, *next;
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;
    if (rt == NULL) {
        return;
    }

    rt->forced = 1;

    for (c = rt->conns; c; c = c->next) {
        c->forced = 1;

        /* only what is owed is logged: an idle connection closes quietly */
        if (c->nops > c->handshake) {
            ngx_http_cost_cap_conn_fail(c, "worker exiting");
        }
    }

    while (!ngx_queue_empty(&rt->waiting) || !ngx_queue_empty(&rt->delayed))
    {
        q = ngx_queue_empty(&rt->waiting) ? ngx_queue_head(&rt->delayed)
                                          : ngx_queue_head(&rt->waiting);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        op->where = NGX_HTTP_COST_CAP_OP_NOWHERE;
        ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
    }

    for (c = rt->conns; c; c = next) {
        next = c->next;
        ngx_http_cost_cap_conn_destroy(c);
    }

    rt->conns = NULL;

    if (rt->retry.timer_set) {
        ngx_del_timer(&rt->retry);
    }

    if (rt->refresh.timer_set) {
        ngx_del_timer(&rt->refresh);
    }

    if (rt->discover.timer_set) {
        ngx_del_timer(&rt->discover);
    }

    ngx_http_cost_cap_router = NULL;
}


static ngx_http_cost_cap_conn_t *
ngx_http_cost_cap_router_add(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_addr_t *addr, ngx_http_cost_cap_conn_role_e role)
{
    ngx_http_cost_cap_conn_t  *c;

    c = ngx_http_cost_cap_conn_create(addr, role, rt);
    if (c == NULL) {
        return NULL;
    }

    c->next = rt->conns;
    rt->conns = c;

    return c;
}


/*
 * Sends op where its mode says.  NGX_OK: op is queued, and its handler
 * will be called; NGX_ERROR: op was not queued (no node, a node that is
 * down and op may not wait, too many waiting), and nothing was called.
 */

ngx_int_t
ngx_http_cost_cap_router_send(ngx_http_cost_cap_op_t *op)
{
    ngx_uint_t                   fail_fast;
    ngx_http_cost_cap_conn_t    *c;
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;
    if (rt == NULL || rt->forced) {
        return NGX_ERROR;
    }

    /* only the first attempt fails fast: a resend waits for the node */
    fail_fast = op->fail_fast;
    op->fail_fast = 0;

    c = ngx_http_cost_cap_router_route(rt, op);

    if (c && ngx_http_cost_cap_conn_usable(c)) {
        if (!op->request && op->timer.timer_set) {
            ngx_del_timer(&op->timer);
        }

        return ngx_http_cost_cap_conn_append(c, op);
    }

    if (c && fail_fast) {
        return NGX_ERROR;
    }

    return ngx_http_cost_cap_router_wait(rt, op);
}


static ngx_http_cost_cap_conn_t *
ngx_http_cost_cap_router_route(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_op_t *op)
{
    if (rt->mode == NGX_HTTP_COST_CAP_MODE_CLUSTER) {
        return rt->slots[op->slot % NGX_HTTP_COST_CAP_SLOTS];
    }

    if (rt->mode == NGX_HTTP_COST_CAP_MODE_SENTINEL && !rt->known) {
        return NULL;
    }

    return rt->master;
}


/* until a connection, a slot map or a master is there, or the deadline */

static ngx_int_t
ngx_http_cost_cap_router_wait(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_op_t *op)
{
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (op->deadline - ngx_current_msec);

    if (left <= 0 || rt->nwaiting >= NGX_HTTP_COST_CAP_MAX_WAITING) {
        return NGX_ERROR;
    }

    if (!op->timer.timer_set) {
        ngx_add_timer(&op->timer, (ngx_msec_t) left);
    }

    ngx_http_cost_cap_router_requeued(op);

    op->where = NGX_HTTP_COST_CAP_OP_WAITING;
    ngx_queue_insert_tail(&rt->waiting, &op->queue);
    rt->nwaiting++;

    if (rt->mode == NGX_HTTP_COST_CAP_MODE_SENTINEL && !rt->known) {
        ngx_http_cost_cap_router_discover(rt);

    } else if (rt->mode == NGX_HTTP_COST_CAP_MODE_CLUSTER
               && rt->slots[op->slot % NGX_HTTP_COST_CAP_SLOTS] == NULL)
    {
        ngx_http_cost_cap_router_refresh(rt);
    }

    return NGX_OK;
}


/* a settlement that waits for Redis is counted once */

static void
ngx_http_cost_cap_router_requeued(ngx_http_cost_cap_op_t *op)
{
    if (!op->request && !op->requeued) {
        op->requeued = 1;
        ngx_http_cost_cap_count(settle_retries, 1);
    }
}


/* an operation leaves its queue: its deadline, or the worker exits */

void
ngx_http_cost_cap_router_unqueue(ngx_http_cost_cap_op_t *op)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    if (op->where == NGX_HTTP_COST_CAP_OP_WAITING && rt) {
        rt->nwaiting--;
    }

    ngx_queue_remove(&op->queue);
    op->where = NGX_HTTP_COST_CAP_OP_NOWHERE;
}


/* sends again, in order, what waits in queue */

static void
ngx_http_cost_cap_router_flush(ngx_http_cost_cap_router_t *rt,
    ngx_queue_t *queue)
{
    ngx_queue_t              ops, *q;
    ngx_http_cost_cap_op_t  *op;

    if (ngx_queue_empty(queue)) {
        return;
    }

    ops = *queue;
    ops.next->prev = &ops;
    ops.prev->next = &ops;
    ngx_queue_init(queue);

    if (queue == &rt->waiting) {
        rt->nwaiting = 0;
    }

    while (!ngx_queue_empty(&ops)) {
        q = ngx_queue_head(&ops);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_http_cost_cap_op_t, queue);
        op->where = NGX_HTTP_COST_CAP_OP_NOWHERE;

        if (ngx_http_cost_cap_router_send(op) != NGX_OK) {
            ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
        }
    }
}


/* its connection is gone: sent again if that is safe, else its end */

void
ngx_http_cost_cap_router_lost(ngx_http_cost_cap_op_t *op)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    if (rt && !rt->forced && !ngx_terminate
        && (op->resend || !op->unknown)
        && ngx_http_cost_cap_router_send(op) == NGX_OK)
    {
        return;
    }

    ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
}


/* a reply that says it did not run: sent again shortly, until the deadline */

ngx_int_t
ngx_http_cost_cap_router_retriable(ngx_http_cost_cap_op_t *op)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    return rt != NULL && !rt->forced
           && (ngx_msec_int_t) (op->deadline - ngx_current_msec)
              > NGX_HTTP_COST_CAP_RETRY_DELAY / 2;
}


void
ngx_http_cost_cap_router_retry(ngx_http_cost_cap_op_t *op)
{
    ngx_msec_int_t               left;
    ngx_http_cost_cap_router_t  *rt;

    if (!ngx_http_cost_cap_router_retriable(op)) {
        ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
        return;
    }

    rt = ngx_http_cost_cap_router;
    left = (ngx_msec_int_t) (op->deadline - ngx_current_msec);

    ngx_http_cost_cap_count(redis_retries, 1);
    ngx_http_cost_cap_router_requeued(op);

    /* the redirections that led here ended at a node: a new chain */
    op->redirects = 0;

    if (!op->timer.timer_set) {
        ngx_add_timer(&op->timer, (ngx_msec_t) left);
    }

    op->where = NGX_HTTP_COST_CAP_OP_DELAYED;
    ngx_queue_insert_tail(&rt->delayed, &op->queue);

    if (!rt->retry.timer_set) {
        ngx_add_timer(&rt->retry, NGX_HTTP_COST_CAP_RETRY_DELAY / 2
                      + ngx_random() % NGX_HTTP_COST_CAP_RETRY_DELAY);
    }
}


static void
ngx_http_cost_cap_router_retry_handler(ngx_event_t *ev)
{
    ngx_http_cost_cap_router_flush(ev->data,
                                   &((ngx_http_cost_cap_router_t *) ev->data)
                                   ->delayed);
}


/*
 * An error reply.  What says the command did not run is retried (and the
 * topology looked at again); MOVED and ASK are followed; the rest goes to
 * the operation's handler.
 */

void
ngx_http_cost_cap_router_error(ngx_http_cost_cap_conn_t *c,
    ngx_http_cost_cap_op_t *op, redisReply *reply)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    if (rt->mode == NGX_HTTP_COST_CAP_MODE_CLUSTER) {
        if (ngx_http_cost_cap_router_prefix(reply, "MOVED ")) {
            ngx_http_cost_cap_router_redirect(rt, op, reply, 0);
            return;
        }

        if (ngx_http_cost_cap_router_prefix(reply, "ASK ")) {
            ngx_http_cost_cap_router_redirect(rt, op, reply, 1);
            return;
        }

        if (ngx_http_cost_cap_router_prefix(reply, "CLUSTERDOWN")) {
            ngx_http_cost_cap_router_refresh(rt);
            ngx_http_cost_cap_router_retry(op);
            return;
        }
    }

    if (ngx_http_cost_cap_router_prefix(reply, "READONLY")) {
        /* a master that became a replica: find the master again */
        ngx_http_cost_cap_router_retry(op);

        if (c->state != NGX_HTTP_COST_CAP_CONN_DOWN) {
            ngx_http_cost_cap_conn_fail(c, "is a replica now");
        }

        if (rt->mode == NGX_HTTP_COST_CAP_MODE_CLUSTER) {
            ngx_http_cost_cap_router_refresh(rt);
        }

        return;
    }

    if (ngx_http_cost_cap_router_prefix(reply, "TRYAGAIN")
        || ngx_http_cost_cap_router_prefix(reply, "LOADING")
        || ngx_http_cost_cap_router_prefix(reply, "BUSY")
        || ngx_http_cost_cap_router_prefix(reply, "MASTERDOWN"))
    {
        ngx_http_cost_cap_router_retry(op);
        return;
    }

    ngx_http_cost_cap_op_finish(op, reply, NGX_HTTP_COST_CAP_OP_REPLY);
}


static void
ngx_http_cost_cap_router_redirect(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_op_t *op, redisReply *reply, ngx_uint_t ask)
{
    u_char                    *p, *last, *colon;
    ngx_int_t                  slot;
    ngx_str_t                  host, port;
    ngx_http_cost_cap_conn_t  *c;

    /* "MOVED 3999 127.0.0.1:6381", "ASK 3999 127.0.0.1:6381" */
    p = (u_char *) reply->str + (ask ? 4 : 6);
    last = (u_char *) reply->str + reply->len;

    host.data = ngx_strlchr(p, last, ' ');
    colon = host.data ? ngx_strlchr(host.data, last, ':') : NULL;

    while (colon && ngx_strlchr(colon + 1, last, ':')) {
        colon = ngx_strlchr(colon + 1, last, ':');      /* IPv6 */
    }

    if (colon == NULL
        || (slot = ngx_atoi(p, host.data - p)) == NGX_ERROR
        || slot >= NGX_HTTP_COST_CAP_SLOTS
        || ++op->redirects > NGX_HTTP_COST_CAP_MAX_REDIRECTS)
    {
        ngx_http_cost_cap_op_finish(op, reply, NGX_HTTP_COST_CAP_OP_REPLY);
        return;
    }

    host.data++;
    host.len = colon - host.data;
    port.data = colon + 1;
    port.len = last - port.data;

    c = ngx_http_cost_cap_router_node(rt, &host, &port);
    if (c == NULL) {
        ngx_http_cost_cap_op_finish(op, reply, NGX_HTTP_COST_CAP_OP_REPLY);
        return;
    }

    ngx_http_cost_cap_count(redis_redirects, 1);

    if (!ask) {
        /* the slot moved: the map learns it now, and all of it soon */
        rt->slots[slot] = c;
        ngx_http_cost_cap_router_refresh(rt);

        if (ngx_http_cost_cap_router_send(op) != NGX_OK) {
            ngx_http_cost_cap_op_finish(op, NULL, NGX_HTTP_COST_CAP_OP_LOST);
        }

        return;
    }

    /* a slot being migrated: this command only, to the importing node */
    if (!ngx_http_cost_cap_conn_usable(c)
        || ngx_http_cost_cap_conn_command(c, "ASKING", NULL, 1,
                                          (const char *[]) { "ASKING" },
                                          (size_t []) { 6 })
           != NGX_OK
        || ngx_http_cost_cap_conn_append(c, op) != NGX_OK)
    {
        ngx_http_cost_cap_router_retry(op);
    }
}


/* the connection of a Cluster node, made when it is first named */

static ngx_http_cost_cap_conn_t *
ngx_http_cost_cap_router_node(ngx_http_cost_cap_router_t *rt,
    ngx_str_t *host, ngx_str_t *port)
{
    ngx_sockaddr_t             sa;
    ngx_http_cost_cap_conn_t  *c;
    ngx_http_cost_cap_addr_t   addr;

    if (ngx_http_cost_cap_router_parse(host, port, &addr, &sa) != NGX_OK) {
        return NULL;
    }

    for (c = rt->conns; c; c = c->next) {
        if (c->role == NGX_HTTP_COST_CAP_CONN_NODE
            && c->addr.sockaddr
            && ngx_cmp_sockaddr(c->addr.sockaddr, c->addr.socklen,
                                &sa.sockaddr, addr.socklen, 1)
               == NGX_OK)
        {
            return c;
        }
    }

    if (ngx_http_cost_cap_router_name(host, port, &addr) != NGX_OK) {
        return NULL;
    }

    c = ngx_http_cost_cap_router_add(rt, &addr, NGX_HTTP_COST_CAP_CONN_NODE);

    if (c == NULL) {
        ngx_free(addr.name.data);
        return NULL;
    }

    c->owned = 1;

    return c;
}


/* an address as a Redis reply gives it: "127.0.0.1" and "6379" */

static ngx_int_t
ngx_http_cost_cap_router_parse(ngx_str_t *host, ngx_str_t *port,
    ngx_http_cost_cap_addr_t *addr, ngx_sockaddr_t *sa)
{
    ngx_int_t  n;

    n = ngx_atoi(port->data, port->len);

    if (n < 1 || n > 65535) {
        return NGX_ERROR;
    }

    ngx_memzero(addr, sizeof(ngx_http_cost_cap_addr_t));
    ngx_memzero(sa, sizeof(ngx_sockaddr_t));

    sa->sockaddr_in.sin_addr.s_addr = ngx_inet_addr(host->data, host->len);

    if (sa->sockaddr_in.sin_addr.s_addr != INADDR_NONE) {
        sa->sockaddr_in.sin_family = AF_INET;
        addr->socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(host->data, host->len,
                              sa->sockaddr_in6.sin6_addr.s6_addr)
               == NGX_OK)
    {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        addr->socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        return NGX_ERROR;
    }

    ngx_inet_set_port(&sa->sockaddr, (in_port_t) n);

    addr->port = (in_port_t) n;
    addr->sockaddr = &sa->sockaddr;

    return NGX_OK;
}


/* the worker's own copy of "host:port", for a connection made now */

static ngx_int_t
ngx_http_cost_cap_router_name(ngx_str_t *host, ngx_str_t *port,
    ngx_http_cost_cap_addr_t *addr)
{
    u_char  *p;

    p = ngx_alloc(host->len + 1 + port->len, ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    addr->host.data = p;
    addr->host.len = host->len;
    addr->name.data = p;
    addr->name.len = ngx_sprintf(p, "%V:%V", host, port) - p;

    return NGX_OK;
}


/* CLUSTER SLOTS to a node that answers: throttled, one at a time */

static void
ngx_http_cost_cap_router_refresh(ngx_http_cost_cap_router_t *rt)
{
    ngx_msec_int_t  wait;

    if (rt->mode != NGX_HTTP_COST_CAP_MODE_CLUSTER || rt->refreshing
        || rt->refresh.timer_set)
    {
        return;
    }

    wait = (ngx_msec_int_t) (rt->refreshed + NGX_HTTP_COST_CAP_REFRESH_MIN
                             - ngx_current_msec);

    if (rt->refreshed && wait > 0) {
        ngx_add_timer(&rt->refresh, (ngx_msec_t) wait);
        return;
    }

    ngx_add_timer(&rt->refresh, 0);
}


static void
ngx_http_cost_cap_router_refresh_handler(ngx_event_t *ev)
{
    ngx_uint_t                   i, n;
    ngx_http_cost_cap_conn_t    *c, *pick;
    ngx_http_cost_cap_router_t  *rt;

    rt = ev->data;

    if (rt->refreshing || rt->forced) {
        return;
    }

    /* a node that is up, else the next one in turn that can be tried */
    pick = NULL;

    for (c = rt->conns; c; c = c->next) {
        if (c->state == NGX_HTTP_COST_CAP_CONN_UP && c->handshake == 0) {
            pick = c;
            break;
        }
    }

    for (n = 0, c = rt->conns; c; c = c->next) {
        n++;
    }

    for (i = 0; pick == NULL && i < n; i++) {
        rt->seed++;

        for (c = rt->conns; c && pick == NULL; c = c->next) {
            if (rt->seed % n == 0
                && ngx_http_cost_cap_conn_usable(c))
            {
                pick = c;
            }

            rt->seed += (pick == NULL);
        }
    }

    rt->refreshed = ngx_current_msec;

    if (pick == NULL
        || ngx_http_cost_cap_conn_command(pick, "CLUSTER SLOTS",
                                          ngx_http_cost_cap_router_slots, 2,
                                          (const char *[]) { "CLUSTER",
                                                             "SLOTS" },
                                          (size_t []) { 7, 5 })
           != NGX_OK)
    {
        ngx_add_timer(&rt->refresh, NGX_HTTP_COST_CAP_REFRESH_MIN);
        return;
    }

    rt->refreshing = 1;
}


static void
ngx_http_cost_cap_router_slots(ngx_http_cost_cap_op_t *op, redisReply *reply,
    ngx_uint_t event)
{
    size_t                       i;
    ngx_http_cost_cap_conn_t    *from;
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;
    rt->refreshing = 0;

    from = op->conn ? op->conn : NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0)
    {
        if (reply) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "cost_cap: redis CLUSTER SLOTS answered no slots");
        }

        ngx_http_cost_cap_router_refresh(rt);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        if (ngx_http_cost_cap_router_slot_range(rt, from, reply->element[i])
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "cost_cap: redis CLUSTER SLOTS: unexpected reply");
            break;
        }
    }

    rt->known = 1;

    ngx_http_cost_cap_router_flush(rt, &rt->waiting);
}


/* [start, end, [ip, port, id, ...], replicas...] */

static ngx_int_t
ngx_http_cost_cap_router_slot_range(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_conn_t *from, redisReply *range)
{
    long long                  s, e;
    u_char                     buf[NGX_INT_T_LEN];
    ngx_str_t                  host, port;
    redisReply                *node;
    ngx_http_cost_cap_conn_t  *c;

    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
        || range->element[0]->type != REDIS_REPLY_INTEGER
        || range->element[1]->type != REDIS_REPLY_INTEGER
        || range->element[2]->type != REDIS_REPLY_ARRAY
        || range->element[2]->elements < 2
        || range->element[2]->element[0]->type != REDIS_REPLY_STRING
        || range->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_ERROR;
    }

    s = range->element[0]->integer;
    e = range->element[1]->integer;
    node = range->element[2];

    if (s < 0 || e >= NGX_HTTP_COST_CAP_SLOTS || s > e) {
        return NGX_ERROR;
    }

    host.data = (u_char *) node->element[0]->str;
    host.len = node->element[0]->len;

    /* "" or "?": the node that answered (SPEC of CLUSTER SLOTS) */
    if ((host.len == 0 || (host.len == 1 && host.data[0] == '?')) && from) {
        host = from->addr.host;
    }

    port.data = buf;
    port.len = ngx_sprintf(buf, "%L", (int64_t) node->element[1]->integer)
               - buf;

    c = ngx_http_cost_cap_router_node(rt, &host, &port);
    if (c == NULL) {
        return NGX_ERROR;
    }

    for ( /* void */ ; s <= e; s++) {
        rt->slots[s] = c;
    }

    return NGX_OK;
}


/* SENTINEL get-master-addr-by-name, to each Sentinel in turn */

static void
ngx_http_cost_cap_router_discover(ngx_http_cost_cap_router_t *rt)
{
    ngx_str_t                      *name;
    ngx_http_cost_cap_conn_t       *c;
    ngx_http_cost_cap_main_conf_t  *cmcf;

    if (rt->discovering || rt->discover.timer_set || rt->forced
        || rt->promoting)
    {
        return;
    }

    cmcf = ngx_http_cost_cap_main_conf;
    name = &cmcf->master;

    while (rt->asked < rt->nsentinels) {
        rt->asked++;
        rt->sentinel = (rt->sentinel + 1) % rt->nsentinels;
        c = rt->sentinels[rt->sentinel];

        if (ngx_http_cost_cap_conn_usable(c)
            && ngx_http_cost_cap_conn_command(c, "SENTINEL",
                   ngx_http_cost_cap_router_master_addr, 3,
                   (const char *[]) { "SENTINEL", "get-master-addr-by-name",
                                      (char *) name->data },
                   (size_t []) { 8, 23, name->len })
               == NGX_OK)
        {
            rt->discovering = 1;
            return;
        }
    }

    /* every Sentinel was asked: again after a while */
    rt->asked = 0;
    rt->discover_backoff = rt->discover_backoff
                           ? ngx_min(rt->discover_backoff * 2, 2000)
                           : NGX_HTTP_COST_CAP_DISCOVER_MIN;

    ngx_add_timer(&rt->discover, rt->discover_backoff);
}


static void
ngx_http_cost_cap_router_discover_handler(ngx_event_t *ev)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ev->data;
    rt->promoting = 0;

    ngx_http_cost_cap_router_discover(rt);
}


static void
ngx_http_cost_cap_router_master_addr(ngx_http_cost_cap_op_t *op,
    redisReply *reply, ngx_uint_t event)
{
    ngx_str_t                    host, port;
    ngx_http_cost_cap_conn_t    *sentinel;
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;
    rt->discovering = 0;

    if (rt->forced) {
        return;
    }

    sentinel = rt->sentinels[rt->sentinel];

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        /* once until this Sentinel answers an address */
        if (reply && !sentinel->erred) {
            sentinel->erred = 1;

            if (reply->type == REDIS_REPLY_ERROR) {
                ngx_log_error(NGX_LOG_ERR, &sentinel->log, 0,
                              "cost_cap: redis sentinel %V answered: %*s",
                              &sentinel->addr.name, (size_t) reply->len,
                              reply->str);

            } else {
                ngx_log_error(NGX_LOG_ERR, &sentinel->log, 0,
                              "cost_cap: redis sentinel %V does not know "
                              "master \"%V\"", &sentinel->addr.name,
                              &ngx_http_cost_cap_main_conf->master);
            }
        }

        ngx_http_cost_cap_router_discover(rt);
        return;
    }

    sentinel->erred = 0;

    host.data = (u_char *) reply->element[0]->str;
    host.len = reply->element[0]->len;
    port.data = (u_char *) reply->element[1]->str;
    port.len = reply->element[1]->len;

    rt->asked = 0;
    rt->discover_backoff = 0;

    ngx_http_cost_cap_router_switch(rt, &host, &port);
}


/* the master is at host:port: connect there (the handshake checks ROLE) */

static void
ngx_http_cost_cap_router_switch(ngx_http_cost_cap_router_t *rt,
    ngx_str_t *host, ngx_str_t *port)
{
    ngx_sockaddr_t             sa;
    ngx_http_cost_cap_addr_t   addr;
    ngx_http_cost_cap_conn_t  *c;

    if (ngx_http_cost_cap_router_parse(host, port, &addr, &sa) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "cost_cap: redis sentinel named an invalid master "
                      "address \"%V:%V\"", host, port);
        return;
    }

    c = rt->master;

    if (!c->owned
        || ngx_cmp_sockaddr(c->addr.sockaddr, c->addr.socklen,
                            &sa.sockaddr, addr.socklen, 1)
           != NGX_OK)
    {
        if (ngx_http_cost_cap_router_name(host, port, &addr) != NGX_OK) {
            return;
        }

        /* the connection to the old master is closed under its name */
        if (c->state != NGX_HTTP_COST_CAP_CONN_DOWN) {
            ngx_http_cost_cap_conn_fail(c, "master switched");
        }

        if (c->owned) {
            ngx_free(c->addr.name.data);
        }

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "cost_cap: redis master \"%V\" is %V",
                      &ngx_http_cost_cap_main_conf->master, &addr.name);

        c->addr.name = addr.name;
        c->addr.host = addr.host;
        c->addr.port = addr.port;
        c->owned = 1;
        ngx_http_cost_cap_conn_set_addr(c, &sa.sockaddr, addr.socklen);

        /* the new master at once, not after a backoff */
        if (c->reconnect.timer_set) {
            ngx_del_timer(&c->reconnect);
        }

        c->backoff = 0;
    }

    rt->known = 1;

    /* the same master: it reconnects on its own, after its backoff */
    if (c->state == NGX_HTTP_COST_CAP_CONN_DOWN && !c->reconnect.timer_set) {
        (void) ngx_http_cost_cap_conn_connect(c);
    }

    if (c->state == NGX_HTTP_COST_CAP_CONN_UP && c->handshake == 0) {
        ngx_http_cost_cap_router_flush(rt, &rt->waiting);
    }
}


/* ["message", "+switch-master", "NAME oldip oldport newip newport"] */

void
ngx_http_cost_cap_router_push(ngx_http_cost_cap_conn_t *c, redisReply *reply)
{
    u_char                      *p, *last, *f[5];
    ngx_uint_t                   i;
    ngx_str_t                    host, port, *name;
    redisReply                  *msg;
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;
    name = &ngx_http_cost_cap_main_conf->master;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    msg = reply->element[2];
    p = (u_char *) msg->str;
    last = p + msg->len;

    if (reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[1]->len == sizeof(NGX_HTTP_COST_CAP_PROMOTING) - 1
        && ngx_strncmp(reply->element[1]->str, NGX_HTTP_COST_CAP_PROMOTING,
                       reply->element[1]->len)
           == 0)
    {
        ngx_http_cost_cap_router_promoting(rt, c, msg);
        return;
    }

    for (i = 0; i < 5; i++) {
        f[i] = p;
        p = ngx_strlchr(p, last, ' ');

        if (p == NULL) {
            if (i != 4) {
                return;
            }

            p = last;
        }

        p++;
    }

    if ((size_t) (f[1] - f[0] - 1) != name->len
        || ngx_strncmp(f[0], name->data, name->len) != 0)
    {
        return;
    }

    host.data = f[3];
    host.len = f[4] - f[3] - 1;
    port.data = f[4];
    port.len = last - f[4];

    ngx_log_error(NGX_LOG_NOTICE, &c->log, 0,
                  "cost_cap: redis sentinel %V: +switch-master %*s",
                  &c->addr.name, (size_t) msg->len, msg->str);

    rt->promoting = 0;

    if (rt->discover.timer_set) {
        ngx_del_timer(&rt->discover);
    }

    ngx_http_cost_cap_router_switch(rt, &host, &port);
}


/*
 * "slave 10.0.0.2:6379 10.0.0.2 6379 @ NAME 10.0.0.1 6379": a Sentinel is
 * promoting a replica.  From now on the old master's writes would be lost
 * with its data when it becomes a replica: nothing more goes to it, and
 * requests wait for +switch-master (at most their timeout), or for a new
 * discovery should the failover not end.
 */

static void
ngx_http_cost_cap_router_promoting(ngx_http_cost_cap_router_t *rt,
    ngx_http_cost_cap_conn_t *c, redisReply *msg)
{
    u_char     *p, *last, *e;
    ngx_str_t  *name;

    name = &ngx_http_cost_cap_main_conf->master;

    p = (u_char *) msg->str;
    last = p + msg->len;

    p = ngx_strlcasestrn(p, last, (u_char *) " @ ", 3 - 1);
    if (p == NULL) {
        return;
    }

    p += 3;
    e = ngx_strlchr(p, last, ' ');

    if (e == NULL || (size_t) (e - p) != name->len
        || ngx_strncmp(p, name->data, name->len) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, &c->log, 0,
                  "cost_cap: redis sentinel %V: failover of master \"%V\": "
                  "%*s", &c->addr.name, name, (size_t) msg->len, msg->str);

    rt->promoting = 1;
    rt->known = 0;

    if (rt->master->state != NGX_HTTP_COST_CAP_CONN_DOWN) {
        ngx_http_cost_cap_conn_fail(rt->master, "failover in progress");
    }

    if (rt->master->reconnect.timer_set) {
        ngx_del_timer(&rt->master->reconnect);
    }

    /* a failover that does not end: the Sentinels are asked again */
    if (rt->discover.timer_set) {
        ngx_del_timer(&rt->discover);
    }

    ngx_add_timer(&rt->discover, NGX_HTTP_COST_CAP_PROMOTING_MAX);
}


/* the handshake of a connection is done: what waited for it goes now */

void
ngx_http_cost_cap_router_ready(ngx_http_cost_cap_conn_t *c)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    if (c->role == NGX_HTTP_COST_CAP_CONN_NODE && rt->known) {
        ngx_http_cost_cap_router_flush(rt, &rt->waiting);
    }
}


void
ngx_http_cost_cap_router_down(ngx_http_cost_cap_conn_t *c)
{
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    if (rt == NULL || rt->forced) {
        return;
    }

    switch (rt->mode) {

    case NGX_HTTP_COST_CAP_MODE_CLUSTER:
        ngx_http_cost_cap_router_refresh(rt);
        break;

    case NGX_HTTP_COST_CAP_MODE_SENTINEL:
        if (c == rt->master) {
            /* the master may have moved: ask the Sentinels again */
            rt->known = 0;
            ngx_http_cost_cap_router_discover(rt);

        }

        break;

    default:
        break;
    }
}


void
ngx_http_cost_cap_router_forced(void)
{
    if (ngx_http_cost_cap_router) {
        ngx_http_cost_cap_router->forced = 1;
    }
}


/* ROLE in the handshake of a master found through the Sentinels */

void
ngx_http_cost_cap_router_role(ngx_http_cost_cap_op_t *op, redisReply *reply,
    ngx_uint_t event)
{
    ngx_http_cost_cap_conn_t  *c;

    c = ngx_http_cost_cap_router ? ngx_http_cost_cap_router->master : NULL;

    if (reply == NULL || c == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len == 6
        && ngx_strncmp(reply->element[0]->str, "master", 6) == 0)
    {
        return;
    }

    ngx_http_cost_cap_conn_fail(c, "is not a master (ROLE)");
}


/* operations in flight or waiting: a worker that exits still owes them */

ngx_uint_t
ngx_http_cost_cap_router_active(void)
{
    ngx_http_cost_cap_conn_t    *c;
    ngx_http_cost_cap_router_t  *rt;

    rt = ngx_http_cost_cap_router;

    if (rt == NULL) {
        return 0;
    }

    if (!ngx_queue_empty(&rt->waiting) || !ngx_queue_empty(&rt->delayed)) {
        return 1;
    }

    for (c = rt->conns; c; c = c->next) {
        if (c->nops > c->handshake) {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_cost_cap_router_prefix(redisReply *reply, const char *prefix)
{
    size_t  len;

    len = ngx_strlen(prefix);

    return reply->len >= len && ngx_strncmp(reply->str, prefix, len) == 0;
}

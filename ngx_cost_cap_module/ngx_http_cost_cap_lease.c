
/*
 * ngx_cost_cap_module: fewer round trips, the same hard cap (SPEC 13).
 *
 * The reject cache: after a 429, this worker remembers what was left in
 * each window crossed, until cost_cap_reject_cache's time or the period's
 * end, whichever comes first; a request of that tenant whose estimate is
 * more than that is answered 429 without Redis.  Spend only grows between
 * refunds, so this never admits what Redis would refuse: at worst a refund
 * (or a cap raised in a caps hash) is seen that much later.
 *
 * Leases: a reservation may also take a slice of the remaining budget
 * (charged to the counters at once, recorded in costcap:{TAG}:lease:ID),
 * and this worker then admits the tenant's next requests from it without
 * Redis, until it is used up, its time or one of its periods ends, or the
 * worker exits; what was not used then goes back.  The script grants a
 * lease only while every window keeps room for cost_cap_lease's headroom
 * of them after it: near a cap every request is reserved exactly.  The
 * counters always hold at least what was admitted, so no cap is crossed;
 * once every lease is back they hold exactly that.
 */


#include "ngx_http_cost_cap_module.h"


/* entries per worker: the least recently used goes when it is full */
#define NGX_HTTP_COST_CAP_CACHE_MAX  16384


typedef struct {
    ngx_rbtree_node_t           node;           /* key: hash of the name */
    ngx_queue_t                 queue;          /* LRU */
    ngx_msec_t                  expires;        /* ngx_current_msec */
    int64_t                     end;            /* the period's, Redis s */
    int64_t                     cap;
    int64_t                     spent;
    u_char                      window;
    u_char                      len;
    u_char                      name[NGX_HTTP_COST_CAP_TKEY_LEN + 8];
} ngx_http_cost_cap_rejected_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;
    ngx_uint_t                  n;
} ngx_http_cost_cap_cache_t;


static ngx_http_cost_cap_cache_t *ngx_http_cost_cap_cache_get(void);
static size_t ngx_http_cost_cap_cache_name(ngx_http_cost_cap_rsv_t *rsv,
    ngx_http_cost_cap_win_t *w, u_char *name);
static ngx_http_cost_cap_rejected_t *ngx_http_cost_cap_cache_find(
    ngx_http_cost_cap_cache_t *cache, u_char *name, size_t len,
    uint32_t hash);
static void ngx_http_cost_cap_cache_free(ngx_http_cost_cap_cache_t *cache,
    ngx_http_cost_cap_rejected_t *e);
static void ngx_http_cost_cap_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


/* a lease this worker holds, by the windows of a tenant it covers */
typedef struct {
    ngx_rbtree_node_t           node;
    ngx_queue_t                 queue;
    ngx_event_t                 timer;          /* its end */
    ngx_msec_t                  asked;          /* pending since */
    int64_t                     amount;
    int64_t                     used;
    ngx_http_cost_cap_rsv_t     rsv;            /* the reservation that
                                                   took it */
    unsigned                    pending:1;      /* asked for, unanswered */
    size_t                      len;
    u_char                      name[NGX_HTTP_COST_CAP_TKEY_LEN
                                     + CC_KEY_PREFIX_MAX_LEN
                                     + 24 * NGX_HTTP_COST_CAP_WIN_MAX];
} ngx_http_cost_cap_lease_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 all;
    ngx_event_t                 watch;          /* the worker exits */
} ngx_http_cost_cap_leases_t;


static ngx_http_cost_cap_lease_t *ngx_http_cost_cap_lease_find(
    ngx_http_cost_cap_rsv_t *rsv, uint32_t *hash, u_char *name, size_t *len);
static void ngx_http_cost_cap_lease_end(ngx_http_cost_cap_lease_t *l);
static void ngx_http_cost_cap_lease_timer(ngx_event_t *ev);
static void ngx_http_cost_cap_lease_watch(ngx_event_t *ev);
static void ngx_http_cost_cap_lease_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


static ngx_http_cost_cap_cache_t   *ngx_http_cost_cap_cache;
static ngx_http_cost_cap_leases_t  *ngx_http_cost_cap_leases;


/*
 * Before the round trip: 1 when a window this worker saw crossed would be
 * crossed again by ctx's estimate; ctx->rsv then holds that window's cap,
 * spent and end, as a reply of Redis would.
 */

ngx_uint_t
ngx_http_cost_cap_reject_cached(ngx_http_cost_cap_ctx_t *ctx)
{
    u_char                         name[NGX_HTTP_COST_CAP_TKEY_LEN + 8];
    size_t                         len;
    int64_t                        now;
    ngx_uint_t                     i, hit;
    ngx_http_cost_cap_win_t       *w;
    ngx_http_cost_cap_rsv_t       *rsv;
    ngx_http_cost_cap_cache_t     *cache;
    ngx_http_cost_cap_rejected_t  *e;

    cache = ngx_http_cost_cap_cache;
    if (cache == NULL || cache->n == 0) {
        return 0;
    }

    rsv = &ctx->rsv;
    now = ngx_http_cost_cap_redis_time(NULL) / 1000;
    hit = 0;

    for (i = 0; i < rsv->nwin; i++) {
        w = &rsv->win[i];
        w->cap = -1;
        w->spent = 0;

        len = ngx_http_cost_cap_cache_name(rsv, w, name);
        e = ngx_http_cost_cap_cache_find(cache, name, len,
                                         ngx_crc32_short(name, len));
        if (e == NULL) {
            continue;
        }

        if ((ngx_msec_int_t) (e->expires - ngx_current_msec) <= 0
            || (e->end && now >= e->end))
        {
            ngx_http_cost_cap_cache_free(cache, e);
            continue;
        }

        /* a configured cap that changed since (a reload, a variable) */
        if (w->limit >= 0 && w->limit != e->cap) {
            continue;
        }

        w->cap = e->cap;
        w->spent = e->spent;
        w->end = e->end;

        if (e->spent + rsv->estimate > e->cap) {
            hit = 1;
        }
    }

    if (!hit) {
        return 0;
    }

    rsv->status = CC_RESERVE_REFUSED;
    rsv->now = now;
    rsv->mask = 0;

    ngx_http_cost_cap_count(cache_hits, 1);

    return 1;
}


/* a 429 from Redis: what was left in each window it crossed */

void
ngx_http_cost_cap_reject_remember(ngx_http_cost_cap_ctx_t *ctx,
    ngx_msec_t ttl)
{
    u_char                         name[NGX_HTTP_COST_CAP_TKEY_LEN + 8];
    size_t                         len;
    uint32_t                       hash;
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_http_cost_cap_win_t       *w;
    ngx_http_cost_cap_rsv_t       *rsv;
    ngx_http_cost_cap_cache_t     *cache;
    ngx_http_cost_cap_rejected_t  *e;

    cache = ngx_http_cost_cap_cache_get();
    if (cache == NULL) {
        return;
    }

    rsv = &ctx->rsv;

    for (i = 0; i < rsv->nwin; i++) {
        w = &rsv->win[i];

        if (w->cap < 0 || w->spent + rsv->estimate <= w->cap) {
            continue;
        }

        len = ngx_http_cost_cap_cache_name(rsv, w, name);
        hash = ngx_crc32_short(name, len);

        e = ngx_http_cost_cap_cache_find(cache, name, len, hash);

        if (e == NULL) {
            if (cache->n < NGX_HTTP_COST_CAP_CACHE_MAX) {
                e = ngx_alloc(sizeof(ngx_http_cost_cap_rejected_t),
                              ngx_cycle->log);
                if (e == NULL) {
                    return;
                }

                cache->n++;

            } else {
                q = ngx_queue_last(&cache->lru);
                e = ngx_queue_data(q, ngx_http_cost_cap_rejected_t, queue);
                ngx_queue_remove(q);
                ngx_rbtree_delete(&cache->rbtree, &e->node);
            }

            e->node.key = hash;
            e->len = (u_char) len;
            ngx_memcpy(e->name, name, len);

            ngx_rbtree_insert(&cache->rbtree, &e->node);

        } else {
            ngx_queue_remove(&e->queue);
        }

        ngx_queue_insert_head(&cache->lru, &e->queue);

        e->expires = ngx_current_msec + ttl;
        e->end = w->end;
        e->cap = w->cap;
        e->spent = w->spent;
        e->window = w->window;
    }
}


void
ngx_http_cost_cap_reject_exit(void)
{
    ngx_queue_t                *q;
    ngx_http_cost_cap_cache_t  *cache;

    cache = ngx_http_cost_cap_cache;
    if (cache == NULL) {
        return;
    }

    while (!ngx_queue_empty(&cache->lru)) {
        q = ngx_queue_head(&cache->lru);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_http_cost_cap_rejected_t, queue));
    }

    ngx_free(cache);
    ngx_http_cost_cap_cache = NULL;
}


static ngx_http_cost_cap_cache_t *
ngx_http_cost_cap_cache_get(void)
{
    ngx_http_cost_cap_cache_t  *cache;

    if (ngx_http_cost_cap_cache) {
        return ngx_http_cost_cap_cache;
    }

    cache = ngx_alloc(sizeof(ngx_http_cost_cap_cache_t), ngx_cycle->log);
    if (cache == NULL) {
        return NULL;
    }

    ngx_rbtree_init(&cache->rbtree, &cache->sentinel,
                    ngx_http_cost_cap_cache_insert);
    ngx_queue_init(&cache->lru);
    cache->n = 0;

    ngx_http_cost_cap_cache = cache;

    return cache;
}


/* a window of a tenant or parent: its counters' prefix and the window */

static size_t
ngx_http_cost_cap_cache_name(ngx_http_cost_cap_rsv_t *rsv,
    ngx_http_cost_cap_win_t *w, u_char *name)
{
    if (w->level == NGX_HTTP_COST_CAP_LEVEL_PARENT) {
        return ngx_sprintf(name, "%*s%s", rsv->pkey_len, rsv->pkey,
                           cc_window_name(w->window))
               - name;
    }

    return ngx_sprintf(name, "%*s%s", rsv->tkey_len, rsv->tkey,
                       cc_window_name(w->window))
           - name;
}


static ngx_http_cost_cap_rejected_t *
ngx_http_cost_cap_cache_find(ngx_http_cost_cap_cache_t *cache, u_char *name,
    size_t len, uint32_t hash)
{
    ngx_int_t                      rc;
    ngx_rbtree_node_t             *node, *sentinel;
    ngx_http_cost_cap_rejected_t  *e;

    node = cache->rbtree.root;
    sentinel = cache->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        e = (ngx_http_cost_cap_rejected_t *) node;

        rc = ngx_memn2cmp(name, e->name, len, (size_t) e->len);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_cost_cap_cache_free(ngx_http_cost_cap_cache_t *cache,
    ngx_http_cost_cap_rejected_t *e)
{
    ngx_queue_remove(&e->queue);
    ngx_rbtree_delete(&cache->rbtree, &e->node);
    ngx_free(e);
    cache->n--;
}


/* as ngx_http_limit_req_rbtree_insert_value(): by hash, then by name */

static void
ngx_http_cost_cap_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_cost_cap_rejected_t   *e, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            e = (ngx_http_cost_cap_rejected_t *) node;
            t = (ngx_http_cost_cap_rejected_t *) temp;

            p = (ngx_memn2cmp(e->name, t->name, e->len, t->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/*
 * Before the round trip: 1 when the request is admitted from a lease of
 * this worker; else the reservation may ask for one (ctx->rsv.lease_max).
 */

ngx_uint_t
ngx_http_cost_cap_lease_admit(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    u_char                      name[sizeof(((ngx_http_cost_cap_lease_t *)
                                             0)->name)];
    size_t                      len;
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_http_cost_cap_rsv_t    *rsv;
    ngx_http_cost_cap_lease_t  *l;
    ngx_http_cost_cap_win_t    *w, *lw;

    rsv = &ctx->rsv;

    if (rsv->estimate == 0 || rsv->idem_len) {
        return 0;
    }

    l = ngx_http_cost_cap_lease_find(rsv, &hash, name, &len);

    if (l && l->pending) {
        /* asked for by another request; this one is reserved exactly */
        if ((ngx_msec_int_t) (ngx_current_msec - l->asked)
            < (ngx_msec_int_t) (2 * ngx_http_cost_cap_main_conf->timeout))
        {
            return 0;
        }

        l->pending = 0;
    }

    if (l && l->amount && l->used + rsv->estimate <= l->amount) {

        for (i = 0; i < rsv->nwin; i++) {
            w = &rsv->win[i];
            lw = &l->rsv.win[i];

            w->start = lw->start;
            w->end = lw->end;
            w->period_len = lw->period_len;
            ngx_memcpy(w->period, lw->period, lw->period_len);
            w->cap = lw->cap;
            w->spent = lw->spent + l->rsv.estimate + l->used;
        }

        rsv->built = 1;
        rsv->status = CC_RESERVE_ADMITTED;
        rsv->now = ngx_http_cost_cap_redis_time(NULL) / 1000;
        rsv->mask = l->rsv.mask;
        rsv->leased = 1;
        ngx_memcpy(rsv->lease_id, l->rsv.id, NGX_HTTP_COST_CAP_OP_ID_LEN);

        l->used += rsv->estimate;

        ngx_http_cost_cap_count(leased, 1);

        return 1;
    }

    if (l && l->amount) {
        /* used up: what is left of it goes back, another may be taken */
        ngx_http_cost_cap_lease_end(l);
        l = NULL;
    }

    if (l == NULL) {
        if (ngx_http_cost_cap_leases == NULL) {
            ngx_http_cost_cap_leases = ngx_calloc(
                                         sizeof(ngx_http_cost_cap_leases_t),
                                         ngx_cycle->log);
            if (ngx_http_cost_cap_leases == NULL) {
                return 0;
            }

            ngx_rbtree_init(&ngx_http_cost_cap_leases->rbtree,
                            &ngx_http_cost_cap_leases->sentinel,
                            ngx_http_cost_cap_lease_insert);
            ngx_queue_init(&ngx_http_cost_cap_leases->all);

            /* data is read as a connection by the debug log of timers */
            ngx_http_cost_cap_leases->watch.handler =
                                              ngx_http_cost_cap_lease_watch;
            ngx_http_cost_cap_leases->watch.data = ngx_http_cost_cap_leases;
            ngx_http_cost_cap_leases->watch.log = ngx_cycle->log;
            ngx_http_cost_cap_leases->watch.cancelable = 1;
        }

        l = ngx_calloc(sizeof(ngx_http_cost_cap_lease_t), ngx_cycle->log);
        if (l == NULL) {
            return 0;
        }

        l->node.key = hash;
        l->len = len;
        ngx_memcpy(l->name, name, len);

        l->timer.handler = ngx_http_cost_cap_lease_timer;
        l->timer.data = l;
        l->timer.log = ngx_cycle->log;

        ngx_rbtree_insert(&ngx_http_cost_cap_leases->rbtree, &l->node);
        ngx_queue_insert_tail(&ngx_http_cost_cap_leases->all, &l->queue);
    }

    l->pending = 1;
    l->asked = ngx_current_msec;

    rsv->lease_max = lcf->lease;
    rsv->lease_headroom = lcf->lease_headroom;

    return 0;
}


/* the answer to a reservation that asked for a lease */

void
ngx_http_cost_cap_lease_answer(ngx_http_cost_cap_ctx_t *ctx,
    ngx_http_cost_cap_loc_conf_t *lcf)
{
    u_char                      name[sizeof(((ngx_http_cost_cap_lease_t *)
                                             0)->name)];
    size_t                      len;
    int64_t                     left, end;
    uint32_t                    hash;
    ngx_uint_t                  i;
    ngx_msec_t                  ttl;
    ngx_http_cost_cap_rsv_t    *rsv;
    ngx_http_cost_cap_lease_t  *l;

    rsv = &ctx->rsv;

    if (rsv->lease_max == 0) {
        return;
    }

    l = ngx_http_cost_cap_lease_find(rsv, &hash, name, &len);

    if (rsv->status != CC_RESERVE_LEASED) {
        if (l && l->pending && l->amount == 0) {
            ngx_http_cost_cap_lease_end(l);
        }

        /* a resend found it applied: the lease went with the lost reply */
        if (rsv->status == CC_RESERVE_APPLIED && rsv->lease > 0) {
            ngx_http_cost_cap_lease_return(rsv, rsv->lease);
        }

        return;
    }

    /* granted: it is this worker's until its time or a period ends */
    if (l == NULL || !l->pending || l->amount) {
        ngx_http_cost_cap_lease_return(rsv, rsv->lease);
        return;
    }

    l->pending = 0;
    l->amount = rsv->lease;
    l->used = 0;
    l->rsv = *rsv;

    ttl = lcf->lease_ttl;
    end = ngx_http_cost_cap_redis_time(NULL);

    for (i = 0; i < rsv->nwin; i++) {
        if (rsv->win[i].end && (rsv->mask & ((uint64_t) 1 << i))) {
            left = rsv->win[i].end * 1000 - end;
            ttl = ngx_min(ttl, (ngx_msec_t) ngx_max(left, 1));
        }
    }

    ngx_add_timer(&l->timer, ttl);

    if (!ngx_http_cost_cap_leases->watch.timer_set) {
        ngx_add_timer(&ngx_http_cost_cap_leases->watch, 100);
    }

    ngx_http_cost_cap_count(leases, 1);
}


/*
 * The log phase of a request admitted from a lease: a refund or an actual
 * cost stays in the lease while it lasts and holds it; 0 when it must go
 * to Redis as any settlement (the lease is back already, or too small).
 */

ngx_uint_t
ngx_http_cost_cap_lease_settle(ngx_http_cost_cap_rsv_t *rsv, int64_t delta)
{
    u_char                      name[sizeof(((ngx_http_cost_cap_lease_t *)
                                             0)->name)];
    size_t                      len;
    uint32_t                    hash;
    ngx_http_cost_cap_lease_t  *l;

    l = ngx_http_cost_cap_lease_find(rsv, &hash, name, &len);

    if (l == NULL || l->amount == 0
        || ngx_memcmp(l->rsv.id, rsv->lease_id, NGX_HTTP_COST_CAP_OP_ID_LEN)
           != 0
        || l->used + delta < 0 || l->used + delta > l->amount)
    {
        return 0;
    }

    l->used += delta;

    return 1;
}


void
ngx_http_cost_cap_lease_exit(void)
{
    ngx_queue_t                *q;
    ngx_http_cost_cap_lease_t  *l;

    if (ngx_http_cost_cap_leases == NULL) {
        return;
    }

    /* what is left is lost to this exit: it was logged when given up */
    while (!ngx_queue_empty(&ngx_http_cost_cap_leases->all)) {
        q = ngx_queue_head(&ngx_http_cost_cap_leases->all);
        l = ngx_queue_data(q, ngx_http_cost_cap_lease_t, queue);
        ngx_http_cost_cap_lease_end(l);
    }

    if (ngx_http_cost_cap_leases->watch.timer_set) {
        ngx_del_timer(&ngx_http_cost_cap_leases->watch);
    }

    ngx_free(ngx_http_cost_cap_leases);
    ngx_http_cost_cap_leases = NULL;
}


/* the lease of rsv's tenant and windows: prefixes, windows and caps */

static ngx_http_cost_cap_lease_t *
ngx_http_cost_cap_lease_find(ngx_http_cost_cap_rsv_t *rsv, uint32_t *hash,
    u_char *name, size_t *len)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_cost_cap_lease_t  *l;

    p = ngx_sprintf(name, "%*s|%*s", rsv->tkey_len, rsv->tkey,
                    rsv->pkey_len, rsv->pkey);

    for (i = 0; i < rsv->nwin; i++) {
        p = ngx_sprintf(p, "|%d%d:%L", (int) rsv->win[i].level,
                        (int) rsv->win[i].window, rsv->win[i].limit);
    }

    *len = p - name;
    *hash = ngx_crc32_short(name, *len);

    if (ngx_http_cost_cap_leases == NULL) {
        return NULL;
    }

    node = ngx_http_cost_cap_leases->rbtree.root;
    sentinel = ngx_http_cost_cap_leases->rbtree.sentinel;

    while (node != sentinel) {

        if (*hash != node->key) {
            node = (*hash < node->key) ? node->left : node->right;
            continue;
        }

        l = (ngx_http_cost_cap_lease_t *) node;

        rc = ngx_memn2cmp(name, l->name, *len, l->len);

        if (rc == 0) {
            return l;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* the lease ends: what was not used of it goes back */

static void
ngx_http_cost_cap_lease_end(ngx_http_cost_cap_lease_t *l)
{
    if (l->timer.timer_set) {
        ngx_del_timer(&l->timer);
    }

    if (l->amount) {
        ngx_http_cost_cap_lease_return(&l->rsv, l->amount - l->used);
    }

    ngx_rbtree_delete(&ngx_http_cost_cap_leases->rbtree, &l->node);
    ngx_queue_remove(&l->queue);
    ngx_free(l);
}


static void
ngx_http_cost_cap_lease_timer(ngx_event_t *ev)
{
    ngx_http_cost_cap_lease_end(ev->data);
}


/* a worker that exits gives its leases back first, not at their end */

static void
ngx_http_cost_cap_lease_watch(ngx_event_t *ev)
{
    ngx_queue_t                *q;
    ngx_http_cost_cap_lease_t  *l;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        while (!ngx_queue_empty(&ngx_http_cost_cap_leases->all)) {
            q = ngx_queue_head(&ngx_http_cost_cap_leases->all);
            l = ngx_queue_data(q, ngx_http_cost_cap_lease_t, queue);
            ngx_http_cost_cap_lease_end(l);
        }

        return;
    }

    if (!ngx_queue_empty(&ngx_http_cost_cap_leases->all)) {
        ngx_add_timer(ev, 100);
    }
}


static void
ngx_http_cost_cap_lease_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_cost_cap_lease_t   *l, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            l = (ngx_http_cost_cap_lease_t *) node;
            t = (ngx_http_cost_cap_lease_t *) temp;

            p = (ngx_memn2cmp(l->name, t->name, l->len, t->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}

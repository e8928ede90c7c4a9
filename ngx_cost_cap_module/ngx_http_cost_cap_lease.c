
/*
 * ngx_cost_cap_module: fewer round trips, the same hard cap (SPEC 13).
 *
 * The reject cache: after a 429, this worker remembers what was left in
 * each window crossed, until cost_cap_reject_cache's time or the period's
 * end, whichever comes first; a request of that tenant whose estimate is
 * more than that is answered 429 without Redis.  Spend only grows between
 * refunds, so this never admits what Redis would refuse: at worst a refund
 * (or a cap raised in a caps hash) is seen that much later.
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


static ngx_http_cost_cap_cache_t  *ngx_http_cost_cap_cache;


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

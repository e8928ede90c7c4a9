/*
 * RESP commands written without hiredis' allocation and sprintf, replies
 * of the reservation script, and reply objects in a static arena.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cc_script.h"


#define CC_ARENA_SIZE  16384


static void *cc_reply_alloc(size_t size);
static int cc_reply_in_arena(const void *p);
static redisReply *cc_reply_new(const redisReadTask *task, int type);
static void *cc_reply_string(const redisReadTask *task, char *str,
    size_t len);
static void *cc_reply_array(const redisReadTask *task, int elements);
static void *cc_reply_integer(const redisReadTask *task, long long value);
static void *cc_reply_nil(const redisReadTask *task);
static void cc_reply_free_tree(redisReply *r);
static void cc_reserve_bad_copy(cc_reserve_reply_t *out,
    const redisReply *value);


redisReplyObjectFunctions  cc_reply_functions = {
    cc_reply_string,
    cc_reply_array,
    cc_reply_integer,
    cc_reply_nil,
    cc_reply_free
};

static union {
    long double     align;
    unsigned char   bytes[CC_ARENA_SIZE];
} cc_arena;

static size_t  cc_arena_used;


static size_t
cc_resp_uint(char *buf, char type, size_t v)
{
    char    tmp[24], *p;
    size_t  n;

    p = tmp + sizeof(tmp);

    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);

    n = tmp + sizeof(tmp) - p;

    if (buf) {
        buf[0] = type;
        memcpy(buf + 1, p, n);
        buf[n + 1] = '\r';
        buf[n + 2] = '\n';
    }

    return n + 3;
}


size_t
cc_resp_command(char *buf, int argc, const char **argv,
    const size_t *argvlen)
{
    int     i;
    size_t  len;

    len = cc_resp_uint(buf, '*', (size_t) argc);

    for (i = 0; i < argc; i++) {
        len += cc_resp_uint(buf ? buf + len : NULL, '$', argvlen[i]);

        /* an empty argument may have no bytes at all (NULL) */
        if (buf && argvlen[i]) {
            memcpy(buf + len, argv[i], argvlen[i]);
        }

        if (buf) {
            buf[len + argvlen[i]] = '\r';
            buf[len + argvlen[i] + 1] = '\n';
        }

        len += argvlen[i] + 2;
    }

    return len;
}


int
cc_reserve_reply_parse(const redisReply *reply, size_t nwin,
    cc_reserve_reply_t *out)
{
    size_t             i, n;
    const redisReply  *e, *pct;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 3 || nwin > CC_RESERVE_WIN_MAX)
    {
        return -1;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        /* the value of a malformed cap is the only string */
        if (e->type != REDIS_REPLY_INTEGER
            && !(i == 4 && e->type == REDIS_REPLY_STRING
                 && reply->element[0]->type == REDIS_REPLY_INTEGER
                 && reply->element[0]->integer == CC_RESERVE_BAD_CAP))
        {
            return -1;
        }
    }

    memset(out, 0, offsetof(cc_reserve_reply_t, win));
    out->nalerts = 0;
    out->bad_len = 0;

    /* the short answers say nothing of the windows: none is enforced */
    for (i = 0; i < nwin; i++) {
        out->win[i].spent = 0;
        out->win[i].cap = -1;
    }

    out->status = (int) reply->element[0]->integer;
    out->now = reply->element[1]->integer;
    out->usec = reply->element[2]->integer;
    out->nwin = nwin;

    switch (out->status) {

    case CC_RESERVE_ADMITTED:
    case CC_RESERVE_REFUSED:
        break;

    case CC_RESERVE_LEASED:
        /* the lease granted closes the reply */
        e = reply->element[reply->elements - 1];

        if (reply->elements < 5 + 2 * nwin || e->integer <= 0) {
            return -1;
        }

        out->lease = e->integer;
        break;

    case CC_RESERVE_APPLIED:
    case CC_RESERVE_CONFLICT:
    case CC_RESERVE_BAD_CAP:
    case CC_RESERVE_BAD_COUNTER:
        if (reply->elements < 4) {
            return -1;
        }

        out->extra = reply->element[3]->integer;

        if (out->status == CC_RESERVE_APPLIED) {
            if (out->extra >= (1LL << CC_RESERVE_WIN_MAX)) {
                return -1;
            }

            out->mask = (uint64_t) out->extra;

            /* the lease it took: lost with the first reply (0: none) */
            if (reply->elements > 4) {
                out->lease = reply->element[4]->integer;

                if (out->lease < 0) {
                    return -1;
                }
            }
        }

        if (out->status == CC_RESERVE_BAD_CAP
            || out->status == CC_RESERVE_BAD_COUNTER)
        {
            out->extra--;
        }

        if (out->status == CC_RESERVE_BAD_CAP && reply->elements > 4) {
            cc_reserve_bad_copy(out, reply->element[4]);
        }

        return (out->extra < 0) ? -1 : 0;

    case CC_RESERVE_STALE:
    case CC_RESERVE_CANCELLED:
    case CC_RESERVE_REPLAY:
        return 0;

    default:
        return -1;
    }

    n = reply->elements - 4 - 2 * nwin - (out->status == CC_RESERVE_LEASED);

    if (reply->elements < 4 + 2 * nwin
        + (out->status == CC_RESERVE_LEASED) || n % 2
        || n / 2 > CC_RESERVE_ALERT_MAX
        || reply->element[3]->integer < 0
        || reply->element[3]->integer >= (1LL << CC_RESERVE_WIN_MAX))
    {
        return -1;
    }

    out->mask = (uint64_t) reply->element[3]->integer;

    for (i = 0; i < nwin; i++) {
        out->win[i].spent = reply->element[4 + 2 * i]->integer;
        out->win[i].cap = reply->element[5 + 2 * i]->integer;

        if (out->win[i].spent < 0 || out->win[i].cap < -1) {
            return -1;
        }
    }

    out->nalerts = n / 2;

    for (i = 0; i < out->nalerts; i++) {
        e = reply->element[4 + 2 * nwin + 2 * i];
        pct = reply->element[5 + 2 * nwin + 2 * i];

        if (e->integer < 1 || (size_t) e->integer > nwin
            || pct->integer < 0 || pct->integer > 100000)
        {
            return -1;
        }

        out->alerts[i].window = (unsigned) e->integer - 1;
        out->alerts[i].percent = (unsigned) pct->integer;
    }

    return 0;
}


/*
 * The value of a malformed cap, for the log: an operator's text, kept
 * short and printable (anything else becomes '?').
 */

static void
cc_reserve_bad_copy(cc_reserve_reply_t *out, const redisReply *value)
{
    size_t         i;
    unsigned char  c;

    out->bad_len = value->len < CC_RESERVE_BAD_MAX ? value->len
                                                   : CC_RESERVE_BAD_MAX;

    for (i = 0; i < out->bad_len; i++) {
        c = (unsigned char) value->str[i];
        out->bad[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char) c : '?';
    }
}


static void *
cc_reply_alloc(size_t size)
{
    void  *p;

    size = (size + 15) & ~(size_t) 15;

    if (size > CC_ARENA_SIZE - cc_arena_used) {
        return calloc(1, size);
    }

    p = cc_arena.bytes + cc_arena_used;
    cc_arena_used += size;
    memset(p, 0, size);

    return p;
}


static int
cc_reply_in_arena(const void *p)
{
    return (const unsigned char *) p >= cc_arena.bytes
           && (const unsigned char *) p < cc_arena.bytes + CC_ARENA_SIZE;
}


/* a node, linked into its parent array as hiredis' own objects are */

static redisReply *
cc_reply_new(const redisReadTask *task, int type)
{
    redisReply  *r, *parent;

    r = cc_reply_alloc(sizeof(redisReply));
    if (r == NULL) {
        return NULL;
    }

    r->type = type;

    if (task->parent) {
        parent = task->parent->obj;
        parent->element[task->idx] = r;
    }

    return r;
}


static void *
cc_reply_string(const redisReadTask *task, char *str, size_t len)
{
    char        *buf;
    redisReply  *r;

    buf = cc_reply_alloc(len + 1);
    if (buf == NULL) {
        return NULL;
    }

    r = cc_reply_new(task, task->type);
    if (r == NULL) {
        if (!cc_reply_in_arena(buf)) {
            free(buf);
        }

        return NULL;
    }

    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;

    return r;
}


static void *
cc_reply_array(const redisReadTask *task, int elements)
{
    redisReply  *r;

    r = cc_reply_new(task, REDIS_REPLY_ARRAY);
    if (r == NULL) {
        return NULL;
    }

    if (elements > 0) {
        r->element = cc_reply_alloc((size_t) elements * sizeof(redisReply *));
        if (r->element == NULL) {
            return NULL;
        }
    }

    r->elements = elements > 0 ? (size_t) elements : 0;

    return r;
}


static void *
cc_reply_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = cc_reply_new(task, REDIS_REPLY_INTEGER);
    if (r) {
        r->integer = value;
    }

    return r;
}


static void *
cc_reply_nil(const redisReadTask *task)
{
    return cc_reply_new(task, REDIS_REPLY_NIL);
}


void
cc_reply_free(void *reply)
{
    if (reply) {
        cc_reply_free_tree(reply);
    }

    cc_arena_used = 0;
}


/* only what did not fit the arena was allocated on its own */

static void
cc_reply_free_tree(redisReply *r)
{
    size_t  i;

    if (r->element) {
        for (i = 0; i < r->elements; i++) {
            if (r->element[i]) {
                cc_reply_free_tree(r->element[i]);
            }
        }

        if (!cc_reply_in_arena(r->element)) {
            free(r->element);
        }
    }

    if (r->str && !cc_reply_in_arena(r->str)) {
        free(r->str);
    }

    if (!cc_reply_in_arena(r)) {
        free(r);
    }
}

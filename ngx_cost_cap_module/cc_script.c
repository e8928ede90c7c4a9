/*
 * The Redis scripts.  Periods come from the Redis server's clock so that
 * every gateway agrees; dates are computed with integer civil-calendar
 * arithmetic (Redis' Lua has no os.date), and written with tostring(), not
 * string.format(): the script runs once per priced request, inside Redis.
 */

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


const char  cc_script_reserve[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1])\n"
    "local est = tonumber(ARGV[1])\n"
    "local f = math.floor\n"
    "local function civil(days)\n"
    "  local z = days + 719468\n"
    "  local era = f(z / 146097)\n"
    "  local doe = z - era * 146097\n"
    "  local yoe = f((doe - f(doe / 1460) + f(doe / 36524) - f(doe"
    " / 146096)) / 365)\n"
    "  local doy = doe - (365 * yoe + f(yoe / 4) - f(yoe / 100))\n"
    "  local mp = f((5 * doy + 2) / 153)\n"
    "  local m = mp < 10 and mp + 3 or mp - 9\n"
    "  return yoe + era * 400 + (m <= 2 and 1 or 0), m, doy -"
    " f((153 * mp + 2) / 5) + 1\n"
    "end\n"
    "local function dfc(y, m)\n"
    "  if m <= 2 then y = y - 1 end\n"
    "  local era = f(y / 400)\n"
    "  local yoe = y - era * 400\n"
    "  local mp = m > 2 and m - 3 or m + 9\n"
    "  return era * 146097 + yoe * 365 + f(yoe / 4) - f(yoe / 100)"
    " + f((153 * mp + 2) / 5) - 719468\n"
    "end\n"
    "local days = f(now / 86400)\n"
    "local y, m, d = civil(days)\n"
    "local ymd = y * 10000 + m * 100 + d\n"
    "local res = {0, now}\n"
    "local keys, ends = {}, {}\n"
    "for i = 3, #ARGV, 2 do\n"
    "  local w, p, e = ARGV[i]\n"
    "  if w == 'day' then\n"
    "    p, e = ymd, (days + 1) * 86400\n"
    "  elseif w == 'month' then\n"
    "    p, e = y * 100 + m, (m == 12 and dfc(y + 1, 1) or dfc(y,"
    " m + 1)) * 86400\n"
    "  elseif w == 'hour' then\n"
    "    p, e = ymd * 100 + f(now % 86400 / 3600), now - now % 3600 + 3600\n"
    "  elseif w == 'minute' then\n"
    "    p, e = ymd * 10000 + f(now % 86400 / 3600) * 100 + f(now"
    " % 3600 / 60), now - now % 60 + 60\n"
    "  elseif w == 'week' then\n"
    "    local wd = (days + 3) % 7\n"
    "    local iy = civil(days - wd + 3)\n"
    "    local wk = f((days - wd + 3 - dfc(iy, 1)) / 7) + 1\n"
    "    p, e = iy .. (wk < 10 and '-W0' or '-W') .. wk, (days -"
    " wd + 7) * 86400\n"
    "  else\n"
    "    p, e = 'all', 0\n"
    "  end\n"
    "  p = tostring(p)\n"
    "  keys[#keys + 1] = KEYS[1] .. w .. ':' .. p\n"
    "  ends[#ends + 1] = e\n"
    "  res[#res + 1] = p\n"
    "  res[#res + 1] = 0\n"
    "  res[#res + 1] = e\n"
    "end\n"
    "local spent = redis.call('MGET', unpack(keys))\n"
    "local ok = true\n"
    "for i = 1, #keys do\n"
    "  local s = tonumber(spent[i] or '0')\n"
    "  res[3 * i + 1] = s\n"
    "  if s + est > tonumber(ARGV[2 * i + 2]) then ok = false end\n"
    "end\n"
    "if ok or ARGV[2] == '1' then\n"
    "  for i = 1, #keys do\n"
    "    if res[3 * i + 1] + est < 9e18 then\n"
    "      redis.call('INCRBY', keys[i], ARGV[1])\n"
    "      if not spent[i] and ends[i] > 0 then\n"
    "        redis.call('EXPIREAT', keys[i], ends[i] + 86400)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if ok then res[1] = 1 end\n"
    "return res\n";


const char  cc_script_settle[] =
    "for i = 2, #ARGV, 2 do\n"
    "  local k = KEYS[1] .. ARGV[i]\n"
    "  local v = redis.call('INCRBY', k, ARGV[1])\n"
    "  if v < 0 then redis.call('SET', k, 0, 'KEEPTTL') end\n"
    "  local e = tonumber(ARGV[i + 1])\n"
    "  if e > 0 and redis.call('TTL', k) == -1 then\n"
    "    redis.call('EXPIREAT', k, e)\n"
    "  end\n"
    "end\n"
    "return 1\n";


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

        if (buf) {
            memcpy(buf + len, argv[i], argvlen[i]);
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
    size_t              i;
    const redisReply   *p, *s, *e;

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || nwin > CC_WIN_MAX
        || reply->elements != 2 + 3 * nwin
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        return -1;
    }

    out->admitted = reply->element[0]->integer == 1;
    out->now = reply->element[1]->integer;
    out->nwin = nwin;

    for (i = 0; i < nwin; i++) {
        p = reply->element[2 + 3 * i];
        s = reply->element[3 + 3 * i];
        e = reply->element[4 + 3 * i];

        if (p->type != REDIS_REPLY_STRING
            || p->len == 0
            || p->len > CC_PERIOD_MAX_LEN
            || s->type != REDIS_REPLY_INTEGER
            || e->type != REDIS_REPLY_INTEGER
            || s->integer < 0
            || e->integer < 0)
        {
            return -1;
        }

        memcpy(out->win[i].period, p->str, p->len);
        out->win[i].period_len = p->len;
        out->win[i].spent = s->integer;
        out->win[i].end = e->integer;
    }

    return 0;
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

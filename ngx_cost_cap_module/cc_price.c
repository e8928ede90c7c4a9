/*
 * Dimensions and the estimate.  The estimate is one fraction built from
 * int64 inputs in a fixed-size unsigned integer wide enough that no
 * product of them can overflow, divided once and rounded up.
 */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cc_price.h"
#include "cc_window.h"


/* 18 x 32 bits: the widest product of the estimate needs about 525 */
#define CC_BIG_LIMBS      18

/* micro-USD = n * gpu_s(micro) * price(micro-USD/h) / (3600 * 10^6) */
#define CC_HOUR_MICRO     3600000000ULL

/* |x| below this prints with "%.6f" in under 24 bytes */
#define CC_NUM_MAX        1e13


typedef struct {
    uint32_t        l[CC_BIG_LIMBS];
} cc_big_t;


#if defined(__SIZEOF_INT128__) && !defined(CC_NO_INT128)
#define CC_HAVE_INT128  1
typedef unsigned __int128  cc_u128_t;
#else
#define CC_HAVE_INT128  0
#endif


/* the frames per output and the steps factor, as fractions */
typedef struct {
    int64_t         w;
    int64_t         h;
    uint64_t        fn;
    uint64_t        fn2;
    uint64_t        fd;
    uint64_t        sn;
    uint64_t        sd;
} cc_terms_t;


static int cc_whole(const cc_val_t *v, int64_t *n);
static int cc_dims_size(const cc_val_t vals[CC_FIELD_MAX], cc_dims_t *dims,
    cc_field_e *bad);
static int cc_dims_count(const cc_val_t *v, int64_t *n, int64_t dflt);
static int cc_est_size(const cc_rule_t *rule, const cc_dims_t *dims,
    cc_terms_t *t, cc_field_e *bad);
static int cc_est_frames(const cc_rule_t *rule, const cc_dims_t *dims,
    cc_terms_t *t, cc_field_e *bad);
static int cc_est_compute(const cc_rule_t *rule, const cc_terms_t *t,
    int64_t n, int64_t price, cc_estimate_t *est);
static void cc_big_set(cc_big_t *a, uint64_t v);
static int cc_big_mul32(cc_big_t *a, uint32_t m);
static int cc_big_mul(cc_big_t *a, uint64_t m);
static int cc_big_add(cc_big_t *a, const cc_big_t *b);
static void cc_big_sub(cc_big_t *a, const cc_big_t *b);
static int cc_big_cmp(const cc_big_t *a, const cc_big_t *b);
static int cc_big_div_ceil(const cc_big_t *num, const cc_big_t *den,
    int64_t *q);
static int cc_big_top(const cc_big_t *a);
#if (CC_HAVE_INT128)
static int cc_est_compute128(const cc_rule_t *rule, const cc_terms_t *t,
    int64_t n, int64_t price, cc_estimate_t *est);
#endif


static const char  *cc_field_names[CC_FIELD_MAX] = {
    "model", "size", "width", "height", "seconds", "frames", "n", "steps"
};

static const char  *cc_field_paths[CC_FIELD_MAX] = {
    "model", "size", "width", "height", "seconds", "num_frames", "n",
    "num_inference_steps"
};


const char *
cc_field_default_path(cc_field_e f)
{
    if ((unsigned) f >= CC_FIELD_MAX) {
        return NULL;
    }

    return cc_field_paths[f];
}


int
cc_field_parse(const char *s, size_t len)
{
    int  f;

    for (f = 0; f < CC_FIELD_MAX; f++) {
        if (strlen(cc_field_names[f]) == len
            && memcmp(cc_field_names[f], s, len) == 0)
        {
            return f;
        }
    }

    return -1;
}


int
cc_val_number(const cc_val_t *v, int64_t *micro)
{
    int    n;
    char   buf[32];

    if (v->type == CC_VAL_STRING) {
        return cc_decimal_parse(v->str, v->len, micro) == CC_DEC_OK ? 0 : -1;
    }

    if (v->type != CC_VAL_NUMBER || !isfinite(v->num)
        || v->num >= CC_NUM_MAX || v->num <= -CC_NUM_MAX)
    {
        return -1;
    }

    /* the one place a double becomes money: correctly rounded by libc */
    n = snprintf(buf, sizeof(buf), "%.6f", fabs(v->num));

    if (n < 8 || (size_t) n >= sizeof(buf)) {
        return -1;
    }

    /* a module that calls setlocale() may have changed the radix char */
    buf[n - 7] = '.';

    if (cc_decimal_parse(buf, (size_t) n, micro) != CC_DEC_OK) {
        return -1;
    }

    if (v->num < 0) {
        *micro = -*micro;
    }

    return 0;
}


int
cc_size_parse(const char *s, size_t len, int64_t *w, int64_t *h)
{
    const char  *x;
    cc_val_t     v;

    x = memchr(s, 'x', len);

    if (x == NULL || memchr(s, '.', len) != NULL) {
        return -1;
    }

    v.type = CC_VAL_STRING;
    v.str = s;
    v.len = (size_t) (x - s);

    if (cc_whole(&v, w) != 0) {
        return -1;
    }

    v.str = x + 1;
    v.len = len - v.len - 1;

    return cc_whole(&v, h);
}


int
cc_dims_from_vals(const cc_val_t vals[CC_FIELD_MAX], cc_dims_t *dims,
    cc_field_e *bad)
{
    const cc_val_t  *v;

    memset(dims, 0, sizeof(cc_dims_t));
    *bad = CC_FIELD_NONE;

    if (vals[CC_FIELD_MODEL].type != CC_VAL_STRING) {
        *bad = CC_FIELD_MODEL;
        return -1;
    }

    dims->model = vals[CC_FIELD_MODEL].str;
    dims->model_len = vals[CC_FIELD_MODEL].len;

    if (cc_dims_size(vals, dims, bad) != 0) {
        return -1;
    }

    if (cc_dims_count(&vals[CC_FIELD_N], &dims->n, 1) != 0) {
        *bad = CC_FIELD_N;
        return -1;
    }

    if (cc_dims_count(&vals[CC_FIELD_STEPS], &dims->steps, 0) != 0) {
        *bad = CC_FIELD_STEPS;
        return -1;
    }

    /* only video models read these: cc_estimate reports them */
    dims->bad_frames = cc_dims_count(&vals[CC_FIELD_FRAMES], &dims->frames,
                                     0) != 0;

    v = &vals[CC_FIELD_SECONDS];

    if (v->type != CC_VAL_ABSENT
        && (cc_val_number(v, &dims->seconds) != 0 || dims->seconds <= 0))
    {
        dims->seconds = 0;
        dims->bad_seconds = 1;
    }

    return 0;
}


int
cc_estimate(const cc_rule_t *rule, const cc_dims_t *dims, int64_t gpu_price,
    cc_estimate_t *est, cc_field_e *bad)
{
    int64_t     n;
    cc_terms_t  t;

    *bad = CC_FIELD_NONE;

    if (cc_est_size(rule, dims, &t, bad) != 0
        || cc_est_frames(rule, dims, &t, bad) != 0)
    {
        return -1;
    }

    n = dims->n > 0 ? dims->n : 1;

    if (rule->max_n > 0 && n > rule->max_n) {
        *bad = CC_FIELD_N;
        return -1;
    }

    t.sn = 1;
    t.sd = CC_MICRO;

    /* steps / (ref_steps / 10^6): sn * 10^6 / sd */
    if (dims->steps > 0 && rule->ref_steps > 0) {
        t.sn = (uint64_t) dims->steps;
        t.sd = (uint64_t) rule->ref_steps;
    }

    if (rule->gpu_price >= 0) {
        gpu_price = rule->gpu_price;
    }

    if (gpu_price < 0 || rule->per_mpx_frame < 0 || rule->base < 0) {
        return -1;
    }

    return cc_est_compute(rule, &t, n, gpu_price, est);
}


static int
cc_whole(const cc_val_t *v, int64_t *n)
{
    int64_t  micro;

    if (cc_val_number(v, &micro) != 0 || micro <= 0 || micro % CC_MICRO) {
        return -1;
    }

    *n = micro / CC_MICRO;

    return 0;
}


static int
cc_dims_size(const cc_val_t vals[CC_FIELD_MAX], cc_dims_t *dims,
    cc_field_e *bad)
{
    const cc_val_t  *s, *w, *h;

    s = &vals[CC_FIELD_SIZE];
    w = &vals[CC_FIELD_WIDTH];
    h = &vals[CC_FIELD_HEIGHT];

    dims->size_field = CC_FIELD_SIZE;

    if (s->type != CC_VAL_ABSENT) {
        if (s->type != CC_VAL_STRING
            || cc_size_parse(s->str, s->len, &dims->width, &dims->height)
               != 0)
        {
            *bad = CC_FIELD_SIZE;
            return -1;
        }

        return 0;
    }

    if (w->type != CC_VAL_ABSENT && cc_whole(w, &dims->width) != 0) {
        *bad = CC_FIELD_WIDTH;
        return -1;
    }

    if (h->type != CC_VAL_ABSENT && cc_whole(h, &dims->height) != 0) {
        *bad = CC_FIELD_HEIGHT;
        return -1;
    }

    if ((w->type == CC_VAL_ABSENT) != (h->type == CC_VAL_ABSENT)) {
        *bad = (w->type == CC_VAL_ABSENT) ? CC_FIELD_WIDTH : CC_FIELD_HEIGHT;
        return -1;
    }

    if (w->type != CC_VAL_ABSENT) {
        dims->size_field = CC_FIELD_WIDTH;
    }

    return 0;
}


static int
cc_dims_count(const cc_val_t *v, int64_t *n, int64_t dflt)
{
    *n = dflt;

    if (v->type == CC_VAL_ABSENT) {
        return 0;
    }

    if (cc_whole(v, n) != 0) {
        *n = 0;
        return -1;
    }

    return 0;
}


static int
cc_est_size(const cc_rule_t *rule, const cc_dims_t *dims, cc_terms_t *t,
    cc_field_e *bad)
{
    if (dims->width > 0 && dims->height > 0) {
        t->w = dims->width;
        t->h = dims->height;

        /* w * h > max  <=>  w > floor(max / h), without the product */
        if (rule->max_pixels > 0 && t->w > rule->max_pixels / t->h) {
            *bad = dims->size_field;
            return -1;
        }

        return 0;
    }

    if (rule->default_width > 0 && rule->default_height > 0) {
        t->w = rule->default_width;
        t->h = rule->default_height;
        return 0;
    }

    *bad = CC_FIELD_SIZE;

    return -1;
}


static int
cc_est_frames(const cc_rule_t *rule, const cc_dims_t *dims, cc_terms_t *t,
    cc_field_e *bad)
{
    cc_big_t  a, b;

    /* frames = fn * fn2 / fd; image models: 1 */
    t->fn = 1;
    t->fn2 = 1;
    t->fd = 1;

    if (rule->fps <= 0) {
        return 0;
    }

    if (dims->bad_frames) {
        *bad = CC_FIELD_FRAMES;
        return -1;
    }

    if (dims->frames > 0) {
        /* frames / fps > max_seconds, both sides times 10^12 */
        cc_big_set(&a, (uint64_t) dims->frames);
        cc_big_set(&b, (uint64_t) rule->max_seconds);

        if (rule->max_seconds > 0
            && (cc_big_mul(&a, CC_MICRO * CC_MICRO) != 0
                || cc_big_mul(&b, (uint64_t) rule->fps) != 0
                || cc_big_cmp(&a, &b) > 0))
        {
            *bad = CC_FIELD_FRAMES;
            return -1;
        }

        t->fn = (uint64_t) dims->frames;
        return 0;
    }

    if (dims->bad_seconds
        || (dims->seconds > 0 && rule->max_seconds > 0
            && dims->seconds > rule->max_seconds))
    {
        *bad = CC_FIELD_SECONDS;
        return -1;
    }

    t->fn = (uint64_t) (dims->seconds > 0 ? dims->seconds
                                          : rule->default_seconds);

    if ((int64_t) t->fn <= 0) {
        *bad = CC_FIELD_SECONDS;
        return -1;
    }

    /* seconds and fps are both millionths: not rounded, kept exact */
    t->fn2 = (uint64_t) rule->fps;
    t->fd = CC_MICRO * CC_MICRO;

    return 0;
}


/*
 * In micro GPU-s, one output is
 *
 *   base + per_mpx * (w * h / 10^6) * (fn * fn2 / fd) * (sn * 10^6 / sd)
 *
 * (sn / sd = 1 / 10^6 when no steps factor applies), so with
 * D = fd * sd the whole request is n * G / D micro GPU-s,
 *
 *   G = base * D + per_mpx * w * h * fn * fn2 * sn,
 *
 * and costs n * G * price / (D * 3600 * 10^6) micro-USD.
 */

static int
cc_est_compute(const cc_rule_t *rule, const cc_terms_t *t, int64_t n,
    int64_t price, cc_estimate_t *est)
{
    cc_big_t  g, v, d;

#if (CC_HAVE_INT128)
    int       rc;

    rc = cc_est_compute128(rule, t, n, price, est);
    if (rc != 1) {
        return rc;
    }
#endif

    cc_big_set(&d, 1);
    cc_big_set(&v, (uint64_t) rule->per_mpx_frame);

    if (cc_big_mul(&d, t->fd) != 0
        || cc_big_mul(&d, t->sd) != 0
        || cc_big_mul(&v, (uint64_t) t->w) != 0
        || cc_big_mul(&v, (uint64_t) t->h) != 0
        || cc_big_mul(&v, t->fn) != 0
        || cc_big_mul(&v, t->fn2) != 0
        || cc_big_mul(&v, t->sn) != 0)
    {
        return -1;
    }

    g = d;

    if (cc_big_mul(&g, (uint64_t) rule->base) != 0
        || cc_big_add(&g, &v) != 0
        || cc_big_mul(&g, (uint64_t) n) != 0
        || cc_big_div_ceil(&g, &d, &est->gpu_seconds) != 0
        || cc_big_mul(&g, (uint64_t) price) != 0
        || cc_big_mul(&d, CC_HOUR_MICRO) != 0
        || cc_big_div_ceil(&g, &d, &est->cost) != 0)
    {
        return -1;
    }

    return 0;
}


#if (CC_HAVE_INT128)

/*
 * The same in 128-bit integers, which hold every realistic request (the
 * products above stay near 2^110): 1 when an intermediate does not fit,
 * for the wide path to take over.
 */

static int
cc_est_compute128(const cc_rule_t *rule, const cc_terms_t *t, int64_t n,
    int64_t price, cc_estimate_t *est)
{
    cc_u128_t  d, v, g, q;

    if (__builtin_mul_overflow((cc_u128_t) t->fd, t->sd, &d)
        || __builtin_mul_overflow((cc_u128_t) rule->per_mpx_frame,
                                  (uint64_t) t->w, &v)
        || __builtin_mul_overflow(v, (uint64_t) t->h, &v)
        || __builtin_mul_overflow(v, t->fn, &v)
        || __builtin_mul_overflow(v, t->fn2, &v)
        || __builtin_mul_overflow(v, t->sn, &v)
        || __builtin_mul_overflow(d, (uint64_t) rule->base, &g)
        || __builtin_add_overflow(g, v, &g)
        || __builtin_mul_overflow(g, (uint64_t) n, &g))
    {
        return 1;
    }

    if (d == 0) {
        return -1;
    }

    q = g / d + (g % d != 0);
    if (q > INT64_MAX) {
        return -1;
    }

    est->gpu_seconds = (int64_t) q;

    if (__builtin_mul_overflow(g, (uint64_t) price, &g)
        || __builtin_mul_overflow(d, CC_HOUR_MICRO, &d))
    {
        return 1;
    }

    q = g / d + (g % d != 0);
    if (q > INT64_MAX) {
        return -1;
    }

    est->cost = (int64_t) q;

    return 0;
}

#endif


static void
cc_big_set(cc_big_t *a, uint64_t v)
{
    memset(a, 0, sizeof(cc_big_t));
    a->l[0] = (uint32_t) v;
    a->l[1] = (uint32_t) (v >> 32);
}


static int
cc_big_mul32(cc_big_t *a, uint32_t m)
{
    int       i;
    uint64_t  c;

    c = 0;

    for (i = 0; i < CC_BIG_LIMBS; i++) {
        c += (uint64_t) a->l[i] * m;
        a->l[i] = (uint32_t) c;
        c >>= 32;
    }

    return c ? -1 : 0;
}


static int
cc_big_mul(cc_big_t *a, uint64_t m)
{
    cc_big_t  hi;

    hi = *a;

    if (cc_big_mul32(a, (uint32_t) m) != 0
        || cc_big_mul32(&hi, (uint32_t) (m >> 32)) != 0
        || hi.l[CC_BIG_LIMBS - 1] != 0)
    {
        return -1;
    }

    /* hi * 2^32: one limb up */
    memmove(&hi.l[1], &hi.l[0], (CC_BIG_LIMBS - 1) * sizeof(uint32_t));
    hi.l[0] = 0;

    return cc_big_add(a, &hi);
}


static int
cc_big_add(cc_big_t *a, const cc_big_t *b)
{
    int       i;
    uint64_t  c;

    c = 0;

    for (i = 0; i < CC_BIG_LIMBS; i++) {
        c += (uint64_t) a->l[i] + b->l[i];
        a->l[i] = (uint32_t) c;
        c >>= 32;
    }

    return c ? -1 : 0;
}


static void
cc_big_sub(cc_big_t *a, const cc_big_t *b)
{
    int       i;
    uint64_t  borrow, x;

    borrow = 0;

    for (i = 0; i < CC_BIG_LIMBS; i++) {
        x = (uint64_t) a->l[i] - b->l[i] - borrow;
        a->l[i] = (uint32_t) x;
        borrow = (x >> 32) & 1;
    }
}


static int
cc_big_cmp(const cc_big_t *a, const cc_big_t *b)
{
    int  i;

    for (i = CC_BIG_LIMBS - 1; i >= 0; i--) {
        if (a->l[i] != b->l[i]) {
            return a->l[i] > b->l[i] ? 1 : -1;
        }
    }

    return 0;
}


/* ceil(num / den) into *q; -1 when it exceeds INT64_MAX */

static int
cc_big_div_ceil(const cc_big_t *num, const cc_big_t *den, int64_t *q)
{
    int       i, j, top, dtop;
    uint64_t  r64;
    cc_big_t  r, zero;

    top = cc_big_top(num);
    dtop = cc_big_top(den);

    /* num >= 2^top >= 2^(dtop + 64) > den * 2^63: the quotient is too big */
    if (dtop < 0 || top - dtop > 63) {
        return -1;
    }

    memset(&r, 0, sizeof(cc_big_t));
    memset(&zero, 0, sizeof(cc_big_t));
    r64 = 0;

    /* binary long division: r < den < 2^(32 * CC_BIG_LIMBS - 1) */
    for (i = top; i >= 0; i--) {
        for (j = CC_BIG_LIMBS - 1; j > 0; j--) {
            r.l[j] = r.l[j] << 1 | r.l[j - 1] >> 31;
        }

        r.l[0] = r.l[0] << 1 | (num->l[i / 32] >> (i % 32) & 1);

        if (cc_big_cmp(&r, den) >= 0) {
            if (i >= 63) {
                return -1;
            }

            cc_big_sub(&r, den);
            r64 |= (uint64_t) 1 << i;
        }
    }

    if (cc_big_cmp(&r, &zero) != 0) {
        r64++;
    }

    if (r64 > INT64_MAX) {
        return -1;
    }

    *q = (int64_t) r64;

    return 0;
}


/* the index of the highest set bit, -1 for zero */

static int
cc_big_top(const cc_big_t *a)
{
    int  i;

    for (i = CC_BIG_LIMBS - 1; i >= 0; i--) {
        if (a->l[i]) {
            return i * 32 + 31 - __builtin_clz(a->l[i]);
        }
    }

    return -1;
}

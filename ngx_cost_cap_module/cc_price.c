/*
 * Dimensions and the estimate.  The estimate is one fraction built from
 * int64 inputs in a fixed-size unsigned integer wide enough that no
 * product of them can overflow, divided once and rounded up.
 */

#include <string.h>

#include "cc_price.h"
#include "cc_window.h"


/* 20 x 32 bits: the widest numerator of the estimate needs under 580 */
#define CC_BIG_LIMBS      20

/* micro-USD = n * gpu_s(micro) * price(micro-USD/h) / (3600 * 10^6) */
#define CC_HOUR_MICRO     3600000000ULL

/* the most significant digits of a number that can matter in int64 */
#define CC_NUM_DIGITS     21


typedef struct {
    uint32_t        l[CC_BIG_LIMBS];
} cc_big_t;


#if defined(__SIZEOF_INT128__) && !defined(CC_NO_INT128)
#define CC_HAVE_INT128  1
typedef unsigned __int128  cc_u128_t;
#else
#define CC_HAVE_INT128  0
#endif


/*
 * The terms of one estimate: pixels, frames per output (fn * fn2 / fd),
 * the steps factor (sn / sd), the seconds of the list price (tn / td).
 */
typedef struct {
    int64_t         w;
    int64_t         h;
    uint64_t        fn;
    uint64_t        fn2;
    uint64_t        fd;
    uint64_t        sn;
    uint64_t        sd;
    uint64_t        tn;
    uint64_t        td;
} cc_terms_t;


static int cc_val_text(const cc_val_t *v, const char **s, size_t *len);
static int cc_whole(const cc_val_t *v, int64_t *n);
static int cc_dims_size(const cc_val_t vals[CC_FIELD_MAX], unsigned named,
    cc_dims_t *dims, cc_field_e *bad);
static int cc_dims_count(const cc_val_t *v, unsigned named, int64_t *n,
    int64_t dflt);
static int cc_est_size(const cc_rule_t *rule, const cc_dims_t *dims,
    cc_terms_t *t, cc_field_e *bad);
static int cc_est_frames(const cc_rule_t *rule, const cc_dims_t *dims,
    cc_terms_t *t, cc_field_e *bad);
static int cc_est_seconds(const cc_rule_t *rule, const cc_dims_t *dims,
    cc_terms_t *t, cc_field_e *bad);
static int cc_est_compute(const cc_rule_t *rule, const cc_terms_t *t,
    int64_t n, int64_t price, cc_estimate_t *est);
static uint64_t cc_gcd(uint64_t a, uint64_t b);
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


const char *
cc_field_name(cc_field_e f)
{
    if ((unsigned) f >= CC_FIELD_MAX) {
        return NULL;
    }

    return cc_field_names[f];
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
cc_number_parse(const char *s, size_t len, int64_t *micro)
{
    int          neg, eneg;
    char         d[CC_NUM_DIGITS];
    size_t       i, nd, nfrac;
    int64_t      exp, k, m, r;
    const char  *last;

    last = s + len;
    neg = (s < last && *s == '-');
    s += neg;

    /* the significant digits (the first CC_NUM_DIGITS of them) */
    nd = 0;
    nfrac = 0;

    if (s == last || *s < '0' || *s > '9' || (*s == '0' && last - s > 1
                                              && s[1] >= '0' && s[1] <= '9'))
    {
        return -1;
    }

    for ( /* void */ ; s < last && *s >= '0' && *s <= '9'; s++) {
        if (nd || *s != '0') {
            if (nd < CC_NUM_DIGITS) {
                d[nd] = *s;
            }

            nd++;
        }
    }

    if (s < last && *s == '.') {
        s++;

        if (s == last || *s < '0' || *s > '9') {
            return -1;
        }

        for ( /* void */ ; s < last && *s >= '0' && *s <= '9'; s++) {
            if (nd || *s != '0') {
                if (nd < CC_NUM_DIGITS) {
                    d[nd] = *s;
                }

                nd++;
            }

            nfrac++;
        }
    }

    exp = 0;

    if (s < last && (*s == 'e' || *s == 'E')) {
        s++;
        eneg = (s < last && *s == '-');

        if (s < last && (*s == '+' || *s == '-')) {
            s++;
        }

        if (s == last || *s < '0' || *s > '9') {
            return -1;
        }

        for ( /* void */ ; s < last && *s >= '0' && *s <= '9'; s++) {
            /* beyond a billion it is zero or too large either way */
            if (exp < 1000000000) {
                exp = exp * 10 + (*s - '0');
            }
        }

        if (eneg) {
            exp = -exp;
        }
    }

    if (s != last) {
        return -1;
    }

    if (nd == 0) {
        *micro = 0;
        return 0;
    }

    /*
     * value = digits x 10^(exp - nfrac - (digits after the kept ones)):
     * m digits of the significant ones are whole millionths
     */
    if (nfrac > (size_t) INT64_MAX / 2 || nd > (size_t) INT64_MAX / 2) {
        return -1;
    }

    k = exp - (int64_t) nfrac + 6;
    m = (int64_t) nd + k;

    if (m > 19) {
        return -1;
    }

    r = 0;

    for (i = 0; (int64_t) i < m; i++) {
        k = (i < nd) ? d[i] - '0' : 0;

        if (r > (INT64_MAX - k) / 10) {
            return -1;
        }

        r = r * 10 + k;
    }

    /* the first digit dropped rounds: halves away from zero */
    if (m >= 0 && (size_t) m < nd && d[m] >= '5') {
        if (r == INT64_MAX) {
            return -1;
        }

        r++;
    }

    *micro = neg ? -r : r;

    return 0;
}


int
cc_val_number(const cc_val_t *v, int64_t *micro)
{
    if (v->type == CC_VAL_STRING) {
        return cc_decimal_parse(v->str, v->len, micro) == CC_DEC_OK ? 0 : -1;
    }

    if (v->type == CC_VAL_NUMBER) {
        return cc_number_parse(v->str, v->len, micro);
    }

    return -1;
}


int
cc_when_holds(const cc_str_t *values, size_t n, const cc_val_t *v)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (values[i].len == 1 && values[i].data[0] == '-') {
            if (v->type == CC_VAL_ABSENT) {
                return 1;
            }

            continue;
        }

        if (cc_when_names(&values[i], 1, v)) {
            return 1;
        }
    }

    return 0;
}


int
cc_when_names(const cc_str_t *values, size_t n, const cc_val_t *v)
{
    size_t       i, len;
    const char  *s;

    if (cc_val_text(v, &s, &len) != 0) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (values[i].len == 1 && values[i].data[0] == '-') {
            continue;
        }

        if (values[i].len == len && memcmp(values[i].data, s, len) == 0) {
            return 1;
        }
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
cc_dims_from_vals(const cc_val_t vals[CC_FIELD_MAX], unsigned named,
    cc_dims_t *dims, cc_field_e *bad)
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

    if (cc_dims_size(vals, named, dims, bad) != 0) {
        return -1;
    }

    if (cc_dims_count(&vals[CC_FIELD_N], named >> CC_FIELD_N & 1, &dims->n,
                      1)
        != 0)
    {
        *bad = CC_FIELD_N;
        return -1;
    }

    if (cc_dims_count(&vals[CC_FIELD_STEPS], named >> CC_FIELD_STEPS & 1,
                      &dims->steps, 0)
        != 0)
    {
        *bad = CC_FIELD_STEPS;
        return -1;
    }

    /* only video rules read these: cc_estimate reports them */
    dims->bad_frames = cc_dims_count(&vals[CC_FIELD_FRAMES],
                                     named >> CC_FIELD_FRAMES & 1,
                                     &dims->frames, 0)
                       != 0;

    v = &vals[CC_FIELD_SECONDS];

    if (v->type != CC_VAL_ABSENT
        && (cc_val_number(v, &dims->seconds) != 0 || dims->seconds <= 0))
    {
        dims->seconds = 0;
        dims->bad_seconds = !(named >> CC_FIELD_SECONDS & 1);
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
        || cc_est_frames(rule, dims, &t, bad) != 0
        || cc_est_seconds(rule, dims, &t, bad) != 0)
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

    if (gpu_price < 0 || rule->per_mpx_frame < 0 || rule->base < 0
        || rule->usd_per_output < 0 || rule->usd_per_second < 0
        || rule->usd_per_mpx < 0)
    {
        return -1;
    }

    return cc_est_compute(rule, &t, n, gpu_price, est);
}


/* the text a when= condition compares: -1 when the value has none */

static int
cc_val_text(const cc_val_t *v, const char **s, size_t *len)
{
    if (v->type != CC_VAL_STRING && v->type != CC_VAL_NUMBER
        && v->type != CC_VAL_BOOL)
    {
        return -1;
    }

    *s = v->str;
    *len = v->len;

    return 0;
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
cc_dims_size(const cc_val_t vals[CC_FIELD_MAX], unsigned named,
    cc_dims_t *dims, cc_field_e *bad)
{
    int              wa, ha;
    const cc_val_t  *s, *w, *h;

    s = &vals[CC_FIELD_SIZE];
    w = &vals[CC_FIELD_WIDTH];
    h = &vals[CC_FIELD_HEIGHT];

    dims->size_field = CC_FIELD_SIZE;

    if (s->type != CC_VAL_ABSENT) {
        if (s->type == CC_VAL_STRING
            && cc_size_parse(s->str, s->len, &dims->width, &dims->height)
               == 0)
        {
            return 0;
        }

        dims->width = 0;
        dims->height = 0;

        /* "auto" named by the rule: its default_size */
        if (!(named >> CC_FIELD_SIZE & 1)) {
            *bad = CC_FIELD_SIZE;
            return -1;
        }
    }

    wa = (w->type == CC_VAL_ABSENT);
    ha = (h->type == CC_VAL_ABSENT);

    if (!wa && cc_whole(w, &dims->width) != 0) {
        if (!(named >> CC_FIELD_WIDTH & 1)) {
            *bad = CC_FIELD_WIDTH;
            return -1;
        }

        wa = 1;
    }

    if (!ha && cc_whole(h, &dims->height) != 0) {
        if (!(named >> CC_FIELD_HEIGHT & 1)) {
            *bad = CC_FIELD_HEIGHT;
            return -1;
        }

        ha = 1;
    }

    if (wa != ha) {
        *bad = wa ? CC_FIELD_WIDTH : CC_FIELD_HEIGHT;
        return -1;
    }

    if (wa) {
        dims->width = 0;
        dims->height = 0;

    } else {
        dims->size_field = CC_FIELD_WIDTH;
    }

    return 0;
}


static int
cc_dims_count(const cc_val_t *v, unsigned named, int64_t *n, int64_t dflt)
{
    *n = dflt;

    if (v->type == CC_VAL_ABSENT) {
        return 0;
    }

    if (cc_whole(v, n) != 0) {
        *n = dflt;
        return named ? 0 : -1;
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

    /* a rule priced per output or per second needs no pixels */
    if (rule->per_mpx_frame == 0 && rule->usd_per_mpx == 0) {
        t->w = 0;
        t->h = 0;
        return 0;
    }

    *bad = CC_FIELD_SIZE;

    return -1;
}


/* the GPU term's frames: a video rule's (fps), else one */

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
 * The list price's seconds, tn / td: the request's seconds, else its
 * frames / fps, else default_seconds.
 */

static int
cc_est_seconds(const cc_rule_t *rule, const cc_dims_t *dims, cc_terms_t *t,
    cc_field_e *bad)
{
    t->tn = 0;
    t->td = 1;

    if (rule->usd_per_second <= 0) {
        return 0;
    }

    if (dims->bad_seconds
        || (dims->seconds > 0 && rule->max_seconds > 0
            && dims->seconds > rule->max_seconds))
    {
        *bad = CC_FIELD_SECONDS;
        return -1;
    }

    if (dims->seconds > 0) {
        t->tn = (uint64_t) dims->seconds;
        t->td = CC_MICRO;
        return 0;
    }

    if (rule->fps > 0 && dims->frames > 0) {
        /* frames / (fps / 10^6): cc_est_frames checked max_seconds */
        t->tn = (uint64_t) dims->frames * CC_MICRO;
        t->td = (uint64_t) rule->fps;

        if (t->tn / CC_MICRO != (uint64_t) dims->frames) {
            return -1;
        }

        return 0;
    }

    if (rule->default_seconds > 0) {
        t->tn = (uint64_t) rule->default_seconds;
        t->td = CC_MICRO;
        return 0;
    }

    *bad = CC_FIELD_SECONDS;

    return -1;
}


/*
 * In micro GPU-s, one output is
 *
 *   base + per_mpx * (w * h / 10^6) * (fn * fn2 / fd) * (sn * 10^6 / sd)
 *
 * (sn / sd = 1 / 10^6 when no steps factor applies), so with
 * D = fd * sd (1 when there is no per_mpx) the whole request is n * G / D
 * micro GPU-s,
 *
 *   G = base * D + per_mpx * w * h * fn * fn2 * sn.
 *
 * In micro-USD, with H = 3600 * 10^6, seconds tn / td, g = gcd(td, H)
 * and t' = td / g, the request costs n * N / Q where Q = D * H * t' and
 *
 *   N = G * price * t'                            the GPU time
 *     + usd_per_output * Q
 *     + usd_per_second * tn * D * (H / g)
 *     + usd_per_mpx * w * h * D * 3600 * t'       (w * h / 10^6 Mpx)
 */

static int
cc_est_compute(const cc_rule_t *rule, const cc_terms_t *t, int64_t n,
    int64_t price, cc_estimate_t *est)
{
    uint64_t  g, tp, fd, sd;
    cc_big_t  gg, v, d, q, num;

#if (CC_HAVE_INT128)
    int       rc;

    rc = cc_est_compute128(rule, t, n, price, est);
    if (rc != 1) {
        return rc;
    }
#endif

    fd = rule->per_mpx_frame ? t->fd : 1;
    sd = rule->per_mpx_frame ? t->sd : 1;
    g = cc_gcd(t->td, CC_HOUR_MICRO);
    tp = t->td / g;

    cc_big_set(&d, 1);
    cc_big_set(&v, (uint64_t) rule->per_mpx_frame);

    if (cc_big_mul(&d, fd) != 0
        || cc_big_mul(&d, sd) != 0
        || cc_big_mul(&v, (uint64_t) t->w) != 0
        || cc_big_mul(&v, (uint64_t) t->h) != 0
        || cc_big_mul(&v, t->fn) != 0
        || cc_big_mul(&v, t->fn2) != 0
        || cc_big_mul(&v, t->sn) != 0)
    {
        return -1;
    }

    gg = d;

    /* G, then n * G / D micro GPU-s */
    if (cc_big_mul(&gg, (uint64_t) rule->base) != 0
        || cc_big_add(&gg, &v) != 0)
    {
        return -1;
    }

    num = gg;

    if (cc_big_mul(&num, (uint64_t) n) != 0
        || cc_big_div_ceil(&num, &d, &est->gpu_seconds) != 0)
    {
        return -1;
    }

    /* Q = D * H * t' */
    q = d;

    if (cc_big_mul(&q, CC_HOUR_MICRO) != 0 || cc_big_mul(&q, tp) != 0) {
        return -1;
    }

    /* N: the GPU time */
    num = gg;

    if (cc_big_mul(&num, (uint64_t) price) != 0
        || cc_big_mul(&num, tp) != 0)
    {
        return -1;
    }

    /* per output */
    v = q;

    if (cc_big_mul(&v, (uint64_t) rule->usd_per_output) != 0
        || cc_big_add(&num, &v) != 0)
    {
        return -1;
    }

    /* per second */
    v = d;

    if (cc_big_mul(&v, (uint64_t) rule->usd_per_second) != 0
        || cc_big_mul(&v, t->tn) != 0
        || cc_big_mul(&v, CC_HOUR_MICRO / g) != 0
        || cc_big_add(&num, &v) != 0)
    {
        return -1;
    }

    /* per megapixel */
    v = d;

    if (cc_big_mul(&v, (uint64_t) rule->usd_per_mpx) != 0
        || cc_big_mul(&v, (uint64_t) t->w) != 0
        || cc_big_mul(&v, (uint64_t) t->h) != 0
        || cc_big_mul(&v, 3600 * tp) != 0
        || cc_big_add(&num, &v) != 0)
    {
        return -1;
    }

    if (cc_big_mul(&num, (uint64_t) n) != 0
        || cc_big_div_ceil(&num, &q, &est->cost) != 0)
    {
        return -1;
    }

    return 0;
}


static uint64_t
cc_gcd(uint64_t a, uint64_t b)
{
    uint64_t  r;

    while (b) {
        r = a % b;
        a = b;
        b = r;
    }

    return a;
}


#if (CC_HAVE_INT128)

/*
 * The same in 128-bit integers, which hold every realistic request: 1
 * when an intermediate does not fit, for the wide path to take over.
 */

static int
cc_est_compute128(const cc_rule_t *rule, const cc_terms_t *t, int64_t n,
    int64_t price, cc_estimate_t *est)
{
    uint64_t   g, tp;
    cc_u128_t  d, v, gg, q, num, x;

    g = cc_gcd(t->td, CC_HOUR_MICRO);
    tp = t->td / g;
    d = 1;

    if (rule->per_mpx_frame
        && __builtin_mul_overflow((cc_u128_t) t->fd, t->sd, &d))
    {
        return 1;
    }

    if (__builtin_mul_overflow((cc_u128_t) rule->per_mpx_frame,
                               (uint64_t) t->w, &v)
        || __builtin_mul_overflow(v, (uint64_t) t->h, &v)
        || __builtin_mul_overflow(v, t->fn, &v)
        || __builtin_mul_overflow(v, t->fn2, &v)
        || __builtin_mul_overflow(v, t->sn, &v)
        || __builtin_mul_overflow(d, (uint64_t) rule->base, &gg)
        || __builtin_add_overflow(gg, v, &gg)
        || __builtin_mul_overflow(gg, (uint64_t) n, &num))
    {
        return 1;
    }

    x = num / d + (num % d != 0);
    if (x > INT64_MAX) {
        return -1;
    }

    est->gpu_seconds = (int64_t) x;

    if (__builtin_mul_overflow(d, CC_HOUR_MICRO, &q)
        || __builtin_mul_overflow(q, tp, &q)
        || __builtin_mul_overflow(gg, (uint64_t) price, &num)
        || __builtin_mul_overflow(num, tp, &num)
        || __builtin_mul_overflow(q, (uint64_t) rule->usd_per_output, &v)
        || __builtin_add_overflow(num, v, &num)
        || __builtin_mul_overflow(d, (uint64_t) rule->usd_per_second, &v)
        || __builtin_mul_overflow(v, t->tn, &v)
        || __builtin_mul_overflow(v, CC_HOUR_MICRO / g, &v)
        || __builtin_add_overflow(num, v, &num)
        || __builtin_mul_overflow(d, (uint64_t) rule->usd_per_mpx, &v)
        || __builtin_mul_overflow(v, (uint64_t) t->w, &v)
        || __builtin_mul_overflow(v, (uint64_t) t->h, &v)
        || __builtin_mul_overflow(v, 3600 * tp, &v)
        || __builtin_add_overflow(num, v, &num)
        || __builtin_mul_overflow(num, (uint64_t) n, &num))
    {
        return 1;
    }

    x = num / q + (num % q != 0);
    if (x > INT64_MAX) {
        return -1;
    }

    est->cost = (int64_t) x;

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

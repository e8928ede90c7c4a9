/*
 * libFuzzer: decimals, sizes, tenants, periods and the estimate from raw
 * bytes, with round-trip and monotonicity checks.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_price.h"
#include "cc_window.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int64_t
take(const uint8_t **p, size_t *n)
{
    int64_t  v;

    v = 0;

    if (*n >= 8) {
        memcpy(&v, *p, 8);
        *p += 8;
        *n -= 8;
    }

    return v;
}


static void
text(const char *s, size_t len)
{
    char     buf[CC_DECIMAL_MAX_LEN];
    size_t   n;
    int64_t  v, back, w, h;

    if (cc_decimal_parse(s, len, &v) == CC_DEC_OK) {
        n = cc_decimal_format(v, buf);

        if (cc_decimal_parse(buf, n, &back) != CC_DEC_OK || back != v) {
            abort();
        }
    }

    if (cc_size_parse(s, len, &w, &h) == 0 && (w <= 0 || h <= 0)) {
        abort();
    }

    /* a JSON number's millionths: exact, so its negation is symmetric */
    if (cc_number_parse(s, len, &v) == 0 && len && s[0] != '-' && len < 64) {
        char  neg[64];

        neg[0] = '-';
        memcpy(neg + 1, s, len);

        if (cc_number_parse(neg, len + 1, &back) != 0 || back != -v) {
            abort();
        }
    }

    (void) cc_tenant_valid(s, len);
}


static void
numbers(const uint8_t *p, size_t n)
{
    int            w;
    char           buf[CC_PERIOD_MAX_LEN + 1];
    size_t         len;
    int64_t        t, end, a, b;
    cc_rule_t      r;
    cc_dims_t      d;
    cc_field_e     bad;
    cc_estimate_t  e1, e2;

    t = take(&p, &n);

    for (w = 0; w < CC_WIN_MAX; w++) {
        buf[CC_PERIOD_MAX_LEN] = 'Z';
        len = cc_window_period(w, t, buf, &end);

        if (len > CC_PERIOD_MAX_LEN || buf[CC_PERIOD_MAX_LEN] != 'Z'
            || (len && w != CC_WIN_TOTAL && end <= t))
        {
            abort();
        }
    }

    memset(&r, 0, sizeof(r));
    memset(&d, 0, sizeof(d));
    r.per_mpx_frame = take(&p, &n);
    r.base = take(&p, &n);
    r.usd_per_output = take(&p, &n) & 0xffffffffff;
    r.usd_per_second = take(&p, &n) & 0xffffffffff;
    r.usd_per_mpx = take(&p, &n) & 0xffffffffff;
    r.fps = take(&p, &n) & 0xffffffffff;
    r.ref_steps = take(&p, &n);
    r.default_seconds = take(&p, &n);
    r.max_seconds = take(&p, &n);
    r.default_width = 1024;
    r.default_height = 1024;
    r.gpu_price = -1;
    d.width = take(&p, &n) & 0xffff;
    d.height = take(&p, &n) & 0xffff;
    d.seconds = take(&p, &n) & 0xffffffff;
    d.frames = take(&p, &n) & 0xffff;
    d.steps = take(&p, &n) & 0xffff;
    d.n = 1;
    a = take(&p, &n) & 0xffffffffff;

    if (cc_estimate(&r, &d, a, &e1, &bad) == 0) {
        d.n = 2;
        b = cc_estimate(&r, &d, a, &e2, &bad);

        if (e1.cost < 0 || (b == 0 && e2.cost < e1.cost)
            || (b == 0 && e2.gpu_seconds < e1.gpu_seconds))
        {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char  *s;

    s = malloc(size ? size : 1);
    memcpy(s, data, size);
    text(s, size);
    free(s);

    numbers(data, size);

    return 0;
}

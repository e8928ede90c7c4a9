/*
 * libFuzzer: a JSON body through the scanner (whole, and again in two
 * pieces split where the first byte says), then the values through dims,
 * when= conditions and the estimate.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_json.h"
#include "cc_price.h"


#define NP  12


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char  *fuzz_paths[NP] = {
    "model", "size", "width", "height", "seconds", "num_frames", "n",
    "num_inference_steps", "input.width", "input", "a.b.c", "quality"
};


static void
check_vals(const cc_val_t *vals, const char *buf, size_t size)
{
    size_t  i;

    for (i = 0; i < NP; i++) {
        switch (vals[i].type) {

        case CC_VAL_STRING:
        case CC_VAL_NUMBER:
            if (vals[i].len > CC_VAL_MAX_LEN
                || (vals[i].len
                    && (vals[i].str < buf
                        || vals[i].str + vals[i].len > buf + size)))
            {
                abort();
            }

            break;

        case CC_VAL_BOOL:
            if (vals[i].len != 4 && vals[i].len != 5) {
                abort();
            }

            break;

        default:
            if (vals[i].str != NULL || vals[i].len != 0) {
                abort();
            }
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            rc, rc2;
    char          *body, *buf, *buf2;
    size_t         i, k, bad, bsize;
    cc_val_t       vals[NP], vals2[NP];
    cc_path_t      paths[NP];
    cc_json_t      j;
    cc_dims_t      dims;
    cc_rule_t      rule;
    cc_field_e     f;
    cc_estimate_t  est;

    static cc_str_t  when[] = { { "low", 3 }, { "-", 1 }, { "4", 1 },
                                { "true", 4 } };

    for (i = 0; i < NP; i++) {
        paths[i].data = fuzz_paths[i];
        paths[i].len = strlen(fuzz_paths[i]);
    }

    /* exact-size copies: ASan sees any overread */
    body = malloc(size ? size : 1);
    memcpy(body, data, size);

    /* a small buffer sometimes, to run out of it */
    bsize = (size && (data[0] & 1)) ? 16 : NP * CC_VAL_MAX_LEN;
    buf = malloc(bsize);
    buf2 = malloc(bsize);

    rc = cc_json_scan(body, size, paths, NP, vals, buf, bsize, &bad);

    if (rc != CC_JSON_OK && rc != CC_JSON_MORE && rc != CC_JSON_INVALID
        && rc != CC_JSON_DUPLICATE)
    {
        abort();
    }

    if (rc == CC_JSON_DUPLICATE && bad >= NP) {
        abort();
    }

    check_vals(vals, buf, bsize);

    /* in two pieces: the same answer and values */
    k = size ? data[0] % (size + 1) : 0;

    if (cc_json_init(&j, paths, NP, vals2, buf2, bsize) != 0) {
        abort();
    }

    (void) cc_json_feed(&j, body, k);
    (void) cc_json_feed(&j, body + k, size - k);
    rc2 = cc_json_end(&j);

    if (rc2 != rc || (rc == CC_JSON_DUPLICATE && j.bad != bad)) {
        abort();
    }

    for (i = 0; i < NP; i++) {
        if (vals[i].type != vals2[i].type || vals[i].len != vals2[i].len
            || (vals[i].len
                && memcmp(vals[i].str, vals2[i].str, vals[i].len) != 0))
        {
            abort();
        }

        (void) cc_when_holds(when, 4, &vals[i]);

        if (cc_when_names(when, 4, &vals[i]) && !cc_when_holds(when, 4,
                                                                &vals[i]))
        {
            abort();
        }
    }

    free(body);

    if (rc == CC_JSON_OK
        && cc_dims_from_vals(vals, data[0] & 0xff, &dims, &f) == 0)
    {
        memset(&rule, 0, sizeof(rule));
        rule.per_mpx_frame = 900000;
        rule.usd_per_output = 1000;
        rule.usd_per_second = 100000;
        rule.usd_per_mpx = 25000;
        rule.fps = 24000000;
        rule.ref_steps = 25000000;
        rule.default_width = 1280;
        rule.default_height = 720;
        rule.default_seconds = 4000000;
        rule.max_seconds = 12000000;
        rule.gpu_price = -1;

        if (cc_estimate(&rule, &dims, 3500000, &est, &f) == 0
            && (est.cost < 0 || est.gpu_seconds < 0 || f != CC_FIELD_NONE))
        {
            abort();
        }
    }

    free(buf);
    free(buf2);

    return 0;
}

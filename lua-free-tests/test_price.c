/*
 * cc_price: fields, numbers, dimensions and the exact estimate.  Every
 * expected estimate is worked out by hand in the comment above it.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cc_price.h"
#include "cc_window.h"


#define S(lit)  lit, sizeof(lit) - 1
#define M       CC_MICRO


static cc_val_t
vstr(const char *s)
{
    cc_val_t  v;

    memset(&v, 0, sizeof(v));
    v.type = CC_VAL_STRING;
    v.str = s;
    v.len = strlen(s);

    return v;
}


/* a JSON number as written */

static cc_val_t
vnum(const char *lit)
{
    cc_val_t  v;

    memset(&v, 0, sizeof(v));
    v.type = CC_VAL_NUMBER;
    v.str = lit;
    v.len = strlen(lit);

    return v;
}


static cc_val_t
vtype(cc_val_type_e t)
{
    cc_val_t  v;

    memset(&v, 0, sizeof(v));
    v.type = t;

    return v;
}


static void
vals_init(cc_val_t vals[CC_FIELD_MAX], const char *model)
{
    int  f;

    for (f = 0; f < CC_FIELD_MAX; f++) {
        vals[f] = vtype(CC_VAL_ABSENT);
    }

    vals[CC_FIELD_MODEL] = vstr(model);
}


static cc_rule_t
video_rule(void)
{
    cc_rule_t  r;

    /* sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720
       default_seconds=4 max_seconds=12 */
    memset(&r, 0, sizeof(r));
    r.per_mpx_frame = 900000;
    r.fps = 24 * M;
    r.default_width = 1280;
    r.default_height = 720;
    r.default_seconds = 4 * M;
    r.max_seconds = 12 * M;
    r.gpu_price = -1;

    return r;
}


static cc_rule_t
image_rule(void)
{
    cc_rule_t  r;

    memset(&r, 0, sizeof(r));
    r.per_mpx_frame = 1500000;
    r.base = 2 * M;
    r.ref_steps = 25 * M;
    r.default_width = 1024;
    r.default_height = 1024;
    r.gpu_price = -1;

    return r;
}


static int
estimate(const cc_rule_t *r, const cc_val_t vals[CC_FIELD_MAX],
    int64_t price, cc_estimate_t *est, cc_field_e *bad)
{
    cc_dims_t  dims;

    if (cc_dims_from_vals(vals, 0, &dims, bad) != 0) {
        return -2;
    }

    return cc_estimate(r, &dims, price, est, bad);
}


static void
test_fields(void **state)
{
    int          f;
    const char  *p;

    assert_int_equal(cc_field_parse(S("model")), CC_FIELD_MODEL);
    assert_int_equal(cc_field_parse(S("size")), CC_FIELD_SIZE);
    assert_int_equal(cc_field_parse(S("width")), CC_FIELD_WIDTH);
    assert_int_equal(cc_field_parse(S("height")), CC_FIELD_HEIGHT);
    assert_int_equal(cc_field_parse(S("seconds")), CC_FIELD_SECONDS);
    assert_int_equal(cc_field_parse(S("frames")), CC_FIELD_FRAMES);
    assert_int_equal(cc_field_parse(S("n")), CC_FIELD_N);
    assert_int_equal(cc_field_parse(S("steps")), CC_FIELD_STEPS);
    assert_int_equal(cc_field_parse(S("")), -1);
    assert_int_equal(cc_field_parse(S("Model")), -1);
    assert_int_equal(cc_field_parse(S("num_frames")), -1);
    assert_int_equal(cc_field_parse("steps", 4), -1);

    assert_string_equal(cc_field_default_path(CC_FIELD_FRAMES), "num_frames");
    assert_string_equal(cc_field_default_path(CC_FIELD_STEPS),
                        "num_inference_steps");
    assert_string_equal(cc_field_default_path(CC_FIELD_N), "n");
    assert_null(cc_field_default_path(CC_FIELD_NONE));

    for (f = 0; f < CC_FIELD_MAX; f++) {
        p = cc_field_default_path(f);
        assert_non_null(p);
        assert_true(strlen(p) > 0);
    }
}


static void
test_val_number_invalid(void **state)
{
    int64_t   m;
    cc_val_t  v;

    m = 7;
    v = vnum("NaN");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("1e999");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("-1e999");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("1e300");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("-1e300");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("1e13");
    assert_int_equal(cc_val_number(&v, &m), -1);
    /* just over INT64_MAX millionths */
    v = vnum("9223372036855.0");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("9223372036854.7758075");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("-9223372036854.775808");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vnum("92233720368547758070000e-9");
    assert_int_equal(cc_val_number(&v, &m), -1);

    /* not JSON numbers */
    {
        size_t       i;
        const char  *no[] = {
            "", "-", "01", "-01", "1.", ".5", "+1", "1e", "1e+", "--1",
            "0x10", "1 ", " 1", "1.5.5", "1e5e5", "Infinity", "1,5", "1e1.5"
        };

        for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
            v = vnum(no[i]);
            if (cc_val_number(&v, &m) != -1) {
                fail_msg("a number: \"%s\"", no[i]);
            }
        }
    }

    assert_int_equal(m, 7);

    v = vtype(CC_VAL_ABSENT);
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vtype(CC_VAL_OTHER);
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vtype(CC_VAL_LONG);
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr("1");
    v.type = CC_VAL_BOOL;
    assert_int_equal(cc_val_number(&v, &m), -1);

    v = vstr("");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr("-1");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr("1e3");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr("4.");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr(".5");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr(" 4");
    assert_int_equal(cc_val_number(&v, &m), -1);
    v = vstr("99999999999999999999");
    assert_int_equal(cc_val_number(&v, &m), -1);
    assert_int_equal(m, 7);
}


static void
test_val_number_valid(void **state)
{
    int64_t   m;
    cc_val_t  v;

    v = vnum("4");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 4 * M);
    v = vnum("0.1");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 100000);
    /* the decimal as written, halves away from zero */
    v = vnum("0.0000005");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 1);
    v = vnum("0.00000049999999999999999");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 0);
    v = vnum("-0.0000005");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, -1);
    v = vnum("0.0000015");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 2);
    v = vnum("2.9999999");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 3 * M);
    v = vnum("1.0000004");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, M);
    v = vnum("0");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 0);
    v = vnum("-0.0");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 0);

    /* negatives come back so that the caller can name the field */
    v = vnum("-2.5");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, -2500000);
    v = vnum("1e12");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_true(m == 1000000000000LL * M);

    /* exponents, and the ends of int64 */
    {
        size_t  i;
        struct {
            const char  *lit;
            int64_t      micro;
        } yes[] = {
            { "25e-1", 2500000 }, { "1E+2", 100000000 }, { "2.5E0", 2500000 },
            { "0e999999999999999999", 0 }, { "0.000e-3", 0 },
            { "1e-999999999999999999999", 0 }, { "1e-7", 0 },
            { "5e-7", 1 }, { "4.9e-7", 0 }, { "15e-7", 2 },
            { "0.0000010", 1 }, { "100e-2", 1000000 },
            { "9223372036854.775807", INT64_MAX },
            { "9223372036854.7758074999", INT64_MAX },
            { "-9223372036854.775807", -INT64_MAX },
            { "9223372036854775807e-6", INT64_MAX },
            { "0.9223372036854775807e13", INT64_MAX },
            { "123456789012345678901234567890e-25", 12345678901LL },
            { "-0", 0 }, { "-0e-0", 0 }, { "10", 10 * M },
            { "1.5e1", 15 * M }, { "000", -2 }
        };

        for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
            if (yes[i].micro == -2) {
                continue;
            }

            v = vnum(yes[i].lit);
            m = 7;

            if (cc_val_number(&v, &m) != 0 || m != yes[i].micro) {
                fail_msg("%s: %lld", yes[i].lit, (long long) m);
            }
        }
    }

    v = vstr("12.000001");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 12000001);
    v = vstr("0");
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 0);

    /* the length, not a NUL, ends the string */
    v = vstr("123");
    v.len = 2;
    assert_int_equal(cc_val_number(&v, &m), 0);
    assert_int_equal(m, 12 * M);
}


static void
test_size_parse(void **state)
{
    int64_t  w, h;

    assert_int_equal(cc_size_parse(S("1280x720"), &w, &h), 0);
    assert_int_equal(w, 1280);
    assert_int_equal(h, 720);
    assert_int_equal(cc_size_parse(S("01x1"), &w, &h), 0);
    assert_int_equal(w, 1);
    assert_int_equal(cc_size_parse(S("9223372036854x1"), &w, &h), 0);
    assert_true(w == 9223372036854LL);

    assert_int_equal(cc_size_parse(S("1280X720"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1280 x 720"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1280x"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("x720"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("x"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S(""), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1280"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("0x720"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1280x0"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1280.0x720"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1280x720.5"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("-1x720"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("1x2x3"), &w, &h), -1);
    assert_int_equal(cc_size_parse(S("9223372036855x1"), &w, &h), -1);
    assert_int_equal(cc_size_parse("1x2\0", 4, &w, &h), -1);
}


static void
test_dims_model(void **state)
{
    cc_val_t    vals[CC_FIELD_MAX];
    cc_dims_t   d;
    cc_field_e  bad;

    vals_init(vals, "sora-2");
    vals[CC_FIELD_MODEL] = vtype(CC_VAL_ABSENT);
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_MODEL);

    vals[CC_FIELD_MODEL] = vnum("2");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_MODEL);

    vals[CC_FIELD_MODEL] = vtype(CC_VAL_OTHER);
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_MODEL);

    vals_init(vals, "sora-2");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_int_equal(bad, CC_FIELD_NONE);
    assert_int_equal(d.model_len, 6);
    assert_memory_equal(d.model, "sora-2", 6);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.width, 0);
    assert_int_equal(d.seconds, 0);
    assert_int_equal(d.frames, 0);
    assert_int_equal(d.steps, 0);
    assert_int_equal(d.size_field, CC_FIELD_SIZE);
    assert_false(d.bad_seconds);
    assert_false(d.bad_frames);
}


static void
test_dims_size(void **state)
{
    cc_val_t    vals[CC_FIELD_MAX];
    cc_dims_t   d;
    cc_field_e  bad;

    /* size wins, even over garbage width/height */
    vals_init(vals, "m");
    vals[CC_FIELD_SIZE] = vstr("1280x720");
    vals[CC_FIELD_WIDTH] = vstr("junk");
    vals[CC_FIELD_HEIGHT] = vtype(CC_VAL_OTHER);
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_int_equal(d.width, 1280);
    assert_int_equal(d.height, 720);
    assert_int_equal(d.size_field, CC_FIELD_SIZE);

    vals[CC_FIELD_SIZE] = vnum("1280");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);
    vals[CC_FIELD_SIZE] = vstr("1280*720");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);

    /* one of width/height alone names the missing one */
    vals_init(vals, "m");
    vals[CC_FIELD_WIDTH] = vnum("1280");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_HEIGHT);
    vals_init(vals, "m");
    vals[CC_FIELD_HEIGHT] = vstr("720");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_WIDTH);

    vals_init(vals, "m");
    vals[CC_FIELD_WIDTH] = vnum("1280.0");
    vals[CC_FIELD_HEIGHT] = vstr("720");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_int_equal(d.width, 1280);
    assert_int_equal(d.height, 720);
    assert_int_equal(d.size_field, CC_FIELD_WIDTH);

    vals[CC_FIELD_WIDTH] = vnum("1280.5");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_WIDTH);
    vals[CC_FIELD_WIDTH] = vnum("0");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_WIDTH);
    vals[CC_FIELD_WIDTH] = vnum("-1280");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_WIDTH);
    vals[CC_FIELD_WIDTH] = vnum("1280");
    vals[CC_FIELD_HEIGHT] = vstr("720.0");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    vals[CC_FIELD_HEIGHT] = vstr("720.1");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_HEIGHT);
    vals[CC_FIELD_HEIGHT] = vnum("NaN");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_HEIGHT);
}


static void
test_dims_counts(void **state)
{
    cc_val_t    vals[CC_FIELD_MAX];
    cc_dims_t   d;
    cc_field_e  bad;

    vals_init(vals, "m");
    vals[CC_FIELD_N] = vnum("4");
    vals[CC_FIELD_STEPS] = vstr("50");
    vals[CC_FIELD_FRAMES] = vnum("96.0");
    vals[CC_FIELD_SECONDS] = vstr("2.5");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.steps, 50);
    assert_int_equal(d.frames, 96);
    assert_int_equal(d.seconds, 2500000);

    vals[CC_FIELD_N] = vnum("0");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_N);
    vals[CC_FIELD_N] = vnum("1.5");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_N);
    vals[CC_FIELD_N] = vtype(CC_VAL_OTHER);
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_N);
    vals[CC_FIELD_N] = vstr("2");
    vals[CC_FIELD_STEPS] = vnum("-50");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_STEPS);
    vals[CC_FIELD_STEPS] = vstr("50.5");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_STEPS);
    vals[CC_FIELD_STEPS] = vtype(CC_VAL_ABSENT);

    /* bad seconds/frames are recorded, not reported (image models) */
    vals[CC_FIELD_FRAMES] = vnum("2.5");
    vals[CC_FIELD_SECONDS] = vnum("0");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_true(d.bad_frames);
    assert_true(d.bad_seconds);
    assert_int_equal(d.frames, 0);
    assert_int_equal(d.seconds, 0);

    vals[CC_FIELD_FRAMES] = vtype(CC_VAL_OTHER);
    vals[CC_FIELD_SECONDS] = vnum("-3");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_true(d.bad_frames);
    assert_true(d.bad_seconds);

    vals[CC_FIELD_FRAMES] = vtype(CC_VAL_ABSENT);
    vals[CC_FIELD_SECONDS] = vstr("abc");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_false(d.bad_frames);
    assert_true(d.bad_seconds);

    vals[CC_FIELD_SECONDS] = vnum("0.000001");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), 0);
    assert_false(d.bad_seconds);
    assert_int_equal(d.seconds, 1);
}


static void
test_estimate_sora(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    /*
     * 1280x720 = 0.9216 Mpx, 4 s x 24 fps = 96 frames:
     * gpu_s = 0.9 x 0.9216 x 96 = 79.62624;
     * cost = 79.62624 x 3.50 / 3600 = 0.0774144 USD -> 77415 (ceil 77414.4)
     */
    r = video_rule();
    vals_init(vals, "sora-2");
    vals[CC_FIELD_SIZE] = vstr("1280x720");
    vals[CC_FIELD_SECONDS] = vstr("4");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 77415);
    assert_int_equal(est.gpu_seconds, 79626240);
    assert_int_equal(bad, CC_FIELD_NONE);

    /* the same from the rule's defaults alone */
    vals_init(vals, "sora-2");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 77415);

    /*
     * 100 frames: gpu_s = 0.9 x 0.9216 x 100 = 82.944;
     * cost = 82.944 x 3.5 / 3600 = 290.304 / 3600 = 0.08064 exactly ->
     * 80640, where doubles give 80640.00000000001 -> 80641.
     */
    vals[CC_FIELD_FRAMES] = vnum("100");
    vals[CC_FIELD_SECONDS] = vstr("garbage: frames win");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 80640);
    assert_int_equal(est.gpu_seconds, 82944000);

    /* n = 3 and a rule price of 2.40/h: 3 x 82.944 x 2.4 / 3600 = 0.165888 */
    vals[CC_FIELD_N] = vstr("3");
    r.gpu_price = 2400000;
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 165888);
    assert_int_equal(est.gpu_seconds, 248832000);

    /* a rule price of 0 is a price: free */
    r.gpu_price = 0;
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 0);
    assert_int_equal(est.gpu_seconds, 248832000);
}


static void
test_estimate_frames_not_rounded(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    memset(&r, 0, sizeof(r));
    r.per_mpx_frame = M;
    r.fps = 24 * M;
    r.gpu_price = -1;

    /* 0.1 s x 24 fps = 2.4 frames of 1 Mpx: 2.4 GPU-s x 3.6/3600 = 0.0024 */
    vals_init(vals, "v");
    vals[CC_FIELD_SIZE] = vstr("1000x1000");
    vals[CC_FIELD_SECONDS] = vnum("0.1");
    assert_int_equal(estimate(&r, vals, 3600000, &est, &bad), 0);
    assert_int_equal(est.cost, 2400);
    assert_int_equal(est.gpu_seconds, 2400000);

    /* 29.97 fps x 1 s = 29.97 GPU-s; x 3.6 / 3600 = 0.02997 */
    r.fps = 29970000;
    vals[CC_FIELD_SECONDS] = vstr("1");
    assert_int_equal(estimate(&r, vals, 3600000, &est, &bad), 0);
    assert_int_equal(est.cost, 29970);
    assert_int_equal(est.gpu_seconds, 29970000);

    /*
     * 23.976 fps x 0.000001 s = 0.000023976 frames; 640x480 = 0.3072 Mpx:
     * gpu_s = 0.000023976 x 0.3072 = 0.0000073654272 -> ceil 8 micro;
     * cost = 0.0000073654272 x 3.6 / 3600 = 7.3654272e-9 USD -> ceil 1
     */
    r.fps = 23976000;
    vals[CC_FIELD_SIZE] = vstr("640x480");
    vals[CC_FIELD_SECONDS] = vstr("0.000001");
    assert_int_equal(estimate(&r, vals, 3600000, &est, &bad), 0);
    assert_int_equal(est.cost, 1);
    assert_int_equal(est.gpu_seconds, 8);
}


static void
test_estimate_image(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    /*
     * base=2 per_mpx_frame=1.5 ref_steps=25, 1024x1024 = 1.048576 Mpx,
     * steps 50 (factor 2), n=4, price 2.00/h:
     * gpu_s = 2 + 1.5 x 1.048576 x 1 x 2 = 5.145728 per output,
     * x 4 = 20.582912 GPU-s;
     * cost = 20.582912 x 2 / 3600 = 0.01143495111... -> 11435
     */
    r = image_rule();
    vals_init(vals, "flux");
    vals[CC_FIELD_N] = vnum("4");
    vals[CC_FIELD_STEPS] = vnum("50");
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 20582912);
    assert_int_equal(est.cost, 11435);

    /* images ignore seconds and frames, even invalid ones */
    vals[CC_FIELD_SECONDS] = vstr("-1");
    vals[CC_FIELD_FRAMES] = vnum("1e300");
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.cost, 11435);
    vals[CC_FIELD_SECONDS] = vnum("100000");
    vals[CC_FIELD_FRAMES] = vnum("100000");
    r.max_seconds = M;
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.cost, 11435);

    /*
     * steps without ref_steps: factor 1.  gpu_s = 2 + 1.5 x 1.048576 =
     * 3.572864, x 4 = 14.291456; x 2 / 3600 = 0.0079397... -> 7940
     * (28.582912 / 3600 = 0.00793969777...)
     */
    r.ref_steps = 0;
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 14291456);
    assert_int_equal(est.cost, 7940);

    /*
     * steps 7 of ref 3.5 (millionths ratio 2) == steps 50 of 25 above;
     * steps 1 of ref 3: factor 1/3: 2 + 1.5 x 1.048576 / 3 = 2.524288 per
     * output, x 4 = 10.097152; x 2 / 3600 = 0.00560952888... -> 5610
     */
    r.ref_steps = 3500000;
    vals[CC_FIELD_STEPS] = vnum("7");
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 20582912);
    r.ref_steps = 3 * M;
    vals[CC_FIELD_STEPS] = vnum("1");
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 10097152);
    assert_int_equal(est.cost, 5610);

    /* no steps given: factor 1 whatever ref_steps is */
    vals[CC_FIELD_STEPS] = vtype(CC_VAL_ABSENT);
    assert_int_equal(estimate(&r, vals, 2000000, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 14291456);
}


static void
test_estimate_round_up(void **state)
{
    cc_rule_t      r;
    cc_dims_t      d;
    cc_field_e     bad;
    cc_estimate_t  est;

    /* 1 px at 0.000001 GPU-s/Mpx = 1e-12 GPU-s: both round up to 1 */
    memset(&r, 0, sizeof(r));
    memset(&d, 0, sizeof(d));
    r.per_mpx_frame = 1;
    r.gpu_price = -1;
    d.width = 1;
    d.height = 1;
    d.n = 1;
    assert_int_equal(cc_estimate(&r, &d, 1, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 1);
    assert_int_equal(est.cost, 1);

    /* a free rule costs exactly 0 */
    r.per_mpx_frame = 0;
    assert_int_equal(cc_estimate(&r, &d, 3500000, &est, &bad), 0);
    assert_int_equal(est.gpu_seconds, 0);
    assert_int_equal(est.cost, 0);

    /* n 0 in hand-made dims means 1: base 1 GPU-s at 3600/h = 1 USD */
    r.base = M;
    d.n = 0;
    assert_int_equal(cc_estimate(&r, &d, 3600 * M, &est, &bad), 0);
    assert_int_equal(est.cost, M);
    assert_int_equal(est.gpu_seconds, M);
}


static void
test_estimate_limits(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    r = video_rule();
    r.max_pixels = 921600;
    r.max_n = 2;

    vals_init(vals, "sora-2");
    vals[CC_FIELD_SIZE] = vstr("1280x720");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    vals[CC_FIELD_SIZE] = vstr("1280x721");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);
    vals[CC_FIELD_SIZE] = vstr("9223372036854x9223372036854");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);

    vals_init(vals, "sora-2");
    vals[CC_FIELD_WIDTH] = vnum("721");
    vals[CC_FIELD_HEIGHT] = vnum("1280");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_WIDTH);

    /* 12 s is the limit; 12.000001 crosses it */
    vals_init(vals, "sora-2");
    vals[CC_FIELD_SECONDS] = vstr("12");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    vals[CC_FIELD_SECONDS] = vstr("12.000001");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);
    vals[CC_FIELD_SECONDS] = vnum("0");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);

    /* 288 frames / 24 fps = 12 s; 289 is 12.04 s */
    vals_init(vals, "sora-2");
    vals[CC_FIELD_FRAMES] = vnum("288");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    vals[CC_FIELD_FRAMES] = vnum("289");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_FRAMES);
    vals[CC_FIELD_FRAMES] = vnum("-1");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_FRAMES);
    vals[CC_FIELD_FRAMES] = vstr("9223372036854");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_FRAMES);

    /* 29.97 fps: 359 frames = 11.98 s, 360 frames = 12.012 s */
    r.fps = 29970000;
    vals[CC_FIELD_FRAMES] = vnum("359");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    vals[CC_FIELD_FRAMES] = vnum("360");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_FRAMES);

    vals_init(vals, "sora-2");
    vals[CC_FIELD_N] = vnum("2");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    vals[CC_FIELD_N] = vnum("3");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_N);
}


static void
test_estimate_missing(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    r = video_rule();
    r.default_width = 0;
    vals_init(vals, "sora-2");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);

    r = video_rule();
    r.default_seconds = 0;
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);

    /* a video model reports bad seconds when no frames are given */
    vals[CC_FIELD_SECONDS] = vstr("four");
    r = video_rule();
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);

    /* and bad frames even with good seconds */
    vals[CC_FIELD_SECONDS] = vstr("4");
    vals[CC_FIELD_FRAMES] = vnum("2.5");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_FRAMES);
}


static void
test_estimate_overflow(void **state)
{
    cc_rule_t      r;
    cc_dims_t      d;
    cc_field_e     bad;
    cc_estimate_t  est;

    /* base = INT64_MAX micro GPU-s at 3600 USD/h: cost = INT64_MAX */
    memset(&r, 0, sizeof(r));
    memset(&d, 0, sizeof(d));
    r.base = INT64_MAX;
    r.gpu_price = -1;
    d.width = 1;
    d.height = 1;
    d.n = 1;
    assert_int_equal(cc_estimate(&r, &d, 3600 * M, &est, &bad), 0);
    assert_true(est.cost == INT64_MAX);
    assert_true(est.gpu_seconds == INT64_MAX);

    /* twice that does not fit: no field at fault */
    d.n = 2;
    bad = CC_FIELD_MODEL;
    assert_int_equal(cc_estimate(&r, &d, 3600 * M, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_NONE);

    /* gpu-seconds fit, cost one micro-USD over */
    d.n = 1;
    assert_int_equal(cc_estimate(&r, &d, 3600 * M + 1, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_NONE);

    /* every input at its maximum: the wide integer must not wrap */
    r.base = INT64_MAX;
    r.per_mpx_frame = INT64_MAX;
    r.fps = INT64_MAX;
    r.ref_steps = 1;
    r.default_seconds = INT64_MAX;
    d.width = INT64_MAX;
    d.height = INT64_MAX;
    d.steps = INT64_MAX;
    d.n = INT64_MAX;
    assert_int_equal(cc_estimate(&r, &d, INT64_MAX, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_NONE);

    d.frames = INT64_MAX;
    assert_int_equal(cc_estimate(&r, &d, INT64_MAX, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_NONE);

    /* ...and a tiny result from huge factors still divides exactly */
    memset(&r, 0, sizeof(r));
    r.per_mpx_frame = 1;
    r.fps = INT64_MAX;
    r.ref_steps = INT64_MAX;
    r.gpu_price = -1;
    memset(&d, 0, sizeof(d));
    d.width = 1;
    d.height = 1;
    d.n = 1;
    d.steps = 1;
    d.seconds = 1;
    assert_int_equal(cc_estimate(&r, &d, 1, &est, &bad), 0);
    assert_int_equal(est.cost, 1);
    assert_int_equal(est.gpu_seconds, 1);

    /* negative rule values are not a price */
    r.per_mpx_frame = -1;
    assert_int_equal(cc_estimate(&r, &d, 1, &est, &bad), -1);
    r.per_mpx_frame = 1;
    assert_int_equal(cc_estimate(&r, &d, -1, &est, &bad), -1);
}


/* the estimate against a plain long double formula on easy inputs */

static void
test_estimate_sweep(void **state)
{
    int            w, s, n;
    cc_rule_t      r;
    cc_dims_t      d;
    cc_field_e     bad;
    cc_estimate_t  est;
    long double    gpu, cost;

    r = video_rule();
    memset(&d, 0, sizeof(d));

    for (w = 64; w <= 4096; w += 320) {
        for (s = 1; s <= 12; s++) {
            for (n = 1; n <= 4; n++) {
                d.width = w;
                d.height = w / 2 + 8;
                d.seconds = (int64_t) s * M / 2;
                d.n = n;
                assert_int_equal(cc_estimate(&r, &d, 3500000, &est, &bad), 0);

                gpu = 0.9L * w * (w / 2 + 8) / 1e6L * 24 * s / 2 * n;
                cost = gpu * 3.5L / 3600;
                assert_true(fabsl(est.gpu_seconds - gpu * 1e6L) < 1.0L);
                assert_true(est.gpu_seconds >= gpu * 1e6L - 1e-3L);
                assert_true(fabsl(est.cost - cost * 1e6L) < 1.0L);
                assert_true(est.cost >= cost * 1e6L - 1e-3L);
            }
        }
    }
}


static int
estimate_named(const cc_rule_t *r, const cc_val_t vals[CC_FIELD_MAX],
    unsigned named, cc_estimate_t *est, cc_field_e *bad)
{
    cc_dims_t  dims;

    if (cc_dims_from_vals(vals, named, &dims, bad) != 0) {
        return -2;
    }

    return cc_estimate(r, &dims, 3500000, est, bad);
}


static void
test_when(void **state)
{
    cc_val_t        v;
    static cc_str_t  low[] = { { "low", 3 } };
    static cc_str_t  hi[] = { { "high", 4 }, { "auto", 4 }, { "-", 1 } };
    static cc_str_t  num[] = { { "4", 1 }, { "8", 1 }, { "true", 4 } };
    static cc_str_t  dash[] = { { "-", 1 } };

    v = vstr("low");
    assert_true(cc_when_holds(low, 1, &v));
    assert_true(cc_when_names(low, 1, &v));
    assert_false(cc_when_holds(hi, 3, &v));

    /* exact and case-sensitive, the whole text */
    v = vstr("Low");
    assert_false(cc_when_holds(low, 1, &v));
    v = vstr("lo");
    assert_false(cc_when_holds(low, 1, &v));
    v = vstr("low ");
    assert_false(cc_when_holds(low, 1, &v));
    v = vstr("lowx");
    v.len = 3;
    assert_true(cc_when_holds(low, 1, &v));

    /* "-" is absent, and only absent */
    v = vtype(CC_VAL_ABSENT);
    assert_true(cc_when_holds(hi, 3, &v));
    assert_false(cc_when_names(hi, 3, &v));
    assert_false(cc_when_holds(low, 1, &v));
    v = vstr("-");
    assert_false(cc_when_holds(dash, 1, &v));
    assert_false(cc_when_names(dash, 1, &v));
    v = vstr("");
    assert_false(cc_when_holds(dash, 1, &v));

    /* numbers as written, booleans as text */
    v = vnum("4");
    assert_true(cc_when_holds(num, 3, &v));
    assert_true(cc_when_names(num, 3, &v));
    v = vnum("4.0");
    assert_false(cc_when_holds(num, 3, &v));
    v = vstr("8");
    assert_true(cc_when_holds(num, 3, &v));
    v = vstr("true");
    v.type = CC_VAL_BOOL;
    assert_true(cc_when_holds(num, 3, &v));

    /* objects, arrays and over-long values are present and match nothing */
    v = vtype(CC_VAL_OTHER);
    assert_false(cc_when_holds(hi, 3, &v));
    assert_false(cc_when_holds(dash, 1, &v));
    v = vtype(CC_VAL_LONG);
    assert_false(cc_when_holds(hi, 3, &v));
    assert_false(cc_when_names(hi, 3, &v));
}


static void
test_named_defaults(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_dims_t      d;
    cc_field_e     bad;
    cc_estimate_t  est;

    /* size "auto": 400 unless the rule names it; then its default_size */
    r = image_rule();
    vals_init(vals, "flux");
    vals[CC_FIELD_SIZE] = vstr("auto");
    assert_int_equal(estimate_named(&r, vals, 0, &est, &bad), -2);
    assert_int_equal(bad, CC_FIELD_SIZE);
    assert_int_equal(estimate_named(&r, vals, 1 << CC_FIELD_SIZE, &est,
                                    &bad), 0);
    /* image_rule at 1024x1024: 2 + 1.5 x 1.048576 = 3.572864 GPU-s */
    assert_int_equal(cc_dims_from_vals(vals, 1 << CC_FIELD_SIZE, &d, &bad),
                     0);
    assert_int_equal(d.width, 0);
    assert_int_equal(est.gpu_seconds, 3572864);

    /* ... and then width and height, when given, still count */
    vals[CC_FIELD_WIDTH] = vnum("512");
    vals[CC_FIELD_HEIGHT] = vnum("512");
    assert_int_equal(cc_dims_from_vals(vals, 1 << CC_FIELD_SIZE, &d, &bad),
                     0);
    assert_int_equal(d.width, 512);
    assert_int_equal(d.size_field, CC_FIELD_WIDTH);

    /* a named size of its form is a size */
    vals_init(vals, "flux");
    vals[CC_FIELD_SIZE] = vstr("64x32");
    assert_int_equal(cc_dims_from_vals(vals, 1 << CC_FIELD_SIZE, &d, &bad),
                     0);
    assert_int_equal(d.width, 64);

    /* the others: n, steps, width, seconds, frames */
    vals_init(vals, "flux");
    vals[CC_FIELD_N] = vstr("all");
    vals[CC_FIELD_STEPS] = vstr("auto");
    vals[CC_FIELD_SECONDS] = vstr("auto");
    vals[CC_FIELD_FRAMES] = vstr("auto");
    assert_int_equal(cc_dims_from_vals(vals, 0, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_N);
    assert_int_equal(cc_dims_from_vals(vals, 1 << CC_FIELD_N, &d, &bad), -1);
    assert_int_equal(bad, CC_FIELD_STEPS);
    assert_int_equal(cc_dims_from_vals(vals, 1 << CC_FIELD_N
                                       | 1 << CC_FIELD_STEPS, &d, &bad), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.steps, 0);
    assert_true(d.bad_seconds);
    assert_true(d.bad_frames);
    assert_int_equal(cc_dims_from_vals(vals, 0xff, &d, &bad), 0);
    assert_false(d.bad_seconds);
    assert_false(d.bad_frames);

    vals_init(vals, "flux");
    vals[CC_FIELD_WIDTH] = vstr("auto");
    vals[CC_FIELD_HEIGHT] = vnum("512");
    assert_int_equal(cc_dims_from_vals(vals, 1 << CC_FIELD_WIDTH, &d, &bad),
                     -1);
    assert_int_equal(bad, CC_FIELD_WIDTH);
}


static void
test_estimate_list_prices(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    /* per output: 0.25 x 3 = 0.75; no pixels needed, none read */
    memset(&r, 0, sizeof(r));
    r.gpu_price = -1;
    r.usd_per_output = 250000;
    vals_init(vals, "gpt-image-1");
    vals[CC_FIELD_N] = vnum("3");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 750000);
    assert_int_equal(est.gpu_seconds, 0);

    /* images ignore seconds, even bad ones */
    vals[CC_FIELD_SECONDS] = vstr("x");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 750000);

    /* max_pixels still bounds a given size */
    r.max_pixels = 1572864;
    vals[CC_FIELD_SIZE] = vstr("1536x1025");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);

    /* per megapixel: 0.025 x 1024 x 768 / 10^6 = 0.0196608 -> 19661 */
    memset(&r, 0, sizeof(r));
    r.gpu_price = -1;
    r.usd_per_mpx = 25000;
    vals_init(vals, "fal-ai/flux/dev");
    vals[CC_FIELD_SIZE] = vstr("1024x768");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 19661);

    /* x 4 images = 0.0786432 -> 78644 (rounded once, not 4 x 19661) */
    vals[CC_FIELD_N] = vnum("4");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 78644);

    /* pixels are needed */
    vals_init(vals, "fal-ai/flux/dev");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SIZE);
    r.default_width = 1024;
    r.default_height = 1024;
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 26215);

    /* per second without fps: the request's seconds, else the default */
    memset(&r, 0, sizeof(r));
    r.gpu_price = -1;
    r.usd_per_second = 400000;
    r.default_seconds = 8 * M;
    r.max_seconds = 8 * M;
    vals_init(vals, "veo-3.1-generate-001");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 3200000);
    vals[CC_FIELD_SECONDS] = vnum("4");
    vals[CC_FIELD_N] = vstr("2");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 3200000);
    vals[CC_FIELD_SECONDS] = vnum("8.000001");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);
    vals[CC_FIELD_SECONDS] = vstr("four");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);

    /* frames without fps are not read */
    vals[CC_FIELD_SECONDS] = vtype(CC_VAL_ABSENT);
    vals[CC_FIELD_FRAMES] = vstr("junk");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 6400000);

    /* no seconds and no default */
    r.default_seconds = 0;
    vals[CC_FIELD_FRAMES] = vtype(CC_VAL_ABSENT);
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_SECONDS);

    /*
     * with fps, frames stand for seconds: 100 frames / 24 fps x 0.10 =
     * 0.41666... -> 416667; seconds win over frames for the list price
     */
    r.usd_per_second = 100000;
    r.fps = 24 * M;
    vals[CC_FIELD_N] = vtype(CC_VAL_ABSENT);
    vals[CC_FIELD_FRAMES] = vnum("100");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 416667);
    vals[CC_FIELD_SECONDS] = vstr("2");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 200000);

    /* 29.97 fps: 1 frame = 1 / 29.97 s x 0.10 = 0.0033366... -> 3337 */
    r.fps = 29970000;
    vals[CC_FIELD_SECONDS] = vtype(CC_VAL_ABSENT);
    vals[CC_FIELD_FRAMES] = vnum("1");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 3337);
}


static void
test_estimate_sum_rounded_once(void **state)
{
    cc_val_t       vals[CC_FIELD_MAX];
    cc_rule_t      r;
    cc_field_e     bad;
    cc_estimate_t  est;

    /*
     * base 0.0004 GPU-s at 3.60/h = 0.4 micro-USD; usd_per_mpx 0.000001
     * x 0.4 Mpx = 0.4 micro-USD: 0.8 -> 1, where rounding each gives 2
     */
    memset(&r, 0, sizeof(r));
    r.gpu_price = 3600000;
    r.base = 400;
    r.usd_per_mpx = 1;
    vals_init(vals, "m");
    vals[CC_FIELD_SIZE] = vstr("800x500");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 1);
    assert_int_equal(est.gpu_seconds, 400);

    /*
     * every term: sora-2 GPU (0.0774144) + 0.01 per output + 0.10 x 4 s +
     * 0.02 x 0.9216 Mpx (0.018432) = 0.5058464, x 2 = 1.0116928 -> 1011693
     */
    r = video_rule();
    r.usd_per_output = 10000;
    r.usd_per_second = 100000;
    r.usd_per_mpx = 20000;
    vals_init(vals, "sora-2");
    vals[CC_FIELD_N] = vnum("2");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 1011693);
    assert_int_equal(est.gpu_seconds, 159252480);

    /* the same with steps: ref 25, steps 50 doubles the GPU term only */
    r.ref_steps = 25 * M;
    vals[CC_FIELD_STEPS] = vnum("50");
    assert_int_equal(estimate(&r, vals, 3500000, &est, &bad), 0);
    assert_int_equal(est.cost, 1166522);
}


static void
test_estimate_list_overflow(void **state)
{
    cc_rule_t      r;
    cc_dims_t      d;
    cc_field_e     bad;
    cc_estimate_t  est;

    memset(&r, 0, sizeof(r));
    memset(&d, 0, sizeof(d));
    r.gpu_price = -1;
    r.usd_per_output = INT64_MAX;
    d.n = 1;
    assert_int_equal(cc_estimate(&r, &d, 0, &est, &bad), 0);
    assert_true(est.cost == INT64_MAX);
    d.n = 2;
    assert_int_equal(cc_estimate(&r, &d, 0, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_NONE);

    /* every term at its maximum: no wrap, just too large */
    r.per_mpx_frame = INT64_MAX;
    r.base = INT64_MAX;
    r.usd_per_second = INT64_MAX;
    r.usd_per_mpx = INT64_MAX;
    r.fps = INT64_MAX;
    r.ref_steps = 1;
    r.default_seconds = INT64_MAX;
    d.width = INT64_MAX;
    d.height = INT64_MAX;
    d.steps = INT64_MAX;
    d.frames = INT64_MAX / CC_MICRO;
    d.n = INT64_MAX;
    assert_int_equal(cc_estimate(&r, &d, INT64_MAX, &est, &bad), -1);
    assert_int_equal(bad, CC_FIELD_NONE);

    /* huge factors, a tiny result: 1 frame / (2^63 - 1) fps x 1 micro-USD */
    memset(&r, 0, sizeof(r));
    memset(&d, 0, sizeof(d));
    r.gpu_price = -1;
    r.per_mpx_frame = 1;
    r.ref_steps = INT64_MAX;
    r.fps = INT64_MAX;
    r.usd_per_second = 1;
    r.usd_per_mpx = 1;
    d.width = 1;
    d.height = 1;
    d.frames = 1;
    d.steps = 1;
    d.n = 1;
    assert_int_equal(cc_estimate(&r, &d, 1, &est, &bad), 0);
    assert_int_equal(est.cost, 1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_val_number_invalid),
        cmocka_unit_test(test_val_number_valid),
        cmocka_unit_test(test_size_parse),
        cmocka_unit_test(test_dims_model),
        cmocka_unit_test(test_dims_size),
        cmocka_unit_test(test_dims_counts),
        cmocka_unit_test(test_estimate_sora),
        cmocka_unit_test(test_estimate_frames_not_rounded),
        cmocka_unit_test(test_estimate_image),
        cmocka_unit_test(test_estimate_round_up),
        cmocka_unit_test(test_estimate_limits),
        cmocka_unit_test(test_estimate_missing),
        cmocka_unit_test(test_estimate_overflow),
        cmocka_unit_test(test_estimate_sweep),
        cmocka_unit_test(test_when),
        cmocka_unit_test(test_named_defaults),
        cmocka_unit_test(test_estimate_list_prices),
        cmocka_unit_test(test_estimate_sum_rounded_once),
        cmocka_unit_test(test_estimate_list_overflow),
    };

    return cmocka_run_group_tests_name("cc_price", tests, NULL, NULL);
}

/*
 * cc_json: the strict single-pass scanner, its paths, one reading of every
 * read key, pieces and prefixes.  Every body is scanned whole and again
 * one byte at a time: both must agree.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cc_json.h"


#define S(lit)  lit, sizeof(lit) - 1
#define NP      8


static const char  *default_paths[NP] = {
    "model", "size", "width", "height", "seconds", "num_frames", "n",
    "num_inference_steps"
};

static cc_path_t    paths[NP];
static cc_val_t     vals[NP];
static char         buf[NP * CC_VAL_MAX_LEN];
static size_t       bad;


static void
set_paths(const char **p, size_t n)
{
    size_t  i;

    for (i = 0; i < NP; i++) {
        paths[i].data = (i < n && p[i]) ? p[i] : "";
        paths[i].len = strlen(paths[i].data);
    }
}


/* the value text of vals[i], or NULL */

static const char *
text(size_t i)
{
    static char  t[CC_VAL_MAX_LEN + 1];

    if (vals[i].str == NULL) {
        return NULL;
    }

    memcpy(t, vals[i].str, vals[i].len);
    t[vals[i].len] = '\0';

    return t;
}


/* whole, then byte by byte into a second set of values: the same */

static int
scan_len(const char *s, size_t len)
{
    int        rc, rc2;
    char      *body, buf2[sizeof(buf)];
    size_t     i, bad2;
    cc_val_t   vals2[NP];
    cc_json_t  j;

    /* an exact-size heap copy, so that overreads show under valgrind */
    body = malloc(len ? len : 1);
    assert_non_null(body);
    memcpy(body, s, len);

    assert_int_equal(cc_json_init(&j, paths, NP, vals2, buf2, sizeof(buf2)),
                     0);

    for (i = 0; i < len; i++) {
        (void) cc_json_feed(&j, body + i, 1);
    }

    rc2 = cc_json_end(&j);
    bad2 = j.bad;

    rc = cc_json_scan(body, len, paths, NP, vals, buf, sizeof(buf), &bad);
    free(body);

    assert_int_equal(rc, rc2);

    if (rc == CC_JSON_DUPLICATE) {
        assert_int_equal(bad, bad2);
    }

    for (i = 0; i < NP; i++) {
        assert_int_equal(vals[i].type, vals2[i].type);
        assert_int_equal(vals[i].len, vals2[i].len);

        if (vals[i].len) {
            assert_memory_equal(vals[i].str, vals2[i].str, vals[i].len);
        }
    }

    return rc;
}


static int
scan(const char *s)
{
    return scan_len(s, strlen(s));
}


static void
test_rejects(void **state)
{
    size_t       i;
    const char  *no[] = {
        "", " ", "null", "1", "\"x\"", "[]", "[{}]", "true", "{", "}",
        "{\"a\":1", "{\"a\":1}x", "{\"a\":1}{}", "{\"a\":1},", "{'a':1}",
        "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}",
        "{\"a\":1,}", "{a:1}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\\u0000b\":1}",
        "{\"model\":\"sora-2\\u0000-pro\"}", "{\"a\":\"\\\\\\u0000\"}",
        "{\"a\":1}\\", "{\"a\":1}\\x",
        "{\"n\":012}", "{\"n\":01}", "{\"n\":1.}", "{\"n\":-01}",
        "{\"n\":1.e3}", "{\"n\":.5}", "{\"n\":+1}", "{\"n\":-}",
        "{\"n\":1e}", "{\"n\":1e+}", "{\"n\":0x10}", "{\"n\":tru}",
        "{\"n\":nul}", "{\"n\":falsey}", "{\"n\":True}", "{\"n\":1 2}",
        "{\"m\":\"sora-2\\uZZZZ-pro\"}", "{\"m\":\"\\u00G0\"}",
        "{\"m\":\"\\u-001\"}", "{\"m\":\"\\u 000\"}", "{\"m\":\"\\u+000\"}",
        "{\"m\":\"\\u12\"}", "{\"m\":\"\\x41\"}", "{\"m\":\"a\tb\"}",
        "{\"m\":\"a\nb\"}", "{\"seconds\\uZZZZ\":12}",
        "{\"a\":1 \"b\":2}", "{\"a\" 1}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
        "{\"a\":1}}", "{\"a\":1]", "{\"a\":[}", "{\"a\":[1}", "{\"a\":{]}",
        "{\"a\":\"x", "{\"a\":\"x\\", "{}{}", "{} x", "\"\\",
        "{\"a\":1}\x0b", "{\"a\":1}\x0c", "{\"a\":\x0c1}",
        /* lone surrogates (cJSON refused them too) */
        "{\"m\":\"\\ud800\"}", "{\"m\":\"\\udc00\"}",
        "{\"m\":\"\\ud800\\u0041\"}", "{\"m\":\"\\ud800x\"}",
        "{\"m\":\"\\ud800\\\\\"}", "{\"m\":\"\\ud800\\ud800\"}",
        "{\"\\udfff\":1}",
        /* a byte order mark elsewhere, or broken */
        " \xef\xbb\xbf{}", "\xef\xbb{}", "\xef{}", "\xef\xbb\xbf\xef\xbb\xbf{}",
        "{}\xef\xbb\xbf"
    };

    set_paths(default_paths, NP);

    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (scan(no[i]) == CC_JSON_OK) {
            fail_msg("accepted: %s", no[i]);
        }
    }

    /* a raw NUL anywhere, even after the object */
    assert_int_equal(scan_len(S("{\"a\":\"x\0y\"}")), CC_JSON_INVALID);
    assert_int_equal(scan_len(S("{\"a\":1}\0")), CC_JSON_INVALID);
    assert_int_equal(scan_len(S("{\"a\":1}\0garbage")), CC_JSON_INVALID);
    assert_int_equal(scan_len(S("\0{}")), CC_JSON_INVALID);
    assert_int_equal(scan_len(S("{\"a\":\0\"x\"}")), CC_JSON_INVALID);

    /* the ends of a prefix: more */
    assert_int_equal(scan(""), CC_JSON_MORE);
    assert_int_equal(scan("{\"a\":1"), CC_JSON_MORE);
    assert_int_equal(scan("{\"a\":\"x\\"), CC_JSON_MORE);
    assert_int_equal(scan("{\"a\":[{\"b\":-"), CC_JSON_MORE);
    assert_int_equal(scan("\xef\xbb"), CC_JSON_MORE);
    assert_int_equal(scan("{\"a\":\"\\ud83d"), CC_JSON_MORE);
    assert_int_equal(scan("{\"a\":tr"), CC_JSON_MORE);
}


static void
test_accepts(void **state)
{
    size_t       i;
    const char  *yes[] = {
        "{}", " \r\n\t{\"a\": [1, 2, {\"b\": null}]} \r\n\t",
        "{\"a\":\"\\\\u0000\"}", "\xef\xbb\xbf{}", "\xef\xbb\xbf {} ",
        "{\"a\":\"\\u00e9\\ud83d\\ude00\"}",
        "{\"n\":[0,-0,0.5,-1.25e+3,1E-2,10,0e0,-0.0e-0],\"s\":\"\\/\\b\\f"
        "\\n\\r\\t\\\"\\\\\\u00e9\",\"t\":true,\"f\":false,\"z\":null,"
        "\"o\":{},\"e\":[],\"ee\":[[],{}]}",
        /* bytes >= 0x80 are not checked as UTF-8 */
        "{\"m\":\"\xff\xfe\xc0\xaf\"}", "{\"\xff\":1}",
        "{\"\":\"\"}", "{\"a\":{\"a\":{\"a\":{}}}}"
    };

    set_paths(default_paths, NP);

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (scan(yes[i]) != CC_JSON_OK) {
            fail_msg("refused: %s", yes[i]);
        }
    }
}


static void
test_deep(void **state)
{
    char    *s;
    size_t   i, depth, len;

    set_paths(default_paths, NP);

    /* 1000 containers at once, the object included, and not one more */
    for (depth = 998; depth <= 1000; depth++) {
        len = 5 + 2 * depth + 1;
        s = malloc(len);
        assert_non_null(s);
        memcpy(s, "{\"a\":", 5);

        for (i = 0; i < depth; i++) {
            s[5 + i] = '[';
            s[5 + depth + i] = ']';
        }

        s[5 + 2 * depth] = '}';

        assert_int_equal(scan_len(s, len),
                         depth < CC_JSON_DEPTH_MAX ? CC_JSON_OK
                                                   : CC_JSON_INVALID);
        free(s);
    }

    /* a million: refused at once, in constant memory */
    len = 1000000;
    s = malloc(len);
    assert_non_null(s);
    s[0] = '{';

    for (i = 1; i + 5 <= len; i += 5) {
        memcpy(s + i, "\"a\":{", 5);
    }

    assert_int_equal(cc_json_scan(s, i, paths, NP, vals, buf, sizeof(buf),
                                  &bad),
                     CC_JSON_INVALID);
    free(s);
}


static void
test_values(void **state)
{
    set_paths(default_paths, NP);

    assert_int_equal(scan("{\"model\":\"sora-2\",\"size\":\"1280x720\","
                          "\"seconds\":\"8\",\"num_frames\":96.5,\"n\":null,"
                          "\"width\":true,\"height\":[720],"
                          "\"num_inference_steps\":{\"x\":1}}"),
                     CC_JSON_OK);

    assert_int_equal(vals[0].type, CC_VAL_STRING);
    assert_string_equal(text(0), "sora-2");
    assert_int_equal(vals[1].type, CC_VAL_STRING);
    assert_string_equal(text(1), "1280x720");
    assert_int_equal(vals[4].type, CC_VAL_STRING);
    assert_string_equal(text(4), "8");
    assert_int_equal(vals[5].type, CC_VAL_NUMBER);
    assert_string_equal(text(5), "96.5");
    assert_int_equal(vals[6].type, CC_VAL_ABSENT);
    assert_int_equal(vals[2].type, CC_VAL_BOOL);
    assert_string_equal(text(2), "true");
    assert_int_equal(vals[3].type, CC_VAL_OTHER);
    assert_int_equal(vals[7].type, CC_VAL_OTHER);

    /* numbers as written, escapes decoded */
    assert_int_equal(scan(" { \"model\" : \"sora\\u002d2\\n\\ud83d\\ude00\" ,"
                          " \"n\" : -1.50E+03 , \"size\":false }"),
                     CC_JSON_OK);
    assert_string_equal(text(0), "sora-2\n\xf0\x9f\x98\x80");
    assert_int_equal(vals[6].type, CC_VAL_NUMBER);
    assert_string_equal(text(6), "-1.50E+03");
    assert_int_equal(vals[1].type, CC_VAL_BOOL);
    assert_string_equal(text(1), "false");

    /* not found, or inside arrays and other objects: absent */
    assert_int_equal(scan("{\"x\":{\"model\":\"a\"},\"y\":[{\"model\":\"b\"}],"
                          "\"z\":[\"model\"],\"model\":[]}"),
                     CC_JSON_OK);
    assert_int_equal(vals[0].type, CC_VAL_OTHER);
    assert_int_equal(vals[1].type, CC_VAL_ABSENT);

    /* "model" as a value is no key */
    assert_int_equal(scan("{\"a\":\"model\",\"b\":{\"c\":\"n\"}}"),
                     CC_JSON_OK);
    assert_int_equal(vals[0].type, CC_VAL_ABSENT);
    assert_int_equal(vals[6].type, CC_VAL_ABSENT);

    /* the empty string is a string */
    assert_int_equal(scan("{\"model\":\"\",\"n\":\"\"}"), CC_JSON_OK);
    assert_int_equal(vals[0].type, CC_VAL_STRING);
    assert_int_equal(vals[0].len, 0);
}


static void
test_dotted(void **state)
{
    static const char  *p[NP] = {
        "model", "input.size", "input.dims.w", "input.dims.h", "input",
        "input.dims.w.x", "arr.0", NULL
    };

    set_paths(p, NP);

    assert_int_equal(scan("{\"model\":\"m\",\"input\":{\"size\":\"2x2\","
                          "\"other\":{\"size\":\"no\",\"dims\":{\"w\":9}},"
                          "\"dims\":{\"w\":3,\"h\":\"4\"}},"
                          "\"input.size\":\"9x9\",\"arr\":[1]}"),
                     CC_JSON_OK);

    assert_string_equal(text(1), "2x2");
    assert_int_equal(vals[2].type, CC_VAL_NUMBER);
    assert_string_equal(text(2), "3");
    assert_int_equal(vals[3].type, CC_VAL_STRING);
    assert_string_equal(text(3), "4");
    assert_int_equal(vals[4].type, CC_VAL_OTHER);
    /* a number in the middle of a path, an array: absent */
    assert_int_equal(vals[5].type, CC_VAL_ABSENT);
    assert_int_equal(vals[6].type, CC_VAL_ABSENT);
    assert_int_equal(vals[7].type, CC_VAL_ABSENT);

    /* a path through a string */
    assert_int_equal(scan("{\"input\":\"sora-2\"}"), CC_JSON_OK);
    assert_int_equal(vals[4].type, CC_VAL_STRING);
    assert_int_equal(vals[1].type, CC_VAL_ABSENT);

    /* after leaving the object the path is not live */
    assert_int_equal(scan("{\"input\":{},\"size\":\"1x1\","
                          "\"dims\":{\"w\":1}}"),
                     CC_JSON_OK);
    assert_int_equal(vals[1].type, CC_VAL_ABSENT);
    assert_int_equal(vals[2].type, CC_VAL_ABSENT);
}


static void
test_duplicates(void **state)
{
    static const char  *p[NP] = {
        "model", "input.width", "input.height", "n", "seconds", "kind",
        "id", NULL
    };

    set_paths(p, NP);

    /* twice, whatever the values */
    assert_int_equal(scan("{\"model\":\"a\",\"n\":1,\"n\":10}"),
                     CC_JSON_DUPLICATE);
    assert_int_equal(bad, 3);
    assert_int_equal(scan("{\"n\":null,\"n\":null}"), CC_JSON_DUPLICATE);
    assert_int_equal(scan("{\"n\":{},\"n\":[]}"), CC_JSON_DUPLICATE);

    /* spelt with an escape */
    assert_int_equal(scan("{\"model\":\"a\",\"mod\\u0065l\":\"b\"}"),
                     CC_JSON_DUPLICATE);
    assert_int_equal(bad, 0);

    /* another case, even alone */
    assert_int_equal(scan("{\"Model\":\"a\"}"), CC_JSON_DUPLICATE);
    assert_int_equal(bad, 0);
    assert_int_equal(scan("{\"SECONDS\":4}"), CC_JSON_DUPLICATE);
    assert_int_equal(bad, 4);
    assert_int_equal(scan("{\"mod\\u0045l\":\"a\"}"), CC_JSON_DUPLICATE);

    /* the letters Go folds to ASCII ones */
    assert_int_equal(scan("{\"\xc5\xbf" "econds\":12}"), CC_JSON_DUPLICATE);
    assert_int_equal(bad, 4);
    assert_int_equal(scan("{\"\xe2\x84\xaa" "ind\":1}"), CC_JSON_DUPLICATE);
    assert_int_equal(bad, 5);
    assert_int_equal(scan("{\"\xc4\xb1" "d\":1}"), CC_JSON_DUPLICATE);
    assert_int_equal(bad, 6);
    assert_int_equal(scan("{\"\xc4\xb0" "D\":1}"), CC_JSON_DUPLICATE);
    assert_int_equal(scan("{\"\\u017fecond\\u0053\":1}"), CC_JSON_DUPLICATE);

    /* every level of a path */
    assert_int_equal(scan("{\"input\":{\"width\":1},\"input\":{}}"),
                     CC_JSON_DUPLICATE);
    assert_int_equal(bad, 1);
    assert_int_equal(scan("{\"input\":1,\"Input\":2}"), CC_JSON_DUPLICATE);
    assert_int_equal(scan("{\"input\":{\"width\":1,\"Width\":2}}"),
                     CC_JSON_DUPLICATE);
    assert_int_equal(bad, 1);
    assert_int_equal(scan("{\"input\":{\"height\":1,\"height\":2}}"),
                     CC_JSON_DUPLICATE);
    assert_int_equal(bad, 2);

    /* keys no path reads may repeat; so may read names off the paths */
    assert_int_equal(scan("{\"prompt\":\"a\",\"prompt\":\"b\",\"x\":{\"n\":1,"
                          "\"n\":2,\"N\":3},\"l\":[{\"model\":1},"
                          "{\"model\":2}],\"input\":{\"x\":{\"width\":1,"
                          "\"width\":2}},\"modell\":1,\"mode\":2,"
                          "\"m\\u00f6del\":3,\"\xc5\xbf\":4}"),
                     CC_JSON_OK);

    /* the same object again at another place is fine */
    assert_int_equal(scan("{\"a\":{\"input\":1},\"input\":{\"width\":3,"
                          "\"x\":{\"width\":1},\"height\":4}}"),
                     CC_JSON_OK);
    assert_string_equal(text(1), "3");
    assert_string_equal(text(2), "4");

    /* the first error in the body is the one reported */
    assert_int_equal(scan("{\"n\":1,\"n\":2,x"), CC_JSON_DUPLICATE);
    assert_int_equal(scan("{\"n\":1,x,\"n\":2}"), CC_JSON_INVALID);

    /* two paths alike read one key each */
    p[5] = "n";
    set_paths(p, NP);
    assert_int_equal(scan("{\"n\":7}"), CC_JSON_OK);
    assert_string_equal(text(3), "7");
    assert_string_equal(text(5), "7");
    assert_int_equal(scan("{\"n\":7,\"n\":7}"), CC_JSON_DUPLICATE);
    assert_int_equal(bad, 3);
    p[5] = "kind";
}


static void
test_long(void **state)
{
    char    *s;
    size_t   n;

    set_paths(default_paths, NP);

    /* CC_VAL_MAX_LEN bytes are kept; one more is too long */
    for (n = CC_VAL_MAX_LEN; n <= CC_VAL_MAX_LEN + 1; n++) {
        s = malloc(n + 32);
        assert_non_null(s);
        memcpy(s, "{\"model\":\"", 10);
        memset(s + 10, 'm', n);
        memcpy(s + 10 + n, "\",\"n\":2}", 9);

        assert_int_equal(scan(s), CC_JSON_OK);
        assert_int_equal(vals[0].type, n <= CC_VAL_MAX_LEN ? CC_VAL_STRING
                                                           : CC_VAL_LONG);
        assert_int_equal(vals[0].len, n <= CC_VAL_MAX_LEN ? n : 0);
        assert_string_equal(text(6), "2");

        /* the same as a number */
        memcpy(s, "{\"model\":1", 10);
        memset(s + 10, '0', n - 1);
        memcpy(s + 9 + n, ",\"n\":2}", 8);

        assert_int_equal(scan(s), CC_JSON_OK);
        assert_int_equal(vals[0].type, n <= CC_VAL_MAX_LEN ? CC_VAL_NUMBER
                                                           : CC_VAL_LONG);
        free(s);
    }

    /* a small buffer: what does not fit is too long, the rest is kept */
    assert_int_equal(cc_json_scan(S("{\"model\":\"abcdef\",\"n\":\"12\"}"),
                                  paths, NP, vals, buf, 4, &bad),
                     CC_JSON_OK);
    assert_int_equal(vals[0].type, CC_VAL_LONG);
    assert_int_equal(vals[6].type, CC_VAL_STRING);
    assert_string_equal(text(6), "12");

    /* no buffer */
    assert_int_equal(cc_json_scan(S("{\"model\":\"a\",\"n\":true}"),
                                  paths, NP, vals, NULL, 0, &bad),
                     CC_JSON_OK);
    assert_int_equal(vals[0].type, CC_VAL_LONG);
    assert_int_equal(vals[6].type, CC_VAL_BOOL);

    /* a key longer than any segment can be is compared with nothing */
    s = malloc(CC_JSON_KEY_MAX + 64);
    assert_non_null(s);
    s[0] = '{';
    s[1] = '"';
    memset(s + 2, 'N', CC_JSON_KEY_MAX + 1);
    strcpy(s + 3 + CC_JSON_KEY_MAX, "\":1,\"n\":3}");
    assert_int_equal(scan(s), CC_JSON_OK);
    assert_string_equal(text(6), "3");
    free(s);
}


/* pieces: values spanning them, and a prefix */

static void
test_pieces(void **state)
{
    int          rc;
    size_t       k, len;
    cc_json_t    j;
    const char  *body;

    set_paths(default_paths, NP);

    body = "\xef\xbb\xbf{\"model\":\"so\\u0072a-2\",\"prompt\":\"x\\ud83d"
           "\\ude00y\",\"n\":12.5e-1,\"size\":\"1x1\",\"seconds\":false,"
           "\"num_frames\":null,\"width\":[1,{\"a\":2}],\"height\":-0}";
    len = strlen(body);

    /* every split point gives the same values */
    for (k = 0; k <= len; k++) {
        assert_int_equal(cc_json_init(&j, paths, NP, vals, buf, sizeof(buf)),
                         0);
        rc = cc_json_feed(&j, body, k);
        assert_int_equal(rc, k == len ? CC_JSON_OK : CC_JSON_MORE);
        rc = cc_json_feed(&j, body + k, len - k);
        assert_int_equal(rc, CC_JSON_OK);
        assert_int_equal(cc_json_end(&j), CC_JSON_OK);

        assert_string_equal(text(0), "sora-2");
        assert_string_equal(text(6), "12.5e-1");
        assert_string_equal(text(1), "1x1");
        assert_int_equal(vals[4].type, CC_VAL_BOOL);
        assert_int_equal(vals[5].type, CC_VAL_ABSENT);
        assert_int_equal(vals[2].type, CC_VAL_OTHER);
        assert_string_equal(text(3), "-0");
    }

    /* a prefix: what is whole is recorded, the rest is not */
    body = "{\"model\":\"sora-2\",\"n\":4,\"size\":\"1280x7";
    assert_int_equal(cc_json_scan(body, strlen(body), paths, NP, vals, buf,
                                  sizeof(buf), &bad),
                     CC_JSON_MORE);
    assert_string_equal(text(0), "sora-2");
    assert_string_equal(text(6), "4");
    assert_int_equal(vals[1].type, CC_VAL_ABSENT);

    /* a number at the end of a prefix is not whole yet */
    body = "{\"n\":4";
    assert_int_equal(cc_json_scan(body, strlen(body), paths, NP, vals, buf,
                                  sizeof(buf), &bad),
                     CC_JSON_MORE);
    assert_int_equal(vals[6].type, CC_VAL_ABSENT);

    /* an error sticks; feeding after the end is still checked */
    assert_int_equal(cc_json_init(&j, paths, NP, vals, buf, sizeof(buf)), 0);
    assert_int_equal(cc_json_feed(&j, S("{}")), CC_JSON_OK);
    assert_int_equal(cc_json_feed(&j, S(" \n")), CC_JSON_OK);
    assert_int_equal(cc_json_feed(&j, S("x")), CC_JSON_INVALID);
    assert_int_equal(cc_json_feed(&j, S(" ")), CC_JSON_INVALID);
    assert_int_equal(cc_json_end(&j), CC_JSON_INVALID);
}


static void
test_paths(void **state)
{
    cc_json_t   j;
    cc_path_t   many[CC_JSON_PATHS_MAX + 1];
    size_t      i;
    char        seg[CC_JSON_SEG_MAX + 2];

    assert_true(cc_json_path_valid(S("model")));
    assert_true(cc_json_path_valid(S("parameters.durationSeconds")));
    assert_true(cc_json_path_valid(S("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p")));
    assert_false(cc_json_path_valid(S("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q")));
    assert_false(cc_json_path_valid(S("")));
    assert_false(cc_json_path_valid(S(".a")));
    assert_false(cc_json_path_valid(S("a.")));
    assert_false(cc_json_path_valid(S("a..b")));
    assert_false(cc_json_path_valid(S(".")));

    memset(seg, 'x', sizeof(seg));
    assert_true(cc_json_path_valid(seg, CC_JSON_SEG_MAX));
    assert_false(cc_json_path_valid(seg, CC_JSON_SEG_MAX + 1));

    for (i = 0; i <= CC_JSON_PATHS_MAX; i++) {
        many[i].data = "a";
        many[i].len = 1;
    }

    assert_int_equal(cc_json_init(&j, many, CC_JSON_PATHS_MAX, vals, buf,
                                  sizeof(buf)),
                     0);
    assert_int_equal(cc_json_init(&j, many, CC_JSON_PATHS_MAX + 1, vals, buf,
                                  sizeof(buf)),
                     -1);

    many[3].data = "a..b";
    many[3].len = 4;
    assert_int_equal(cc_json_init(&j, many, 4, vals, buf, sizeof(buf)), -1);
}


/* linear time, no memory per element: 20 MB of [0,0,...] */

static void
test_big(void **state)
{
    char     *s;
    size_t    i, len;
    clock_t   t0;
    double    ms;

    set_paths(default_paths, NP);

    len = 20 * 1024 * 1024;
    s = malloc(len);
    assert_non_null(s);
    memcpy(s, "{\"model\":\"sora-2\",\"seconds\":\"4\",\"pad\":[", 39);

    for (i = 39; i + 2 < len; i += 2) {
        s[i] = '0';
        s[i + 1] = ',';
    }

    s[i - 1] = ']';
    s[i] = '}';
    len = i + 1;

    t0 = clock();
    assert_int_equal(cc_json_scan(s, len, paths, NP, vals, buf, sizeof(buf),
                                  &bad),
                     CC_JSON_OK);
    ms = (double) (clock() - t0) * 1000 / CLOCKS_PER_SEC;
    print_message("20 MB of [0,0,...]: %.1f ms\n", ms);

    assert_string_equal(text(0), "sora-2");
    assert_string_equal(text(4), "4");

    /* the same size of prompt text */
    memcpy(s, "{\"model\":\"sora-2\",\"prompt\":\"", 28);
    memset(s + 28, 'p', len - 30);
    memcpy(s + len - 2, "\"}", 2);

    t0 = clock();
    assert_int_equal(cc_json_scan(s, len, paths, NP, vals, buf, sizeof(buf),
                                  &bad),
                     CC_JSON_OK);
    ms = (double) (clock() - t0) * 1000 / CLOCKS_PER_SEC;
    print_message("20 MB of prompt: %.1f ms\n", ms);

    free(s);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_dotted),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_big),
    };

    return cmocka_run_group_tests_name("cc_json", tests, NULL, NULL);
}

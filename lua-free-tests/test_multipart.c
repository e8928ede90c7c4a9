/*
 * cc_multipart: boundaries from Content-Type, text fields from bodies,
 * malformed and hostile bodies, and linear time on big ones.
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

#include "cc_multipart.h"
#include "cc_price.h"


#define S(lit)  lit, sizeof(lit) - 1


static cc_path_t  names[CC_FIELD_MAX];
static cc_val_t   vals[CC_FIELD_MAX];
static size_t     bad_field;


/* 0, -1 for a malformed body, -2 for a duplicate (bad_field) */

static int
extract(const char *body, size_t len, const char *b, size_t blen,
    const cc_path_t *n, cc_val_t *v)
{
    switch (cc_multipart_extract(body, len, b, blen, n, CC_FIELD_MAX, v,
                                 &bad_field))
    {
    case CC_MULTIPART_OK:
        return 0;

    case CC_MULTIPART_INVALID:
        return -1;

    default:
        return -2;
    }
}


static int
group_setup(void **state)
{
    static const char  *p[CC_FIELD_MAX] = {
        "model", "size", "input.width", "height", "seconds", "num_frames",
        "n", "num_inference_steps"
    };
    int                 f;

    for (f = 0; f < CC_FIELD_MAX; f++) {
        names[f].data = p[f];
        names[f].len = strlen(p[f]);
    }

    return 0;
}


static int
boundary(const char *ctype, const char *want)
{
    int          rc;
    size_t       blen;
    const char  *b;

    rc = cc_multipart_boundary(ctype, strlen(ctype), &b, &blen);

    if (want == NULL) {
        if (rc != -1) {
            fail_msg("boundary accepted in: %s", ctype);
        }

        return rc;
    }

    if (rc != 0 || blen != strlen(want) || memcmp(b, want, blen) != 0) {
        fail_msg("boundary of %s: rc %d \"%.*s\", want \"%s\"", ctype, rc,
                 rc == 0 ? (int) blen : 0, rc == 0 ? b : "", want);
    }

    /* it points into the value */
    assert_true(b >= ctype && b + blen <= ctype + strlen(ctype));

    return rc;
}


/* runs the extraction on an exact-size heap copy (valgrind sees overreads) */

static int
mp(const char *body, size_t len, const char *b)
{
    int    rc, f;
    char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    rc = extract(copy, len, b, strlen(b), names, vals);

    for (f = 0; f < CC_FIELD_MAX; f++) {
        if (vals[f].type == CC_VAL_STRING || vals[f].type == CC_VAL_LONG) {
            assert_true(vals[f].str >= copy
                        && vals[f].str + vals[f].len <= copy + len);
            /* point the value at the caller's body for the checks */
            vals[f].str = body + (vals[f].str - copy);

        } else {
            assert_int_equal(vals[f].type, CC_VAL_ABSENT);
        }
    }

    free(copy);

    return rc;
}


static int
mps(const char *body)
{
    return mp(body, strlen(body), "XyZ");
}


static void
assert_val(cc_field_e f, const char *want)
{
    if (want == NULL) {
        assert_int_equal(vals[f].type, CC_VAL_ABSENT);
        return;
    }

    assert_int_equal(vals[f].type, CC_VAL_STRING);
    assert_int_equal(vals[f].len, strlen(want));
    assert_memory_equal(vals[f].str, want, vals[f].len);
}


static void
test_boundary(void **state)
{
    char  ct[128];

    boundary("multipart/form-data; boundary=abc", "abc");
    boundary("multipart/form-data;boundary=abc", "abc");
    boundary("multipart/form-data; BOUNDARY=abc", "abc");
    boundary("Multipart/Form-Data; Boundary=abc; charset=utf-8", "abc");
    boundary("multipart/form-data; charset=utf-8; boundary=abc", "abc");
    boundary("multipart/form-data; boundary=\"a b:c=d/e?f\"", "a b:c=d/e?f");
    boundary("multipart/form-data; boundary = abc ;", "abc");
    boundary("multipart/form-data; foo=\"x;boundary=evil\"; boundary=ok",
             "ok");
    boundary("multipart/form-data; xboundary=no; boundary=yes", "yes");
    boundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWx",
             "----WebKitFormBoundary7MA4YWx");
    boundary("multipart/form-data; boundary=\"abc\"", "abc");

    boundary("multipart/form-data", NULL);
    boundary("", NULL);
    boundary("multipart/form-data;", NULL);
    boundary("multipart/form-data; charset=utf-8", NULL);
    boundary("multipart/form-data; boundary=", NULL);
    boundary("multipart/form-data; boundary=\"\"", NULL);
    boundary("multipart/form-data; boundary=\"abc", NULL);
    boundary("multipart/form-data; boundary=\"abc\\", NULL);
    boundary("multipart/form-data; boundary=\"a\\bc\"", NULL);
    boundary("multipart/form-data; boundary=\"abc \"", NULL);
    boundary("multipart/form-data; boundary=\"abc\"x", NULL);
    boundary("multipart/form-data; boundary=a; boundary=b", NULL);
    boundary("multipart/form-data; boundary=a\x01z", NULL);
    boundary("multipart/form-data; boundary=\xc3\xa9", NULL);
    boundary("multipart/form-data; =abc", NULL);
    boundary("multipart/form-data; boundary", NULL);
    boundary("multipart/form-data; boundary abc", NULL);

    /* 70 characters at most */
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%070d", 7);
    assert_int_equal(boundary(ct, ct + strlen(ct) - 70), 0);
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%071d", 7);
    boundary(ct, NULL);
}


static void
test_extract_basic(void **state)
{
    assert_int_equal(mps(
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n"
        "\r\n"
        "sora-2\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"seconds\"\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "8\r\n"
        "--XyZ\r\n"
        "content-disposition: FORM-DATA; NAME=n\r\n"
        "\r\n"
        "2\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"input.width\"\r\n"
        "\r\n"
        "\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data;name=\"size\";\r\n"
        "\r\n"
        "1280x720\r\n"
        "--XyZ--\r\n"), 0);

    assert_val(CC_FIELD_MODEL, "sora-2");
    assert_val(CC_FIELD_SECONDS, "8");
    assert_val(CC_FIELD_N, "2");
    assert_val(CC_FIELD_WIDTH, "");
    assert_val(CC_FIELD_SIZE, "1280x720");
    assert_val(CC_FIELD_HEIGHT, NULL);
    assert_val(CC_FIELD_FRAMES, NULL);
    assert_val(CC_FIELD_STEPS, NULL);
}


static void
test_extract_framing(void **state)
{
    /* preamble, transport padding, epilogue */
    assert_int_equal(mps(
        "This is a preamble -XyZ --Xy\r\n"
        "--XyZ \t \r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n"
        "\r\n"
        "m1\r\n"
        "--XyZ--\r\n"
        "epilogue\r\n--XyZ\r\n"
        "Content-Disposition: form-data; name=\"n\"\r\n\r\n9\r\n--XyZ--"),
        0);
    assert_val(CC_FIELD_MODEL, "m1");
    assert_val(CC_FIELD_N, NULL);

    /* no parts at all */
    assert_int_equal(mps("--XyZ--"), 0);
    assert_val(CC_FIELD_MODEL, NULL);

    /* values may hold CRLFs and text close to the boundary */
    assert_int_equal(mps(
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n"
        "\r\n"
        "a\r\nb-XyZ\r\n-XyZ\r\n--xyz\r\n--Xy\r\n\r\n"
        "--XyZ--"), 0);
    assert_val(CC_FIELD_MODEL, "a\r\nb-XyZ\r\n-XyZ\r\n--xyz\r\n--Xy\r\n");

    /* NUL bytes are kept, with the length */
    assert_int_equal(mp(S("--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n"
        "\r\n"
        "a\0b\r\n"
        "--XyZ--"), "XyZ"), 0);
    assert_int_equal(vals[CC_FIELD_MODEL].len, 3);

    /* a quoted boundary with a space */
    assert_int_equal(mp(S("--a b\r\n"
        "Content-Disposition: form-data; name=\"n\"\r\n\r\n"
        "3\r\n--a b--"), "a b"), 0);
    assert_val(CC_FIELD_N, "3");
}


static void
test_extract_malformed(void **state)
{
    size_t       i;
    const char  *bad[] = {
        "",
        "--XyZ",
        "--XyZ\r\n",
        "garbage only",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n1",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n"
            "--XyZ",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n"
            "--XyZ\r\n",
        /* bare LF line endings */
        "--XyZ\nContent-Disposition: form-data; name=\"n\"\n\n1\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\n\n1\r\n"
            "--XyZ--",
        /* delimiter not followed by CRLF or "--" */
        "--XyZx\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n"
            "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n"
            "--XyZ-\r\n",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n"
            "--XyZZ\r\n--XyZ--",
        /* no headers, or no Content-Disposition */
        "--XyZ\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: attachment; name=\"n\"\r\n\r\n1\r\n"
            "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; x=y\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition:\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data name=\"n\"\r\n\r\n1\r\n"
            "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\r\n\r\n1\r\n"
            "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\r\n\r\n1\r\n"
            "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\" x\r\n\r\n1\r\n"
            "--XyZ--",
        /* ambiguous: two names, two dispositions, escaped field name */
        "--XyZ\r\nContent-Disposition: form-data; name=\"x\"; name=\"n\""
            "\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n"
            "Content-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"\\n\"\r\n\r\n1\r\n"
            "--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"seco\\nds\"\r\n"
            "\r\n1\r\n--XyZ--",
        /* an encoded field value */
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\nMQ==\r\n--XyZ--",
        /* header lines without a name, folded, or without a colon */
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n: x\r\n"
            "\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data;\r\n name=\"n\"\r\n"
            "\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\nnocolon\r\n"
            "\r\n1\r\n--XyZ--",
        /* a delimiter inside a header block */
        "--XyZ\r\nX-A: b\r\n--XyZ\r\n"
            "Content-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n--XyZ--",
        /* the header block's blank line is not the delimiter's CRLF */
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
            "--XyZ\r\nContent-Disposition: form-data; name=\"seconds\"\r\n"
            "\r\n12\r\n--XyZ--",
        /* "--BOUNDARY" where a lenient parser sees a delimiter */
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
            "hi\n--XyZ\r\nContent-Disposition: form-data; name=\"seconds\""
            "\r\n\r\n12\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
            "hi\r--XyZ\r\nContent-Disposition: form-data; name=\"seconds\""
            "\r\n\r\n12\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\n"
            "a--XyZ\r\n--XyZ--",
        "preamble--XyZ\r\nContent-Disposition: form-data; name=\"n\"\r\n"
            "\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"; "
            "filename=\"--XyZ\"\r\n\r\nx\r\n--XyZ--",
        /* a lone CR or LF in a header, an RFC 2231 name */
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"\r\n"
            "X-A: b\nContent-Disposition: form-data; name=\"n\"\r\n"
            "\r\n1\r\n--XyZ--",
        "--XyZ\r\nX-A: b\rc\r\n"
            "Content-Disposition: form-data; name=\"n\"\r\n\r\n1\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"; "
            "name*=utf-8''seconds\r\n\r\n12\r\n--XyZ--",
        "--XyZ\r\nContent-Disposition: form-data; "
            "NAME*0=seconds\r\n\r\n12\r\n--XyZ--",
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (mps(bad[i]) != -1) {
            fail_msg("accepted body %zu: %s", i, bad[i]);
        }
    }

    /* a boundary the caller did not check */
    assert_int_equal(mp(S("--\r\n\r\n--"), ""), -1);
    assert_int_equal(extract(S("--x--"), "x", 71, names, vals),
                     -1);
}


static void
test_extract_files(void **state)
{
    assert_int_equal(mp(S(
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"seconds\"; "
            "filename=\"a.txt\"\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "12\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"n\"; filename=\"\"\r\n"
        "\r\n"
        "4\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"; "
            "filename*=UTF-8''%e2%82%ac.png\r\n"
        "\r\n"
        "\x89PNG\r\n\x1a\n\0\0 name=\"model\"\r\n\r\n"
        "\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; FILENAME=\"C:\\\\dir\\\\x.png\"; "
            "name=\"size\"\r\n"
        "\r\n"
        "9x9\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; filename=\"noname.bin\"\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "AAAA\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n"
        "\r\n"
        "sora-2\r\n"
        "--XyZ--"), "XyZ"), 0);

    assert_val(CC_FIELD_SECONDS, NULL);
    assert_val(CC_FIELD_N, NULL);
    assert_val(CC_FIELD_SIZE, NULL);
    assert_val(CC_FIELD_MODEL, "sora-2");
}


#define PART(name, value)                                                     \
    "--XyZ\r\nContent-Disposition: form-data; name=\"" name "\"\r\n\r\n"      \
    value "\r\n"


static void
test_extract_duplicates_and_names(void **state)
{
    /* a read field twice: refused, naming it */
    assert_int_equal(mps(PART("model", "m") PART("n", "1") PART("n", "100")
                         "--XyZ--"), -2);
    assert_int_equal(bad_field, CC_FIELD_N);
    assert_int_equal(mps(PART("n", "1") PART("n", "1") "--XyZ--"), -2);
    assert_int_equal(mps(PART("input.width", "1") PART("input.width", "")
                         "--XyZ--"), -2);
    assert_int_equal(bad_field, CC_FIELD_WIDTH);

    /* under another case, even alone; the letters Go folds to ASCII */
    assert_int_equal(mps(PART("N", "7") "--XyZ--"), -2);
    assert_int_equal(bad_field, CC_FIELD_N);
    assert_int_equal(mps(PART("Model", "m") "--XyZ--"), -2);
    assert_int_equal(bad_field, CC_FIELD_MODEL);
    assert_int_equal(mps(PART("\xc5\xbf" "econds", "12") "--XyZ--"), -2);
    assert_int_equal(bad_field, CC_FIELD_SECONDS);
    assert_int_equal(mps(PART("Input.Width", "1") "--XyZ--"), -2);

    /* a file part of a field's name is no field: no duplicate */
    assert_int_equal(mps(PART("n", "1")
        "--XyZ\r\nContent-Disposition: form-data; name=\"n\"; "
        "filename=\"n\"\r\n\r\n10\r\n--XyZ--"), 0);
    assert_val(CC_FIELD_N, "1");

    /* fields nobody reads may repeat, in any case */
    assert_int_equal(mps(
        PART("prompt", "a") PART("prompt", "b") PART("Prompt", "c")
        PART("width", "7")
        PART("input.width", "64")
        PART("pro\\\"mpt", "hi")
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"model\"\r\n"
        "Content-Transfer-Encoding: 8BIT\r\n\r\nm\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"prompt\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\nx=3D\r\n"
        "--XyZ\r\n"
        "Content-Disposition  :  form-data ; name = \"height\" \r\n"
        "\r\n"
        "720\r\n"
        "--XyZ--"), 0);

    assert_val(CC_FIELD_N, NULL);
    assert_val(CC_FIELD_WIDTH, "64");
    assert_val(CC_FIELD_MODEL, "m");
    assert_val(CC_FIELD_HEIGHT, "720");
}


static void
test_extract_long(void **state)
{
    char    *body;
    size_t   n, len;

    for (n = CC_VAL_MAX_LEN; n <= CC_VAL_MAX_LEN + 1; n++) {
        body = malloc(n + 128);
        assert_non_null(body);
        len = (size_t) sprintf(body, "--XyZ\r\nContent-Disposition: "
                               "form-data; name=model\r\n\r\n");
        memset(body + len, 'm', n);
        len += n;
        len += (size_t) sprintf(body + len, "\r\n--XyZ--");

        assert_int_equal(mp(body, len, "XyZ"), 0);
        assert_int_equal(vals[CC_FIELD_MODEL].type,
                         n <= CC_VAL_MAX_LEN ? CC_VAL_STRING : CC_VAL_LONG);
        free(body);
    }
}


static void
test_extract_unused_names(void **state)
{
    cc_path_t  empty[CC_FIELD_MAX];

    memset(empty, 0, sizeof(empty));
    empty[CC_FIELD_N].data = "n";
    empty[CC_FIELD_N].len = 1;

    assert_int_equal(extract(S(
        "--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\n1\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"n\"\r\n\r\n2\r\n"
        "--b--"), "b", 1, empty, vals), 0);
    assert_val(CC_FIELD_N, "2");
    assert_val(CC_FIELD_MODEL, NULL);
}


static double
seconds_since(clock_t start)
{
    return (double) (clock() - start) / CLOCKS_PER_SEC;
}


static void
assert_fast(clock_t start)
{
    double  limit;

    limit = getenv("CC_TEST_SLOW") ? 120.0 : 2.0;

    if (seconds_since(start) > limit) {
        fail_msg("took %.2f s", seconds_since(start));
    }
}


static void
test_big_file_part(void **state)
{
    char        *body;
    size_t       len, size, i;
    clock_t      start;

    static const char  head[] =
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"input_reference\"; "
            "filename=\"ref.mp4\"\r\n"
        "Content-Type: video/mp4\r\n"
        "\r\n";
    static const char  tail[] =
        "\r\n--XyZ\r\n"
        "Content-Disposition: form-data; name=\"seconds\"\r\n\r\n"
        "12\r\n--XyZ--\r\n";

    size = 20 * 1024 * 1024;
    body = malloc(sizeof(head) + size + sizeof(tail));
    assert_non_null(body);

    memcpy(body, head, sizeof(head) - 1);
    len = sizeof(head) - 1;

    /* near-delimiters everywhere: "\r\n--XyY" */
    for (i = 0; i + 8 <= size; i += 8) {
        memcpy(body + len + i, "\r\n--XyY\n", 8);
    }

    len += size;
    memcpy(body + len, tail, sizeof(tail) - 1);
    len += sizeof(tail) - 1;

    start = clock();
    assert_int_equal(extract(body, len, "XyZ", 3, names, vals),
                     0);
    assert_fast(start);
    assert_val(CC_FIELD_SECONDS, "12");

    free(body);
}


static void
test_many_tiny_parts(void **state)
{
    char        *body, *p;
    size_t       i, nparts;
    clock_t      start;

    static const char  part[] =
        "--XyZ\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nv\r\n";

    nparts = 100000;
    body = malloc(nparts * (sizeof(part) - 1) + 64);
    assert_non_null(body);
    p = body;

    for (i = 0; i < nparts; i++) {
        memcpy(p, part, sizeof(part) - 1);
        p += sizeof(part) - 1;
    }

    memcpy(p, "--XyZ--", 7);
    p += 7;

    start = clock();
    assert_int_equal(extract(body, (size_t) (p - body), "XyZ",
                                          3, names, vals), 0);
    assert_fast(start);
    assert_val(CC_FIELD_MODEL, NULL);

    /* the same without the closing delimiter: malformed, and still fast */
    start = clock();
    assert_int_equal(extract(body, (size_t) (p - body) - 7,
                                          "XyZ", 3, names, vals), -1);
    assert_fast(start);

    free(body);
}


static void
test_hostile_headers(void **state)
{
    char        *body;
    size_t       len, i;
    clock_t      start;

    /* one part whose header block never ends: megabytes of header lines */
    len = 7 + 4 * 2 * 1024 * 1024;
    body = malloc(len);
    assert_non_null(body);
    memcpy(body, "--XyZ\r\n", 7);

    for (i = 7; i + 4 <= len; i += 4) {
        memcpy(body + i, "a:\r\n", 4);
    }

    start = clock();
    assert_int_equal(extract(body, len, "XyZ", 3, names, vals),
                     -1);
    assert_fast(start);

    free(body);
}


/* a control byte in a parameter is malformed, quoted or not */

static void
test_control_bytes(void **state)
{
    size_t       i;
    cc_val_t     vals[CC_FIELD_MAX];
    cc_path_t    names[CC_FIELD_MAX];
    char         body[256];
    int          n;

    static const char  *disp[] = {
        "form-data; name=\"seconds\\x00\"", "form-data; name=\"seconds\x01\"",
        "form-data; name=seconds\x01", "form-data; name=\"sec\x7fonds\"",
        "form-data; na\x01me=\"seconds\""
    };

    memset(names, 0, sizeof(names));
    names[CC_FIELD_SECONDS].data = "seconds";
    names[CC_FIELD_SECONDS].len = 7;

    for (i = 0; i < sizeof(disp) / sizeof(disp[0]); i++) {
        n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: %s"
                     "\r\n\r\n12\r\n--b--\r\n", disp[i]);
        if (i == 0) {
            /* a real NUL inside the quotes */
            char *z = strstr(body, "\\x00");
            z[0] = '\0';
            memmove(z + 1, z + 4, (size_t) (body + n - (z + 4)) + 1);
            n -= 3;
        }

        assert_int_equal(extract(body, (size_t) n, "b", 1,
                                              names, vals), -1);
    }

    /* an empty body, or one shorter than its delimiter */
    assert_int_equal(extract("", 0, "b", 1, names, vals), -1);
    assert_int_equal(extract("--", 2, "b", 1, names, vals), -1);

    n = snprintf(body, sizeof(body), "--b\r\nContent-Disposition: form-data;"
                 " name=\"sec\tonds\"\r\n\r\n12\r\n--b--\r\n");
    assert_int_equal(extract(body, (size_t) n, "b", 1, names,
                                          vals), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_control_bytes),
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_extract_basic),
        cmocka_unit_test(test_extract_framing),
        cmocka_unit_test(test_extract_malformed),
        cmocka_unit_test(test_extract_files),
        cmocka_unit_test(test_extract_duplicates_and_names),
        cmocka_unit_test(test_extract_long),
        cmocka_unit_test(test_extract_unused_names),
        cmocka_unit_test(test_big_file_part),
        cmocka_unit_test(test_many_tiny_parts),
        cmocka_unit_test(test_hostile_headers),
    };

    return cmocka_run_group_tests_name("cc_multipart", tests, group_setup,
                                       NULL);
}

/*
 * cc_json: parsing bodies that are not NUL-terminated, and walking paths.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cc_json.h"


#define S(lit)  lit, sizeof(lit) - 1


static cJSON *
parse(const char *s, size_t len)
{
    char   *body, *tmp;
    cJSON  *root;

    /* an exact-size heap copy, so that overreads show under valgrind */
    body = malloc(len ? len : 1);
    tmp = malloc(len + 1);
    assert_non_null(body);
    assert_non_null(tmp);
    memcpy(body, s, len);

    root = cc_json_parse(body, len, tmp);

    free(body);

    if (root == NULL) {
        free(tmp);
        return NULL;
    }

    /* the tree owns copies; tmp may go */
    free(tmp);

    return root;
}


static void
paths_default(cc_path_t paths[CC_FIELD_MAX])
{
    static const char  *p[CC_FIELD_MAX] = {
        "model", "size", "width", "height", "seconds", "num_frames", "n",
        "num_inference_steps"
    };
    int                 f;

    for (f = 0; f < CC_FIELD_MAX; f++) {
        paths[f].data = p[f];
        paths[f].len = strlen(p[f]);
    }
}


static void
extract(const char *json, cc_path_t paths[CC_FIELD_MAX],
    cc_val_t vals[CC_FIELD_MAX], cJSON **root)
{
    *root = parse(json, strlen(json));
    assert_non_null(*root);
    cc_json_extract(*root, paths, vals);
}


static void
test_parse_rejects(void **state)
{
    size_t       i;
    const char  *bad[] = {
        "", " ", "null", "1", "\"x\"", "[]", "[{}]", "true", "{", "}",
        "{\"a\":1", "{\"a\":1}x", "{\"a\":1}{}", "{\"a\":1},", "{'a':1}",
        "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}",
        "{\"a\":1,}", "{a:1}", "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u0000\"}", "{\"a\\u0000b\":1}",
        "{\"model\":\"sora-2\\u0000-pro\"}", "{\"a\":\"\\\\\\u0000\"}",
        "{\"a\":1}\\", "{\"a\":1}\\x"
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], strlen(bad[i])) != NULL) {
            fail_msg("accepted: %s", bad[i]);
        }
    }

    /* a raw NUL anywhere, even after the object */
    assert_null(parse(S("{\"a\":\"x\0y\"}")));
    assert_null(parse(S("{\"a\":1}\0")));
    assert_null(parse(S("{\"a\":1}\0garbage")));
    assert_null(parse(S("\0{}")));
}


static void
test_parse_accepts(void **state)
{
    cJSON  *root;

    root = parse(S("{}"));
    assert_non_null(root);
    cJSON_Delete(root);

    root = parse(S(" \r\n\t{\"a\": [1, 2, {\"b\": null}]} \r\n\t"));
    assert_non_null(root);
    cJSON_Delete(root);

    /* an escaped backslash followed by the text u0000 is no NUL */
    root = parse(S("{\"a\":\"\\\\u0000\"}"));
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "a")
                        ->valuestring, "\\u0000");
    cJSON_Delete(root);

    /* cJSON skips a UTF-8 byte order mark, as RFC 8259 allows */
    root = parse(S("\xef\xbb\xbf{}"));
    assert_non_null(root);
    cJSON_Delete(root);

    root = parse(S("{\"a\":\"\\u00e9\\ud83d\\ude00\"}"));
    assert_non_null(root);
    cJSON_Delete(root);
}


static void
test_parse_not_terminated(void **state)
{
    char    body[16], tmp[17];
    cJSON  *root;

    /* the body is followed by garbage: only len bytes count */
    memcpy(body, "{\"n\":12}34567890", 16);
    root = cc_json_parse(body, 8, tmp);
    assert_non_null(root);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "n")->valueint,
                     12);
    cJSON_Delete(root);

    root = cc_json_parse(body, 10, tmp);
    assert_null(root);
}


static void
test_parse_deep(void **state)
{
    char    *s;
    size_t   i, depth, len;
    cJSON   *root;

    for (depth = 990; depth <= 1010; depth += 20) {
        len = 5 + 2 * depth + 1;
        s = malloc(len + 1);
        assert_non_null(s);

        memcpy(s, "{\"a\":", 5);

        for (i = 0; i < depth; i++) {
            s[5 + i] = '[';
            s[5 + depth + i] = ']';
        }

        s[5 + 2 * depth] = '}';

        root = parse(s, len);

        if (depth < 1000) {
            assert_non_null(root);
            cJSON_Delete(root);

        } else {
            assert_null(root);
        }

        free(s);
    }
}


static void
test_extract_defaults(void **state)
{
    cJSON      *root;
    cc_val_t    vals[CC_FIELD_MAX];
    cc_path_t   paths[CC_FIELD_MAX];

    paths_default(paths);
    extract("{\"model\":\"sora-2\",\"size\":\"1280x720\",\"seconds\":\"8\","
            "\"num_frames\":96.5,\"n\":null,\"width\":true,"
            "\"height\":[720],\"num_inference_steps\":{\"x\":1}}",
            paths, vals, &root);

    assert_int_equal(vals[CC_FIELD_MODEL].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_MODEL].len, 6);
    assert_memory_equal(vals[CC_FIELD_MODEL].str, "sora-2", 6);
    assert_int_equal(vals[CC_FIELD_SIZE].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_SECONDS].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_FRAMES].type, CC_VAL_NUMBER);
    assert_true(vals[CC_FIELD_FRAMES].num == 96.5);
    assert_int_equal(vals[CC_FIELD_N].type, CC_VAL_ABSENT);
    assert_int_equal(vals[CC_FIELD_WIDTH].type, CC_VAL_OTHER);
    assert_int_equal(vals[CC_FIELD_HEIGHT].type, CC_VAL_OTHER);
    assert_int_equal(vals[CC_FIELD_STEPS].type, CC_VAL_OTHER);

    cJSON_Delete(root);
}


static void
test_extract_case_and_duplicates(void **state)
{
    cJSON      *root;
    cc_val_t    vals[CC_FIELD_MAX];
    cc_path_t   paths[CC_FIELD_MAX];

    paths_default(paths);

    /* "Model" is not "model"; of two "n" the first wins */
    extract("{\"Model\":\"cheap\",\"MODEL\":\"x\",\"n\":1,\"n\":100,"
            "\"model\":\"sora-2-pro\",\"model\":\"sora-2\","
            "\"seconds\":null,\"seconds\":12}",
            paths, vals, &root);

    assert_int_equal(vals[CC_FIELD_MODEL].type, CC_VAL_STRING);
    assert_string_equal(vals[CC_FIELD_MODEL].str, "sora-2-pro");
    assert_int_equal(vals[CC_FIELD_N].type, CC_VAL_NUMBER);
    assert_true(vals[CC_FIELD_N].num == 1);

    /* a null first is still the first */
    assert_int_equal(vals[CC_FIELD_SECONDS].type, CC_VAL_ABSENT);

    cJSON_Delete(root);
}


static void
test_extract_dotted(void **state)
{
    int         f;
    cJSON      *root;
    cc_val_t    vals[CC_FIELD_MAX];
    cc_path_t   paths[CC_FIELD_MAX];

    static const char  *p[CC_FIELD_MAX] = {
        "model", "input.size", "input.dims.w", "input.dims.h", "input",
        "input.dims.w.x", "a..b", ""
    };

    for (f = 0; f < CC_FIELD_MAX; f++) {
        paths[f].data = p[f];
        paths[f].len = strlen(p[f]);
    }

    extract("{\"model\":\"m\",\"input\":{\"size\":\"2x2\",\"dims\":"
            "{\"w\":3,\"h\":\"4\"}},\"a\":{\"\":{\"b\":5}},"
            "\"input.size\":\"9x9\",\"\":7}",
            paths, vals, &root);

    assert_int_equal(vals[CC_FIELD_SIZE].type, CC_VAL_STRING);
    assert_string_equal(vals[CC_FIELD_SIZE].str, "2x2");
    assert_int_equal(vals[CC_FIELD_WIDTH].type, CC_VAL_NUMBER);
    assert_true(vals[CC_FIELD_WIDTH].num == 3);
    assert_int_equal(vals[CC_FIELD_HEIGHT].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_SECONDS].type, CC_VAL_OTHER);
    /* a number in the middle of a path: absent */
    assert_int_equal(vals[CC_FIELD_FRAMES].type, CC_VAL_ABSENT);
    /* an empty segment matches the empty key */
    assert_int_equal(vals[CC_FIELD_N].type, CC_VAL_NUMBER);
    assert_true(vals[CC_FIELD_N].num == 5);
    /* an empty path is never looked up */
    assert_int_equal(vals[CC_FIELD_STEPS].type, CC_VAL_ABSENT);

    cJSON_Delete(root);

    /* a prefix of a key is not the key; arrays are not objects */
    paths[CC_FIELD_SIZE].data = "inp.size";
    paths[CC_FIELD_SIZE].len = 8;
    paths[CC_FIELD_WIDTH].data = "arr.0";
    paths[CC_FIELD_WIDTH].len = 5;
    paths[CC_FIELD_HEIGHT].data = NULL;
    paths[CC_FIELD_HEIGHT].len = 0;
    /* the length, not a NUL, ends a path: "model" of "modelX" */
    paths[CC_FIELD_MODEL].data = "modelX";
    paths[CC_FIELD_MODEL].len = 5;
    extract("{\"model\":\"m\",\"input\":{\"size\":\"2x2\"},\"arr\":[1]}",
            paths, vals, &root);
    assert_int_equal(vals[CC_FIELD_MODEL].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_SIZE].type, CC_VAL_ABSENT);
    assert_int_equal(vals[CC_FIELD_WIDTH].type, CC_VAL_ABSENT);
    assert_int_equal(vals[CC_FIELD_HEIGHT].type, CC_VAL_ABSENT);
    cJSON_Delete(root);
}


static void
test_extract_numbers(void **state)
{
    cJSON      *root;
    cc_val_t    vals[CC_FIELD_MAX];
    cc_path_t   paths[CC_FIELD_MAX];

    paths_default(paths);
    extract("{\"n\":1e999,\"seconds\":-1e999,\"width\":-0,\"height\":1E2,"
            "\"num_frames\":\"\",\"model\":\"\"}",
            paths, vals, &root);

    assert_int_equal(vals[CC_FIELD_N].type, CC_VAL_NUMBER);
    assert_true(vals[CC_FIELD_N].num > 1e308);
    assert_int_equal(vals[CC_FIELD_SECONDS].type, CC_VAL_NUMBER);
    assert_int_equal(vals[CC_FIELD_WIDTH].type, CC_VAL_NUMBER);
    assert_true(vals[CC_FIELD_HEIGHT].num == 100);
    assert_int_equal(vals[CC_FIELD_FRAMES].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_FRAMES].len, 0);
    assert_int_equal(vals[CC_FIELD_MODEL].type, CC_VAL_STRING);
    assert_int_equal(vals[CC_FIELD_MODEL].len, 0);

    cJSON_Delete(root);
}


/* a body with room for the NUL is parsed where it is */

static void
test_parse_in_place(void **state)
{
    char    buf[64];
    cJSON  *root;

    strcpy(buf, "{\"model\":\"sora-2\"}  ");
    root = cc_json_parse(buf, strlen(buf), buf);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "model")
                        ->valuestring, "sora-2");
    cJSON_Delete(root);

    strcpy(buf, "{\"model\":1} x");
    assert_null(cc_json_parse(buf, strlen(buf), buf));
}


/* RFC 8259 exactly: what cJSON alone would take, or misread, is refused */

static void
test_parse_strict(void **state)
{
    size_t        i;
    cJSON        *root;
    char          deep[2100];

    static const char  *bad[] = {
        "{\"n\":012}", "{\"n\":01}", "{\"n\":1.}", "{\"n\":-01}",
        "{\"n\":1.e3}", "{\"n\":.5}", "{\"n\":+1}", "{\"n\":-}",
        "{\"n\":1e}", "{\"n\":1e+}", "{\"n\":0x10}", "{\"n\":NaN}",
        "{\"n\":Infinity}", "{\"n\":-Infinity}", "{\"n\":tru}",
        "{\"m\":\"sora-2\\uZZZZ-pro\"}", "{\"m\":\"\\u00G0\"}",
        "{\"m\":\"\\u-001\"}", "{\"m\":\"\\u 000\"}", "{\"m\":\"\\u+000\"}",
        "{\"m\":\"\\u12\"}", "{\"m\":\"\\x41\"}", "{\"m\":\"\\u0000\"}",
        "{\"m\":\"a\tb\"}", "{\"seconds\\uZZZZ\":12}", "{\"a\":1,}",
        "{\"a\":1 \"b\":2}", "{\"a\" 1}", "{a:1}", "{\"a\":[1,]}",
        "{\"a\":[1 2]}", "{\"a\":1}}", "{\"a\":1]", "{\"a\":[}", "{",
        "{\"a\":\"x", "{\"a\":\"x\\", "{}{}", "{} x", "\"\\",
        "{\"a\":1}\x0b"
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        root = parse(bad[i], strlen(bad[i]));
        if (root) {
            print_error("accepted: %s\n", bad[i]);
            fail();
        }
    }

    root = parse(S("{\"n\":[0,-0,0.5,-1.25e+3,1E-2,10],\"s\":\"\\/\\b\\f"
                   "\\n\\r\\t\\\"\\\\\\u00e9\",\"t\":true,\"f\":false,"
                   "\"z\":null,\"o\":{}}"));
    assert_non_null(root);
    cJSON_Delete(root);

    /* as deep as cJSON allows, and one more */
    for (i = 0; i < 999; i++) {
        deep[i] = '[';
        deep[999 + i] = ']';
    }

    memcpy(deep, "{\"a\":", 5);
    memset(deep + 5, '[', 994);
    memset(deep + 999, ']', 994);
    deep[1993] = '}';
    root = parse(deep, 1994);
    assert_non_null(root);
    cJSON_Delete(root);

    memset(deep + 5, '[', 1000);
    memset(deep + 1005, ']', 1000);
    deep[2005] = '}';
    assert_null(parse(deep, 2006));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_parse_strict),
        cmocka_unit_test(test_parse_in_place),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_parse_not_terminated),
        cmocka_unit_test(test_parse_deep),
        cmocka_unit_test(test_extract_defaults),
        cmocka_unit_test(test_extract_case_and_duplicates),
        cmocka_unit_test(test_extract_dotted),
        cmocka_unit_test(test_extract_numbers),
    };

    return cmocka_run_group_tests_name("cc_json", tests, NULL, NULL);
}

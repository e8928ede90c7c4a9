/*
 * JSON bodies: checked against RFC 8259 strictly, then parsed by cJSON,
 * then the configured paths looked up in the tree.
 */

#include <string.h>

#include "cc_json.h"


static int cc_json_strict(const char *p, size_t len);
static const char *cc_json_scalar(const char *p, const char *last);
static const char *cc_json_string(const char *p, const char *last);
static const char *cc_json_number(const char *p, const char *last);
static const char *cc_json_digits(const char *p, const char *last);
static const cJSON *cc_json_child(const cJSON *obj, const char *key,
    size_t len);
static void cc_json_value(const cJSON *item, cc_val_t *v);


cJSON *
cc_json_parse(const char *body, size_t len, char *tmp)
{
    cJSON       *root;
    const char  *end;

    if (!cc_json_strict(body, len)) {
        return NULL;
    }

    /* the caller may have made body its own terminated copy already */
    if (tmp != body) {
        memcpy(tmp, body, len);
    }

    tmp[len] = '\0';

    end = NULL;
    root = cJSON_ParseWithLengthOpts(tmp, len + 1, &end, 1);

    if (root == NULL) {
        return NULL;
    }

    if (!cJSON_IsObject(root) || end != tmp + len) {
        cJSON_Delete(root);
        return NULL;
    }

    return root;
}


void
cc_json_extract(const cJSON *root, const cc_path_t paths[CC_FIELD_MAX],
    cc_val_t vals[CC_FIELD_MAX])
{
    int           f;
    size_t        seg;
    const char   *p, *last, *dot;
    const cJSON  *node;

    for (f = 0; f < CC_FIELD_MAX; f++) {
        memset(&vals[f], 0, sizeof(cc_val_t));
        vals[f].type = CC_VAL_ABSENT;

        if (paths[f].data == NULL || paths[f].len == 0) {
            continue;
        }

        node = root;
        p = paths[f].data;
        last = p + paths[f].len;

        while (node != NULL) {
            dot = memchr(p, '.', (size_t) (last - p));
            seg = (size_t) ((dot ? dot : last) - p);
            node = cc_json_child(node, p, seg);

            if (dot == NULL) {
                break;
            }

            p = dot + 1;
        }

        if (node != NULL) {
            cc_json_value(node, &vals[f]);
        }
    }
}


/*
 * RFC 8259, strictly, before cJSON sees a body.  cJSON reads 012 as 12
 * and 1. as 1, and turns a bad \u escape into a NUL that ends the string
 * ("sora-2\uZZZZ-pro" would be priced as "sora-2"): a gateway must not
 * price a reading of the body the backend may not share.  Refuses \u0000
 * too (cJSON strings end at a NUL), and nesting deeper than cJSON allows.
 */

typedef enum {
    CC_J_VALUE = 0,
    CC_J_VALUE_OR_CLOSE,        /* after '[' */
    CC_J_KEY_OR_CLOSE,          /* after '{' */
    CC_J_KEY,
    CC_J_COLON,
    CC_J_AFTER                  /* after a value */
} cc_json_expect_e;


static int
cc_json_strict(const char *p, size_t len)
{
    char              stack[CJSON_NESTING_LIMIT];  /* '}' or ']' */
    size_t            depth;
    const char       *last;
    cc_json_expect_e  expect;

    last = p + len;
    depth = 0;
    expect = CC_J_VALUE;

    /* a UTF-8 byte order mark may be ignored (RFC 8259, 8.1); cJSON does */
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3;
    }

    for ( ;; ) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == '\n'
                            || *p == '\r'))
        {
            p++;
        }

        if (p == last) {
            return depth == 0 && expect == CC_J_AFTER;
        }

        switch (expect) {

        case CC_J_VALUE_OR_CLOSE:
        case CC_J_KEY_OR_CLOSE:
            if (*p == stack[depth - 1]) {
                depth--;
                p++;
                expect = CC_J_AFTER;
                break;
            }

            if (expect == CC_J_KEY_OR_CLOSE) {
                goto key;
            }

            /* fall through */

        case CC_J_VALUE:
            if (*p == '{' || *p == '[') {
                if (depth == CJSON_NESTING_LIMIT) {
                    return 0;
                }

                stack[depth++] = (*p == '{') ? '}' : ']';
                expect = (*p == '{') ? CC_J_KEY_OR_CLOSE : CC_J_VALUE_OR_CLOSE;
                p++;
                break;
            }

            p = cc_json_scalar(p, last);
            if (p == NULL) {
                return 0;
            }

            expect = CC_J_AFTER;
            break;

        case CC_J_KEY:
        key:
            if (*p != '"') {
                return 0;
            }

            p = cc_json_string(p, last);
            if (p == NULL) {
                return 0;
            }

            expect = CC_J_COLON;
            break;

        case CC_J_COLON:
            if (*p != ':') {
                return 0;
            }

            p++;
            expect = CC_J_VALUE;
            break;

        default: /* CC_J_AFTER */
            if (depth == 0) {
                return 0;
            }

            if (*p == ',') {
                p++;
                expect = (stack[depth - 1] == '}') ? CC_J_KEY : CC_J_VALUE;
                break;
            }

            if (*p != stack[depth - 1]) {
                return 0;
            }

            depth--;
            p++;
            break;
        }
    }
}


/* a string, number or literal at p; the end of it, or NULL */

static const char *
cc_json_scalar(const char *p, const char *last)
{
    size_t  n;

    if (*p == '"') {
        return cc_json_string(p, last);
    }

    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        return cc_json_number(p, last);
    }

    n = (size_t) (last - p);

    if (n >= 4 && (memcmp(p, "true", 4) == 0 || memcmp(p, "null", 4) == 0)) {
        return p + 4;
    }

    if (n >= 5 && memcmp(p, "false", 5) == 0) {
        return p + 5;
    }

    return NULL;
}


static const char *
cc_json_string(const char *p, const char *last)
{
    int            i;
    unsigned char  c;

    /* the bytes a string cannot simply contain: '"', '\\', controls */
    static const unsigned char  special[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
    };

    for (p++; p < last; p++) {

        /* a prompt is mostly plain text: skip it four bytes at a time */
        while (last - p >= 4
               && !(special[(unsigned char) p[0]]
                    | special[(unsigned char) p[1]]
                    | special[(unsigned char) p[2]]
                    | special[(unsigned char) p[3]]))
        {
            p += 4;
        }

        if (p == last) {
            break;
        }

        c = (unsigned char) *p;

        if (!special[c]) {
            continue;
        }

        if (c == '"') {
            return p + 1;
        }

        if (c < 0x20) {
            return NULL;
        }

        if (c != '\\') {
            continue;
        }

        if (last - p < 2) {
            return NULL;
        }

        switch (p[1]) {

        case '"': case '\\': case '/': case 'b':
        case 'f': case 'n': case 'r': case 't':
            p++;
            break;

        case 'u':
            if (last - p < 6 || memcmp(p + 2, "0000", 4) == 0) {
                return NULL;
            }

            for (i = 2; i < 6; i++) {
                c = (unsigned char) p[i];

                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                      || (c >= 'A' && c <= 'F')))
                {
                    return NULL;
                }
            }

            p += 5;
            break;

        default:
            return NULL;
        }
    }

    return NULL;
}


/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */

static const char *
cc_json_number(const char *p, const char *last)
{
    if (*p == '-') {
        p++;
    }

    if (p == last || *p < '0' || *p > '9') {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else {
        p = cc_json_digits(p, last);
    }

    if (p < last && *p == '.') {
        p++;

        if (p == last || *p < '0' || *p > '9') {
            return NULL;
        }

        p = cc_json_digits(p, last);
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            return NULL;
        }

        p = cc_json_digits(p, last);
    }

    return p;
}


static const char *
cc_json_digits(const char *p, const char *last)
{
    while (p < last && *p >= '0' && *p <= '9') {
        p++;
    }

    return p;
}


static const cJSON *
cc_json_child(const cJSON *obj, const char *key, size_t len)
{
    const cJSON  *c;

    if (!cJSON_IsObject(obj)) {
        return NULL;
    }

    /* cJSON_GetObjectItem() ignores case; the first duplicate wins here */
    for (c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL
            && strlen(c->string) == len
            && memcmp(c->string, key, len) == 0)
        {
            return c;
        }
    }

    return NULL;
}


static void
cc_json_value(const cJSON *item, cc_val_t *v)
{
    if (cJSON_IsNull(item)) {
        v->type = CC_VAL_ABSENT;

    } else if (cJSON_IsString(item) && item->valuestring != NULL) {
        v->type = CC_VAL_STRING;
        v->str = item->valuestring;
        v->len = strlen(item->valuestring);

    } else if (cJSON_IsNumber(item)) {
        v->type = CC_VAL_NUMBER;
        v->num = item->valuedouble;

    } else {
        v->type = CC_VAL_OTHER;
    }
}

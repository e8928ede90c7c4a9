/*
 * JSON bodies.  cJSON keeps strings NUL-terminated without their length,
 * so a body that could put a NUL inside a string (a raw NUL byte or a
 * \u0000 escape) is refused: "sora-2\u0000-pro" must not be priced as
 * "sora-2".
 */

#include <string.h>

#include "cc_json.h"


static int cc_json_has_nul(const char *body, size_t len);
static const cJSON *cc_json_child(const cJSON *obj, const char *key,
    size_t len);
static void cc_json_value(const cJSON *item, cc_val_t *v);


cJSON *
cc_json_parse(const char *body, size_t len, char *tmp)
{
    cJSON       *root;
    const char  *end;

    if (len == 0 || cc_json_has_nul(body, len)) {
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


static int
cc_json_has_nul(const char *body, size_t len)
{
    const char  *p, *last;

    if (memchr(body, '\0', len) != NULL) {
        return 1;
    }

    /*
     * Outside strings a backslash fails the parse anyway; inside, each
     * escape is two characters, so skipping them finds every "\u0000".
     */

    last = body + len;

    for (p = body; p < last; p += 2) {
        p = memchr(p, '\\', (size_t) (last - p));

        if (p == NULL) {
            return 0;
        }

        if (last - p < 2) {
            return 0;
        }

        if (last - p >= 6 && memcmp(p + 1, "u0000", 5) == 0) {
            return 1;
        }
    }

    return 0;
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

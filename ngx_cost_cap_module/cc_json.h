/*
 * Pure core: raw field values from a parsed JSON body (cJSON) by dotted
 * path ("input.width").
 */

#ifndef _CC_JSON_H_INCLUDED_
#define _CC_JSON_H_INCLUDED_


#include <stddef.h>
#include <cjson/cJSON.h>

#include "cc_price.h"


typedef struct {
    const char     *data;
    size_t          len;
} cc_path_t;


/*
 * Parses body (len bytes, need not be NUL-terminated; tmp must hold len + 1
 * bytes for a terminated copy, and may be body itself when body has room
 * for the NUL) into a cJSON tree; NULL unless it is exactly one JSON object
 * (trailing whitespace allowed).  A body with a NUL byte or
 * a \u0000 escape is refused too: cJSON would cut the string there.  Free
 * with cJSON_Delete.
 */
cJSON *cc_json_parse(const char *body, size_t len, char *tmp);

/*
 * Fills vals[f] for every field f from the object root by paths[f]
 * (dotted; key comparison is exact and the first of duplicate keys wins).
 * A missing path or JSON null is CC_VAL_ABSENT.  String values point into
 * the tree.
 */
void cc_json_extract(const cJSON *root, const cc_path_t paths[CC_FIELD_MAX],
    cc_val_t vals[CC_FIELD_MAX]);


#endif /* _CC_JSON_H_INCLUDED_ */

/*
 * Pure core: a string with its length, and a field's raw value as a JSON
 * body, a multipart body or a variable gives it.
 */

#ifndef _CC_VAL_H_INCLUDED_
#define _CC_VAL_H_INCLUDED_


#include <stddef.h>


/*
 * The longest value kept for pricing: a longer one is CC_VAL_LONG, which
 * matches no model pattern and no listed value, and is no number.
 */
#define CC_VAL_MAX_LEN  1024


typedef struct {
    const char     *data;
    size_t          len;
} cc_str_t;

/* a dotted JSON path ("input.width"), or a multipart field name */
typedef cc_str_t  cc_path_t;


typedef enum {
    CC_VAL_ABSENT = 0,       /* missing, JSON null, an empty variable */
    CC_VAL_STRING,           /* str/len: the decoded string */
    CC_VAL_NUMBER,           /* str/len: a JSON number as written */
    CC_VAL_BOOL,             /* str/len: "true" or "false" */
    CC_VAL_OTHER,            /* a JSON object or array */
    CC_VAL_LONG              /* a string or number over CC_VAL_MAX_LEN */
} cc_val_type_e;


typedef struct {
    cc_val_type_e   type;
    const char     *str;
    size_t          len;
} cc_val_t;


#endif /* _CC_VAL_H_INCLUDED_ */

/*
 * Pure core: multipart/form-data (RFC 7578) text fields by name.  File
 * parts (those with a filename) are skipped and never copied.
 */

#ifndef _CC_MULTIPART_H_INCLUDED_
#define _CC_MULTIPART_H_INCLUDED_


#include <stddef.h>

#include "cc_val.h"


#define CC_MULTIPART_BOUNDARY_MAX  70


typedef enum {
    CC_MULTIPART_OK = 0,
    CC_MULTIPART_INVALID,
    CC_MULTIPART_DUPLICATE      /* a read field twice, or in another case */
} cc_multipart_rc_e;


/*
 * Finds the boundary parameter of a Content-Type value
 * ("multipart/form-data; boundary=xyz", quoted or not).  Returns 0 with
 * *b / *blen pointing into ctype, or -1 when it is absent, empty, longer
 * than CC_MULTIPART_BOUNDARY_MAX, given twice, escaped, or not printable
 * ASCII.  The media type itself is not checked.
 */
int cc_multipart_boundary(const char *ctype, size_t len, const char **b,
    size_t *blen);

/*
 * Scans body for the text fields named by names[i] (only the whole name
 * matches; dotted paths are plain names here; a name of length 0 is not
 * read) and sets vals[i] to CC_VAL_STRING pointing into body (CC_VAL_LONG
 * over CC_VAL_MAX_LEN bytes), or CC_VAL_ABSENT.  Returns CC_MULTIPART_OK;
 * CC_MULTIPART_DUPLICATE with *bad set when a read field comes twice, or
 * under a name that differs from it only in case (as cc_json.h says);
 * CC_MULTIPART_INVALID when the body is malformed: no opening or closing
 * delimiter, a delimiter not followed by "--" or optional blanks and
 * CRLF, bare LF line ends, a part without Content-Disposition form-data
 * or without a name (unless a file), a header block without its end, a
 * header line without a name, and, where a backend could read the field
 * differently: two Content-Dispositions or name parameters, a
 * backslash-escaped name matching a field, a Content-Transfer-Encoding
 * other than 7bit/8bit/binary on a field.
 */
int cc_multipart_extract(const char *body, size_t len, const char *boundary,
    size_t blen, const cc_path_t *names, size_t nnames, cc_val_t *vals,
    size_t *bad);


#endif /* _CC_MULTIPART_H_INCLUDED_ */

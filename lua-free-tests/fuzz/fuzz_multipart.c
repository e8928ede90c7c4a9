/*
 * libFuzzer: "Content-Type\n" then a multipart body.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_multipart.h"
#include "cc_price.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            f, rc;
    char          *ct, *body;
    size_t         clen, blen, len, bad;
    const char    *b, *nl;
    cc_val_t       vals[CC_FIELD_MAX];
    cc_path_t      names[CC_FIELD_MAX];
    cc_dims_t      dims;
    cc_field_e     fbad;

    nl = memchr(data, '\n', size);

    if (nl == NULL) {
        return 0;
    }

    clen = (size_t) (nl - (const char *) data);
    ct = malloc(clen ? clen : 1);
    memcpy(ct, data, clen);

    len = size - clen - 1;
    body = malloc(len ? len : 1);
    memcpy(body, nl + 1, len);

    for (f = 0; f < CC_FIELD_MAX; f++) {
        names[f].data = cc_field_default_path(f);
        names[f].len = strlen(names[f].data);
    }

    if (cc_multipart_boundary(ct, clen, &b, &blen) == 0) {
        if (blen == 0 || blen > CC_MULTIPART_BOUNDARY_MAX
            || b < ct || b + blen > ct + clen)
        {
            abort();
        }

        rc = cc_multipart_extract(body, len, b, blen, names, CC_FIELD_MAX,
                                  vals, &bad);

        if (rc == CC_MULTIPART_DUPLICATE && bad >= CC_FIELD_MAX) {
            abort();
        }

        if (rc == CC_MULTIPART_OK) {
            for (f = 0; f < CC_FIELD_MAX; f++) {
                if ((vals[f].type == CC_VAL_STRING
                     || vals[f].type == CC_VAL_LONG)
                    && (vals[f].str < body
                        || vals[f].str + vals[f].len > body + len
                        || (vals[f].type == CC_VAL_STRING)
                           != (vals[f].len <= CC_VAL_MAX_LEN)))
                {
                    abort();
                }
            }

            (void) cc_dims_from_vals(vals, 0, &dims, &fbad);
        }
    }

    free(ct);
    free(body);

    return 0;
}

/*
 * libFuzzer: a JSON body through parse, extract, dims and the estimate.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_json.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            f;
    char          *body, *tmp;
    cJSON         *root;
    cc_val_t       vals[CC_FIELD_MAX];
    cc_path_t      paths[CC_FIELD_MAX];
    cc_dims_t      dims;
    cc_rule_t      rule;
    cc_field_e     bad;
    cc_estimate_t  est;

    /* exact-size copies: ASan sees any overread */
    body = malloc(size ? size : 1);
    tmp = malloc(size + 1);
    memcpy(body, data, size);

    root = cc_json_parse(body, size, tmp);
    free(body);

    if (root == NULL) {
        free(tmp);
        return 0;
    }

    for (f = 0; f < CC_FIELD_MAX; f++) {
        paths[f].data = cc_field_default_path(f);
        paths[f].len = strlen(paths[f].data);
    }

    paths[CC_FIELD_WIDTH].data = "input.width";
    paths[CC_FIELD_WIDTH].len = 11;

    cc_json_extract(root, paths, vals);

    for (f = 0; f < CC_FIELD_MAX; f++) {
        if (vals[f].type == CC_VAL_STRING
            && strlen(vals[f].str) != vals[f].len)
        {
            abort();
        }
    }

    if (cc_dims_from_vals(vals, &dims, &bad) == 0) {
        memset(&rule, 0, sizeof(rule));
        rule.per_mpx_frame = 900000;
        rule.fps = 24000000;
        rule.ref_steps = 25000000;
        rule.default_width = 1280;
        rule.default_height = 720;
        rule.default_seconds = 4000000;
        rule.max_seconds = 12000000;
        rule.gpu_price = -1;

        if (cc_estimate(&rule, &dims, 3500000, &est, &bad) == 0
            && (est.cost < 0 || est.gpu_seconds < 0 || bad != CC_FIELD_NONE))
        {
            abort();
        }
    }

    cJSON_Delete(root);
    free(tmp);

    return 0;
}

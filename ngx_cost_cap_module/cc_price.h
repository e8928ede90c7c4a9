/*
 * Pure core: request dimensions, pricing rules and the SPEC section 4
 * estimate, exact in integers and rounded up once to whole micro-USD.
 */

#ifndef _CC_PRICE_H_INCLUDED_
#define _CC_PRICE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* the request fields the estimate reads; cost_cap_field NAME is one of these */
typedef enum {
    CC_FIELD_MODEL = 0,
    CC_FIELD_SIZE,
    CC_FIELD_WIDTH,
    CC_FIELD_HEIGHT,
    CC_FIELD_SECONDS,
    CC_FIELD_FRAMES,
    CC_FIELD_N,
    CC_FIELD_STEPS,
    CC_FIELD_MAX,
    CC_FIELD_NONE = CC_FIELD_MAX
} cc_field_e;


/* a raw field value as found in a JSON or multipart body */
typedef enum {
    CC_VAL_ABSENT = 0,       /* missing, or JSON null */
    CC_VAL_STRING,           /* str/len; JSON string or multipart field */
    CC_VAL_NUMBER,           /* num; JSON number */
    CC_VAL_OTHER             /* JSON true/false/object/array */
} cc_val_type_e;


typedef struct {
    cc_val_type_e   type;
    const char     *str;
    size_t          len;
    double          num;
} cc_val_t;


/* the request's dimensions; 0 = not given */
typedef struct {
    const char     *model;
    size_t          model_len;
    int64_t         width;          /* pixels, from size or width+height */
    int64_t         height;
    cc_field_e      size_field;     /* CC_FIELD_SIZE or CC_FIELD_WIDTH */
    int64_t         seconds;        /* millionths of a second */
    int64_t         frames;
    int64_t         n;
    int64_t         steps;
    /*
     * seconds or frames present but invalid: only video models read
     * them, so cc_estimate reports these, not cc_dims_from_vals
     */
    unsigned        bad_seconds:1;
    unsigned        bad_frames:1;
} cc_dims_t;


/* a pricing rule (cost_cap_model params); 0 = unset unless noted */
typedef struct {
    int64_t         per_mpx_frame;  /* micro GPU-s per megapixel-frame */
    int64_t         base;           /* micro GPU-s per output */
    int64_t         fps;            /* millionths; 0: image model */
    int64_t         ref_steps;      /* millionths */
    int64_t         default_width;
    int64_t         default_height;
    int64_t         default_seconds;   /* millionths */
    int64_t         max_seconds;       /* millionths */
    int64_t         max_pixels;
    int64_t         max_n;
    int64_t         gpu_price;      /* micro-USD per GPU-hour; -1: unset */
} cc_rule_t;


typedef struct {
    int64_t         cost;           /* micro-USD, rounded up */
    int64_t         gpu_seconds;    /* micro GPU-s of the whole request,
                                       rounded up */
} cc_estimate_t;


/* the default body path of each field: "model", "size", ... */
const char *cc_field_default_path(cc_field_e f);

/* field name as in cost_cap_field ("model" ... "steps"); -1 when unknown */
int cc_field_parse(const char *s, size_t len);

/*
 * Converts a number value (JSON number or numeric string, SPEC section 4
 * "Numbers") to millionths.  Returns 0, or -1 when it is not a number,
 * not finite, or does not fit.  A JSON number is rounded to the nearest
 * millionth and may come back negative (the caller names the field); a
 * string follows cc_decimal_parse().
 */
int cc_val_number(const cc_val_t *v, int64_t *micro);

/*
 * Turns raw values (indexed by cc_field_e) into dimensions: model must be a
 * string; size "WxH" wins over width+height (one of them alone is an
 * error naming the missing one); numbers positive, whole where SPEC says.
 * Returns 0, or -1 with *bad set to the field at fault.  Invalid seconds
 * or frames do not fail here, since image models ignore them: they set
 * bad_seconds / bad_frames, which cc_estimate() reports for video models.
 */
int cc_dims_from_vals(const cc_val_t vals[CC_FIELD_MAX], cc_dims_t *dims,
    cc_field_e *bad);

/*
 * parses "WxH" (whole positive decimal numbers, a lowercase 'x', nothing
 * else; each at most INT64_MAX / 10^6); returns 0 or -1
 */
int cc_size_parse(const char *s, size_t len, int64_t *w, int64_t *h);

/*
 * Applies rule defaults and limits to dims and computes the estimate with
 * gpu_price (micro-USD per GPU-hour) unless the rule overrides it.
 * Returns 0, or -1 with *bad set to the field at fault (a missing size or
 * seconds without default, a limit crossed, invalid seconds or frames for
 * a video model), or to CC_FIELD_NONE when the result does not fit int64
 * (the error's param is then null).  Defaults are not checked against
 * max_pixels; dims->n 0 counts as 1.
 */
int cc_estimate(const cc_rule_t *rule, const cc_dims_t *dims,
    int64_t gpu_price, cc_estimate_t *est, cc_field_e *bad);


#endif /* _CC_PRICE_H_INCLUDED_ */

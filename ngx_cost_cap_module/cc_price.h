/*
 * Pure core: request dimensions, pricing rules and the SPEC section 4
 * estimate, exact in integers and rounded up once to whole micro-USD.
 */

#ifndef _CC_PRICE_H_INCLUDED_
#define _CC_PRICE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "cc_val.h"


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
    int64_t         usd_per_output;    /* micro-USD */
    int64_t         usd_per_second;    /* micro-USD per second of video */
    int64_t         usd_per_mpx;       /* micro-USD per megapixel */
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
const char *cc_field_name(cc_field_e f);

/*
 * A JSON number as written ("-1.25e+3") to millionths, exactly, rounded
 * to the nearest millionth (halves away from zero).  Returns 0, or -1
 * when it is not a JSON number or does not fit int64.
 */
int cc_number_parse(const char *s, size_t len, int64_t *micro);

/*
 * Converts a number value (JSON number or numeric string, SPEC section 4
 * "Numbers") to millionths.  Returns 0, or -1 when it is not a number or
 * does not fit.  A JSON number follows cc_number_parse() and may come
 * back negative (the caller names the field); a string follows
 * cc_decimal_parse().
 */
int cc_val_number(const cc_val_t *v, int64_t *micro);

/*
 * when=FIELD:V1|V2 against the field's value: 1 when it holds.  A value
 * is compared as text (a string's, a number's as written, "true" or
 * "false"), exactly; "-" stands for absent; an object, an array or an
 * over-long value matches nothing listed.
 */
int cc_when_holds(const cc_str_t *values, size_t n, const cc_val_t *v);

/* 1 when one of values (not "-") is v's text itself */
int cc_when_names(const cc_str_t *values, size_t n, const cc_val_t *v);

/*
 * Turns raw values (indexed by cc_field_e) into dimensions: model must be a
 * string; size "WxH" wins over width+height (one of them alone is an
 * error naming the missing one); numbers positive, whole where SPEC says.
 * A field whose bit is set in named (1 << f: the rule's when= lists its
 * value) is absent when its value is not of its form (a size "auto").
 * Returns 0, or -1 with *bad set to the field at fault.  Invalid seconds
 * or frames do not fail here, since image models ignore them: they set
 * bad_seconds / bad_frames, which cc_estimate() reports for video models.
 */
int cc_dims_from_vals(const cc_val_t vals[CC_FIELD_MAX], unsigned named,
    cc_dims_t *dims, cc_field_e *bad);

/*
 * parses "WxH" (whole positive decimal numbers, a lowercase 'x', nothing
 * else; each at most INT64_MAX / 10^6); returns 0 or -1
 */
int cc_size_parse(const char *s, size_t len, int64_t *w, int64_t *h);

/*
 * Applies rule defaults and limits to dims and computes the estimate with
 * gpu_price (micro-USD per GPU-hour) unless the rule overrides it:
 *
 *   n x (gpu_s x gpu_price / 3600 + usd_per_output
 *        + usd_per_second x seconds + usd_per_mpx x W x H / 10^6)
 *
 * exactly, rounded up once.  Pixels are needed when the rule has
 * per_mpx_frame or usd_per_mpx; seconds (or frames) when it has fps or
 * usd_per_second (a video rule).  Returns 0, or -1 with *bad set to the
 * field at fault (a missing size or seconds without default, a limit
 * crossed, invalid seconds or frames for a video rule), or to
 * CC_FIELD_NONE when the result does not fit int64 (the error's param is
 * then null).  Defaults are not checked against max_pixels; dims->n 0
 * counts as 1.
 */
int cc_estimate(const cc_rule_t *rule, const cc_dims_t *dims,
    int64_t gpu_price, cc_estimate_t *est, cc_field_e *bad);


#endif /* _CC_PRICE_H_INCLUDED_ */

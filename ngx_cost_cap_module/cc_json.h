/*
 * Pure core: a single-pass, strict (RFC 8259) JSON scanner that records
 * the values at a set of dotted paths ("input.width") and nothing else.
 *
 * It builds no tree and allocates nothing: memory is the cc_json_t and a
 * caller's buffer for the recorded values, whatever the body holds.  It
 * may be fed the body in pieces (a request body in buffers and a temp
 * file, the first 64 KB of a response), and says whether what it was fed
 * is a whole object, a valid prefix of one, or neither.
 *
 * One reading only: a key on a read path (at any level of it) that comes
 * twice in its object, or that differs from the path's segment only in
 * case, stops the scan with CC_JSON_DUPLICATE.  Case is ASCII case, plus
 * the four non-ASCII letters Go's encoding/json folds to ASCII ones
 * (U+0130, U+0131, U+017F, U+212A), since Go matches keys that way.
 */

#ifndef _CC_JSON_H_INCLUDED_
#define _CC_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "cc_val.h"


#define CC_JSON_DEPTH_MAX   1000    /* containers open at once */
#define CC_JSON_PATHS_MAX   64
#define CC_JSON_SEGS_MAX    16      /* segments of a path */
#define CC_JSON_SEG_MAX     64      /* bytes of a segment */
#define CC_JSON_PATH_MAX    255     /* bytes of a path */

/* decoded key bytes kept: a longer key can match no segment */
#define CC_JSON_KEY_MAX     (3 * CC_JSON_SEG_MAX)


typedef enum {
    CC_JSON_OK = 0,         /* one whole object (then only whitespace) */
    CC_JSON_MORE,           /* a valid prefix: the object is not closed */
    CC_JSON_INVALID,        /* not RFC 8259, not an object, too deep */
    CC_JSON_DUPLICATE       /* a read key twice or in another case: bad */
} cc_json_rc_e;


typedef struct {
    /* what to record */
    const cc_path_t    *paths;
    size_t              npaths;
    cc_val_t           *vals;
    char               *buf;
    size_t              size;
    size_t              used;

    /* the result: the path at fault for CC_JSON_DUPLICATE */
    size_t              bad;
    int                 rc;

    /* the scanner; see cc_json.c */
    uint8_t             state;
    uint8_t             ret;        /* state after a string or literal */
    uint8_t             num;        /* number sub-state */
    uint8_t             role;       /* of the string: skip, key, value */
    uint8_t             nhex;
    unsigned            key:1;      /* the string is a key */
    unsigned            kdesc:1;    /* the value's key is on a longer
                                       path */
    unsigned            kterm:1;    /* the value's key ends a path */
    unsigned            vlong:1;
    unsigned            klong:1;
    const char         *lit;        /* "true", "false", "null" */
    uint8_t             nlit;
    uint32_t            ucode;
    uint32_t            hi;         /* a high surrogate, before its low */
    uint32_t            depth;
    uint32_t            live;       /* depth of the deepest object on a
                                       path, 0: none */
    uint32_t            klevel;
    size_t              vstart;
    size_t              klen;
    uint8_t             stack[CC_JSON_DEPTH_MAX / 8 + 1];
    char                kbuf[CC_JSON_KEY_MAX];
    uint8_t             nseg[CC_JSON_PATHS_MAX];
    uint8_t             segend[CC_JSON_PATHS_MAX][CC_JSON_SEGS_MAX];
    uint8_t             matched[CC_JSON_PATHS_MAX];
    uint16_t            seen[CC_JSON_PATHS_MAX];
} cc_json_t;


/*
 * 1 when p is a path the scanner takes: 1-CC_JSON_PATH_MAX bytes, at most
 * CC_JSON_SEGS_MAX non-empty segments of at most CC_JSON_SEG_MAX bytes.
 */
int cc_json_path_valid(const char *p, size_t len);

/*
 * Starts a scan recording the value at paths[i] in vals[i] (every vals[i]
 * starts CC_VAL_ABSENT; a path of length 0 is not read).  Recorded strings
 * (decoded) and numbers (as written) are copied to buf: a value longer
 * than CC_VAL_MAX_LEN, or than what is left of buf, is CC_VAL_LONG; true
 * and false are CC_VAL_BOOL, null CC_VAL_ABSENT, an object or array
 * CC_VAL_OTHER; a path through a non-object is absent.  A buffer of
 * npaths * CC_VAL_MAX_LEN bytes never runs out.  Returns 0, or -1 when
 * there are more than CC_JSON_PATHS_MAX paths or one is not valid.
 */
int cc_json_init(cc_json_t *j, const cc_path_t *paths, size_t npaths,
    cc_val_t *vals, char *buf, size_t size);

/*
 * Scans the next len bytes.  Returns CC_JSON_MORE while the object is
 * open, CC_JSON_OK once it is closed (and only whitespace followed), or
 * the error, which then sticks.  The input need not be NUL-terminated and
 * is not referenced after the call.
 */
int cc_json_feed(cc_json_t *j, const char *p, size_t len);

/*
 * The end of the input: CC_JSON_OK, CC_JSON_MORE when it ended before the
 * object closed (the values recorded up to there are whole), or the
 * error.
 */
int cc_json_end(cc_json_t *j);

/*
 * A key (decoded) against a path segment or field name: 1 when it is the
 * name, 2 when it is another spelling of it (in another ASCII case, or
 * with a letter Go's encoding/json folds to the name's: U+0130 and U+0131
 * to i, U+017F to s, U+212A to k), else 0.
 */
int cc_json_name_cmp(const unsigned char *k, size_t klen,
    const unsigned char *s, size_t slen);

/* cc_json_init, one cc_json_feed of the whole body, cc_json_end */
int cc_json_scan(const char *p, size_t len, const cc_path_t *paths,
    size_t npaths, cc_val_t *vals, char *buf, size_t size, size_t *bad);


#endif /* _CC_JSON_H_INCLUDED_ */

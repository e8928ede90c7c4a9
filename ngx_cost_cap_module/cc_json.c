/*
 * The JSON scanner: one state machine over the bytes, which may come in
 * pieces.  RFC 8259 strictly: "012", "1.", NaN, raw control bytes, bad
 * escapes, \u0000 and lone surrogates are refused, as is anything after
 * the object but whitespace; a UTF-8 byte order mark may open the body
 * (RFC 8259, 8.1).  A body the module reads one way and a lenient backend
 * another would be priced on the module's reading: a body that is not
 * plain JSON is refused instead.
 *
 * Paths: "live" is the depth of the deepest object reached by keys that
 * are segments of some read path, every object above it being reached so
 * too.  Keys are compared only in that object; matched[i] counts the
 * segments of path i matched on the way down to it (entries above the
 * current level are stale and reset when a key of that level comes).
 */

#include <string.h>

#include "cc_json.h"


typedef enum {
    /* between tokens: whitespace is skipped in these */
    CC_JS_TOP = 0,              /* the top-level value: an object */
    CC_JS_VALUE,
    CC_JS_VALUE_OR_CLOSE,       /* after '[' */
    CC_JS_KEY_OR_CLOSE,         /* after '{' */
    CC_JS_KEY,                  /* after ',' in an object */
    CC_JS_COLON,
    CC_JS_AFTER,                /* after a value in a container */
    CC_JS_DONE,                 /* after the top-level object */

    CC_JS_START,                /* before a byte order mark */
    CC_JS_BOM1,
    CC_JS_BOM2,
    CC_JS_STRING,
    CC_JS_ESCAPE,               /* after '\' */
    CC_JS_UHEX,                 /* in the 4 digits of \u */
    CC_JS_LOW_BS,               /* after a high surrogate: '\' ... */
    CC_JS_LOW_U,                /* ... 'u' */
    CC_JS_NUMBER,
    CC_JS_LITERAL,
    CC_JS_ERROR
} cc_json_state_e;


typedef enum {
    CC_JN_START = 0,
    CC_JN_SIGN,                 /* after '-' */
    CC_JN_ZERO,                 /* a leading 0: no digit may follow */
    CC_JN_INT,
    CC_JN_DOT,
    CC_JN_FRAC,
    CC_JN_EXP,                  /* after 'e' */
    CC_JN_ESIGN,
    CC_JN_EDIGITS
} cc_json_num_e;


typedef enum {
    CC_JR_SKIP = 0,             /* checked only */
    CC_JR_KEY,                  /* decoded into kbuf, compared */
    CC_JR_VALUE                 /* decoded into buf, recorded */
} cc_json_role_e;


static int cc_json_byte(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last);
static const unsigned char *cc_json_integers(const unsigned char *p,
    const unsigned char *last);
static int cc_json_value(cc_json_t *j, unsigned char c);
static int cc_json_open(cc_json_t *j, int object);
static int cc_json_close(cc_json_t *j, unsigned char c);
static int cc_json_string(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last);
static int cc_json_escape(cc_json_t *j, unsigned char c);
static int cc_json_hex(cc_json_t *j, unsigned char c);
static void cc_json_code_point(cc_json_t *j, uint32_t cp);
static int cc_json_string_end(cc_json_t *j);
static int cc_json_number(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last);
static int cc_json_literal(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last);
static void cc_json_put(cc_json_t *j, const void *s, size_t n);
static void cc_json_start_value(cc_json_t *j);
static int cc_json_key(cc_json_t *j);
static void cc_json_record(cc_json_t *j, cc_val_type_e type);


/* the bytes a string cannot simply contain: '"', '\\', controls */
static const unsigned char  cc_json_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
};


#define cc_json_ws(c)                                                         \
    ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

#define cc_json_digit(c)  ((unsigned char) ((c) - '0') < 10)

#define cc_json_is_object(j, d)  ((j)->stack[(d) / 8] >> ((d) % 8) & 1)


int
cc_json_path_valid(const char *p, size_t len)
{
    size_t       i, seg, nseg;

    if (len == 0 || len > CC_JSON_PATH_MAX) {
        return 0;
    }

    seg = 0;
    nseg = 1;

    for (i = 0; i < len; i++) {
        if (p[i] != '.') {
            if (++seg > CC_JSON_SEG_MAX) {
                return 0;
            }

            continue;
        }

        if (seg == 0 || ++nseg > CC_JSON_SEGS_MAX) {
            return 0;
        }

        seg = 0;
    }

    return seg > 0;
}


int
cc_json_init(cc_json_t *j, const cc_path_t *paths, size_t npaths,
    cc_val_t *vals, char *buf, size_t size)
{
    size_t   i, k, s;

    if (npaths > CC_JSON_PATHS_MAX) {
        return -1;
    }

    memset(j, 0, sizeof(cc_json_t));

    j->paths = paths;
    j->npaths = npaths;
    j->vals = vals;
    j->buf = buf;
    j->size = buf ? size : 0;
    j->state = CC_JS_START;

    for (i = 0; i < npaths; i++) {
        memset(&vals[i], 0, sizeof(cc_val_t));
        vals[i].type = CC_VAL_ABSENT;

        if (paths[i].len == 0) {
            continue;
        }

        if (!cc_json_path_valid(paths[i].data, paths[i].len)) {
            return -1;
        }

        s = 0;

        for (k = 0; k < paths[i].len; k++) {
            if (paths[i].data[k] == '.') {
                j->segend[i][s++] = (uint8_t) k;
            }
        }

        j->segend[i][s++] = (uint8_t) paths[i].len;
        j->nseg[i] = (uint8_t) s;
    }

    return 0;
}


int
cc_json_feed(cc_json_t *j, const char *data, size_t len)
{
    int                   rc;
    const unsigned char  *p, *q, *last;

    if (j->state == CC_JS_ERROR) {
        return j->rc;
    }

    p = (const unsigned char *) data;
    last = p + len;

    while (p < last) {

        if (j->state <= CC_JS_DONE) {
            while (cc_json_ws(*p)) {
                if (++p == last) {
                    goto done;
                }
            }

            /* an array of unread integers: "0,0,0,..." in a tight loop */
            if (j->state == CC_JS_VALUE && !j->kterm
                && !cc_json_is_object(j, j->depth - 1))
            {
                q = cc_json_integers(p, last);

                if (q != p) {
                    p = q;
                    continue;
                }
            }
        }

        rc = cc_json_byte(j, &p, last);

        if (rc != CC_JSON_OK) {
            j->state = CC_JS_ERROR;
            j->rc = rc;
            return rc;
        }
    }

done:

    return j->state == CC_JS_DONE ? CC_JSON_OK : CC_JSON_MORE;
}


int
cc_json_end(cc_json_t *j)
{
    if (j->state == CC_JS_ERROR) {
        return j->rc;
    }

    return j->state == CC_JS_DONE ? CC_JSON_OK : CC_JSON_MORE;
}


int
cc_json_scan(const char *p, size_t len, const cc_path_t *paths,
    size_t npaths, cc_val_t *vals, char *buf, size_t size, size_t *bad)
{
    int        rc;
    cc_json_t  j;

    if (cc_json_init(&j, paths, npaths, vals, buf, size) != 0) {
        return CC_JSON_INVALID;
    }

    (void) cc_json_feed(&j, p, len);

    rc = cc_json_end(&j);
    *bad = j.bad;

    return rc;
}


int
cc_json_name_cmp(const unsigned char *k, size_t klen, const unsigned char *s,
    size_t slen)
{
    size_t         i, n;
    unsigned char  c, f;

    if (klen == slen && memcmp(k, s, klen) == 0) {
        return 1;
    }

    /* every byte of the name stands for 1 to 3 of the key */
    if (klen < slen || klen > 3 * slen) {
        return 0;
    }

    for (i = 0, n = 0; i < klen; n++) {
        c = k[i];

        if (c >= 'A' && c <= 'Z') {
            f = c | 0x20;
            i++;

        } else if (c == 0xc4 && klen - i >= 2
                   && (k[i + 1] == 0xb0 || k[i + 1] == 0xb1))
        {
            f = 'i';
            i += 2;

        } else if (c == 0xc5 && klen - i >= 2 && k[i + 1] == 0xbf) {
            f = 's';
            i += 2;

        } else if (c == 0xe2 && klen - i >= 3 && k[i + 1] == 0x84
                   && k[i + 2] == 0xaa)
        {
            f = 'k';
            i += 3;

        } else {
            f = c;
            i++;
        }

        c = (n < slen) ? s[n] : 0;

        if (n >= slen || f != ((c >= 'A' && c <= 'Z') ? (c | 0x20) : c)) {
            return 0;
        }
    }

    return n == slen ? 2 : 0;
}


/*
 * One step at *pp (not whitespace between tokens): a structural byte, or
 * as much of a token as the input holds.  CC_JSON_OK or the error.
 */

static int
cc_json_byte(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last)
{
    unsigned char  c;

    c = **pp;

    switch (j->state) {

    case CC_JS_START:
        if (c == 0xef) {
            (*pp)++;
            j->state = CC_JS_BOM1;
            return CC_JSON_OK;
        }

        j->state = CC_JS_TOP;
        return CC_JSON_OK;

    case CC_JS_BOM1:
    case CC_JS_BOM2:
        if (c != (j->state == CC_JS_BOM1 ? 0xbb : 0xbf)) {
            return CC_JSON_INVALID;
        }

        (*pp)++;
        j->state = (j->state == CC_JS_BOM1) ? CC_JS_BOM2 : CC_JS_TOP;
        return CC_JSON_OK;

    case CC_JS_TOP:
        if (c != '{') {
            return CC_JSON_INVALID;
        }

        (*pp)++;
        j->live = 1;
        return cc_json_open(j, 1);

    case CC_JS_VALUE_OR_CLOSE:
        if (c == ']') {
            (*pp)++;
            return cc_json_close(j, c);
        }

        /* fall through */

    case CC_JS_VALUE:
        if (c == '{' || c == '[') {
            (*pp)++;
            return cc_json_open(j, c == '{');
        }

        if (c == '"') {
            (*pp)++;
        }

        return cc_json_value(j, c);

    case CC_JS_KEY_OR_CLOSE:
        if (c == '}') {
            (*pp)++;
            return cc_json_close(j, c);
        }

        /* fall through */

    case CC_JS_KEY:
        if (c != '"') {
            return CC_JSON_INVALID;
        }

        (*pp)++;
        j->key = 1;
        j->role = (j->depth == j->live) ? CC_JR_KEY : CC_JR_SKIP;
        j->klen = 0;
        j->klong = 0;
        j->state = CC_JS_STRING;
        return CC_JSON_OK;

    case CC_JS_COLON:
        if (c != ':') {
            return CC_JSON_INVALID;
        }

        (*pp)++;
        j->state = CC_JS_VALUE;
        return CC_JSON_OK;

    case CC_JS_AFTER:
        (*pp)++;

        if (c == ',') {
            j->state = cc_json_is_object(j, j->depth - 1) ? CC_JS_KEY
                                                          : CC_JS_VALUE;
            return CC_JSON_OK;
        }

        return cc_json_close(j, c);

    case CC_JS_STRING:
        return cc_json_string(j, pp, last);

    case CC_JS_ESCAPE:
        (*pp)++;
        return cc_json_escape(j, c);

    case CC_JS_UHEX:
        (*pp)++;
        return cc_json_hex(j, c);

    case CC_JS_LOW_BS:
    case CC_JS_LOW_U:
        /* a high surrogate must be followed by the \u of a low one */
        if (c != (j->state == CC_JS_LOW_BS ? '\\' : 'u')) {
            return CC_JSON_INVALID;
        }

        (*pp)++;
        j->state = (j->state == CC_JS_LOW_BS) ? CC_JS_LOW_U : CC_JS_UHEX;
        j->nhex = 0;
        j->ucode = 0;
        return CC_JSON_OK;

    case CC_JS_NUMBER:
        return cc_json_number(j, pp, last);

    case CC_JS_LITERAL:
        return cc_json_literal(j, pp, last);

    default: /* CC_JS_DONE */
        return CC_JSON_INVALID;
    }
}


/*
 * Skips "123," runs: what it stops at (the last integer, anything else) is
 * left for the state machine, which checks it as any value.
 */

static const unsigned char *
cc_json_integers(const unsigned char *p, const unsigned char *last)
{
    const unsigned char  *q;

    while (p < last) {
        q = p;

        if (*q == '0') {
            q++;

        } else {
            while (q < last && cc_json_digit(*q)) {
                q++;
            }
        }

        if (q == p || q == last || *q != ',') {
            break;
        }

        p = q + 1;
    }

    return p;
}


/* a scalar value starting with c ('"' already consumed) */

static int
cc_json_value(cc_json_t *j, unsigned char c)
{
    j->role = j->kterm ? CC_JR_VALUE : CC_JR_SKIP;
    j->kdesc = 0;

    if (j->role == CC_JR_VALUE) {
        cc_json_start_value(j);
    }

    if (c == '"') {
        j->key = 0;
        j->state = CC_JS_STRING;
        return CC_JSON_OK;
    }

    if (c == '-' || cc_json_digit(c)) {
        j->num = CC_JN_START;
        j->state = CC_JS_NUMBER;
        return CC_JSON_OK;
    }

    j->lit = (c == 't') ? "true" : (c == 'f') ? "false" : "null";
    j->nlit = 0;
    j->state = CC_JS_LITERAL;

    return CC_JSON_OK;
}


static int
cc_json_open(cc_json_t *j, int object)
{
    size_t    i, s;
    uint32_t  d;

    d = j->depth;

    if (d == CC_JSON_DEPTH_MAX) {
        return CC_JSON_INVALID;
    }

    if (object) {
        j->stack[d / 8] |= (uint8_t) (1 << (d % 8));

    } else {
        j->stack[d / 8] &= (uint8_t) ~(1 << (d % 8));
    }

    j->depth = d + 1;

    if (j->kterm) {
        cc_json_record(j, CC_VAL_OTHER);
    }

    if (j->kdesc && object) {
        /* an object on a path: its keys are compared, each once */
        s = j->klevel + 1;
        j->live = j->depth;

        for (i = 0; i < j->npaths; i++) {
            if (j->matched[i] == s) {
                j->seen[i] &= (uint16_t) ~(1u << s);
            }
        }
    }

    j->kdesc = 0;
    j->kterm = 0;
    j->state = object ? CC_JS_KEY_OR_CLOSE : CC_JS_VALUE_OR_CLOSE;

    return CC_JSON_OK;
}


static int
cc_json_close(cc_json_t *j, unsigned char c)
{
    if (c != (cc_json_is_object(j, j->depth - 1) ? '}' : ']')) {
        return CC_JSON_INVALID;
    }

    if (j->depth == j->live) {
        j->live--;
    }

    j->depth--;
    j->state = (j->depth == 0) ? CC_JS_DONE : CC_JS_AFTER;

    return CC_JSON_OK;
}


static int
cc_json_string(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last)
{
    unsigned char         c;
    const unsigned char  *p, *start;

    p = *pp;

    if (j->role == CC_JR_SKIP) {

        /* a prompt is mostly plain text: four bytes at a time */
        while (last - p >= 4
               && !(cc_json_special[p[0]] | cc_json_special[p[1]]
                    | cc_json_special[p[2]] | cc_json_special[p[3]]))
        {
            p += 4;
        }

        while (p < last && !cc_json_special[*p]) {
            p++;
        }

    } else {
        start = p;

        while (p < last && !cc_json_special[*p]) {
            p++;
        }

        cc_json_put(j, start, (size_t) (p - start));
    }

    *pp = p;

    if (p == last) {
        return CC_JSON_OK;
    }

    c = *p;
    *pp = p + 1;

    if (c == '"') {
        return cc_json_string_end(j);
    }

    if (c == '\\') {
        j->state = CC_JS_ESCAPE;
        return CC_JSON_OK;
    }

    /* a raw control byte */
    return CC_JSON_INVALID;
}


static int
cc_json_escape(cc_json_t *j, unsigned char c)
{
    char  out;

    switch (c) {

    case '"': case '\\': case '/':
        out = (char) c;
        break;

    case 'b':
        out = '\b';
        break;

    case 'f':
        out = '\f';
        break;

    case 'n':
        out = '\n';
        break;

    case 'r':
        out = '\r';
        break;

    case 't':
        out = '\t';
        break;

    case 'u':
        j->nhex = 0;
        j->ucode = 0;
        j->state = CC_JS_UHEX;
        return CC_JSON_OK;

    default:
        return CC_JSON_INVALID;
    }

    cc_json_put(j, &out, 1);
    j->state = CC_JS_STRING;

    return CC_JSON_OK;
}


static int
cc_json_hex(cc_json_t *j, unsigned char c)
{
    uint32_t  d, u;

    if (cc_json_digit(c)) {
        d = c - '0';

    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        d = (c | 0x20) - 'a' + 10;

    } else {
        return CC_JSON_INVALID;
    }

    j->ucode = j->ucode << 4 | d;

    if (++j->nhex < 4) {
        return CC_JSON_OK;
    }

    u = j->ucode;
    j->state = CC_JS_STRING;

    if (j->hi) {
        if (u < 0xdc00 || u > 0xdfff) {
            return CC_JSON_INVALID;
        }

        cc_json_code_point(j, 0x10000 + ((j->hi - 0xd800) << 10)
                              + (u - 0xdc00));
        j->hi = 0;
        return CC_JSON_OK;
    }

    /* a NUL ends strings in C backends; a lone surrogate is no character */
    if (u == 0 || (u >= 0xdc00 && u <= 0xdfff)) {
        return CC_JSON_INVALID;
    }

    if (u >= 0xd800 && u <= 0xdbff) {
        j->hi = u;
        j->state = CC_JS_LOW_BS;
        return CC_JSON_OK;
    }

    cc_json_code_point(j, u);

    return CC_JSON_OK;
}


static void
cc_json_code_point(cc_json_t *j, uint32_t cp)
{
    size_t         n;
    unsigned char  u[4];

    if (j->role == CC_JR_SKIP) {
        return;
    }

    if (cp < 0x80) {
        u[0] = (unsigned char) cp;
        n = 1;

    } else if (cp < 0x800) {
        u[0] = (unsigned char) (0xc0 | cp >> 6);
        u[1] = (unsigned char) (0x80 | (cp & 0x3f));
        n = 2;

    } else if (cp < 0x10000) {
        u[0] = (unsigned char) (0xe0 | cp >> 12);
        u[1] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char) (0x80 | (cp & 0x3f));
        n = 3;

    } else {
        u[0] = (unsigned char) (0xf0 | cp >> 18);
        u[1] = (unsigned char) (0x80 | (cp >> 12 & 0x3f));
        u[2] = (unsigned char) (0x80 | (cp >> 6 & 0x3f));
        u[3] = (unsigned char) (0x80 | (cp & 0x3f));
        n = 4;
    }

    cc_json_put(j, u, n);
}


static int
cc_json_string_end(cc_json_t *j)
{
    if (j->key) {
        j->state = CC_JS_COLON;
        return (j->role == CC_JR_KEY) ? cc_json_key(j) : CC_JSON_OK;
    }

    if (j->role == CC_JR_VALUE) {
        cc_json_record(j, j->vlong ? CC_VAL_LONG : CC_VAL_STRING);
    }

    j->state = CC_JS_AFTER;

    return CC_JSON_OK;
}


/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, ended by the next byte */

static int
cc_json_number(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last)
{
    unsigned char         c;
    const unsigned char  *p, *start;

    start = *pp;

    for (p = start; p < last; p++) {
        c = *p;

        switch (j->num) {

        case CC_JN_START:
            j->num = (c == '-') ? CC_JN_SIGN
                                : (c == '0') ? CC_JN_ZERO : CC_JN_INT;
            continue;

        case CC_JN_SIGN:
            if (!cc_json_digit(c)) {
                return CC_JSON_INVALID;
            }

            j->num = (c == '0') ? CC_JN_ZERO : CC_JN_INT;
            continue;

        case CC_JN_INT:
            while (cc_json_digit(c)) {
                if (++p == last) {
                    goto more;
                }

                c = *p;
            }

            /* fall through */

        case CC_JN_ZERO:
            if (c == '.') {
                j->num = CC_JN_DOT;
                continue;
            }

            /* fall through */

        case CC_JN_FRAC:
            if (j->num == CC_JN_FRAC) {
                while (cc_json_digit(c)) {
                    if (++p == last) {
                        goto more;
                    }

                    c = *p;
                }
            }

            if (c == 'e' || c == 'E') {
                j->num = CC_JN_EXP;
                continue;
            }

            goto end;

        case CC_JN_DOT:
            if (!cc_json_digit(c)) {
                return CC_JSON_INVALID;
            }

            j->num = CC_JN_FRAC;
            continue;

        case CC_JN_EXP:
            if (c == '+' || c == '-') {
                j->num = CC_JN_ESIGN;
                continue;
            }

            /* fall through */

        case CC_JN_ESIGN:
            if (!cc_json_digit(c)) {
                return CC_JSON_INVALID;
            }

            j->num = CC_JN_EDIGITS;
            continue;

        default: /* CC_JN_EDIGITS */
            if (cc_json_digit(c)) {
                continue;
            }

            goto end;
        }
    }

more:

    if (j->role == CC_JR_VALUE) {
        cc_json_put(j, start, (size_t) (p - start));
    }

    *pp = p;

    return CC_JSON_OK;

end:

    if (j->role == CC_JR_VALUE) {
        cc_json_put(j, start, (size_t) (p - start));
        cc_json_record(j, j->vlong ? CC_VAL_LONG : CC_VAL_NUMBER);
    }

    /* the byte that ended the number is the next token's */
    *pp = p;
    j->state = CC_JS_AFTER;

    return CC_JSON_OK;
}


static int
cc_json_literal(cc_json_t *j, const unsigned char **pp,
    const unsigned char *last)
{
    const unsigned char  *p;

    for (p = *pp; p < last && j->lit[j->nlit] != '\0'; p++) {
        if (*p != (unsigned char) j->lit[j->nlit]) {
            return CC_JSON_INVALID;
        }

        j->nlit++;
    }

    *pp = p;

    if (j->lit[j->nlit] != '\0') {
        return CC_JSON_OK;
    }

    if (j->role == CC_JR_VALUE) {
        cc_json_record(j, j->lit[0] == 'n' ? CC_VAL_ABSENT : CC_VAL_BOOL);
    }

    j->state = CC_JS_AFTER;

    return CC_JSON_OK;
}


/* appends decoded bytes to the key or the value being recorded */

static void
cc_json_put(cc_json_t *j, const void *s, size_t n)
{
    if (n == 0) {
        return;
    }

    if (j->role == CC_JR_KEY) {
        if (j->klong || n > CC_JSON_KEY_MAX - j->klen) {
            j->klong = 1;
            return;
        }

        memcpy(j->kbuf + j->klen, s, n);
        j->klen += n;
        return;
    }

    if (j->role != CC_JR_VALUE || j->vlong) {
        return;
    }

    if (n > j->size - j->used || j->used + n - j->vstart > CC_VAL_MAX_LEN) {
        /* too long to price: the room is given back */
        j->vlong = 1;
        j->used = j->vstart;
        return;
    }

    memcpy(j->buf + j->used, s, n);
    j->used += n;
}


static void
cc_json_start_value(cc_json_t *j)
{
    j->vstart = j->used;
    j->vlong = 0;
}


/* a key of the live object, decoded in kbuf */

static int
cc_json_key(cc_json_t *j)
{
    int                   r;
    size_t                i, s, from, to;
    const unsigned char  *seg;

    s = j->live - 1;
    j->klevel = (uint32_t) s;
    j->kdesc = 0;
    j->kterm = 0;

    if (j->klong) {
        return CC_JSON_OK;
    }

    for (i = 0; i < j->npaths; i++) {
        if (j->nseg[i] <= s || j->matched[i] < s) {
            continue;
        }

        j->matched[i] = (uint8_t) s;

        from = (s == 0) ? 0 : (size_t) j->segend[i][s - 1] + 1;
        to = j->segend[i][s];
        seg = (const unsigned char *) j->paths[i].data + from;

        r = cc_json_name_cmp((unsigned char *) j->kbuf, j->klen, seg,
                              to - from);
        if (r == 0) {
            continue;
        }

        if (r == 2 || (j->seen[i] >> s & 1)) {
            j->bad = i;
            return CC_JSON_DUPLICATE;
        }

        j->seen[i] |= (uint16_t) (1u << s);
        j->matched[i] = (uint8_t) (s + 1);

        if (j->nseg[i] == s + 1) {
            j->kterm = 1;

        } else {
            j->kdesc = 1;
        }
    }

    return CC_JSON_OK;
}


/* the value of a key that ends paths: recorded for each of them */

static void
cc_json_record(cc_json_t *j, cc_val_type_e type)
{
    size_t     i, s;
    cc_val_t   v;

    s = j->klevel + 1;

    v.type = type;
    v.str = NULL;
    v.len = 0;

    if (type == CC_VAL_STRING || type == CC_VAL_NUMBER) {
        v.str = j->buf + j->vstart;
        v.len = j->used - j->vstart;

    } else if (type == CC_VAL_BOOL) {
        v.str = j->lit;
        v.len = strlen(j->lit);
    }

    for (i = 0; i < j->npaths; i++) {
        if (j->matched[i] == s && j->nseg[i] == s) {
            j->vals[i] = v;
        }
    }

    j->kterm = 0;
}

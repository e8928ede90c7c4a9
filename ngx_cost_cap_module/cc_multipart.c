/*
 * multipart/form-data (RFC 7578, RFC 2046 section 5.1).  Every search is
 * a memmem() that starts where the previous one ended, so the scan is
 * linear in the body whatever its parts look like.
 *
 * Backends parse leniently (Werkzeug takes LF or CR alone as line ends,
 * some take the blank line after the headers as the CRLF of a delimiter,
 * RFC 2231 "name*=").  A field hidden from this parser but seen by the
 * backend would be priced on a default, so wherever two readings are
 * possible the body is refused instead: "--BOUNDARY" anywhere but on a
 * well-formed delimiter line, CR or LF alone in a header, two names.
 */

/* memmem() */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <string.h>
#include <strings.h>

#include "cc_json.h"
#include "cc_multipart.h"


#define CC_MP_CRLF          "\r\n"
#define CC_MP_CRLFCRLF      "\r\n\r\n"


typedef struct {
    const char         *body;
    size_t              len;
    char                dash[2 + CC_MULTIPART_BOUNDARY_MAX];
    size_t              dlen;
    const cc_path_t    *names;
    size_t              nnames;
    cc_val_t           *vals;
    size_t              bad;
    int                 rc;
} cc_mp_ctx_t;


typedef struct {
    const char         *name;
    size_t              name_len;
    const char         *val;
    size_t              val_len;
    unsigned            escaped:1;
} cc_mp_param_t;


typedef struct {
    const char         *name;
    size_t              name_len;
    unsigned            has_cd:1;
    unsigned            has_name:1;
    unsigned            escaped:1;
    unsigned            ext_name:1;
    unsigned            file:1;
    unsigned            encoded:1;
} cc_mp_part_t;


static int cc_mp_param(const char **pp, const char *end, cc_mp_param_t *prm);
static const char *cc_mp_ows(const char *p, const char *end);
static int cc_mp_ctl(char c);
static int cc_mp_eq(const char *s, size_t len, const char *lit);
static int cc_mp_prefix(const char *s, size_t len, const char *lit);
static int cc_mp_after_crlf(const char *p, const char *start);
static int cc_mp_boundary_valid(const char *b, size_t len);
static int cc_mp_part(cc_mp_ctx_t *ctx, size_t pos, size_t *next);
static int cc_mp_headers(const char *p, const char *end, cc_mp_part_t *part);
static int cc_mp_header(const char *name, size_t nlen, const char *v,
    const char *end, cc_mp_part_t *part);
static int cc_mp_disposition(const char *p, const char *end,
    cc_mp_part_t *part);
static int cc_mp_field(cc_mp_ctx_t *ctx, cc_mp_part_t *part,
    const char *v, size_t vlen);
static int cc_mp_unescaped_eq(const char *q, size_t qlen, const char *s,
    size_t len);


int
cc_multipart_boundary(const char *ctype, size_t len, const char **b,
    size_t *blen)
{
    int             rc;
    const char     *p, *end;
    cc_mp_param_t   prm;

    end = ctype + len;
    p = memchr(ctype, ';', len);
    *b = NULL;

    while (p != NULL) {
        rc = cc_mp_param(&p, end, &prm);

        if (rc == -1) {
            return -1;
        }

        if (rc == 0) {
            break;
        }

        if (cc_mp_eq(prm.name, prm.name_len, "boundary")) {
            /* a backend may take either of two boundaries */
            if (prm.escaped || *b != NULL) {
                return -1;
            }

            *b = prm.val;
            *blen = prm.val_len;
        }
    }

    if (*b == NULL || !cc_mp_boundary_valid(*b, *blen)) {
        return -1;
    }

    return 0;
}


int
cc_multipart_extract(const char *body, size_t len, const char *boundary,
    size_t blen, const cc_path_t *names, size_t nnames, cc_val_t *vals,
    size_t *bad)
{
    size_t        i, pos;
    const char   *q;
    cc_mp_ctx_t   ctx;

    for (i = 0; i < nnames; i++) {
        memset(&vals[i], 0, sizeof(cc_val_t));
        vals[i].type = CC_VAL_ABSENT;
    }

    if (blen == 0 || blen > CC_MULTIPART_BOUNDARY_MAX) {
        return CC_MULTIPART_INVALID;
    }

    ctx.body = body;
    ctx.len = len;
    ctx.names = names;
    ctx.nnames = nnames;
    ctx.vals = vals;
    ctx.bad = 0;
    ctx.rc = CC_MULTIPART_INVALID;
    ctx.dlen = 2 + blen;
    memcpy(ctx.dash, "--", 2);
    memcpy(ctx.dash + 2, boundary, blen);

    if (len < ctx.dlen) {
        return CC_MULTIPART_INVALID;
    }

    /* the first delimiter may open the body, without its CRLF */
    q = memmem(body, len, ctx.dash, ctx.dlen);

    if (q == NULL || (q != body && !cc_mp_after_crlf(q, body))) {
        return CC_MULTIPART_INVALID;
    }

    pos = (size_t) (q - body) + ctx.dlen;

    for ( ;; ) {
        if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-') {
            return CC_MULTIPART_OK;
        }

        /* transport padding, then the CRLF that ends the delimiter line */
        while (pos < len && (body[pos] == ' ' || body[pos] == '\t')) {
            pos++;
        }

        if (len - pos < 2 || memcmp(body + pos, CC_MP_CRLF, 2) != 0) {
            return CC_MULTIPART_INVALID;
        }

        if (cc_mp_part(&ctx, pos + 2, &pos) != 0) {
            *bad = ctx.bad;
            return ctx.rc;
        }
    }
}


/*
 * One ";" name "=" (token | quoted-string) at *pp.  Returns 1 and moves
 * *pp past it, 0 at the end of the value, -1 when malformed.
 */

static int
cc_mp_param(const char **pp, const char *end, cc_mp_param_t *prm)
{
    const char  *p;

    p = cc_mp_ows(*pp, end);

    if (p == end) {
        return 0;
    }

    if (*p++ != ';') {
        return -1;
    }

    p = cc_mp_ows(p, end);

    if (p == end) {
        return 0;
    }

    prm->name = p;

    while (p < end && *p != '=' && *p != ';' && *p != ' ' && *p != '\t') {
        if (cc_mp_ctl(*p++)) {
            return -1;
        }
    }

    prm->name_len = (size_t) (p - prm->name);
    p = cc_mp_ows(p, end);

    if (prm->name_len == 0 || p == end || *p != '=') {
        return -1;
    }

    p = cc_mp_ows(p + 1, end);
    prm->escaped = 0;

    if (p < end && *p == '"') {
        prm->val = ++p;

        while (p < end && *p != '"') {
            /* "seconds\0": a backend may stop reading the name at the NUL */
            if (cc_mp_ctl(*p) && *p != '\t') {
                return -1;
            }

            if (*p == '\\') {
                if (p + 1 == end) {
                    return -1;
                }

                prm->escaped = 1;
                p++;
            }

            p++;
        }

        if (p == end) {
            return -1;
        }

        prm->val_len = (size_t) (p++ - prm->val);

    } else {
        prm->val = p;

        while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
            if (cc_mp_ctl(*p++)) {
                return -1;
            }
        }

        prm->val_len = (size_t) (p - prm->val);

        if (prm->val_len == 0) {
            return -1;
        }
    }

    *pp = p;

    return 1;
}


static const char *
cc_mp_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    return p;
}


/* a control byte: never part of a parameter */

static int
cc_mp_ctl(char c)
{
    return (unsigned char) c < 0x20 || c == 0x7f;
}


static int
cc_mp_eq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}


static int
cc_mp_prefix(const char *s, size_t len, const char *lit)
{
    return strlen(lit) <= len && strncasecmp(s, lit, strlen(lit)) == 0;
}


/* p is preceded by CRLF that lies at or after start */

static int
cc_mp_after_crlf(const char *p, const char *start)
{
    return p - start >= 2 && p[-2] == '\r' && p[-1] == '\n';
}


/* RFC 2046 bchars, loosely: printable ASCII, no quote, no backslash */

static int
cc_mp_boundary_valid(const char *b, size_t len)
{
    size_t  i;

    if (len == 0 || len > CC_MULTIPART_BOUNDARY_MAX || b[len - 1] == ' ') {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (b[i] < ' ' || b[i] > '~' || b[i] == '"' || b[i] == '\\') {
            return 0;
        }
    }

    return 1;
}


/*
 * The part whose headers start at pos; *next is set past the delimiter
 * that ends it.
 */

static int
cc_mp_part(cc_mp_ctx_t *ctx, size_t pos, size_t *next)
{
    size_t         vpos;
    const char    *h, *e, *v, *q;
    cc_mp_part_t   part;

    h = ctx->body + pos;
    e = memmem(h, ctx->len - pos, CC_MP_CRLFCRLF, 4);

    /* no headers at all (a CRLF right away) means no Content-Disposition */
    if (e == NULL || h[0] == '\r') {
        return -1;
    }

    /* "--BOUNDARY" in the headers: a part that some parser ends there */
    if (memmem(h, (size_t) (e + 4 - h), ctx->dash, ctx->dlen) != NULL) {
        return -1;
    }

    memset(&part, 0, sizeof(cc_mp_part_t));

    if (cc_mp_headers(h, e + 2, &part) != 0 || !part.has_cd) {
        return -1;
    }

    /* the value ends at the CRLF of the next "--BOUNDARY", not before it */
    v = e + 4;
    vpos = (size_t) (v - ctx->body);
    q = memmem(v, ctx->len - vpos, ctx->dash, ctx->dlen);

    if (q == NULL || !cc_mp_after_crlf(q, v)) {
        return -1;
    }

    *next = (size_t) (q - ctx->body) + ctx->dlen;

    if (part.file) {
        return 0;
    }

    return cc_mp_field(ctx, &part, v, (size_t) (q - 2 - v));
}


/* header lines in [p, end), each ending with CRLF */

static int
cc_mp_headers(const char *p, const char *end, cc_mp_part_t *part)
{
    const char  *eol, *colon, *n;

    while (p < end) {
        eol = memmem(p, (size_t) (end - p), CC_MP_CRLF, 2);
        colon = memchr(p, ':', (size_t) (eol - p));

        /* no obsolete line folding, no line without a name */
        if (colon == NULL || colon == p || *p == ' ' || *p == '\t') {
            return -1;
        }

        /* a CR or LF alone ends a header line for some parsers */
        if (memchr(p, '\r', (size_t) (eol - p)) != NULL
            || memchr(p, '\n', (size_t) (eol - p)) != NULL)
        {
            return -1;
        }

        n = colon;

        while (n[-1] == ' ' || n[-1] == '\t') {
            n--;
        }

        if (cc_mp_header(p, (size_t) (n - p), colon + 1, eol, part) != 0) {
            return -1;
        }

        p = eol + 2;
    }

    return 0;
}


static int
cc_mp_header(const char *name, size_t nlen, const char *v, const char *end,
    cc_mp_part_t *part)
{
    const char  *e;

    v = cc_mp_ows(v, end);

    for (e = end; e > v && (e[-1] == ' ' || e[-1] == '\t'); e--) {
        /* void */
    }

    if (cc_mp_eq(name, nlen, "content-disposition")) {
        if (part->has_cd) {
            return -1;
        }

        part->has_cd = 1;

        return cc_mp_disposition(v, e, part);
    }

    if (cc_mp_eq(name, nlen, "content-transfer-encoding")
        && !cc_mp_eq(v, (size_t) (e - v), "7bit")
        && !cc_mp_eq(v, (size_t) (e - v), "8bit")
        && !cc_mp_eq(v, (size_t) (e - v), "binary"))
    {
        part->encoded = 1;
    }

    return 0;
}


static int
cc_mp_disposition(const char *p, const char *end, cc_mp_part_t *part)
{
    int             rc;
    const char     *t;
    cc_mp_param_t   prm;

    for (t = p; t < end && *t != ';' && *t != ' ' && *t != '\t'; t++) {
        /* void */
    }

    if (!cc_mp_eq(p, (size_t) (t - p), "form-data")) {
        return -1;
    }

    while ((rc = cc_mp_param(&t, end, &prm)) == 1) {
        if (cc_mp_prefix(prm.name, prm.name_len, "filename")) {
            /* filename, filename*, RFC 2231 filename*0* ... */
            part->file = 1;

        } else if (cc_mp_prefix(prm.name, prm.name_len, "name*")) {
            /* RFC 2231 names: a backend may decode one, this parser won't */
            part->ext_name = 1;

        } else if (cc_mp_eq(prm.name, prm.name_len, "name")) {
            if (part->has_name) {
                return -1;
            }

            part->has_name = 1;
            part->name = prm.val;
            part->name_len = prm.val_len;
            part->escaped = prm.escaped;
        }
    }

    if (rc == -1 || (!part->file && (!part->has_name || part->ext_name))) {
        return -1;
    }

    return 0;
}


static int
cc_mp_field(cc_mp_ctx_t *ctx, cc_mp_part_t *part, const char *v,
    size_t vlen)
{
    int               r, matched;
    size_t            i;
    const cc_path_t  *n;

    matched = 0;

    for (i = 0; i < ctx->nnames; i++) {
        n = &ctx->names[i];

        if (n->len == 0) {
            continue;
        }

        /* "se\conds" may be "seconds" to a backend: too ambiguous to price */
        if (part->escaped) {
            if (cc_mp_unescaped_eq(part->name, part->name_len, n->data,
                                   n->len))
            {
                return -1;
            }

            continue;
        }

        r = cc_json_name_cmp((const unsigned char *) part->name,
                              part->name_len,
                              (const unsigned char *) n->data, n->len);
        if (r == 0) {
            continue;
        }

        if (r == 2 || ctx->vals[i].type != CC_VAL_ABSENT) {
            ctx->bad = i;
            ctx->rc = CC_MULTIPART_DUPLICATE;
            return -1;
        }

        matched = 1;

        ctx->vals[i].type = (vlen > CC_VAL_MAX_LEN) ? CC_VAL_LONG
                                                     : CC_VAL_STRING;
        ctx->vals[i].str = v;
        ctx->vals[i].len = vlen;
    }

    return (matched && part->encoded) ? -1 : 0;
}


/* compares the quoted-string body q (with its backslash escapes) to s */

static int
cc_mp_unescaped_eq(const char *q, size_t qlen, const char *s, size_t len)
{
    size_t  i, j;

    for (i = 0, j = 0; i < qlen; i++, j++) {
        if (q[i] == '\\' && i + 1 < qlen) {
            i++;
        }

        if (j >= len || q[i] != s[j]) {
            return 0;
        }
    }

    return j == len;
}


/*
 * Pure core: spend windows, their periods and Redis key names, tenant
 * names, and USD decimals in micro-USD.  No NGINX types: unit-tested and
 * fuzzed on its own (lua-free-tests/).
 */

#ifndef _CC_WINDOW_H_INCLUDED_
#define _CC_WINDOW_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CC_MICRO              1000000LL

/* "-9223372036854.775808" plus NUL */
#define CC_DECIMAL_MAX_LEN    24

#define CC_TENANT_MAX_LEN     128

/* "costcap:{" TENANT "}:" */
#define CC_KEY_PREFIX_MAX_LEN (sizeof("costcap:{}:") - 1 + CC_TENANT_MAX_LEN)

/* longest period string: "YYYYMMDDhhmm" */
#define CC_PERIOD_MAX_LEN     12


typedef enum {
    CC_WIN_MINUTE = 0,
    CC_WIN_HOUR,
    CC_WIN_DAY,
    CC_WIN_WEEK,
    CC_WIN_MONTH,
    CC_WIN_TOTAL,
    CC_WIN_MAX
} cc_window_e;


/* result codes of the decimal parser */
#define CC_DEC_OK        0
#define CC_DEC_INVALID  -1
#define CC_DEC_OVERFLOW -2


/*
 * Parses an unsigned decimal: one or more digits, optionally '.' and 1-6
 * digits ("25", "3.50", "0.000001").  No sign, exponent, spaces, "4." or
 * ".5".  The value is returned in millionths.
 */
int cc_decimal_parse(const char *s, size_t len, int64_t *micro);

/*
 * Formats millionths as a decimal with no trailing zeros ("5", "0.077415",
 * "-1.5").  buf must hold CC_DECIMAL_MAX_LEN bytes; returns the length
 * (not NUL-terminated).
 */
size_t cc_decimal_format(int64_t micro, char *buf);

/* window name ("minute" ... "total") <-> enum; -1 when unknown */
int cc_window_parse(const char *s, size_t len);
const char *cc_window_name(cc_window_e w);

/*
 * The period of window w containing UTC time t (seconds since the epoch),
 * as SPEC section 6 names it (minute YYYYMMDDhhmm, hour YYYYMMDDhh, day
 * YYYYMMDD, week ISO YYYY-Www, month YYYYMM, total "all"), written to buf
 * (CC_PERIOD_MAX_LEN bytes at least, not NUL-terminated); returns its
 * length.  *end is set to the first second after the period (0 for total).
 * Returns 0 (and *end 0) when the year is outside 0001-9999.
 */
size_t cc_window_period(cc_window_e w, int64_t t, char *buf, int64_t *end);

/*
 * The first second of the period of window w containing t (0 for total):
 * with cc_window_period()'s end, the period a reservation script checks
 * against the server's clock.
 */
int64_t cc_window_start(cc_window_e w, int64_t t);

/* 1 when the tenant is 1-128 bytes of [A-Za-z0-9._~:@+=/-] */
int cc_tenant_valid(const char *s, size_t len);

/*
 * Writes "costcap:{TENANT}:" to buf (CC_KEY_PREFIX_MAX_LEN bytes at
 * least); returns its length.  The tenant must be valid.
 */
size_t cc_key_prefix(const char *tenant, size_t len, char *buf);


#endif /* _CC_WINDOW_H_INCLUDED_ */

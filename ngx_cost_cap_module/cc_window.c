/*
 * Windows, periods, key names and decimals.  Dates use integer
 * civil-calendar arithmetic (H. Hinnant's days_from_civil/civil_from_days)
 * so that they agree with the reservation script, which has no os.date.
 */

#include <string.h>

#include "cc_window.h"


#define CC_DAY            86400
#define CC_FRAC_DIGITS    6
#define CC_YEAR_MAX       9999


typedef struct {
    int64_t         y;
    int             m;
    int             d;
} cc_civil_t;


static int64_t cc_floor_div(int64_t a, int64_t b);
static int64_t cc_days_from_civil(int64_t y, int m, int d);
static void cc_civil_from_days(int64_t days, cc_civil_t *c);
static char *cc_put_num(char *p, int64_t v, int width);
static size_t cc_period_week(int64_t days, char *buf, int64_t *end);
static size_t cc_period_month(cc_civil_t *c, char *buf, int64_t *end);


static const char  *cc_window_names[CC_WIN_MAX] = {
    "minute", "hour", "day", "week", "month", "total"
};


int
cc_decimal_parse(const char *s, size_t len, int64_t *micro)
{
    size_t     i, dot, nfrac;
    uint64_t   ip, fp;

    dot = len;

    for (i = 0; i < len; i++) {
        if (s[i] == '.' && dot == len) {
            dot = i;
            continue;
        }

        if (s[i] < '0' || s[i] > '9') {
            return CC_DEC_INVALID;
        }
    }

    nfrac = (dot == len) ? 0 : len - dot - 1;

    if (dot == 0 || (dot < len && (nfrac == 0 || nfrac > CC_FRAC_DIGITS))) {
        return CC_DEC_INVALID;
    }

    ip = 0;

    for (i = 0; i < dot; i++) {
        if (ip > (uint64_t) INT64_MAX / CC_MICRO) {
            return CC_DEC_OVERFLOW;
        }

        ip = ip * 10 + (uint64_t) (s[i] - '0');
    }

    fp = 0;

    for (i = 0; i < CC_FRAC_DIGITS; i++) {
        fp = fp * 10 + (i < nfrac ? (uint64_t) (s[dot + 1 + i] - '0') : 0);
    }

    /* ip < 2^63 / 10^5 here, so ip * 10^6 cannot wrap a uint64_t */

    if (ip > (uint64_t) INT64_MAX / CC_MICRO
        || ip * CC_MICRO > (uint64_t) INT64_MAX - fp)
    {
        return CC_DEC_OVERFLOW;
    }

    *micro = (int64_t) (ip * CC_MICRO + fp);

    return CC_DEC_OK;
}


size_t
cc_decimal_format(int64_t micro, char *buf)
{
    int        i, nfrac;
    char       tmp[CC_DECIMAL_MAX_LEN];
    char      *p;
    size_t     n;
    uint64_t   u, ip, fp;

    /* the magnitude in unsigned arithmetic: INT64_MIN has no positive twin */
    u = (micro < 0) ? (uint64_t) 0 - (uint64_t) micro : (uint64_t) micro;
    ip = u / CC_MICRO;
    fp = u % CC_MICRO;

    p = buf;

    if (micro < 0) {
        *p++ = '-';
    }

    n = 0;

    do {
        tmp[n++] = (char) ('0' + ip % 10);
        ip /= 10;
    } while (ip);

    while (n) {
        *p++ = tmp[--n];
    }

    if (fp == 0) {
        return (size_t) (p - buf);
    }

    nfrac = CC_FRAC_DIGITS;

    while (fp % 10 == 0) {
        fp /= 10;
        nfrac--;
    }

    *p++ = '.';

    for (i = nfrac - 1; i >= 0; i--) {
        p[i] = (char) ('0' + fp % 10);
        fp /= 10;
    }

    return (size_t) (p + nfrac - buf);
}


int
cc_window_parse(const char *s, size_t len)
{
    int  w;

    for (w = 0; w < CC_WIN_MAX; w++) {
        if (strlen(cc_window_names[w]) == len
            && memcmp(cc_window_names[w], s, len) == 0)
        {
            return w;
        }
    }

    return -1;
}


const char *
cc_window_name(cc_window_e w)
{
    if ((unsigned) w >= CC_WIN_MAX) {
        return NULL;
    }

    return cc_window_names[w];
}


size_t
cc_window_period(cc_window_e w, int64_t t, char *buf, int64_t *end)
{
    char        *p;
    int64_t      days, sec;
    cc_civil_t   c;

    *end = 0;

    if (w == CC_WIN_TOTAL) {
        memcpy(buf, "all", 3);
        return 3;
    }

    /* no days * CC_DAY here: it would overflow near INT64_MIN */
    days = t / CC_DAY;
    sec = t % CC_DAY;

    if (sec < 0) {
        days--;
        sec += CC_DAY;
    }

    cc_civil_from_days(days, &c);

    /* four-digit years only; also keeps the arithmetic below in range */
    if (c.y < 1 || c.y > CC_YEAR_MAX || (unsigned) w >= CC_WIN_MAX) {
        return 0;
    }

    if (w == CC_WIN_WEEK) {
        return cc_period_week(days, buf, end);
    }

    if (w == CC_WIN_MONTH) {
        return cc_period_month(&c, buf, end);
    }

    p = cc_put_num(buf, c.y, 4);
    p = cc_put_num(p, c.m, 2);
    p = cc_put_num(p, c.d, 2);
    *end = (days + 1) * CC_DAY;

    if (w == CC_WIN_DAY) {
        return (size_t) (p - buf);
    }

    p = cc_put_num(p, sec / 3600, 2);
    *end = t - sec % 3600 + 3600;

    if (w == CC_WIN_HOUR) {
        return (size_t) (p - buf);
    }

    p = cc_put_num(p, sec % 3600 / 60, 2);
    *end = t - sec % 60 + 60;

    return (size_t) (p - buf);
}


int64_t
cc_window_start(cc_window_e w, int64_t t)
{
    int64_t     days;
    cc_civil_t  c;

    days = cc_floor_div(t, CC_DAY);

    switch (w) {

    case CC_WIN_MINUTE:
        return cc_floor_div(t, 60) * 60;

    case CC_WIN_HOUR:
        return cc_floor_div(t, 3600) * 3600;

    case CC_WIN_DAY:
        return days * CC_DAY;

    case CC_WIN_WEEK:
        /* 1970-01-01 was a Thursday: Monday is (days + 3) mod 7 == 0 */
        return (days - ((days + 3) % 7 + 7) % 7) * CC_DAY;

    case CC_WIN_MONTH:
        cc_civil_from_days(days, &c);
        return cc_days_from_civil(c.y, c.m, 1) * CC_DAY;

    default:
        return 0;
    }
}


int
cc_tenant_valid(const char *s, size_t len)
{
    size_t  i;
    char    ch;

    if (len == 0 || len > CC_TENANT_MAX_LEN) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        ch = s[i];

        if ((ch >= 'a' && ch <= 'z')
            || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9'))
        {
            continue;
        }

        /* NUL is not in the set; strchr would find it as the terminator */
        if (ch == '\0' || strchr("._~:@+=/-", ch) == NULL) {
            return 0;
        }
    }

    return 1;
}


size_t
cc_key_prefix(const char *tenant, size_t len, char *buf)
{
    char  *p;

    p = buf;
    memcpy(p, "costcap:{", sizeof("costcap:{") - 1);
    p += sizeof("costcap:{") - 1;
    memcpy(p, tenant, len);
    p += len;
    memcpy(p, "}:", 2);
    p += 2;

    return (size_t) (p - buf);
}


static int64_t
cc_floor_div(int64_t a, int64_t b)
{
    int64_t  q;

    q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        q--;
    }

    return q;
}


static int64_t
cc_days_from_civil(int64_t y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= (m <= 2);
    era = cc_floor_div(y, 400);
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


static void
cc_civil_from_days(int64_t days, cc_civil_t *c)
{
    int64_t  z, era, doe, yoe, doy, mp;

    z = days + 719468;
    era = cc_floor_div(z, 146097);
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    c->d = (int) (doy - (153 * mp + 2) / 5 + 1);
    c->m = (int) (mp < 10 ? mp + 3 : mp - 9);
    c->y = yoe + era * 400 + (c->m <= 2);
}


static char *
cc_put_num(char *p, int64_t v, int width)
{
    int  i;

    for (i = width - 1; i >= 0; i--) {
        p[i] = (char) ('0' + v % 10);
        v /= 10;
    }

    return p + width;
}


static size_t
cc_period_week(int64_t days, char *buf, int64_t *end)
{
    char        *p;
    int64_t      wd, thu, week;
    cc_civil_t   c;

    /* ISO weeks start on Monday and belong to the year of their Thursday */
    wd = days - cc_floor_div(days + 3, 7) * 7 + 3;
    thu = days - wd + 3;

    cc_civil_from_days(thu, &c);

    if (c.y < 1 || c.y > CC_YEAR_MAX) {
        return 0;
    }

    week = (thu - cc_days_from_civil(c.y, 1, 1)) / 7 + 1;

    p = cc_put_num(buf, c.y, 4);
    *p++ = '-';
    *p++ = 'W';
    p = cc_put_num(p, week, 2);

    *end = (days - wd + 7) * CC_DAY;

    return (size_t) (p - buf);
}


static size_t
cc_period_month(cc_civil_t *c, char *buf, int64_t *end)
{
    char  *p;

    p = cc_put_num(buf, c->y, 4);
    p = cc_put_num(p, c->m, 2);

    if (c->m == 12) {
        *end = cc_days_from_civil(c->y + 1, 1, 1) * CC_DAY;

    } else {
        *end = cc_days_from_civil(c->y, c->m + 1, 1) * CC_DAY;
    }

    return (size_t) (p - buf);
}

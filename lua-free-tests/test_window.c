/*
 * cc_window: decimals, window names, periods (checked against libc's
 * gmtime_r/timegm/strftime), tenants and key prefixes.
 */

#define _GNU_SOURCE

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cc_window.h"


#define S(lit)  lit, sizeof(lit) - 1


static int
dec(const char *s, int64_t *v)
{
    return cc_decimal_parse(s, strlen(s), v);
}


static void
test_decimal_parse_invalid(void **state)
{
    int64_t      v;
    size_t       i;
    const char  *bad[] = {
        "", ".", "4.", ".5", "-1", "+1", "1e3", "1E3", " 1", "1 ", "0x10",
        "1.2.3", "1.1234567", "1,5", "inf", "nan", "1..2", "١", "1\t",
        "0.0000001"
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 42;
        assert_int_equal(dec(bad[i], &v), CC_DEC_INVALID);
        assert_int_equal(v, 42);
    }

    /* an embedded NUL is not a digit */
    assert_int_equal(cc_decimal_parse("1\0002", 3, &v), CC_DEC_INVALID);

    /* the length bounds the parse: "12" of "123" */
    assert_int_equal(cc_decimal_parse("123", 2, &v), CC_DEC_OK);
    assert_int_equal(v, 12 * CC_MICRO);

    /* an invalid character after an overflowing prefix is still invalid */
    assert_int_equal(dec("99999999999999999999999x", &v), CC_DEC_INVALID);
}


static void
test_decimal_parse_valid(void **state)
{
    int64_t  v;

    assert_int_equal(dec("0", &v), CC_DEC_OK);
    assert_int_equal(v, 0);
    assert_int_equal(dec("0.0", &v), CC_DEC_OK);
    assert_int_equal(v, 0);
    assert_int_equal(dec("25", &v), CC_DEC_OK);
    assert_int_equal(v, 25000000);
    assert_int_equal(dec("3.50", &v), CC_DEC_OK);
    assert_int_equal(v, 3500000);
    assert_int_equal(dec("0.000001", &v), CC_DEC_OK);
    assert_int_equal(v, 1);
    assert_int_equal(dec("0.077415", &v), CC_DEC_OK);
    assert_int_equal(v, 77415);
    assert_int_equal(dec("007.5", &v), CC_DEC_OK);
    assert_int_equal(v, 7500000);
    assert_int_equal(dec("00000000000000000000000000001", &v), CC_DEC_OK);
    assert_int_equal(v, CC_MICRO);
}


static void
test_decimal_parse_overflow(void **state)
{
    int64_t  v;

    /* INT64_MAX millionths = 9223372036854.775807 */
    assert_int_equal(dec("9223372036854.775807", &v), CC_DEC_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(dec("9223372036854.775808", &v), CC_DEC_OVERFLOW);
    assert_int_equal(dec("9223372036855", &v), CC_DEC_OVERFLOW);
    assert_int_equal(dec("9223372036854.8", &v), CC_DEC_OVERFLOW);
    assert_int_equal(dec("9223372036854", &v), CC_DEC_OK);
    assert_true(v == 9223372036854000000LL);
    assert_int_equal(dec("18446744073709551616", &v), CC_DEC_OVERFLOW);
    assert_int_equal(dec("99999999999999999999999999999999.5", &v),
                     CC_DEC_OVERFLOW);
}


static void
test_decimal_format(void **state)
{
    char     buf[CC_DECIMAL_MAX_LEN];
    size_t   i, n;
    int64_t  back;

    static const struct {
        int64_t       v;
        const char   *s;
    } cases[] = {
        { 0, "0" },
        { 1, "0.000001" },
        { 5000000, "5" },
        { 77415, "0.077415" },
        { 1500000, "1.5" },
        { 10, "0.00001" },
        { 1000000000, "1000" },
        { 1234567890, "1234.56789" },
        { -1500000, "-1.5" },
        { -1, "-0.000001" },
        { -7000000, "-7" },
        { INT64_MAX, "9223372036854.775807" },
        { INT64_MIN, "-9223372036854.775808" },
        { INT64_MIN + 1, "-9223372036854.775807" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(buf, 'Z', sizeof(buf));
        n = cc_decimal_format(cases[i].v, buf);
        assert_int_equal(n, strlen(cases[i].s));
        assert_memory_equal(buf, cases[i].s, n);
        assert_true(n < CC_DECIMAL_MAX_LEN);

        if (cases[i].v >= 0) {
            assert_int_equal(cc_decimal_parse(buf, n, &back), CC_DEC_OK);
            assert_true(back == cases[i].v);
        }
    }
}


static void
test_decimal_roundtrip(void **state)
{
    char      buf[CC_DECIMAL_MAX_LEN];
    size_t    n;
    int64_t   v, back;
    uint64_t  x;
    int       i;

    x = 88172645463325252ULL;

    for (i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = (int64_t) (x >> (1 + x % 63));
        n = cc_decimal_format(v, buf);
        assert_int_equal(cc_decimal_parse(buf, n, &back), CC_DEC_OK);
        assert_true(back == v);
        assert_true(buf[n - 1] != '0' || memchr(buf, '.', n) == NULL);
    }
}


static void
test_window_names(void **state)
{
    int          w;
    const char  *name;

    assert_int_equal(cc_window_parse(S("minute")), CC_WIN_MINUTE);
    assert_int_equal(cc_window_parse(S("hour")), CC_WIN_HOUR);
    assert_int_equal(cc_window_parse(S("day")), CC_WIN_DAY);
    assert_int_equal(cc_window_parse(S("week")), CC_WIN_WEEK);
    assert_int_equal(cc_window_parse(S("month")), CC_WIN_MONTH);
    assert_int_equal(cc_window_parse(S("total")), CC_WIN_TOTAL);
    assert_int_equal(cc_window_parse(S("")), -1);
    assert_int_equal(cc_window_parse(S("Day")), -1);
    assert_int_equal(cc_window_parse(S("days")), -1);
    assert_int_equal(cc_window_parse("day", 2), -1);
    assert_int_equal(cc_window_parse(S("year")), -1);

    for (w = 0; w < CC_WIN_MAX; w++) {
        name = cc_window_name(w);
        assert_non_null(name);
        assert_int_equal(cc_window_parse(name, strlen(name)), w);
    }

    assert_null(cc_window_name(CC_WIN_MAX));
    assert_null(cc_window_name((cc_window_e) -1));
}


/* the period's first second: in it, and the one before is in the last */

static void
check_start(cc_window_e w, int64_t t, const char *want, int64_t end)
{
    char     buf[CC_PERIOD_MAX_LEN];
    size_t   n;
    int64_t  start, e;

    start = cc_window_start(w, t);

    if (w == CC_WIN_TOTAL) {
        assert_int_equal(start, 0);
        return;
    }

    if (start <= t - 31 * 86400LL || start > t || end <= t) {
        fail_msg("window %d t=%lld: start %lld", (int) w, (long long) t,
                 (long long) start);
    }

    n = cc_window_period(w, start, buf, &e);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(e, end);

    (void) cc_window_period(w, start - 1, buf, &e);
    assert_int_equal(e, start);
}


static void
check_period(cc_window_e w, int64_t t, const char *want, int64_t want_end)
{
    char     buf[CC_PERIOD_MAX_LEN + 4];
    size_t   n;
    int64_t  end;

    memset(buf, 'Z', sizeof(buf));
    end = -12345;
    n = cc_window_period(w, t, buf, &end);

    if (n != strlen(want) || memcmp(buf, want, n) != 0 || end != want_end) {
        fail_msg("window %d t=%lld: got \"%.*s\" end %lld, want \"%s\" %lld",
                 (int) w, (long long) t, (int) n, buf, (long long) end, want,
                 (long long) want_end);
    }

    assert_true(n <= CC_PERIOD_MAX_LEN);
    assert_int_equal(buf[CC_PERIOD_MAX_LEN], 'Z');

    check_start(w, t, want, want_end);
}


static void
test_period_known(void **state)
{
    /* 2026-11-26 13:45:07 UTC, a Thursday */
    int64_t  t = 1795700707;

    check_period(CC_WIN_MINUTE, t, "202611261345", 1795700760);
    check_period(CC_WIN_HOUR, t, "2026112613", 1795701600);
    check_period(CC_WIN_DAY, t, "20261126", 1795737600);
    check_period(CC_WIN_WEEK, t, "2026-W48", 1795996800);
    check_period(CC_WIN_MONTH, t, "202611", 1796083200);
    check_period(CC_WIN_TOTAL, t, "all", 0);

    /* ISO years differ from calendar years at the edges */
    check_period(CC_WIN_WEEK, 1609459200, "2020-W53", 1609718400);
    check_period(CC_WIN_WEEK, 1735516800, "2025-W01", 1736121600);
    check_period(CC_WIN_WEEK, 0, "1970-W01", 345600);

    /* the epoch, and the last second before a new year */
    check_period(CC_WIN_MINUTE, 0, "197001010000", 60);
    check_period(CC_WIN_MONTH, 1735689599, "202412", 1735689600);
    check_period(CC_WIN_DAY, 951782400, "20000229", 951868800);

    /* before the epoch, floor division */
    check_period(CC_WIN_MINUTE, -1, "196912312359", 0);
    check_period(CC_WIN_DAY, -86401, "19691230", -86400);
}


static void
test_period_out_of_range(void **state)
{
    char     buf[CC_PERIOD_MAX_LEN];
    int64_t  end;
    int      w;

    for (w = 0; w < CC_WIN_TOTAL; w++) {
        end = 1;
        assert_int_equal(cc_window_period(w, INT64_MAX, buf, &end), 0);
        assert_int_equal(end, 0);
        assert_int_equal(cc_window_period(w, INT64_MIN, buf, &end), 0);
        /* 10000-01-01T00:00:00Z */
        assert_int_equal(cc_window_period(w, 253402300800LL, buf, &end), 0);
    }

    /* 9999-12-31T23:59:59Z is still a four-digit year */
    assert_int_equal(cc_window_period(CC_WIN_DAY, 253402300799LL, buf, &end),
                     8);
    assert_int_equal(cc_window_period(CC_WIN_TOTAL, INT64_MAX, buf, &end), 3);
    assert_int_equal(cc_window_period(CC_WIN_MAX, 0, buf, &end), 0);
}


static int64_t
next_multiple(int64_t t, int64_t m)
{
    int64_t  r;

    r = t % m;

    return t - (r < 0 ? r + m : r) + m;
}


static void
check_against_libc(int64_t t)
{
    char       want[32];
    time_t     tt, e;
    struct tm  tm, nx;

    tt = (time_t) t;
    assert_non_null(gmtime_r(&tt, &tm));

    strftime(want, sizeof(want), "%Y%m%d%H%M", &tm);
    check_period(CC_WIN_MINUTE, t, want, next_multiple(t, 60));

    strftime(want, sizeof(want), "%Y%m%d%H", &tm);
    check_period(CC_WIN_HOUR, t, want, next_multiple(t, 3600));

    nx = tm;
    nx.tm_mday++;
    nx.tm_hour = nx.tm_min = nx.tm_sec = 0;
    e = timegm(&nx);
    strftime(want, sizeof(want), "%Y%m%d", &tm);
    check_period(CC_WIN_DAY, t, want, e);

    nx = tm;
    nx.tm_mday += 7 - (tm.tm_wday + 6) % 7;
    nx.tm_hour = nx.tm_min = nx.tm_sec = 0;
    e = timegm(&nx);
    strftime(want, sizeof(want), "%G-W%V", &tm);
    check_period(CC_WIN_WEEK, t, want, e);

    nx = tm;
    nx.tm_mon++;
    nx.tm_mday = 1;
    nx.tm_hour = nx.tm_min = nx.tm_sec = 0;
    e = timegm(&nx);
    strftime(want, sizeof(want), "%Y%m", &tm);
    check_period(CC_WIN_MONTH, t, want, e);
}


static void
test_period_against_libc(void **state)
{
    int        y, d, i;
    int64_t    lim, t;
    uint64_t   x;
    time_t     tt;
    struct tm  tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = 2400 - 1900 + 1;
    tm.tm_mday = 1;
    lim = timegm(&tm);

    /* year edges, where ISO weeks and leap days live */
    for (y = 1970; y <= 2400; y++) {
        for (d = -4; d <= 4; d++) {
            memset(&tm, 0, sizeof(tm));
            tm.tm_year = y - 1900;
            tm.tm_mday = 1 + d;
            tt = timegm(&tm);
            check_against_libc(tt);
            check_against_libc(tt + 86399);

            check_against_libc(tt - 1);
        }

        tm.tm_mon = 2;
        tm.tm_mday = 1;
        tt = timegm(&tm);
        check_against_libc(tt - 1);
    }

    x = 0x9e3779b97f4a7c15ULL;

    for (i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t = (int64_t) (x % (uint64_t) lim);
        check_against_libc(t);
    }
}


static void
test_tenant(void **state)
{
    char  buf[CC_TENANT_MAX_LEN + 2];
    int   c;

    assert_true(cc_tenant_valid(S("acme")));
    assert_true(cc_tenant_valid(S("a")));
    assert_true(cc_tenant_valid(S("A-Z_a.z~0:9@x+y=z/w")));
    assert_false(cc_tenant_valid(S("")));
    assert_false(cc_tenant_valid(S("a b")));
    assert_false(cc_tenant_valid(S("a{b")));
    assert_false(cc_tenant_valid(S("a}b")));
    assert_false(cc_tenant_valid(S("a*")));
    assert_false(cc_tenant_valid(S("é")));
    assert_false(cc_tenant_valid("a\0b", 3));
    assert_false(cc_tenant_valid(S("a\r\n")));

    memset(buf, 'x', sizeof(buf));
    assert_true(cc_tenant_valid(buf, CC_TENANT_MAX_LEN));
    assert_false(cc_tenant_valid(buf, CC_TENANT_MAX_LEN + 1));

    for (c = 0; c < 256; c++) {
        buf[0] = (char) c;
        assert_int_equal(cc_tenant_valid(buf, 1),
                         (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                         || (c >= '0' && c <= '9')
                         || (c && strchr("._~:@+=/-", c)));
    }
}


static void
test_key_prefix(void **state)
{
    char    buf[CC_KEY_PREFIX_MAX_LEN + 1];
    char    t[CC_TENANT_MAX_LEN];
    size_t  n;

    memset(buf, 'Z', sizeof(buf));
    n = cc_key_prefix(S("acme"), buf);
    assert_int_equal(n, strlen("costcap:{acme}:"));
    assert_memory_equal(buf, "costcap:{acme}:", n);

    memset(t, 'q', sizeof(t));
    memset(buf, 'Z', sizeof(buf));
    n = cc_key_prefix(t, sizeof(t), buf);
    assert_int_equal(n, CC_KEY_PREFIX_MAX_LEN);
    assert_int_equal(buf[CC_KEY_PREFIX_MAX_LEN], 'Z');
    assert_memory_equal(buf + n - 2, "}:", 2);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_decimal_parse_invalid),
        cmocka_unit_test(test_decimal_parse_valid),
        cmocka_unit_test(test_decimal_parse_overflow),
        cmocka_unit_test(test_decimal_format),
        cmocka_unit_test(test_decimal_roundtrip),
        cmocka_unit_test(test_window_names),
        cmocka_unit_test(test_period_known),
        cmocka_unit_test(test_period_out_of_range),
        cmocka_unit_test(test_period_against_libc),
        cmocka_unit_test(test_tenant),
        cmocka_unit_test(test_key_prefix),
    };

    return cmocka_run_group_tests_name("cc_window", tests, NULL, NULL);
}

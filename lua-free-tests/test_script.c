/*
 * cc_script: the reserve reply parser, on hand-built hiredis replies.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cc_script.h"


#define NWIN  2
#define NEL   (4 + 2 * CC_RESERVE_WIN_MAX + 2 * CC_RESERVE_ALERT_MAX + 2)


typedef struct {
    redisReply      top;
    redisReply      el[NEL];
    redisReply     *ptr[NEL];
} fake_t;


static void
set_int(redisReply *r, long long v)
{
    memset(r, 0, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
}


static void
set_str(redisReply *r, const char *s)
{
    memset(r, 0, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = (char *) s;
    r->len = strlen(s);
}


/*
 * What scripts/reserve.lua answers for two windows: {1, now, usec, mask,
 * 24900000, 250000000, 5, -1}: day charged (cap 250 USD), month not
 * enforced.
 */

static void
fake_init(fake_t *f)
{
    size_t  i;

    memset(f, 0, sizeof(*f));
    f->top.type = REDIS_REPLY_ARRAY;
    f->top.elements = 4 + 2 * NWIN;
    f->top.element = f->ptr;

    for (i = 0; i < NEL; i++) {
        f->ptr[i] = &f->el[i];
    }

    set_int(&f->el[0], 1);
    set_int(&f->el[1], 1795700707);
    set_int(&f->el[2], 123456);
    set_int(&f->el[3], 1);
    set_int(&f->el[4], 24900000);
    set_int(&f->el[5], 250000000);
    set_int(&f->el[6], 5);
    set_int(&f->el[7], -1);
}


static void
test_reply_ok(void **state)
{
    fake_t              f;
    cc_reserve_reply_t  out;

    fake_init(&f);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.status, CC_RESERVE_ADMITTED);
    assert_int_equal(out.now, 1795700707);
    assert_int_equal(out.usec, 123456);
    assert_int_equal(out.mask, 1);
    assert_int_equal(out.nwin, NWIN);
    assert_int_equal(out.win[0].spent, 24900000);
    assert_int_equal(out.win[0].cap, 250000000);
    assert_int_equal(out.win[1].spent, 5);
    assert_int_equal(out.win[1].cap, -1);
    assert_int_equal(out.nalerts, 0);

    /* refused: nothing charged */
    set_int(&f.el[0], 0);
    set_int(&f.el[3], 0);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.status, CC_RESERVE_REFUSED);
    assert_int_equal(out.mask, 0);

    /* two thresholds crossed: window 1 at 50 and 80 percent */
    fake_init(&f);
    f.top.elements += 4;
    set_int(&f.el[8], 1);
    set_int(&f.el[9], 50);
    set_int(&f.el[10], 1);
    set_int(&f.el[11], 80);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.nalerts, 2);
    assert_int_equal(out.alerts[0].window, 0);
    assert_int_equal(out.alerts[0].percent, 50);
    assert_int_equal(out.alerts[1].percent, 80);

    /* no windows at all */
    fake_init(&f);
    set_int(&f.el[3], 0);
    f.top.elements = 4;
    assert_int_equal(cc_reserve_reply_parse(&f.top, 0, &out), 0);
    assert_int_equal(out.nwin, 0);

    /* the short answers: periods not current, cancelled, replayed */
    fake_init(&f);
    f.top.elements = 3;
    set_int(&f.el[0], CC_RESERVE_STALE);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.status, CC_RESERVE_STALE);
    assert_int_equal(out.now, 1795700707);
    set_int(&f.el[0], CC_RESERVE_CANCELLED);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.mask, 0);
    set_int(&f.el[0], CC_RESERVE_REPLAY);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);

    /* applied before (a resend): its mask; no spend, no alerts (what the
       stack held before must not be read as alerts to copy) */
    fake_init(&f);
    f.top.elements = 4;
    set_int(&f.el[0], CC_RESERVE_APPLIED);
    set_int(&f.el[3], 3);
    memset(&out, 0x5a, sizeof(out));
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.mask, 3);
    assert_int_equal(out.nalerts, 0);
    assert_int_equal(out.win[0].cap, -1);
    assert_int_equal(out.win[1].cap, -1);
    assert_int_equal(out.win[0].spent, 0);
    assert_int_equal(out.lease, 0);

    /* ... and the lease the first attempt took, lost with its reply */
    f.top.elements = 5;
    set_int(&f.el[4], 2000000);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.mask, 3);
    assert_int_equal(out.lease, 2000000);
    set_int(&f.el[4], 0);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.lease, 0);
    set_int(&f.el[4], -1);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);
    f.top.elements = 4;

    /* idempotency key of another price: the first estimate */
    set_int(&f.el[0], CC_RESERVE_CONFLICT);
    set_int(&f.el[3], 77415);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.extra, 77415);
    assert_int_equal(out.mask, 0);

    /* a malformed cap: window 2 (from 1) and its value */
    f.top.elements = 5;
    set_int(&f.el[0], CC_RESERVE_BAD_CAP);
    set_int(&f.el[3], 2);
    set_str(&f.el[4], "12x");
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.extra, 1);
    assert_int_equal(out.bad_len, 3);
    assert_memory_equal(out.bad, "12x", 3);

    /* kept for the log: printable, without quotes, and short */
    set_str(&f.el[4], "a\"b\n\xff");
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.bad_len, 5);
    assert_memory_equal(out.bad, "a?b??", 5);

    set_str(&f.el[4], "1234567890123456789012345678901234567890"
                      "1234567890123456789012345678901234567890");
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.bad_len, CC_RESERVE_BAD_MAX);

    /* a counter that is not a whole number: window 1 (from 1) */
    f.top.elements = 4;
    set_int(&f.el[0], CC_RESERVE_BAD_COUNTER);
    set_int(&f.el[3], 1);
    memset(&out, 0xa5, sizeof(out));
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), 0);
    assert_int_equal(out.status, CC_RESERVE_BAD_COUNTER);
    assert_int_equal(out.extra, 0);
    assert_int_equal(out.nalerts, 0);
    assert_int_equal(out.win[1].cap, -1);
}


static void
test_reply_bad(void **state)
{
    fake_t              f;
    redisReply          err;
    cc_reserve_reply_t  out;

    assert_int_equal(cc_reserve_reply_parse(NULL, NWIN, &out), -1);

    memset(&err, 0, sizeof(err));
    err.type = REDIS_REPLY_ERROR;
    err.str = (char *) "NOSCRIPT No matching script";
    err.len = strlen(err.str);
    assert_int_equal(cc_reserve_reply_parse(&err, NWIN, &out), -1);

    /* wrong count of elements, or of windows asked for */
    fake_init(&f);
    f.top.elements = 4 + 2 * NWIN - 1;
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);
    fake_init(&f);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN + 1, &out), -1);
    assert_int_equal(cc_reserve_reply_parse(&f.top, CC_RESERVE_WIN_MAX + 1,
                                            &out),
                     -1);

    /* an odd alert list */
    fake_init(&f);
    f.top.elements++;
    set_int(&f.el[8], 1);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    /* an alert on a window that does not exist */
    fake_init(&f);
    f.top.elements += 2;
    set_int(&f.el[8], 3);
    set_int(&f.el[9], 80);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_str(&f.el[0], "1");
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_str(&f.el[1], "1795700707");
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_str(&f.el[4], "24900000");
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_int(&f.el[4], -1);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_int(&f.el[5], -2);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_int(&f.el[3], -1);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    set_int(&f.el[0], 7);
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    f.el[6].type = REDIS_REPLY_NIL;
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);

    fake_init(&f);
    f.top.type = REDIS_REPLY_STATUS;
    assert_int_equal(cc_reserve_reply_parse(&f.top, NWIN, &out), -1);
}


/* the RESP encoding is byte for byte what hiredis makes */

static void
test_resp_command(void **state)
{
    int          i, argc, len;
    char        *ref, buf[4096];
    size_t       argvlen[8], n;
    const char  *argv[8];
    char         bin[300];

    static const char  *args[] = {
        "EVALSHA", "0123456789abcdef0123456789abcdef01234567", "1",
        "costcap:{acme}:", "77415", "0", "", "day"
    };

    memset(bin, 0, sizeof(bin));
    bin[7] = '\r';
    bin[8] = '\n';

    for (argc = 0; argc <= 8; argc++) {
        for (i = 0; i < argc; i++) {
            argv[i] = args[i];
            argvlen[i] = strlen(args[i]);
        }

        /* a binary argument with NULs and CRLF, long enough for 3 digits */
        if (argc == 7) {
            argv[6] = bin;
            argvlen[6] = sizeof(bin);
        }

        len = redisFormatCommandArgv(&ref, argc, argv, argvlen);
        assert_true(len > 0);

        n = cc_resp_command(NULL, argc, argv, argvlen);
        assert_int_equal(n, (size_t) len);
        assert_int_equal(cc_resp_command(buf, argc, argv, argvlen), n);
        assert_memory_equal(buf, ref, n);

        redisFreeCommand(ref);
    }

    /* an empty argument may come without bytes: NULL, length 0 */
    argv[0] = "HSET";
    argvlen[0] = 4;
    argv[1] = NULL;
    argvlen[1] = 0;
    n = cc_resp_command(buf, 2, argv, argvlen);
    assert_int_equal(n, sizeof("*2\r\n$4\r\nHSET\r\n$0\r\n\r\n") - 1);
    assert_memory_equal(buf, "*2\r\n$4\r\nHSET\r\n$0\r\n\r\n", n);
}


/* the arena builds the same trees as hiredis' own objects */

static void
same_tree(const redisReply *a, const redisReply *b)
{
    size_t  i;

    assert_int_equal(a->type, b->type);
    assert_int_equal(a->integer, b->integer);
    assert_int_equal(a->len, b->len);
    assert_int_equal(a->elements, b->elements);

    if (a->str) {
        assert_memory_equal(a->str, b->str, a->len + 1);
    }

    for (i = 0; i < a->elements; i++) {
        same_tree(a->element[i], b->element[i]);
    }
}


static void
test_reply_arena(void **state)
{
    int           rc;
    char         *big;
    void         *ra, *rb;
    size_t        i, n;
    redisReader  *a, *b;

    static const char  *in[] = {
        ":1\r\n", "+OK\r\n", "-NOSCRIPT No matching script\r\n", "$-1\r\n",
        "*-1\r\n", "*0\r\n", "$3\r\nabc\r\n",
        "*8\r\n:1\r\n:1764180000\r\n$8\r\n20261126\r\n:0\r\n:1764201600\r\n"
        "$6\r\n202611\r\n$-1\r\n:1764547200\r\n",
        "*2\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n:3\r\n"
    };

    for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        a = redisReaderCreateWithFunctions(&cc_reply_functions);
        b = redisReaderCreate();

        /* fed in two pieces: a reply may be built across reads */
        n = strlen(in[i]) / 2;
        assert_int_equal(redisReaderFeed(a, in[i], n), REDIS_OK);
        assert_int_equal(redisReaderGetReply(a, &ra), REDIS_OK);
        assert_int_equal(redisReaderFeed(a, in[i] + n, strlen(in[i]) - n),
                         REDIS_OK);
        assert_int_equal(redisReaderGetReply(a, &ra), REDIS_OK);
        assert_non_null(ra);

        redisReaderFeed(b, in[i], strlen(in[i]));
        assert_int_equal(redisReaderGetReply(b, &rb), REDIS_OK);

        same_tree(ra, rb);
        cc_reply_free(ra);
        freeReplyObject(rb);
        redisReaderFree(a);
        redisReaderFree(b);
    }

    /* larger than the arena: the rest comes from malloc, freed one by one */
    n = 100000;
    big = malloc(n + 64);
    assert_non_null(big);
    rc = sprintf(big, "*2\r\n$%zu\r\n", n);
    memset(big + rc, 'x', n);
    memcpy(big + rc + n, "\r\n:7\r\n", 6);

    a = redisReaderCreateWithFunctions(&cc_reply_functions);
    assert_int_equal(redisReaderFeed(a, big, rc + n + 6), REDIS_OK);
    assert_int_equal(redisReaderGetReply(a, &ra), REDIS_OK);
    assert_non_null(ra);
    assert_int_equal(((redisReply *) ra)->element[0]->len, n);
    assert_int_equal(((redisReply *) ra)->element[1]->integer, 7);
    cc_reply_free(ra);

    /* a reply cut short is freed with the reader */
    assert_int_equal(redisReaderFeed(a, "*3\r\n:1\r\n", 8), REDIS_OK);
    assert_int_equal(redisReaderGetReply(a, &ra), REDIS_OK);
    assert_null(ra);
    redisReaderFree(a);
    free(big);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_reply_ok),
        cmocka_unit_test(test_reply_bad),
        cmocka_unit_test(test_resp_command),
        cmocka_unit_test(test_reply_arena),
    };

    return cmocka_run_group_tests_name("cc_script", tests, NULL, NULL);
}

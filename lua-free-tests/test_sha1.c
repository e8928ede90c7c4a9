/*
 * cc_sha1: the FIPS 180 test vectors, and every padding length.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cc_sha1.h"
#include "cc_script.h"


static void
check(const void *data, size_t len, const char *want)
{
    char  hex[41];

    memset(hex, 'Z', sizeof(hex));
    cc_sha1_hex(data, len, hex);
    assert_int_equal(hex[40], 'Z');
    hex[40] = '\0';
    assert_string_equal(hex, want);
}


static void
test_fips_vectors(void **state)
{
    char        *a;
    const char  *s;

    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");

    s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(s, strlen(s), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");

    s = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
        "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check(s, strlen(s), "a49b2446a02c645bf419f995b67091253a04a259");

    a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    check(a, 1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(a);

    check("The quick brown fox jumps over the lazy dog", 43,
          "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}


/* lengths around the 55/56/64-byte padding edges, against known digests */

static void
test_padding_edges(void **state)
{
    char  buf[130];

    memset(buf, 'a', sizeof(buf));

    check(buf, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    check(buf, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
    check(buf, 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
    check(buf, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
    check(buf, 65, "11655326c708d70319be2610e8a57d9a5b959d3b");
    check(buf, 128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_fips_vectors),
        cmocka_unit_test(test_padding_edges),
    };

    return cmocka_run_group_tests_name("cc_sha1", tests, NULL, NULL);
}

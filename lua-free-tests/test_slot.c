/*
 * cc_slot: Redis Cluster hash slots, against values CLUSTER KEYSLOT
 * answers (Redis 7.0.15).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cc_slot.h"


#define slot(s)  cc_key_slot(s, strlen(s))


static void
test_crc16(void **state)
{
    /* the CRC16-XMODEM check value */
    assert_int_equal(cc_crc16("123456789", 9), 0x31c3);
    assert_int_equal(cc_crc16("", 0), 0);
}


static void
test_key_slot(void **state)
{
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("123456789"), 12739);

    /* the hash tag: the first {...} with something inside */
    assert_int_equal(slot("costcap:{acme}:day:20261201"), slot("acme"));
    assert_int_equal(slot("costcap:{acme}:op:0123456789abcdef01234567"),
                     slot("acme"));
    assert_int_equal(slot("a{b}c"), 3300);
    assert_int_equal(slot("{a}{b}"), slot("a"));

    /* {} is no tag: the whole key counts */
    assert_int_equal(slot("{}x"), 10595);
    assert_int_equal(slot("{}x"), cc_crc16("{}x", 3) & 16383);

    /* an opening brace without a closing one: the whole key */
    assert_int_equal(slot("{abc"), cc_crc16("{abc", 4) & 16383);

    /* the stream and its markers share a slot */
    assert_int_equal(slot("costcap:events"),
                     slot("{costcap:events}:op:0123456789abcdef01234567"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_crc16),
        cmocka_unit_test(test_key_slot),
    };

    return cmocka_run_group_tests_name("cc_slot", tests, NULL, NULL);
}

/*
 * CRC16-XMODEM (polynomial 0x1021, initial value 0), computed bit by bit
 * into a table at first use: the same as Redis' crc16.c.
 */

#include <string.h>

#include "cc_slot.h"


static uint16_t  cc_crc16_table[256];
static int       cc_crc16_ready;


static void
cc_crc16_init(void)
{
    int       i, b;
    uint16_t  c;

    for (i = 0; i < 256; i++) {
        c = (uint16_t) (i << 8);

        for (b = 0; b < 8; b++) {
            c = (c & 0x8000) ? (uint16_t) ((c << 1) ^ 0x1021)
                             : (uint16_t) (c << 1);
        }

        cc_crc16_table[i] = c;
    }

    cc_crc16_ready = 1;
}


uint16_t
cc_crc16(const char *buf, size_t len)
{
    size_t    i;
    uint16_t  crc;

    if (!cc_crc16_ready) {
        cc_crc16_init();
    }

    crc = 0;

    for (i = 0; i < len; i++) {
        crc = (uint16_t) ((crc << 8)
                          ^ cc_crc16_table[((crc >> 8) ^ (uint8_t) buf[i])
                                           & 0xff]);
    }

    return crc;
}


unsigned
cc_key_slot(const char *key, size_t len)
{
    const char  *s, *e;

    s = memchr(key, '{', len);

    if (s != NULL) {
        e = memchr(s + 1, '}', len - (size_t) (s + 1 - key));

        if (e != NULL && e != s + 1) {
            return cc_crc16(s + 1, (size_t) (e - s - 1)) & (CC_SLOTS - 1);
        }
    }

    return cc_crc16(key, len) & (CC_SLOTS - 1);
}

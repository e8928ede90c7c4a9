/*
 * Pure core: the Redis Cluster hash slot of a key (CRC16-XMODEM of the
 * key, or of its {hash tag}, modulo 16384), as Redis' keyHashSlot().
 */

#ifndef _CC_SLOT_H_INCLUDED_
#define _CC_SLOT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CC_SLOTS  16384


uint16_t cc_crc16(const char *buf, size_t len);

/* the slot of key: the part between the first '{' and the next '}' when
 * that part is not empty, else the whole key */
unsigned cc_key_slot(const char *key, size_t len);


#endif /* _CC_SLOT_H_INCLUDED_ */

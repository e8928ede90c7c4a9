/*
 * Pure core: SHA-1 of the Redis scripts, for EVALSHA.
 */

#ifndef _CC_SHA1_H_INCLUDED_
#define _CC_SHA1_H_INCLUDED_


#include <stddef.h>


/* writes the 40 lowercase hex digits of SHA-1(data) to hex (no NUL) */
void cc_sha1_hex(const void *data, size_t len, char hex[40]);


#endif /* _CC_SHA1_H_INCLUDED_ */

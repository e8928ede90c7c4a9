/*
 * SHA-1 (FIPS 180-4), only to name the Redis scripts for EVALSHA: no
 * security rests on it, and no crypto library is needed for it.
 */

#include <stdint.h>
#include <string.h>

#include "cc_sha1.h"


typedef struct {
    uint32_t        h[5];
    unsigned char   block[64];
} cc_sha1_ctx_t;


static void cc_sha1_block(cc_sha1_ctx_t *ctx);
static uint32_t cc_sha1_rol(uint32_t x, int n);


void
cc_sha1_hex(const void *data, size_t len, char hex[40])
{
    int             i;
    size_t          n;
    uint64_t        bits;
    cc_sha1_ctx_t   ctx;
    const unsigned char  *p;

    static const char  digits[] = "0123456789abcdef";

    ctx.h[0] = 0x67452301;
    ctx.h[1] = 0xefcdab89;
    ctx.h[2] = 0x98badcfe;
    ctx.h[3] = 0x10325476;
    ctx.h[4] = 0xc3d2e1f0;

    p = data;
    bits = (uint64_t) len * 8;

    for (n = len; n >= 64; n -= 64, p += 64) {
        memcpy(ctx.block, p, 64);
        cc_sha1_block(&ctx);
    }

    /* padding: 0x80, zeros, then the bit length big-endian */
    memset(ctx.block, 0, 64);

    if (n) {
        memcpy(ctx.block, p, n);
    }

    ctx.block[n] = 0x80;

    if (n >= 56) {
        cc_sha1_block(&ctx);
        memset(ctx.block, 0, 64);
    }

    for (i = 0; i < 8; i++) {
        ctx.block[63 - i] = (unsigned char) (bits >> (8 * i));
    }

    cc_sha1_block(&ctx);

    for (i = 0; i < 20; i++) {
        hex[2 * i] = digits[ctx.h[i / 4] >> (28 - 8 * (i % 4)) & 0xf];
        hex[2 * i + 1] = digits[ctx.h[i / 4] >> (24 - 8 * (i % 4)) & 0xf];
    }
}


static void
cc_sha1_block(cc_sha1_ctx_t *ctx)
{
    int       i;
    uint32_t  w[80], a, b, c, d, e, f, k, t;

    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t) ctx->block[4 * i] << 24
               | (uint32_t) ctx->block[4 * i + 1] << 16
               | (uint32_t) ctx->block[4 * i + 2] << 8
               | (uint32_t) ctx->block[4 * i + 3];
    }

    for (i = 16; i < 80; i++) {
        w[i] = cc_sha1_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    }

    a = ctx->h[0];
    b = ctx->h[1];
    c = ctx->h[2];
    d = ctx->h[3];
    e = ctx->h[4];

    for (i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;

        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;

        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;

        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }

        t = cc_sha1_rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = cc_sha1_rol(b, 30);
        b = a;
        a = t;
    }

    ctx->h[0] += a;
    ctx->h[1] += b;
    ctx->h[2] += c;
    ctx->h[3] += d;
    ctx->h[4] += e;
}


static uint32_t
cc_sha1_rol(uint32_t x, int n)
{
    return x << n | x >> (32 - n);
}

/*
 * libFuzzer: Redis reply bytes through hiredis' reader into the reserve
 * reply parser, as the module's client does with what Redis sends.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_script.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/*
 * hiredis 0.14 allocates what a length prefix announces (it has no
 * maxelements yet): a Redis server is trusted that far.  Lengths beyond
 * what the module's replies use are left out, to fuzz the parser and not
 * the allocator.
 */

static int
huge_length(const uint8_t *p, size_t n)
{
    size_t    i, v;

    for (i = 0; i < n; i++) {
        if (p[i] != '*' && p[i] != '$') {
            continue;
        }

        for (v = 0, i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            v = v * 10 + (p[i] - '0');

            if (v > 65536) {
                return 1;
            }
        }

        i--;
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    void                *reply;
    size_t               i, nwin;
    redisReader         *rd;
    cc_reserve_reply_t   res;

    if (size == 0 || huge_length(data, size)) {
        return 0;
    }

    nwin = data[0] % (CC_RESERVE_WIN_MAX + 2);

    rd = redisReaderCreate();
    if (rd == NULL) {
        return 0;
    }

    if (redisReaderFeed(rd, (const char *) data + 1, size - 1) == REDIS_OK) {
        while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
            if (cc_reserve_reply_parse(reply, nwin, &res) == 0) {
                if (res.nwin != nwin || nwin > CC_RESERVE_WIN_MAX
                    || res.nalerts > CC_RESERVE_ALERT_MAX
                    || res.mask >= (1ULL << CC_RESERVE_WIN_MAX))
                {
                    abort();
                }

                for (i = 0; i < res.nwin; i++) {
                    if (res.win[i].spent < 0 || res.win[i].cap < -1) {
                        abort();
                    }
                }

                for (i = 0; i < res.nalerts; i++) {
                    if (res.alerts[i].window >= nwin) {
                        abort();
                    }
                }
            }

            freeReplyObject(reply);
        }
    }

    redisReaderFree(rd);

    return 0;
}

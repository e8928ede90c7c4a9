/*
 * Pure core: the Redis scripts (reserve, settle) and their replies.
 *
 * reserve: KEYS[1] = "costcap:{TENANT}:", ARGV[1] = estimate (micro-USD),
 * ARGV[2] = "1" for dry run else "0", then one (window name, limit in
 * micro-USD) pair per window.  The script reads TIME, builds each window's
 * key, and increments every key by the estimate unless some window would
 * cross its limit (in dry run it increments all anyway, up to 9e18, where
 * a counter stops growing rather than fail the script).  Reply:
 * [admitted 0|1, now, then per window: period, spent before, window end].
 *
 * settle: KEYS[1] = prefix, ARGV[1] = signed delta (micro-USD), then
 * (WINDOW:PERIOD, expire-at) pairs; adds delta to each key, never below 0.
 */

#ifndef _CC_SCRIPT_H_INCLUDED_
#define _CC_SCRIPT_H_INCLUDED_


#include <hiredis/hiredis.h>

#include "cc_window.h"


typedef struct {
    char            period[CC_PERIOD_MAX_LEN];
    size_t          period_len;
    int64_t         spent;          /* micro-USD before this request */
    int64_t         end;            /* first second after; 0 for total */
} cc_window_reply_t;


typedef struct {
    int             admitted;
    int64_t         now;
    size_t          nwin;
    cc_window_reply_t  win[CC_WIN_MAX];
} cc_reserve_reply_t;


extern const char  cc_script_reserve[];
extern const char  cc_script_settle[];


/*
 * Reply objects for redisReaderCreateWithFunctions(): the same redisReply
 * trees, built in one static arena instead of a calloc() per element.
 * One reply is alive at a time (the reader builds the next one only when
 * asked); cc_reply_free() frees it and resets the arena.  A reply larger
 * than the arena falls back to malloc() for what does not fit.
 */
extern redisReplyObjectFunctions  cc_reply_functions;

void cc_reply_free(void *reply);

/*
 * Writes the RESP encoding of a command (what redisFormatCommandArgv
 * makes, without its allocation and sprintf) to buf and returns its
 * length; with buf NULL, only returns the length.
 */
size_t cc_resp_command(char *buf, int argc, const char **argv,
    const size_t *argvlen);

/*
 * Checks and copies a reserve reply for nwin windows.  Returns 0, or -1
 * when the reply is an error or not of the expected shape.
 */
int cc_reserve_reply_parse(const redisReply *reply, size_t nwin,
    cc_reserve_reply_t *out);


#endif /* _CC_SCRIPT_H_INCLUDED_ */

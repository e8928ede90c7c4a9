/*
 * Pure core: what the reservation script answers, RESP
 * commands, and reply objects without an allocation per element.
 */

#ifndef _CC_SCRIPT_H_INCLUDED_
#define _CC_SCRIPT_H_INCLUDED_


#include <hiredis/hiredis.h>

#include "cc_window.h"


/* a tenant's windows and its parent's */
#define CC_RESERVE_WIN_MAX      (2 * CC_WIN_MAX)
#define CC_RESERVE_ALERT_MAX    16
#define CC_RESERVE_BAD_MAX      64      /* of a malformed cap, kept */

/* the status of scripts/reserve.lua */
#define CC_RESERVE_REFUSED       0
#define CC_RESERVE_ADMITTED      1
#define CC_RESERVE_APPLIED       2      /* a resend of one that ran */
#define CC_RESERVE_CANCELLED     3
#define CC_RESERVE_REPLAY        4      /* idempotency key, same price */
#define CC_RESERVE_CONFLICT      5      /* idempotency key, other price */
#define CC_RESERVE_LEASED        6      /* admitted, and a lease taken */
#define CC_RESERVE_STALE        -1      /* periods not current */
#define CC_RESERVE_BAD_CAP      -2      /* a caps hash holds garbage */
#define CC_RESERVE_BAD_COUNTER  -3      /* a counter is not a number */


typedef struct {
    int64_t         spent;          /* micro-USD before this request */
    int64_t         cap;            /* enforced; -1: not */
} cc_window_reply_t;


typedef struct {
    unsigned        window;         /* index, from 0 */
    unsigned        percent;
} cc_alert_reply_t;


typedef struct {
    int             status;
    int64_t         now;            /* the server's clock, seconds */
    int64_t         usec;
    uint64_t        mask;           /* windows charged */
    int64_t         extra;          /* CONFLICT: the first estimate;
                                       BAD_*: the window, from 0 */
    int64_t         lease;          /* LEASED: the amount leased;
                                       APPLIED: leased by the first */
    size_t          nwin;
    cc_window_reply_t  win[CC_RESERVE_WIN_MAX];
    size_t          nalerts;
    cc_alert_reply_t   alerts[CC_RESERVE_ALERT_MAX];
    size_t          bad_len;        /* BAD_CAP: the value, printable */
    char            bad[CC_RESERVE_BAD_MAX];
} cc_reserve_reply_t;


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
 * Checks and copies a reply of scripts/reserve.lua for nwin windows.
 * Returns 0, or -1 when the reply is an error or not of its shape.
 */
int cc_reserve_reply_parse(const redisReply *reply, size_t nwin,
    cc_reserve_reply_t *out);


#endif /* _CC_SCRIPT_H_INCLUDED_ */

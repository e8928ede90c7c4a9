/*
 * LD_PRELOAD for redis-server in t/035-periods.t: shifts the wall clock
 * (gettimeofday, clock_gettime(CLOCK_REALTIME), time) by the number of
 * seconds written in the file $FAKECLOCK_FILE, read at every call.  Raw
 * system calls only: no allocation, no dlsym (jemalloc asks for the time
 * while it initializes; libfaketime recurses there).
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>


static long
fakeclock_offset(void)
{
    int          fd, neg;
    long         v;
    char         buf[32], *p;
    ssize_t      n;
    const char  *file;

    file = getenv("FAKECLOCK_FILE");
    if (file == NULL) {
        return 0;
    }

    fd = (int) syscall(SYS_open, file, O_RDONLY);
    if (fd < 0) {
        return 0;
    }

    n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
    syscall(SYS_close, fd);

    if (n <= 0) {
        return 0;
    }

    buf[n] = '\0';
    p = buf;
    neg = (*p == '-');
    p += neg;

    for (v = 0; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
    }

    return neg ? -v : v;
}


int
clock_gettime(clockid_t clk, struct timespec *ts)
{
    long  r;

    r = syscall(SYS_clock_gettime, clk, ts);

    if (r == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE)) {
        ts->tv_sec += fakeclock_offset();
    }

    return (int) r;
}


int
gettimeofday(struct timeval *tv, void *tz)
{
    long  r;

    r = syscall(SYS_gettimeofday, tv, tz);

    if (r == 0) {
        tv->tv_sec += fakeclock_offset();
    }

    return (int) r;
}


time_t
time(time_t *t)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    if (t) {
        *t = ts.tv_sec;
    }

    return ts.tv_sec;
}

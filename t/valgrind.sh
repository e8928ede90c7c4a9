#!/bin/sh
# Runs a representative subset of t/ with nginx (master and workers) under
# valgrind memcheck.  Not part of `make test` (a few minutes).
#
#   t/valgrind.sh                       t/010-errors.t t/020-estimate.t
#   t/valgrind.sh t/030-redis.t ...     other files
#
# The harness starts COST_CAP_NGINX; here that is a wrapper exec'ing
# valgrind on the real binary.  nginx's workers are fork()s of the master
# (no exec), so memcheck follows them by itself; --trace-children=yes
# also covers an exec (binary upgrade).  --error-exitcode=42 makes a
# worker with an error exit with 42, which the master logs as "exited
# with code 42" and the harness fails the block on; the master's own
# errors and every report are collected from the log files below.
# (Add --track-origins=yes to the wrapper when chasing a report: it
# doubles the run time.)
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
NGINX=${NGINX:-/usr/sbin/nginx}

command -v valgrind >/dev/null 2>&1 || {
    echo "valgrind not installed (apt-get install valgrind)" >&2
    exit 2
}
[ -f "$ROOT/build/ngx_http_cost_cap_module.so" ] || make -s build

LOGS=$(mktemp -d /tmp/cost-cap-vg-XXXXXX)
WRAP="$LOGS/nginx-valgrind"
cat >"$WRAP" <<EOF
#!/bin/sh
exec valgrind --quiet --error-exitcode=42 --leak-check=no \\
    --trace-children=yes --child-silent-after-fork=no \\
    --num-callers=30 \\
    --log-file=$LOGS/vg.%p.log "$NGINX" "\$@"
EOF
chmod +x "$WRAP"

[ $# -gt 0 ] || set -- t/010-errors.t t/020-estimate.t

status=0
COST_CAP_NGINX=$WRAP COST_CAP_START_TIMEOUT=30 prove "$@" || status=$?

# every process's log; empty with --quiet unless memcheck reported
reports=$(find "$LOGS" -name 'vg.*.log' -size +0 | sort)
nlogs=$(find "$LOGS" -name 'vg.*.log' | wc -l)
if [ -n "$reports" ]; then
    for f in $reports; do
        echo "=== $f"
        cat "$f"
    done
    echo "valgrind: reports in $(echo "$reports" | wc -l) of $nlogs processes: FAIL"
    exit 1
fi
echo "valgrind: $nlogs nginx processes, no memcheck report"
rm -rf "$LOGS"
exit $status

#!/bin/sh
# `make run`: Redis (unless one already answers on 127.0.0.1:6379) and NGINX
# with conf/nginx.conf in the foreground, the stand-in backend included.
set -eu
cd "$(dirname "$0")/.."
mkdir -p build/run

redis_pid=
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$PWD/build/run" --logfile "$PWD/build/run/redis.log" &
    redis_pid=$!
    i=0
    until redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 200 ] || { echo "redis-server did not start" >&2; exit 1; }
        sleep 0.05
    done
fi
trap '[ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null || true' EXIT INT TERM

cat <<'MSG'

ngx_cost_cap_module on http://127.0.0.1:8080 (Ctrl-C stops it). Try:

  curl -i -H 'Authorization: Bearer sk-acme-1' -H 'Content-Type: application/json' \
       -d '{"model":"sora-2","seconds":"8","size":"1280x720"}' http://127.0.0.1:8080/v1/videos
  curl -i -H 'Authorization: Bearer sk-acme-1' -F model=sora-2-pro -F seconds=12 \
       -F size=1792x1024 http://127.0.0.1:8080/v1/videos
  curl -i -H 'Authorization: Bearer sk-globex-1' -H 'Content-Type: application/json' \
       -d '{"model":"gpt-image-1","size":"1024x1024","n":4}' http://127.0.0.1:8080/v1/images/generations
  redis-cli --scan --pattern 'costcap:*'

MSG

nginx=${COST_CAP_NGINX:-/usr/sbin/nginx}
"$nginx" -p "$PWD/" -c conf/nginx.conf -t -q
"$nginx" -p "$PWD/" -c conf/nginx.conf -g 'daemon off;' &
nginx_pid=$!
trap '[ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null || true;
      kill "$nginx_pid" 2>/dev/null || true' EXIT INT TERM
wait "$nginx_pid"

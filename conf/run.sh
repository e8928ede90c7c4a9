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
       -d '{"model":"gpt-image-1","prompt":"a red fox","quality":"high","size":"1536x1024","n":2}' \
       http://127.0.0.1:8080/v1/images/generations
  curl -i -H 'Authorization: Bearer sk-acme-1' -F model=gpt-image-1-mini -F quality=low \
       -F size=1024x1024 -F prompt='add a hat' -F image=@conf/nginx.conf http://127.0.0.1:8080/v1/images/edits
  curl -i -H 'Authorization: Bearer sk-globex-1' -H 'Content-Type: application/json' \
       -d '{"model":"Wan-AI/Wan2.1-T2V-14B","prompt":"a red fox","size":"1280x720","seconds":"5"}' \
       http://127.0.0.1:8080/v1/videos
  redis-cli --scan --pattern 'costcap:*'

MSG

nginx=${COST_CAP_NGINX:-/usr/sbin/nginx}
"$nginx" -p "$PWD/" -c conf/nginx.conf -t -q
"$nginx" -p "$PWD/" -c conf/nginx.conf -g 'daemon off;' &
nginx_pid=$!
trap '[ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null || true;
      kill "$nginx_pid" 2>/dev/null || true' EXIT INT TERM
wait "$nginx_pid"

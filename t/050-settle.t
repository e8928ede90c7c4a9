# SPEC section 2 step 8: settlement in the log phase.  A reservation is
# given back when the final status is one of cost_cap_refund_status
# (default 500 502 503 504), on exactly the keys it was reserved on, never
# below 0, once; it is adjusted to the actual cost when cost_cap_actual
# yields GPU-seconds; a settlement that finds Redis down waits for it.
#
# sora-2 at its defaults costs 77415 micro-USD (see 020-estimate.t).
# Actual costs: ceil(gpu_s x price / 3600) micro-USD
#   100 GPU-s at 3.50: 0.0972222... -> 97223 (+19808 over the estimate)
#   100.5 at 3.50: 0.09770833... -> 97709;  1.123456 at 3.50: 1093
#   200 at 3.50: 0.1944444... -> 194445
#   flux (gpu_price=2): estimate 1.7582912 GPU-s x 2 / 3600 = 0.00097683
#   -> 977; actual 100 GPU-s x 2 / 3600 = 0.0555555... -> 55556
#
# The code scenarios hold a request at a small Perl backend (a "gate")
# between its reservation and its answer, to change the world meanwhile:
# kill Redis (after SAVE, so that the restarted one holds the reserved
# counters), stall it, lower a counter, reload nginx.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Gated qw(gate_arrived gate_open);

# -------------------------------------------------------------------------
# a backend that holds its answer (CostCap::Test::Gated): ?gate=NAME,
# delay=MS, status=CODE, gpu=V

my $SLOW_PORT = CostCap::Test::Gated::start();

add_macro(TEST_NGINX_SLOW_PORT => $SLOW_PORT);
add_macro(TEST_NGINX_DEAD_PORT => dead_port());

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

add_default(config => <<'END');
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~^flux base=0.5 per_mpx_frame=1.2 default_size=1024x1024 gpu_price=2;
cost_cap_limit 1 per=day;

location /v1/ {
    cost_cap on;
    proxy_pass http://backend;
}
location /all/ {
    cost_cap on;
    cost_cap_limit 100 per=minute;
    cost_cap_limit 100 per=hour;
    cost_cap_limit 100 per=day;
    cost_cap_limit 100 per=week;
    cost_cap_limit 100 per=month;
    cost_cap_limit 100 per=total;
    proxy_pass http://backend/v1/;
}
location /custom/ {
    cost_cap on;
    cost_cap_limit 0.1 per=day;
    cost_cap_refund_status 400 429 500;
    proxy_pass http://backend/v1/;
}
location /norefund/ {
    cost_cap on;
    cost_cap_refund_status off;
    proxy_pass http://backend/v1/;
}
location /dead/ {
    cost_cap on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_DEAD_PORT;
}
location /timeout/ {
    cost_cap on;
    proxy_read_timeout 200ms;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SLOW_PORT;
}
location /actual/ {
    cost_cap on;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://backend/v1/;
}
location /tight/ {
    cost_cap on;
    cost_cap_limit 0.1 per=day;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://backend/v1/;
}
location /dry/ {
    cost_cap on;
    cost_cap_dry_run on;
    cost_cap_limit 0.1 per=day;
    proxy_set_header X-Result $cost_cap_result;
    add_header X-Var-Result $cost_cap_result always;
    proxy_pass http://backend/v1/;
}
location /redirect/ {
    cost_cap on;
    proxy_intercept_errors on;
    error_page 502 = /unavailable;
    proxy_pass http://backend/v1/;
}
location = /unavailable {
    return 503 "try later";
}
location /off/ {
    cost_cap off;
    proxy_pass http://backend/v1/;
}
END

add_default(backend_config => <<'END');
location /v1/429 { return 429; }
location /v1/500 {
    add_header X-GPU-Seconds $arg_gpu always;
    return 500;
}
location /v1/502 { return 502; }
location /v1/503 { return 503; }
location /v1/504 { return 504; }
location / {
    add_header X-GPU-Seconds $arg_gpu;
    add_header X-Seen-Result $http_x_result;
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(request_body => '{"model":"sora-2"}');

run_tests();

# -------------------------------------------------------------------------
# scenarios that need code: Redis goes away between the reservation and
# the settlement; the counter changes under a held request

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

my $LOC = <<'END';
location = /metrics {
    cost_cap_metrics;
}
location /slow/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 10 per=day;
    cost_cap_limit 100 per=total;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SLOW_PORT;
}
END

my @REQ = (method => 'POST',
           headers => "X-Tenant: acme\nContent-Type: application/json",
           body => '{"model":"sora-2"}');

my $TOTAL = 'costcap:{acme}:total:all';

sub day_key { 'costcap:{acme}:day:' . {window_info()}->{day} }

sub get { redis()->cmd('GET', $_[0]) // 0 }

sub metrics {
    my $n = shift;
    my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    my %m;
    for (split /\n/, $res->{body} // '') {
        $m{$1} = $2 if /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/;
    }
    return \%m;
}

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[emerg\]/, "$name: no alert");
}

sub wait_reloaded {
    my ($n, @old) = @_;
    my %old = map { $_ => 1 } @old;
    return poll_until(sub {
        my @w = $n->worker_pids;
        return @w && !grep { $old{$_} } @w;
    }, 10);
}


{
    my $name = 'settlements while Redis is down wait and are applied when '
             . 'it is back';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);
    my $day = day_key();
    redis()->cmd('SET', $day, 1000000);
    redis()->cmd('SET', $TOTAL, 2000000);

    my $s1 = http_send(port => $n->port, @REQ,
                       uri => '/slow/videos?gate=down1&status=502');
    my $s2 = http_send(port => $n->port, @REQ,
                       uri => '/slow/videos?gate=down2&gpu=100');
    ok(gate_arrived('down1') && gate_arrived('down2'),
       "$name: both requests reserved and at the backend");
    is(get($day), 1000000 + 2 * 77415, "$name: both reserved");

    # the restarted Redis loads this: the state after the reservations
    redis()->cmd('SAVE');
    $r->stop('KILL');
    gate_open('down1');
    gate_open('down2');
    is(http_read($s1, 5)->{status}, 502, "$name: 502 from the backend");
    is(http_read($s2, 5)->{status}, 200, "$name: 200 with actual cost");
    ok(poll_until(sub {
           (metrics($n)->{cost_cap_settlement_retries_total} // 0) >= 2 }, 10),
       "$name: both settlements queued")
        or diag(Test::More::explain(metrics($n)));

    $r->start;
    unlink "$r->{dir}/dump.rdb";
    # refund -77415, actual 97223 - 77415 = +19808
    ok(poll_until(sub { get($day) == 1000000 + 97223 }, 5),
       "$name: day counter settled after Redis came back")
        or diag("day $day = " . get($day));
    is(get($TOTAL), 2000000 + 97223, "$name: total counter settled");
    my %w = window_info();
    my $ttl = redis()->cmd('TTL', $day);
    ok($ttl <= $w{end_day} + 86400 && $ttl >= $w{end_day} + 86400 - 3,
       "$name: day TTL kept") or diag("TTL $ttl");
    is(redis()->cmd('TTL', $TOTAL), -1, "$name: total has no TTL");

    my $m = metrics($n);
    ok($m->{cost_cap_settlement_retries_total} >= 2,
       "$name: cost_cap_settlement_retries_total "
       . $m->{cost_cap_settlement_retries_total});
    is($m->{cost_cap_settlement_drops_total}, 0,
       "$name: cost_cap_settlement_drops_total");
    ok($m->{cost_cap_redis_errors_total} >= 1,
       "$name: cost_cap_redis_errors_total counts the loss");
    ok($m->{cost_cap_redis_reconnects_total} >= 1,
       "$name: cost_cap_redis_reconnects_total counts the reconnection");
    $n->stop;
    no_crash($n, $name);
    unlike($n->error_log, qr/settlement of/,
           "$name: no settlement logged as dropped or failed");
}


{
    my $name = 'a settlement that times out (Redis stalled) still applies';
    my $r = start_redis(port => redis_port());
    (my $http = $HTTP) =~ s/;$/ timeout=100ms;/m;
    my $n = start_nginx(http_config => $http, config => $LOC);
    my $day = day_key();
    redis()->cmd('SET', $day, 1000000);

    my $s = http_send(port => $n->port, @REQ,
                      uri => '/slow/videos?gate=stall&status=502');
    ok(gate_arrived('stall'), "$name: reserved");
    $r->pause;
    gate_open('stall');
    is(http_read($s, 5)->{status}, 502, "$name: 502 from the backend");
    # the connection that stopped answering is closed; the settlement,
    # recognised by its id, is sent again on the next one
    ok(poll_until(sub { $n->error_log =~ /not answering, retrying/ }, 10),
       "$name: the stalled connection is closed");
    $r->resume;
    ok(poll_until(sub { get($day) == 1000000 }, 10),
       "$name: refund applied when Redis resumes")
        or diag('day ' . get($day));
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0,
       "$name: not counted as dropped");
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'a request in flight across a reload is settled by its old '
             . 'worker';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);
    my $day = day_key();
    redis()->cmd('SET', $day, 1000000);

    my $s1 = http_send(port => $n->port, @REQ,
                       uri => '/slow/videos?gate=reload1&status=502');
    my $s2 = http_send(port => $n->port, @REQ,
                       uri => '/slow/videos?gate=reload2&gpu=100');
    ok(gate_arrived('reload1') && gate_arrived('reload2'),
       "$name: reserved");
    my @old = $n->worker_pids;
    kill 'HUP', $n->{pid};
    ok(poll_until(sub { grep { my $w = $_; !grep { $_ == $w } @old }
                        $n->worker_pids }, 5),
       "$name: new worker started");
    gate_open('reload1');
    gate_open('reload2');
    is(http_read($s1, 5)->{status}, 502, "$name: 502");
    is(http_read($s2, 5)->{status}, 200, "$name: 200");
    ok(wait_reloaded($n, @old), "$name: old worker gone");
    ok(poll_until(sub { get($day) == 1000000 + 97223 }, 10),
       "$name: refund and adjustment applied")
        or diag('day ' . get($day));
    is(get($TOTAL), 97223, "$name: total too");
    $n->stop;
    no_crash($n, $name);
    unlike($n->error_log, qr/settlement of/, "$name: nothing dropped");
}


{
    my $name = 'one settlement waiting through a longer outage';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);
    my $day = day_key();

    my $s = http_send(port => $n->port, @REQ,
                      uri => '/slow/videos?gate=long&status=502');
    ok(gate_arrived('long'), "$name: reserved");
    redis()->cmd('SAVE');
    $r->stop('KILL');
    gate_open('long');
    is(http_read($s, 5)->{status}, 502, "$name: 502");
    # several reconnect attempts (backoff 50 ms .. 500 ms) fail meanwhile
    poll_until(sub { metrics($n)->{cost_cap_redis_errors_total} >= 6 }, 10);
    my $m = metrics($n);
    $r->start;
    unlink "$r->{dir}/dump.rdb";
    ok(poll_until(sub { get($day) eq '0' }, 10),
       "$name: refund applied after the outage") or diag('day ' . get($day));
    is($m->{cost_cap_settlement_retries_total}, 1,
       "$name: cost_cap_settlement_retries_total counts the settlement once");
    is($m->{cost_cap_settlement_drops_total}, 0, "$name: no drop");
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'a refund never takes a counter below zero';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);
    my $day = day_key();

    my $s = http_send(port => $n->port, @REQ,
                      uri => '/slow/videos?gate=zero&status=500');
    ok(gate_arrived('zero'), "$name: reserved");
    is(get($day), 77415, "$name: reserved on day");
    # an operator lowers the counters meanwhile (SET drops the TTL)
    redis()->cmd('SET', $day, 1000);
    redis()->cmd('SET', $TOTAL, 5);
    gate_open('zero');
    is(http_read($s, 5)->{status}, 500, "$name: 500 from the backend");
    ok(poll_until(sub { get($day) eq '0' && get($TOTAL) eq '0' }, 10),
       "$name: both counters at 0")
        or diag("day " . get($day) . ", total " . get($TOTAL));
    my %w = window_info();
    my $ttl = redis()->cmd('TTL', $day);
    ok($ttl <= $w{end_day} + 86400 && $ttl >= $w{end_day} + 86400 - 3,
       "$name: day TTL set again") or diag("TTL $ttl");
    is(redis()->cmd('TTL', $TOTAL), -1, "$name: total has no TTL");
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'a worker that shuts down delivers its queued settlement';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);
    my $day = day_key();
    redis()->cmd('SET', $day, 1000000);

    my $s = http_send(port => $n->port, @REQ,
                      uri => '/slow/videos?gate=drop&status=503');
    ok(gate_arrived('drop'), "$name: reserved");
    is(get($day), 1077415, "$name: reserved on day");
    redis()->cmd('SAVE');
    $r->stop('KILL');
    gate_open('drop');
    is(http_read($s, 5)->{status}, 503, "$name: 503 from the backend");
    ok(poll_until(sub {
           (metrics($n)->{cost_cap_settlement_retries_total} // 0) >= 1 }, 10),
       "$name: settlement queued");

    my @old = $n->worker_pids;
    kill 'HUP', $n->{pid};
    ok(poll_until(sub {
           my %old = map { $_ => 1 } @old;
           grep { !$old{$_} } $n->worker_pids }, 5),
       "$name: a new worker started");
    ok(kill(0, $old[0]),
       "$name: the old worker waits for Redis");

    $r->start;
    unlink "$r->{dir}/dump.rdb";
    ok(poll_until(sub { get($day) eq '1000000' }, 10),
       "$name: the old worker applied the refund")
        or diag('day ' . get($day));
    ok(poll_until(sub { !kill(0, $old[0]) }, 5),
       "$name: then it exited");
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0, "$name: no drop");
    $n->stop;       # its log complete
    unlike($n->error_log, qr/dropped/, "$name: nothing dropped");
    no_crash($n, $name);
}

{
    my $name = 'a late reservation is given back once, not refunded again';
    my $r = start_redis(port => redis_port());
    (my $http = $HTTP) =~ s/;$/ timeout=100ms;/m;
    my $n = start_nginx(http_config => $http, config => $LOC);
    my $day = day_key();
    redis()->cmd('SET', $day, 1000000);

    # the worker's connection is up, its handshake done (a priced request
    # of another tenant answered), before Redis stalls
    is($n->request(@REQ, uri => '/slow/videos',
                   headers => "X-Tenant: warm\nContent-Type: application/json")
       ->{status}, 200, "$name: connection up");

    # the request times out (503, in the refund list) while Redis is
    # stalled; its reservation is applied when Redis resumes, then given
    # back by the late reply only
    $r->pause;
    my $res = $n->request(@REQ, uri => '/slow/videos', timeout => 5);
    is($res->{status}, 503, "$name: 503 while Redis is stalled");
    $r->resume;
    # pipelined behind the give-back on the same connection
    is($n->request(@REQ, uri => '/slow/videos?gpu=100')->{status}, 200,
       "$name: next request admitted");
    # (a double refund would be applied before the next request's
    # settlement, and leave 1019808)
    ok(poll_until(sub { get($day) == 1000000 + 97223 }, 10),
       "$name: only the admitted request counts")
        or diag('day ' . get($day));
    my $m = metrics($n);
    is($m->{'cost_cap_refunded_usd_total{model="sora-2"}'}, 0,
       "$name: nothing counted as refunded");
    is($m->{'cost_cap_requests_total{result="error"}'}, 1,
       "$name: counted as error");
    $n->stop;
    no_crash($n, $name);
}

done_testing();

__DATA__

=== TEST 1: a 200 is not refunded
--- error_code: 200
--- redis
costcap:{acme}:day:{day} 77415


=== TEST 2: refund on 500 from the backend
--- request
POST /v1/500
--- error_code: 500
--- redis
costcap:{acme}:day:{day} 0
--- redis_keys: 1


=== TEST 3: refund on 502 from the backend, back to the prior spend
--- redis_cmd
SET costcap:{acme}:day:{day} 300000
--- request
POST /v1/502
--- error_code: 502
--- redis
costcap:{acme}:day:{day} 300000


=== TEST 4: refund on 503 from the backend
--- redis_cmd
SET costcap:{acme}:day:{day} 300000
--- request
POST /v1/503
--- error_code: 503
--- redis
costcap:{acme}:day:{day} 300000


=== TEST 5: refund on 504 from the backend
--- redis_cmd
SET costcap:{acme}:day:{day} 300000
--- request
POST /v1/504
--- error_code: 504
--- redis
costcap:{acme}:day:{day} 300000


=== TEST 6: refund on an upstream connect failure (502)
--- redis_cmd
SET costcap:{acme}:day:{day} 300000
--- request
POST /dead/videos
--- error_code: 502
--- redis
costcap:{acme}:day:{day} 300000
--- error_log
connect() failed


=== TEST 7: refund on an upstream read timeout (504)
--- redis_cmd
SET costcap:{acme}:day:{day} 300000
--- request
POST /timeout/videos?delay=1000
--- error_code: 504
--- redis
costcap:{acme}:day:{day} 300000
--- error_log
upstream timed out


=== TEST 8: every window's key goes back to its prior value; TTLs kept; no other key
--- redis_cmd
SET costcap:{acme}:minute:{minute} 1000
SET costcap:{acme}:hour:{hour} 2000
SET costcap:{acme}:day:{day} 3000
SET costcap:{acme}:week:{week} 4000
SET costcap:{acme}:month:{month} 5000
SET costcap:{acme}:total:all 6000
--- request
POST /all/502
--- error_code: 502
--- redis
costcap:{acme}:minute:{minute} 1000
costcap:{acme}:hour:{hour} 2000
costcap:{acme}:day:{day} 3000
costcap:{acme}:week:{week} 4000
costcap:{acme}:month:{month} 5000
costcap:{acme}:total:all 6000
--- redis_ttl
costcap:{acme}:minute:{minute} {end_minute}+86400-3 {end_minute}+86400
costcap:{acme}:hour:{hour} {end_hour}+86400-3 {end_hour}+86400
costcap:{acme}:day:{day} {end_day}+86400-3 {end_day}+86400
costcap:{acme}:week:{week} {end_week}+86400-3 {end_week}+86400
costcap:{acme}:month:{month} {end_month}+86400-3 {end_month}+86400
costcap:{acme}:total:all -1
--- redis_keys: 6


=== TEST 9: refund from fresh keys: every window at 0, TTLs set
--- request
POST /all/503
--- error_code: 503
--- redis
costcap:{acme}:minute:{minute} 0
costcap:{acme}:hour:{hour} 0
costcap:{acme}:day:{day} 0
costcap:{acme}:week:{week} 0
costcap:{acme}:month:{month} 0
costcap:{acme}:total:all 0
--- redis_ttl
costcap:{acme}:minute:{minute} {end_minute}+86400-3 {end_minute}+86400
costcap:{acme}:day:{day} {end_day}+86400-3 {end_day}+86400
costcap:{acme}:total:all -1
--- redis_keys: 6


=== TEST 10: refunded once across an error_page redirect
# 502 intercepted, redirected to a location answering 503: the final
# status refunds, once (twice would leave 422585)
--- redis_cmd
SET costcap:{acme}:day:{day} 500000
--- request
POST /redirect/502
--- error_code: 503
--- response_body
try later
--- redis
costcap:{acme}:day:{day} 500000


=== TEST 11: cost_cap_refund_status 400 429 500: only these; never what was not reserved
# backend 429: refunded; 500: refunded; 502: kept (77415); the module's
# own 429 and 400 were never reserved: nothing given back
--- request
POST /custom/videos
--- requests
{ request => 'POST /custom/429', code => 429 },
{ request => 'POST /custom/500', code => 500 },
{ request => 'POST /custom/502', code => 502 },
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'day', limit => 0.1, spent => 0.077415, estimate => 0.077415,
    reset_in => ANY_INT) },
{ code => 400, body => '{"model":"sora-2","seconds":-1}',
  json => err('invalid_parameter', 'seconds') },
{ code => 400, body => '{"model":"nope"}', json => err('unknown_model', 'model') },
--- redis
costcap:{acme}:day:{day} 77415
--- backend_hits: 3


=== TEST 12: cost_cap_refund_status off: nothing refunded
--- request
POST /norefund/502
--- requests
{ code => 502 },
{ request => 'POST /norefund/500', code => 500 },
--- redis
costcap:{acme}:day:{day} 154830


=== TEST 13: requests never reserved refund nothing: GET, cost_cap off, tenant missing, 415
--- redis_cmd
SET costcap:{acme}:day:{day} 1000
--- requests
{ request => 'GET /v1/502', code => 502 },
{ request => 'POST /off/502', code => 502 },
{ request => 'POST /v1/502', code => 401, headers => 'X-Tenant:' },
{ request => 'POST /v1/502', code => 415, headers => 'Content-Type: text/plain' },
--- redis
costcap:{acme}:day:{day} 1000
--- redis_keys: 1


=== TEST 14: cost_cap_actual: 100 GPU-s at 3.50 USD/h
--- request
POST /actual/videos?gpu=100
--- error_code: 200
--- response_headers
X-Cost-Cap-Estimate: 0.077415
X-GPU-Seconds: 100
--- redis
costcap:{acme}:day:{day} 97223


=== TEST 15: cost_cap_actual: fractional GPU-seconds, rounded up once
--- request
POST /actual/videos
--- requests
{ request => 'POST /actual/videos?gpu=100.5', code => 200 },
{ request => 'POST /actual/videos?gpu=1.123456', code => 200 },
--- redis
costcap:{acme}:day:{day} 98802


=== TEST 16: cost_cap_actual 0: the whole estimate is given back
--- redis_cmd
SET costcap:{acme}:day:{day} 5000
--- request
POST /actual/videos?gpu=0
--- error_code: 200
--- redis
costcap:{acme}:day:{day} 5000


=== TEST 17: cost_cap_actual uses the rule's gpu_price
--- request
POST /actual/videos?gpu=100
--- request_body
{"model":"flux"}
--- error_code: 200
--- response_headers
X-Cost-Cap-Estimate: 0.000977
--- redis
costcap:{acme}:day:{day} 55556


=== TEST 18: cost_cap_actual absent (no header): the estimate stays
--- request
POST /actual/videos
--- error_code: 200
--- response_headers
!X-GPU-Seconds
--- redis
costcap:{acme}:day:{day} 77415
--- no_error_log
[warn]


=== TEST 19: cost_cap_actual garbage is ignored and logged at warn
--- request
POST /actual/videos
--- requests
{ request => 'POST /actual/videos?gpu=abc', code => 200 },
{ request => 'POST /actual/videos?gpu=-5', code => 200 },
{ request => 'POST /actual/videos?gpu=1e3', code => 200 },
{ request => 'POST /actual/videos?gpu=.5', code => 200 },
{ request => 'POST /actual/videos?gpu=0x10', code => 200 },
{ request => 'POST /actual/videos?gpu=1.1234567', code => 200 },
--- redis
costcap:{acme}:day:{day} 464490
--- error_log
qr/\[warn\].*cost_cap: ignored actual GPU-seconds "abc" of tenant "acme"/
qr/\[warn\].*cost_cap: ignored actual GPU-seconds "-5"/
qr/\[warn\].*cost_cap: ignored actual GPU-seconds "1e3"/
qr/\[warn\].*cost_cap: ignored actual GPU-seconds ".5"/
qr/\[warn\].*cost_cap: ignored actual GPU-seconds "0x10"/
qr/\[warn\].*cost_cap: ignored actual GPU-seconds "1.1234567"/


=== TEST 20: a refund status wins over an actual cost
--- redis_cmd
SET costcap:{acme}:day:{day} 5000
--- request
POST /actual/500?gpu=100
--- error_code: 500
--- response_headers
X-GPU-Seconds: 100
--- redis
costcap:{acme}:day:{day} 5000


=== TEST 21: an actual cost may push spend past the cap; the next request is refused
# cap 0.1: 200 GPU-s cost 194445
--- request
POST /tight/videos
--- requests
{ request => 'POST /tight/videos?gpu=200', code => 200 },
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'day', limit => 0.1, spent => 0.194445, estimate => 0.077415,
    reset_in => ANY_INT) },
--- redis
costcap:{acme}:day:{day} 194445
--- backend_hits: 1


=== TEST 22: dry run: never 429, every request counted past the cap, flagged
# cap 0.1: the 2nd and 3rd would be rejected; 3 x 77415 = 232245
--- request
POST /dry/videos
--- requests
{ code => 200, response_headers => "!X-Cost-Cap-Dry-Run\nX-Seen-Result: admitted\nX-Var-Result: admitted\nX-Cost-Cap-Remaining: 0.022585" },
{ code => 200, response_headers => "X-Cost-Cap-Dry-Run: rejected\nX-Seen-Result: dry_run_rejected\nX-Var-Result: dry_run_rejected\nX-Cost-Cap-Estimate: 0.077415" },
{ code => 200, response_headers => "X-Cost-Cap-Dry-Run: rejected\nX-Seen-Result: dry_run_rejected\nX-Var-Result: dry_run_rejected" },
--- redis
costcap:{acme}:day:{day} 232245
--- backend_hits: 3


=== TEST 23: dry run: a rejected-in-dry-run request that fails is refunded
--- redis_cmd
SET costcap:{acme}:day:{day} 150000
--- request
POST /dry/502
--- error_code: 502
--- response_headers
X-Cost-Cap-Dry-Run: rejected
--- redis
costcap:{acme}:day:{day} 150000


=== TEST 24: cost_cap_refund_status is inherited from the server level
--- config
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
cost_cap_limit 1 per=day;
cost_cap_refund_status 503;
location /v1/ {
    cost_cap on;
    proxy_pass http://backend;
}
--- request
POST /v1/502
--- requests
{ code => 502 },
{ request => 'POST /v1/503', code => 503 },
--- redis
costcap:{acme}:day:{day} 77415

# SPEC section 2 steps 6-8, section 5 (429, 503, 500), section 6 (keys):
# reservations in a real Redis.
#
# sora-2 at its defaults costs 77415 micro-USD (0.077415 USD; see
# 020-estimate.t); at seconds=1 (24 frames): 0.9 x 0.9216 x 24 = 19.90656
# GPU-s, x 3.5 / 3600 = 0.0193536 -> 19354.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Time::HiRes ();

add_macro(TEST_NGINX_DEAD_PORT => dead_port());

add_macro(TEST_NGINX_VARS => <<'END');
add_header X-Var-Result $cost_cap_result always;
add_header X-Var-Spent $cost_cap_spent always;
add_header X-Var-Remaining $cost_cap_remaining always;
END

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
map $http_x_tenant $cap {
    acme    0.1;
    globex  0.2;
    free    "";
    bad     "1.2.3";
    default 0.05;
}
END

add_default(config => <<'END');
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;

location /v1/ {
    cost_cap on;
    cost_cap_limit 0.2 per=day;
    $TEST_NGINX_VARS
    proxy_pass http://backend;
}
location /exact/ {
    cost_cap on;
    cost_cap_limit 0.15483 per=day;
    proxy_pass http://backend;
}
location /multi/ {
    cost_cap on;
    cost_cap_limit 0.1 per=minute;
    cost_cap_limit 1 per=day;
    proxy_pass http://backend;
}
location /cross/ {
    cost_cap on;
    cost_cap_limit 0.1 per=minute;
    cost_cap_limit 1 per=hour;
    cost_cap_limit 0.1 per=day;
    proxy_pass http://backend;
}
location /map/ {
    cost_cap on;
    cost_cap_limit $cap per=day;
    $TEST_NGINX_VARS
    proxy_pass http://backend;
}
location /dry/ {
    cost_cap on;
    cost_cap_dry_run on;
    cost_cap_limit 0.1 per=day;
    $TEST_NGINX_VARS
    proxy_pass http://backend;
}
location /quiet/ {
    cost_cap on;
    cost_cap_headers off;
    cost_cap_limit 0.1 per=day;
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
    proxy_pass http://backend;
}
location /total/ {
    cost_cap on;
    cost_cap_limit 0.1 per=total;
    proxy_pass http://backend;
}
location /fail/ {
    cost_cap on;
    cost_cap_limit 1 per=day;
    proxy_pass http://backend;
}
location /actual/ {
    cost_cap on;
    cost_cap_limit 1 per=day;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://backend;
}
location /quota/ {
    cost_cap on;
    cost_cap_limit 0.1 per=day;
    error_page 429 = @quota;
    proxy_pass http://backend;
}
location @quota {
    default_type application/json;
    return 429 '{"error":{"code":"custom_quota"}}';
}
END

add_default(backend_config => <<'END');
location /fail/ {
    return 502;
}
location /actual/ {
    add_header X-GPU-Seconds 10;
    return 200 '{"id":"gen_1","status":"completed"}';
}
location / {
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(request_body => '{"model":"sora-2"}');

run_tests();

# -------------------------------------------------------------------------
# scenarios that need code: Redis killed, stalled, client abort

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=200ms;
END

my $LOC = <<'END';
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    proxy_pass http://backend;
}
END

my @REQ = (method => 'POST', uri => '/v1/videos',
           headers => "X-Tenant: acme\nContent-Type: application/json",
           body => '{"model":"sora-2"}');

sub day_key { 'costcap:{acme}:day:' . {window_info()}->{day} }

sub spent { redis()->cmd('GET', day_key()) // 0 }

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[emerg\]/, "$name: no alert");
}


{
    my $name = 'redis killed and restarted on the same port';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);

    is($n->request(@REQ)->{status}, 200, "$name: admitted while up");
    my @workers = $n->worker_pids;      # forked by now

    $r->stop;
    my $res = $n->request(@REQ);
    is($res->{status}, 503, "$name: 503 while down");
    json_matches($res->{body}, err('cost_cap_unavailable', undef),
                 "$name: 503 body");
    is(header_value($res, 'Retry-After'), '1', "$name: Retry-After");
    is($n->request(@REQ)->{status}, 503, "$name: still 503");

    $r->start;
    my $ok = poll_until(sub { $n->request(@REQ)->{status} == 200 }, 5);
    ok($ok, "$name: admitted again after restart");
    # the restarted Redis starts empty (no persistence)
    is(spent(), 77415, "$name: counter holds the request admitted since");
    is("@{[$n->worker_pids]}", "@workers", "$name: same worker alive");
    $n->stop;
    no_crash($n, $name);
    like($n->error_log, qr/\[error\]/, "$name: Redis failure logged");
}


{
    my $name = 'redis stalled (SIGSTOP)';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);

    is($n->request(@REQ)->{status}, 200, "$name: admitted before");
    $r->pause;
    my $res = $n->request(@REQ, timeout => 10);
    is($res->{status}, 503, "$name: 503");
    # Redis stays stopped until after this: a request waiting for it
    # would not be answered at all (5 s: a busy machine)
    ok($res->{elapsed} < 5, "$name: answered within the timeout + slack")
        or diag("took $res->{elapsed} s");
    $r->resume;

    my $ok = poll_until(sub { $n->request(@REQ)->{status} == 200 }, 5);
    ok($ok, "$name: admitted again after SIGCONT");
    # the late reservation of the 503 request is given back
    ok(poll_until(sub { spent() == 2 * 77415 }, 10),
       "$name: counter holds only the admitted requests")
        or diag('spent ' . spent());
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'client abort while the reservation is pending';
    my $r = start_redis(port => redis_port());
    (my $http = $HTTP) =~ s/timeout=200ms/timeout=2s/;
    my $n = start_nginx(http_config => $http, config => $LOC);

    is($n->request(@REQ)->{status}, 200, "$name: connection warmed up");
    redis()->cmd('DEL', day_key());

    $r->pause;
    my $sock = http_send(port => $n->port, @REQ);
    # let nginx read the request and send the reservation
    Time::HiRes::sleep(0.1);
    close $sock;
    Time::HiRes::sleep(0.1);
    $r->resume;

    my $res = $n->request(@REQ);
    is($res->{status}, 200, "$name: next request served");
    ok(poll_until(sub { spent() == 77415 }, 10),
       "$name: the aborted request's reservation is given back")
        or diag('spent ' . spent() . ', expected 77415');
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'many stalled requests, then Redis resumes';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC);
    is($n->request(@REQ)->{status}, 200, "$name: warm");
    redis()->cmd('DEL', day_key());

    $r->pause;
    my @socks = map { http_send(port => $n->port, @REQ) } 1 .. 20;
    my @res = map { http_read($_, 5) } @socks;
    is(scalar(grep { ($_->{status} // 0) == 503 } @res), 20,
       "$name: every stalled request answered 503");
    $r->resume;
    ok(poll_until(sub { $n->request(@REQ)->{status} == 200 }, 5),
       "$name: recovers");
    ok(poll_until(sub { spent() == 77415 }, 10),
       "$name: late reservations given back")
        or diag('spent ' . spent());
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'AUTH fails until the ACL user exists, then recovers';
    my $r = start_redis(port => redis_port());
    (my $http = $HTTP) =~ s/timeout=200ms/user=late password=latepass/;
    my $n = start_nginx(http_config => $http, config => $LOC);

    is($n->request(@REQ)->{status}, 503, "$name: 503 while AUTH fails");
    redis()->cmd(qw(ACL SETUSER late on >latepass ~costcap:* +@all));
    ok(poll_until(sub { $n->request(@REQ)->{status} == 200 }, 5),
       "$name: admitted once the user exists");
    $n->stop;
    no_crash($n, $name);
    like($n->error_log, qr/\[error\]/, "$name: AUTH failure logged");
}

{
    my $name = 'slow body: the worker serves others meanwhile';
    my $r = start_redis(port => redis_port());
    my $n = start_nginx(http_config => $HTTP, config => $LOC . <<'END');
location /plain {
    return 200 "plain";
}
END
    my $sock = http_send(port => $n->port, @REQ, partial => 5);
    my $other = $n->request(method => 'GET', uri => '/plain', timeout => 5);
    is($other->{status}, 200, "$name: another request served");
    Time::HiRes::sleep(0.05);
    syswrite $sock, substr('{"model":"sora-2"}', 5);
    my $res = http_read($sock, 5);
    is($res->{status}, 200, "$name: slow request admitted");
    is(header_value($res, 'X-Cost-Cap-Estimate'), '0.077415',
       "$name: priced");
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'Redis slow but within timeout';
    my $r = start_redis(port => redis_port());
    # a timeout longer than the test's steps can take on a busy machine
    (my $http = $HTTP) =~ s/timeout=200ms/timeout=20s/;
    my $n = start_nginx(http_config => $http, config => $LOC . <<'END');
location /plain {
    return 200 "plain";
}
END
    is($n->request(@REQ)->{status}, 200, "$name: warm");
    redis()->cmd('DEL', day_key());

    $r->pause;
    my $sock = http_send(port => $n->port, @REQ);
    my $other = $n->request(method => 'GET', uri => '/plain', timeout => 10);
    is($other->{status}, 200, "$name: the worker serves others meanwhile");
    # waiting for Redis would be until it resumes, after this
    ok($other->{elapsed} < 5, "$name: ... without waiting for Redis")
        or diag("took $other->{elapsed} s");
    Time::HiRes::sleep(0.2);
    $r->resume;
    my $res = http_read($sock, 20);
    is($res->{status}, 200, "$name: admitted when the reply comes");
    is(spent(), 77415, "$name: counted once");
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'Redis unreachable: logged per reconnect cycle, not per request';
    (my $http = $HTTP) =~ s/\$TEST_NGINX_REDIS_PORT/\$TEST_NGINX_DEAD_PORT/;
    my $n = start_nginx(http_config => $http, config => $LOC);
    my @st = map { $n->request(@REQ)->{status} } 1 .. 20;
    is_deeply([grep { $_ != 503 } @st], [], "$name: 503 each time");
    $n->stop;
    my $errors = () = $n->error_log =~ /\[error\]/g;
    ok($errors < 10, "$name: $errors [error] lines for 20 requests");
    no_crash($n, $name);
}

done_testing();

__DATA__

=== TEST 1: admit until the cap, then 429 with exact numbers
# cap 0.2: 77415 + 77415 = 154830 admitted; + 77415 = 232245 > 200000
# a smaller request (19354) still fits: 174184
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Estimate: 0.077415\nX-Cost-Cap-Remaining: 0.122585\nX-Cost-Cap-Limit: 0.2\nX-Cost-Cap-Reset: {end_day}~3\nX-Var-Result: admitted\nX-Var-Spent: 0\nX-Var-Remaining: 0.122585" },
{ code => 200, response_headers => "X-Cost-Cap-Remaining: 0.04517\nX-Var-Spent: 0.077415" },
{ code => 429,
  response_headers => "Retry-After: {end_day}~3\nx-should-retry: false\nContent-Type: application/json\nX-Var-Result: rejected\n!X-Cost-Cap-Remaining",
  json => err('cost_cap_exceeded', undef, tenant => 'acme', window => 'day',
              limit => 0.2, spent => 0.15483, estimate => 0.077415,
              reset_in => BETWEEN($W{end_day} - 3, $W{end_day})) },
{ code => 200, body => '{"model":"sora-2","seconds":1}',
  response_headers => "X-Cost-Cap-Estimate: 0.019354\nX-Cost-Cap-Remaining: 0.025816" },
--- redis
costcap:{acme}:day:{day} 174184
--- backend_hits: 3


=== TEST 2: spent + estimate equal to the cap is admitted
# cap 0.15483 = 2 x 77415
--- request
POST /exact/videos
--- requests
{ code => 200 },
{ code => 200, response_headers => "X-Cost-Cap-Remaining: 0" },
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'day', limit => 0.15483, spent => 0.15483,
    estimate => 0.077415, reset_in => BETWEEN($W{end_day} - 3, $W{end_day})) },
--- redis
costcap:{acme}:day:{day} 154830


=== TEST 3: two windows: the tightest binds; headers name it
# minute 0.1, day 1: after one request minute has 0.022585 left
--- same_window: minute
--- request
POST /multi/videos
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Limit: 0.1\nX-Cost-Cap-Remaining: 0.022585\nX-Cost-Cap-Reset: {end_minute}~3" },
{ code => 429, response_headers => "Retry-After: {end_minute}~3",
  json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'minute', limit => 0.1, spent => 0.077415,
    estimate => 0.077415,
    reset_in => BETWEEN($W{end_minute} - 3, $W{end_minute})) },
--- redis
costcap:{acme}:minute:{minute} 77415
costcap:{acme}:day:{day} 77415


=== TEST 4: crossing two windows: the 429 names the one that resets last
# day starts at 0.01: minute 0.1 and day 0.1 both crossed by the 2nd
# request (hour 1 is not): day resets last, its spent is 0.087415
# (at 23:59 UTC they reset together: then either is honest)
--- redis_cmd
SET costcap:{acme}:day:{day} 10000
--- same_window: minute
--- request
POST /cross/videos
--- requests
{ code => 200 },
{ code => 429,
  response_headers => "Retry-After: {end_day}~3",
  json => ($W{end_day} > $W{end_minute}
    ? err('cost_cap_exceeded', undef, tenant => 'acme', window => 'day',
          limit => 0.1, spent => 0.087415, estimate => 0.077415,
          reset_in => BETWEEN($W{end_day} - 3, $W{end_day}))
    : { error => ANY }) },
--- redis
costcap:{acme}:minute:{minute} 77415
costcap:{acme}:hour:{hour} 77415
costcap:{acme}:day:{day} 87415


=== TEST 5: per-tenant caps from a map
# acme 0.1: one request; globex 0.2: two
--- request
POST /map/videos
--- requests
[200, undef, "X-Tenant: acme"],
{ code => 429, headers => "X-Tenant: acme",
  json => err('cost_cap_exceeded', undef, tenant => 'acme', window => 'day',
    limit => 0.1, spent => 0.077415, estimate => 0.077415,
    reset_in => ANY_INT) },
[200, undef, "X-Tenant: globex"],
[200, undef, "X-Tenant: globex"],
{ code => 429, headers => "X-Tenant: globex",
  json => err('cost_cap_exceeded', undef, tenant => 'globex',
    window => 'day', limit => 0.2, spent => 0.15483, estimate => 0.077415,
    reset_in => ANY_INT) },
--- redis
costcap:{acme}:day:{day} 77415
costcap:{globex}:day:{day} 154830


=== TEST 6: empty cap variable: not enforced, no Redis call
--- request
POST /map/videos
--- more_headers
X-Tenant: free
Content-Type: application/json
--- requests
([200]) x 3
--- response_headers
X-Cost-Cap-Estimate: 0.077415
!X-Cost-Cap-Limit
!X-Cost-Cap-Remaining
!X-Cost-Cap-Reset
--- redis_keys: 0
--- backend_hits: 3


=== TEST 7: unparseable cap variable: 500 cost_cap_misconfigured
--- request
POST /map/videos
--- more_headers
X-Tenant: bad
Content-Type: application/json
--- error_code: 500
--- response_json
err('cost_cap_misconfigured', undef)
--- redis_keys: 0
--- backend_hits: 0
--- error_log
[error]


=== TEST 8: dry run never rejects; counters still grow
# cap 0.1: the 2nd and 3rd would be rejected; 3 x 77415 = 232245
--- request
POST /dry/videos
--- requests
{ code => 200, response_headers => "X-Var-Result: admitted" },
{ code => 200, response_headers => "X-Var-Result: dry_run_rejected" },
{ code => 200, response_headers => "X-Var-Result: dry_run_rejected" },
--- redis
costcap:{acme}:day:{day} 232245
--- backend_hits: 3


=== TEST 9: cost_cap_headers off
--- request
POST /quiet/videos
--- error_code: 200
--- response_headers
!X-Cost-Cap-Estimate
!X-Cost-Cap-Remaining
!X-Cost-Cap-Limit
!X-Cost-Cap-Reset
--- redis
costcap:{acme}:day:{day} 77415


=== TEST 10: every window: keys, values and TTLs (one day after the window ends; total never)
--- request
POST /all/videos
--- error_code: 200
--- redis
costcap:{acme}:minute:{minute} 77415
costcap:{acme}:hour:{hour} 77415
costcap:{acme}:day:{day} 77415
costcap:{acme}:week:{week} 77415
costcap:{acme}:month:{month} 77415
costcap:{acme}:total:all 77415
--- redis_ttl
costcap:{acme}:minute:{minute} {end_minute}+86400-3 {end_minute}+86400
costcap:{acme}:hour:{hour} {end_hour}+86400-3 {end_hour}+86400
costcap:{acme}:day:{day} {end_day}+86400-3 {end_day}+86400
costcap:{acme}:week:{week} {end_week}+86400-3 {end_week}+86400
costcap:{acme}:month:{month} {end_month}+86400-3 {end_month}+86400
costcap:{acme}:total:all -1
--- redis_keys: 6


=== TEST 11: total window: no reset, no Retry-After, reset_in null
--- request
POST /total/videos
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Limit: 0.1\n!X-Cost-Cap-Reset" },
{ code => 429, response_headers => "!Retry-After\nx-should-retry: false",
  json => err('cost_cap_exceeded', undef, tenant => 'acme', window => 'total',
    limit => 0.1, spent => 0.077415, estimate => 0.077415,
    reset_in => undef) },
--- redis
costcap:{acme}:total:all 77415


=== TEST 12: the sum of estimates over requests and a pre-existing spend
--- redis_cmd
SET costcap:{acme}:day:{day} 100000
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Remaining: 0.022585" },
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'day', limit => 0.2, spent => 0.177415, estimate => 0.077415,
    reset_in => ANY_INT) },
--- redis
costcap:{acme}:day:{day} 177415


=== TEST 13: another tenant's keys are untouched
--- redis_cmd
SET costcap:{globex}:day:{day} 5
--- more_headers
X-Tenant: acme
Content-Type: application/json
--- error_code: 200
--- redis
costcap:{acme}:day:{day} 77415
costcap:{globex}:day:{day} 5


=== TEST 14: refund on a 502 from the backend
--- request
POST /fail/videos
--- error_code: 502
--- redis
costcap:{acme}:day:{day} 0


=== TEST 15: cost_cap_actual adjusts to the actual cost
# 10 GPU-s x 3.5 / 3600 = 0.009722... -> 9723
--- request
POST /actual/videos
--- error_code: 200
--- redis
costcap:{acme}:day:{day} 9723


=== TEST 16: error_page 429 can be served
--- request
POST /quota/videos
--- requests
{ code => 200 },
{ code => 429, json => { error => { code => 'custom_quota' } } },
--- redis
costcap:{acme}:day:{day} 77415


=== TEST 17: Redis down, cost_cap_on_error closed: 503
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    $TEST_NGINX_VARS
    proxy_pass http://backend;
}
--- requests
([503]) x 3
--- response_headers
Retry-After: 1
X-Var-Result: error
--- response_json
err('cost_cap_unavailable', undef)
--- backend_hits: 0
--- error_log
[error]


=== TEST 18: Redis down, cost_cap_on_error open: admitted, logged at warn
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_DEAD_PORT;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_on_error open;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    $TEST_NGINX_VARS
    proxy_pass http://backend;
}
--- requests
([200]) x 2
--- response_headers
X-Var-Result: error_open
X-Cost-Cap-Estimate: 0.077415
--- backend_hits: 2
--- error_log
[warn]


=== TEST 19: AUTH with password=
--- redis_args: --requirepass s3cret
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=s3cret;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- requests
([200]) x 2
--- redis
costcap:{acme}:day:{day} 154830


=== TEST 20: AUTH with a wrong password: 503
--- redis_args: --requirepass s3cret
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=wrong;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- error_code: 503
--- response_json
err('cost_cap_unavailable', undef)
--- redis_keys: 0


=== TEST 21: ACL user= and password=
--- redis_cmd
ACL SETUSER gw on >gwpass ~costcap:* +@all
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT user=gw password=gwpass;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- requests
([200]) x 2
--- redis
costcap:{acme}:day:{day} 154830


=== TEST 22: unix socket
--- http_config
cost_cap_redis unix:$TEST_NGINX_REDIS_SOCKET;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- requests
([200]) x 2
--- redis
costcap:{acme}:day:{day} 154830


=== TEST 23: db=3 writes into database 3
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=3;
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- error_code: 200
--- redis_db: 3
--- redis
costcap:{acme}:day:{day} 77415
--- redis_keys: 1


=== TEST 24: a level with cost_cap_limit replaces the inherited limits
# the server's day 0.1 would reject the 2nd request; the location has only
# hour 1
--- config
cost_cap_tenant $http_x_tenant;
cost_cap_limit 0.1 per=day;
location /v1/ {
    cost_cap on;
    cost_cap_limit 1 per=hour;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Limit: 1\nX-Cost-Cap-Reset: {end_hour}~3" },
{ code => 200 },
--- redis
costcap:{acme}:hour:{hour} 154830
!costcap:{acme}:day:{day}


=== TEST 25: the tenant is set by auth_request (runs after authentication)
--- config
location /v1/ {
    auth_request /auth;
    auth_request_set $tenant $upstream_http_x_tenant_id;
    cost_cap on;
    cost_cap_tenant $tenant;
    cost_cap_limit 1 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
location = /auth {
    internal;
    proxy_pass http://backend/auth;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
}
--- backend_config
location /auth {
    if ($http_authorization = "") {
        return 401;
    }
    add_header X-Tenant-Id initech;
    return 200;
}
location / {
    return 200 '{"id":"gen_1","status":"queued"}';
}
--- more_headers
Content-Type: application/json
--- requests
[401],
[200, undef, "Authorization: Bearer sk-1"],
--- redis
costcap:{initech}:day:{day} 77415
--- redis_keys: 1

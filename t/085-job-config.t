# nginx -t for cost_cap_job and cost_cap_idempotency (SPEC section 10):
# every mistake names the directive and the value at fault.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

add_macro(TEST_NGINX_SORA => 'cost_cap_tenant $http_x_tenant; cost_cap_model'
    . ' sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720'
    . ' default_seconds=4 max_seconds=12;');

# conf/examples of the three shapes of SPEC section 10, as they are
for my $ex (qw(openai-videos replicate vertex-veo)) {
    my $n = CostCap::Test::Nginx->new(http_config => "include examples/$ex.conf;",
                                      config => 'location / { }');
    for my $d (qw(presets examples)) {
        symlink repo_root() . "/conf/$d", $n->dir . "/$d" or die "$d: $!";
    }
    my ($ok, $out) = $n->test_config;
    ok($ok, "conf/examples/$ex.conf passes nginx -t") or diag($out);
    like(CostCap::Test::_slurp(repo_root() . "/conf/examples/$ex.conf"),
         qr/^\s*cost_cap_job\s+(poll|webhook)/m,
         "conf/examples/$ex.conf settles its jobs");
}

run_tests();

done_testing();

__DATA__

=== TEST 1: every form of the directives passes
--- config
$TEST_NGINX_SORA
cost_cap_idempotency $http_idempotency_key ttl=1h;
location = /v1/videos {
    cost_cap on;
    cost_cap_job create id=id ttl=2d on_expiry=refund;
    proxy_pass http://backend;
}
location = /v1/predictions {
    cost_cap on;
    cost_cap_idempotency $http_x_key;
    cost_cap_job create id=$upstream_http_x_job_id on_expiry=keep;
    proxy_pass http://backend;
}
location ~ ^/v1/videos/(?<video>[^/]+)$ {
    cost_cap_job poll id=$video status=status failed=failed|cancelled succeeded=completed;
    proxy_pass http://backend;
}
location ~ :fetchPredictOperation$ {
    cost_cap_job poll id=name status=done failed=error:* succeeded=true actual=metadata.gpu_seconds;
    proxy_pass http://backend;
}
location = /hooks/replicate {
    cost_cap_job webhook id=id status=status failed=failed|canceled succeeded=succeeded actual=metrics.predict_time;
}
location = /hooks/other {
    cost_cap_job webhook id=$arg_job failed=state:error succeeded=state:done actual=$http_x_gpu_seconds;
    proxy_pass http://backend;
}
--- nginx_t_ok

=== TEST 2: an unknown mode
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job launch id=id; }
--- nginx_t_fail
invalid mode "launch" of "cost_cap_job"

=== TEST 3: create without id=
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create ttl=1h; }
--- nginx_t_fail
"cost_cap_job create" requires "id="

=== TEST 4: poll without failed=
--- config
$TEST_NGINX_SORA
location / { cost_cap_job poll id=$uri status=status succeeded=done; }
--- nginx_t_fail
"cost_cap_job poll" requires "failed="

=== TEST 5: poll without status= nor a path of its own in failed=
--- config
$TEST_NGINX_SORA
location / { cost_cap_job poll id=$uri failed=failed; }
--- nginx_t_fail
"cost_cap_job poll" requires "status="

=== TEST 6: succeeded= without a path, failed= with one, no status=
--- config
$TEST_NGINX_SORA
location / { cost_cap_job webhook id=id failed=error:* succeeded=true; }
--- nginx_t_fail
"cost_cap_job webhook" requires "status="

=== TEST 7: ttl=0
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=id ttl=0; }
--- nginx_t_fail
invalid parameter "ttl=0" of "cost_cap_job create"

=== TEST 8: ttl not a time
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=id ttl=soon; }
--- nginx_t_fail
invalid parameter "ttl=soon" of "cost_cap_job create"

=== TEST 9: on_expiry neither keep nor refund
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=id on_expiry=forget; }
--- nginx_t_fail
invalid parameter "on_expiry=forget" of "cost_cap_job create"

=== TEST 10: a poll's parameter on create
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=id status=status; }
--- nginx_t_fail
invalid parameter "status=status" of "cost_cap_job create"

=== TEST 11: a create's parameter on poll
--- config
$TEST_NGINX_SORA
location / { cost_cap_job poll id=$uri status=s failed=f ttl=1h; }
--- nginx_t_fail
invalid parameter "ttl=1h" of "cost_cap_job poll"

=== TEST 12: an empty value in failed=
--- config
$TEST_NGINX_SORA
location / { cost_cap_job poll id=$uri status=s failed=a||b; }
--- nginx_t_fail
invalid parameter "failed=a||b" of "cost_cap_job poll"

=== TEST 13: a path the scanner cannot take
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=data..id; }
--- nginx_t_fail
invalid parameter "id=data..id" of "cost_cap_job create"

=== TEST 14: id= twice
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=id id=name; }
--- nginx_t_fail
invalid parameter "id=name" of "cost_cap_job create"

=== TEST 15: cost_cap_job twice in a location
--- config
$TEST_NGINX_SORA
location / { cost_cap on; cost_cap_job create id=id; cost_cap_job create id=name; }
--- nginx_t_fail
"cost_cap_job" directive is duplicate

=== TEST 16: create where cost_cap is off
--- config
$TEST_NGINX_SORA
location / { cost_cap_job create id=id; }
--- nginx_t_fail
"cost_cap_job create" requires "cost_cap on"

=== TEST 17: poll without a tenant
--- config
location / { cost_cap_job poll id=$uri status=s failed=f; }
--- nginx_t_fail
"cost_cap_job poll" requires "cost_cap_tenant"

=== TEST 18: a webhook needs no tenant
--- config
location / { cost_cap_job webhook id=id status=s failed=f; }
--- nginx_t_ok

=== TEST 19: without cost_cap_redis
--- http_config
--- config
location / { cost_cap_job webhook id=id status=s failed=f; }
--- nginx_t_fail
"cost_cap_job" requires "cost_cap_redis"

=== TEST 20: cost_cap_job is a location's
--- config
$TEST_NGINX_SORA
cost_cap_job webhook id=id status=s failed=f;
location / { }
--- nginx_t_fail
"cost_cap_job" directive is not allowed here

=== TEST 21: cost_cap_idempotency with a bad ttl
--- config
$TEST_NGINX_SORA
cost_cap_idempotency $http_idempotency_key ttl=never;
location / { cost_cap on; }
--- nginx_t_fail
invalid parameter "ttl=never" of "cost_cap_idempotency"

=== TEST 22: cost_cap_idempotency twice at a level
--- config
$TEST_NGINX_SORA
cost_cap_idempotency $http_a;
cost_cap_idempotency $http_b;
location / { cost_cap on; }
--- nginx_t_fail
"cost_cap_idempotency" directive is duplicate

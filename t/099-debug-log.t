# error_log at debug, with NGINX built --with-debug (Debian's is): its
# debug lines of timers read an event's data as a connection, so that
# every event of the module has data.  A worker that had none crashed
# (SIGSEGV) at its first lease, and at start wherever cost_cap_job is.
#
# sora-2 at its defaults is 77415 micro-USD.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

add_default(log_level => 'debug');
add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(request_body => '{"model":"sora-2"}');

run_tests();

done_testing();

__DATA__

=== TEST 1: leases: the lease's timer and the worker's watch
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_lease 1 ttl=10s;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    proxy_pass http://backend;
}
--- requests
([200], [200], [200])
--- redis
costcap:{acme}:day:{day} 1077415
--- error_log
cost_cap
--- no_error_log
exited on signal
[alert]



=== TEST 2: jobs: the sweeper's timer, from the worker's start
--- config
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    cost_cap_job create id=id ttl=1h;
    proxy_pass http://backend;
}
--- error_code: 200
--- redis
costcap:{acme}:day:{day} 77415
costcap:job:gen_1 costcap:{acme}:
--- no_error_log
exited on signal
[alert]

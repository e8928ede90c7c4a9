# nginx -t: configuration errors name the directive and the value at fault.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

add_macro(TEST_NGINX_SORA => 'cost_cap_model sora-2 per_mpx_frame=0.9 fps=24'
    . ' default_size=1280x720 default_seconds=4 max_seconds=12;');

run_tests();

done_testing();

__DATA__

=== TEST 1: a full, valid configuration passes
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=2 password=s3cret user=gw timeout=50ms connect_timeout=1s;
map $http_authorization $tenant { "Bearer sk-acme-1" acme; default ""; }
map $tenant $daily_cap { acme 250; default 10; }
cost_cap_gpu_price 2.75;
cost_cap_model ~*^flux base=0.5 per_mpx_frame=1.2 ref_steps=28 default_size=1024x1024 max_pixels=4194304 max_n=4 gpu_price=2.5;
--- config
cost_cap_tenant $tenant;
location /v1/videos {
    cost_cap on;
    cost_cap_limit $daily_cap per=day;
    cost_cap_limit 5000 per=month;
    cost_cap_limit 0.5 per=minute;
    cost_cap_limit 20.25 per=hour;
    cost_cap_limit 1000 per=week;
    cost_cap_limit 100000 per=total;
    $TEST_NGINX_SORA
    cost_cap_model ~^sora-2-pro per_mpx_frame=2.4 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    cost_cap_field width input.width;
    cost_cap_field height input.height;
    cost_cap_field frames num_frames;
    cost_cap_max_body 2m;
    client_max_body_size 2m;
    cost_cap_on_error open;
    cost_cap_dry_run on;
    cost_cap_headers off;
    cost_cap_refund_status 500 502 503 504 429;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://backend;
}
location /v1/images {
    cost_cap on;
    cost_cap_limit 1.000001 per=day;
    cost_cap_on_error closed;
    proxy_pass http://backend;
}
--- nginx_t_ok


=== TEST 2: cost_cap_redis with a unix socket passes
--- http_config
cost_cap_redis unix:$TEST_NGINX_TMP/redis.sock;
--- config
location / {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 5 per=day;
    $TEST_NGINX_SORA
}
--- nginx_t_ok


=== TEST 3: unknown window
--- config
location / { cost_cap_limit 10 per=year; $TEST_NGINX_SORA }
--- nginx_t_fail
cost_cap_limit
year


=== TEST 4: window parameter missing
--- config
location / { cost_cap_limit 10 day; $TEST_NGINX_SORA }
--- nginx_t_fail
cost_cap_limit
"day"


=== TEST 5: the same window twice in one level
--- config
location / {
    cost_cap_limit 10 per=day;
    cost_cap_limit 20 per=day;
}
--- nginx_t_fail
cost_cap_limit
day
duplicate


=== TEST 6: the same window twice is fine across levels (inheritance replaces)
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
cost_cap_limit 10 per=day;
--- config
location / { cost_cap_limit 20 per=day; }
--- nginx_t_ok


=== TEST 7: bad amount
--- config
location / { cost_cap_limit abc per=day; }
--- nginx_t_fail
cost_cap_limit
"abc"


=== TEST 8: amount with more than 6 fractional digits
--- config
location / { cost_cap_limit 1.0000001 per=day; }
--- nginx_t_fail
cost_cap_limit
"1.0000001"


=== TEST 9: negative amount
--- config
location / { cost_cap_limit -5 per=day; }
--- nginx_t_fail
cost_cap_limit
"-5"


=== TEST 10: model rule without per_mpx_frame
--- config
location / { cost_cap_model sora-2 fps=24 default_size=1280x720; }
--- nginx_t_fail
cost_cap_model
per_mpx_frame


=== TEST 11: unknown param in cost_cap_model
--- config
location / { cost_cap_model sora-2 per_mpx_frame=0.9 colour=red; }
--- nginx_t_fail
cost_cap_model
colour


=== TEST 12: bad param value in cost_cap_model
--- config
location / { cost_cap_model sora-2 per_mpx_frame=0.9 fps=fast; }
--- nginx_t_fail
cost_cap_model
fast


=== TEST 13: bad default_size
--- config
location / { cost_cap_model sora-2 per_mpx_frame=0.9 default_size=1280; }
--- nginx_t_fail
cost_cap_model
1280


=== TEST 14: bad regex
--- config
location / { cost_cap_model ~^sora-(2 per_mpx_frame=0.9; }
--- nginx_t_fail
cost_cap_model
^sora-(2


=== TEST 15: bad cost_cap_gpu_price
--- config
location / { cost_cap_gpu_price 3.5usd; }
--- nginx_t_fail
cost_cap_gpu_price
"3.5usd"


=== TEST 16: bad gpu_price= in a model rule
--- config
location / { cost_cap_model sora-2 per_mpx_frame=0.9 gpu_price=cheap; }
--- nginx_t_fail
cost_cap_model
cheap


=== TEST 17: bad cost_cap_on_error value
--- config
location / { cost_cap_on_error maybe; }
--- nginx_t_fail
cost_cap_on_error
"maybe"


=== TEST 18: bad refund status (not a number)
--- config
location / { cost_cap_refund_status 500 abc; }
--- nginx_t_fail
cost_cap_refund_status
"abc"


=== TEST 19: bad refund status (out of range)
--- config
location / { cost_cap_refund_status 500 99; }
--- nginx_t_fail
cost_cap_refund_status
"99"


=== TEST 20: cost_cap_redis bad port
--- http_config
cost_cap_redis 127.0.0.1:99999;
--- nginx_t_fail
cost_cap_redis
127.0.0.1:99999


=== TEST 21: cost_cap_redis no port
--- http_config
cost_cap_redis 127.0.0.1:;
--- nginx_t_fail
cost_cap_redis
127.0.0.1:


=== TEST 22: cost_cap_redis bad timeout
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=soon;
--- nginx_t_fail
cost_cap_redis
timeout=soon


=== TEST 23: cost_cap_redis bad connect_timeout
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT connect_timeout=-1;
--- nginx_t_fail
cost_cap_redis
connect_timeout=-1


=== TEST 24: cost_cap_redis bad db
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=x;
--- nginx_t_fail
cost_cap_redis
db=x


=== TEST 25: cost_cap_redis unknown parameter
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT ssl=on;
--- nginx_t_fail
cost_cap_redis
ssl=on


=== TEST 26: cost_cap_redis is http-only
--- http_config
--- config
cost_cap_redis 127.0.0.1:6379;
--- nginx_t_fail
"cost_cap_redis" directive is not allowed here


=== TEST 27: cost_cap_field invalid name
--- config
location / { cost_cap_field col:our input.colour; }
--- nginx_t_fail
cost_cap_field
"col:our"


=== TEST 28: cost_cap_max_body bad size
--- config
location / { cost_cap_max_body lots; }
--- nginx_t_fail
cost_cap_max_body
"lots"


=== TEST 29: cost_cap bad flag
--- config
location / { cost_cap maybe; }
--- nginx_t_fail
cost_cap
"maybe"

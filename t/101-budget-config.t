# SPEC sections 3, 11 and 12: configuration mistakes of the budget
# directives (cost_cap_caps_from_redis, cost_cap_parent,
# cost_cap_parent_limit, cost_cap_alert, cost_cap_quote, cost_cap_status)
# fail nginx -t naming the directive and the value.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_macro(TEST_NGINX_SORA => 'cost_cap_tenant $http_x_tenant; '
    . 'cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 '
    . 'default_size=1280x720 default_seconds=4;');

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

run_tests();

done_testing();

__DATA__

=== TEST 1: every budget directive together
--- config
location /v1/ {
    cost_cap on;
    $TEST_NGINX_SORA
    cost_cap_caps_from_redis on;
    cost_cap_parent $http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_parent_limit 10 per=day;
    cost_cap_parent_limit 100 per=month;
    cost_cap_alert 50 80 100;
}
location /quote/ {
    cost_cap on;
    cost_cap_quote on;
    $TEST_NGINX_SORA
}
location /status {
    cost_cap_status on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_parent $http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_parent_limit 10 per=day;
}
--- nginx_t_ok


=== TEST 2: at the http and server levels
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
cost_cap_caps_from_redis on;
cost_cap_parent $http_x_org;
cost_cap_parent_limit 10 per=day;
cost_cap_alert 80;
--- config
cost_cap_alert 90 100;
location /v1/ { cost_cap on; $TEST_NGINX_SORA }
--- nginx_t_ok


=== TEST 3: cost_cap_alert percent 0
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_alert 0; }
--- nginx_t_fail
invalid percent "0" of "cost_cap_alert"


=== TEST 4: cost_cap_alert percent not a number
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_alert 50 8O; }
--- nginx_t_fail
invalid percent "8O" of "cost_cap_alert"


=== TEST 5: cost_cap_alert percent with a sign or a fraction
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_alert 50.5; }
--- nginx_t_fail
invalid percent "50.5" of "cost_cap_alert"


=== TEST 6: cost_cap_alert above 1000
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_alert 1001; }
--- nginx_t_fail
invalid percent "1001" of "cost_cap_alert"


=== TEST 7: cost_cap_alert twice in one level
--- config
location /v1/ {
    cost_cap on; $TEST_NGINX_SORA
    cost_cap_alert 50;
    cost_cap_alert 80;
}
--- nginx_t_fail
"cost_cap_alert" directive is duplicate


=== TEST 8: cost_cap_alert without arguments
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_alert; }
--- nginx_t_fail
invalid number of arguments in "cost_cap_alert"


=== TEST 9: cost_cap_parent_limit without cost_cap_parent
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_parent_limit 1 per=day; }
--- nginx_t_fail
"cost_cap_parent_limit" requires "cost_cap_parent"


=== TEST 10: cost_cap_parent_limit of an unknown window
--- config
location /v1/ {
    cost_cap on; $TEST_NGINX_SORA
    cost_cap_parent $http_x_org;
    cost_cap_parent_limit 1 per=year;
}
--- nginx_t_fail
cost_cap_parent_limit
year


=== TEST 11: cost_cap_parent_limit: the same window twice
--- config
location /v1/ {
    cost_cap on; $TEST_NGINX_SORA
    cost_cap_parent $http_x_org;
    cost_cap_parent_limit 1 per=day;
    cost_cap_parent_limit 2 per=day;
}
--- nginx_t_fail
cost_cap_parent_limit
day
duplicate


=== TEST 12: cost_cap_parent_limit: an amount that is not one
--- config
location /v1/ {
    cost_cap on; $TEST_NGINX_SORA
    cost_cap_parent $http_x_org;
    cost_cap_parent_limit 1.2.3 per=day;
}
--- nginx_t_fail
cost_cap_parent_limit
"1.2.3"


=== TEST 13: the same window at both levels
--- config
location /v1/ {
    cost_cap on; $TEST_NGINX_SORA
    cost_cap_parent $http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_parent_limit 1 per=day;
}
--- nginx_t_ok


=== TEST 14: cost_cap_caps_from_redis without cost_cap_redis
--- http_config
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_caps_from_redis on; }
--- nginx_t_fail
"cost_cap_caps_from_redis" requires "cost_cap_redis"


=== TEST 15: cost_cap_caps_from_redis takes on or off
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_caps_from_redis yes; }
--- nginx_t_fail
invalid value "yes" in "cost_cap_caps_from_redis"


=== TEST 16: cost_cap_alert without cost_cap_redis
--- http_config
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_alert 80; }
--- nginx_t_fail
"cost_cap_alert" requires "cost_cap_redis"


=== TEST 17: cost_cap_parent_limit without cost_cap_redis
--- http_config
--- config
location /v1/ {
    cost_cap on; $TEST_NGINX_SORA
    cost_cap_parent $http_x_org;
    cost_cap_parent_limit 1 per=day;
}
--- nginx_t_fail
"cost_cap_parent_limit" requires "cost_cap_redis"


=== TEST 18: cost_cap_quote in a server block
--- config
cost_cap_quote on;
location /v1/ { cost_cap on; $TEST_NGINX_SORA }
--- nginx_t_fail
"cost_cap_quote" directive is not allowed here


=== TEST 19: cost_cap_status in the http block
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
cost_cap_status on;
--- config
location / { return 200; }
--- nginx_t_fail
"cost_cap_status" directive is not allowed here


=== TEST 20: cost_cap_quote without cost_cap on
--- config
location /quote/ { cost_cap_quote on; $TEST_NGINX_SORA }
--- nginx_t_fail
"cost_cap_quote on" requires "cost_cap on"


=== TEST 21: cost_cap_status without cost_cap_tenant
--- config
location /status { cost_cap_status on; }
--- nginx_t_fail
"cost_cap_status on" requires "cost_cap_tenant"


=== TEST 22: a status location with caps needs cost_cap_redis
--- http_config
--- config
location /status {
    cost_cap_status on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 1 per=day;
}
--- nginx_t_fail
"cost_cap_limit" requires "cost_cap_redis"


=== TEST 23: a status location reading caps hashes needs cost_cap_redis
--- http_config
--- config
location /status {
    cost_cap_status on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_caps_from_redis on;
}
--- nginx_t_fail
"cost_cap_caps_from_redis" requires "cost_cap_redis"


=== TEST 24: cost_cap_parent takes one value
--- config
location /v1/ { cost_cap on; $TEST_NGINX_SORA cost_cap_parent $a $b; }
--- nginx_t_fail
invalid number of arguments in "cost_cap_parent"

# The smoke test: the module's main path against a real Redis, run twice
# by `make test`: with the module loaded into the stock nginx, and against
# nginx built from Debian's source package with the module compiled in
# (`make test-static`: COST_CAP_NO_MODULE=1, no load_module line).
#
# sora-2 at its defaults costs 77415 micro-USD (see 020-estimate.t): a cap
# of 0.2 USD admits two, rejects the third.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

add_default(config => <<'END');
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 0.2 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    add_header X-Var-Result $cost_cap_result always;
    proxy_pass http://backend;
}
END

add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(request_body => '{"model":"sora-2"}');

# how the module is in: loaded, or compiled into the binary
{
    my $v = `@{[nginx_bin()]} -V 2>&1`;
    if ($ENV{COST_CAP_NO_MODULE}) {
        like($v, qr/--add-module=\S+/, 'static: nginx -V lists --add-module');
        unlike($v, qr/--add-dynamic-module/, 'static: not a dynamic build');
        my $stock = `/usr/sbin/nginx -v 2>&1`;
        is(`@{[nginx_bin()]} -v 2>&1`, $stock,
           'static: the same version as the stock nginx');
    } else {
        ok(-f module_path(), 'dynamic: module ' . module_path());
    }
}

run_tests();

# the configuration of the blocks above has, or has not, load_module
{
    my $n = CostCap::Test::Nginx->new(config => 'location /t { return 204; }');
    if ($ENV{COST_CAP_NO_MODULE}) {
        unlike($n->{conf}, qr/load_module/, 'static: no load_module');
    } else {
        like($n->{conf}, qr/^load_module /m, 'dynamic: load_module');
    }
}

done_testing();

__DATA__

=== TEST 1: admitted, admitted, rejected: headers, 429 body, counter
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Estimate: 0.077415\nX-Cost-Cap-Remaining: 0.122585\nX-Cost-Cap-Limit: 0.2\nX-Cost-Cap-Reset: {end_day}~3\nX-Var-Result: admitted",
  json => { id => 'gen_1', status => 'queued' } },
{ code => 200, response_headers => "X-Cost-Cap-Remaining: 0.04517" },
{ code => 429,
  response_headers => "Retry-After: {end_day}~3\nx-should-retry: false\nContent-Type: application/json\nX-Var-Result: rejected\n!X-Cost-Cap-Remaining",
  json => err('cost_cap_exceeded', undef, tenant => 'acme', window => 'day',
              limit => 0.2, spent => 0.15483, estimate => 0.077415,
              reset_in => BETWEEN($W{end_day} - 3, $W{end_day})) },
--- redis
costcap:{acme}:day:{day} 154830
--- backend_hits: 2
--- no_error_log
[error]
[warn]


=== TEST 2: bad JSON is 400 invalid_json, no counter, no backend
--- request_body
{"model":"sora-2",
--- error_code: 400
--- response_headers
Content-Type: application/json
X-Var-Result: invalid
--- response_json
err('invalid_json', undef)
--- redis_keys: 0
--- backend_hits: 0


=== TEST 3: no tenant is 401, a GET passes unpriced
--- more_headers
Content-Type: application/json
--- requests
{ code => 401, json => err('tenant_missing', 'tenant') },
{ request => 'GET /v1/videos/gen_1', code => 200,
  response_headers => "X-Var-Result: off\n!X-Cost-Cap-Estimate" },
--- redis_keys: 0
--- backend_hits: 1


=== TEST 4: the tenant is set by auth_request (runs after authentication)
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

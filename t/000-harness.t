# The harness itself, against plain nginx (no module loaded).

use strict;
use warnings;

BEGIN { $ENV{COST_CAP_NO_MODULE} = 1 }

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

run_tests();

__DATA__

=== TEST 1: status, headers, body
--- config
location /t {
    add_header X-A "1";
    return 201 "hello";
}
--- request
GET /t
--- error_code: 201
--- response_headers
X-A: 1
!X-B
--- response_body
hello


=== TEST 2: proxy to the default backend, body and JSON
--- config
location / {
    proxy_pass http://backend;
}
--- request
POST /v1/videos
--- more_headers
Content-Type: application/json
--- request_body
{"model":"x"}
--- error_code: 200
--- response_json
{ id => 'gen_1', status => ANY_STR }
--- backend_hits: 1


=== TEST 3: request_body_eval, content length echoed
--- config
location /t {
    return 200 "len=$content_length ct=$content_type";
}
--- request
POST /t
--- more_headers
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"a" x 5000
--- response_body
len=5000 ct=multipart/form-data; boundary=xyz


=== TEST 4: JSON numbers are typed
--- config
location /t {
    default_type application/json;
    return 200 '{"n":5,"s":"5","f":0.077415,"z":null,"t":1}';
}
--- request
GET /t
--- response_json
{ n => 5, s => '5', f => 0.077415, z => undef, t => BETWEEN(0, 2) }


=== TEST 5: redis commands, keys with periods, TTL
--- http_config
# redis port $TEST_NGINX_REDIS_PORT
--- config
location /t { return 204; }
--- redis_cmd
SET costcap:{acme}:day:{day} 42
EXPIRE costcap:{acme}:day:{day} 100
SET "costcap:{acme}:week:{week}" 7
--- request
GET /t
--- error_code: 204
--- redis
costcap:{acme}:day:{day} 42
costcap:{acme}:week:{week} 7
!costcap:{acme}:month:{month}
--- redis_ttl
costcap:{acme}:day:{day} 98 100
costcap:{acme}:week:{week} -1
--- redis_keys: 2


=== TEST 6: several requests in order
--- config
location /t {
    if ($http_x_n = "3") { return 429; }
    return 200 "n=$http_x_n";
}
--- request
GET /t
--- requests
[200, undef, "X-N: 1"],
[200, undef, "X-N: 2"],
{ code => 429, headers => "X-N: 3" },
{ code => 200, headers => "X-N: 4", response_body => "n=4" },


=== TEST 7: nginx -t failure
--- config
location /t { bogus_directive 1; }
--- nginx_t_fail
unknown directive "bogus_directive"


=== TEST 8: nginx -t success
--- config
location /t { return 200; }
--- nginx_t_ok


=== TEST 9: error log
--- config
location /t { return 200 "x"; }
--- request
GET /t/nope/../../../etc
--- error_code: 400
--- error_log
qr/client sent invalid request|invalid/
--- log_level: info


=== TEST 10: reuse: this nginx stays up for the next block
# one connection was the start-up probe, so this request is the 2nd
--- config
location /t { return 200 "$connection"; }
--- request
GET /t
--- response_body
2
--- reuse


=== TEST 11: reuse: same nginx, 3rd connection
--- config
location /t { return 200 "$connection"; }
--- request
GET /t
--- response_body
3


=== TEST 12: response_headers_like, absent header
--- config
location /t {
    add_header X-Day "$time_iso8601";
    return 200;
}
--- request
GET /t
--- response_headers_like
X-Day: ^\d{4}-\d\d-\d\dT
--- response_headers
!X-Day-None

# SPEC section 5 errors raised before Redis: the exact JSON shape, nothing
# reaches the backend, no Redis key is written.

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
    cost_cap_limit 100 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    cost_cap_model flux base=0.5 per_mpx_frame=1.2 ref_steps=28 max_n=4 max_pixels=4194304;
    cost_cap_model huge per_mpx_frame=1000000 fps=24;
    cost_cap_max_body 1k;
    client_max_body_size 10k;
    add_header X-Var-Result $cost_cap_result always;
    proxy_pass http://backend;
}
location /denied/ {
    deny all;
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24;
    proxy_pass http://backend;
}
location /v2/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    cost_cap_field model input.model;
    cost_cap_field width input.width;
    cost_cap_field height input.height;
    cost_cap_field seconds input.duration;
    proxy_pass http://backend;
}
END

add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(backend_hits => 0);
add_default(redis_keys => 0);

run_tests();

done_testing();

__DATA__

=== TEST 1: no tenant header: 401 tenant_missing
--- more_headers
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 401
--- response_json
err('tenant_missing', 'tenant')
--- response_headers
Content-Type: application/json
X-Var-Result: invalid
!X-Cost-Cap-Estimate


=== TEST 2: empty tenant: 401 tenant_missing
--- more_headers
X-Tenant:
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 401
--- response_json
err('tenant_missing', 'tenant')


=== TEST 3: tenant of 129 bytes: 400 tenant_invalid
--- more_headers_eval
"X-Tenant: " . ("a" x 129) . "\nContent-Type: application/json"
--- request_body
{"model":"sora-2"}
--- error_code: 400
--- response_json
err('tenant_invalid', 'tenant')


=== TEST 4: tenant of 128 bytes is fine
--- more_headers_eval
"X-Tenant: " . ("a" x 128) . "\nContent-Type: application/json"
--- request_body
{"model":"sora-2"}
--- error_code: 200
--- backend_hits: 1
--- redis_keys: 1


=== TEST 5: every allowed tenant byte is fine
--- more_headers
X-Tenant: AZaz09._~:@+=/-
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 200
--- backend_hits: 1
--- redis
costcap:{AZaz09._~:@+=/-}:day:{day} 77415
--- redis_keys: 1


=== TEST 6: tenant with a space: 400 tenant_invalid
--- more_headers
X-Tenant: ac me
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 400
--- response_json
err('tenant_invalid', 'tenant')


=== TEST 7: tenant with a brace (would break the hash tag): 400
--- more_headers
X-Tenant: acme}:day:x{
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 400
--- response_json
err('tenant_invalid', 'tenant')


=== TEST 8: tenant with '*': 400
--- more_headers
X-Tenant: a*
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 400
--- response_json
err('tenant_invalid', 'tenant')


=== TEST 9: tenant with non-ASCII bytes: 400
--- more_headers
X-Tenant: acmé
Content-Type: application/json
--- request_body
{"model":"sora-2"}
--- error_code: 400
--- response_json
err('tenant_invalid', 'tenant')


=== TEST 10: body over cost_cap_max_body: 413 body_too_large (JSON, not HTML)
--- request_body_eval
'{"model":"sora-2","pad":"' . ("x" x 2000) . '"}'
--- error_code: 413
--- response_json
err('body_too_large', undef)
--- response_headers
Content-Type: application/json
X-Var-Result: invalid


=== TEST 10b: one byte over cost_cap_max_body: 413
--- request_body_eval
my $b = '{"model":"sora-2","pad":"';
$b . ("x" x (1025 - length($b) - 2)) . '"}'
--- error_code: 413
--- response_json
err('body_too_large', undef)


=== TEST 11: body of exactly cost_cap_max_body is inspected
--- request_body_eval
my $b = '{"model":"sora-2","pad":"';
$b . ("x" x (1024 - length($b) - 2)) . '"}'
--- error_code: 200
--- backend_hits: 1
--- redis_keys: 1


=== TEST 12: no Content-Type: 415
--- more_headers
X-Tenant: acme
--- request_body
{"model":"sora-2"}
--- error_code: 415
--- response_json
err('unsupported_media_type', undef)


=== TEST 13: text/plain: 415
--- more_headers
X-Tenant: acme
Content-Type: text/plain
--- request_body
{"model":"sora-2"}
--- error_code: 415
--- response_json
err('unsupported_media_type', undef)


=== TEST 14: multipart/mixed: 415
--- more_headers
X-Tenant: acme
Content-Type: multipart/mixed; boundary=xyz
--- request_body_eval
multipart('xyz', model => 'sora-2')
--- error_code: 415
--- response_json
err('unsupported_media_type', undef)


=== TEST 15: GET (polling a job) passes unpriced, even without a tenant
--- request
GET /v1/videos/gen_1
--- more_headers
--- error_code: 200
--- response_headers
!X-Cost-Cap-Estimate
--- backend_hits: 1


=== TEST 15b: PUT is priced like POST
--- request
PUT /v1/videos
--- more_headers
X-Tenant: acme
Content-Type: text/plain
--- request_body
{"model":"sora-2"}
--- error_code: 415
--- response_json
err('unsupported_media_type', undef)


=== TEST 16: JSON string root: invalid_json
--- request_body
"sora-2"
--- error_code: 400
--- response_json
err('invalid_json', undef)


=== TEST 17: JSON array root: invalid_json
--- request_body
[{"model":"sora-2"}]
--- error_code: 400
--- response_json
err('invalid_json', undef)


=== TEST 18: trailing garbage: invalid_json
--- request_body
{"model":"sora-2"} x
--- error_code: 400
--- response_json
err('invalid_json', undef)


=== TEST 19: two objects: invalid_json
--- request_body
{"model":"sora-2"}{"model":"sora-2"}
--- error_code: 400
--- response_json
err('invalid_json', undef)


=== TEST 20: truncated object: invalid_json
--- request_body
{"model":"sora-2",
--- error_code: 400
--- response_json
err('invalid_json', undef)


=== TEST 21: empty JSON body: invalid_json
--- request_body_eval
''
--- error_code: 400
--- response_json
err('invalid_json', undef)


=== TEST 22: multipart without boundary: invalid_multipart
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data
--- request_body_eval
multipart('xyz', model => 'sora-2')
--- error_code: 400
--- response_json
err('invalid_multipart', undef)


=== TEST 23: multipart without closing delimiter: invalid_multipart
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nsora-2\r\n"
--- error_code: 400
--- response_json
err('invalid_multipart', undef)


=== TEST 24: multipart part without Content-Disposition: invalid_multipart
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"--xyz\r\nContent-Type: text/plain\r\n\r\nsora-2\r\n--xyz--\r\n"
--- error_code: 400
--- response_json
err('invalid_multipart', undef)


=== TEST 25: multipart part header block without its end: invalid_multipart
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\nsora-2--xyz--\r\n"
--- error_code: 400
--- response_json
err('invalid_multipart', undef)


=== TEST 26: model missing: invalid_parameter model
--- request_body
{"seconds":4}
--- error_code: 400
--- response_json
err('invalid_parameter', 'model')
--- response_headers
X-Var-Result: invalid


=== TEST 27: model null is absent: invalid_parameter model
--- request_body
{"model":null}
--- error_code: 400
--- response_json
err('invalid_parameter', 'model')


=== TEST 28: model not a string: invalid_parameter model
--- request_body
{"model":2}
--- error_code: 400
--- response_json
err('invalid_parameter', 'model')


=== TEST 29: model missing in multipart: invalid_parameter model
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
multipart('xyz', seconds => '4', model => { filename => 'model', content => 'sora-2' })
--- error_code: 400
--- response_json
err('invalid_parameter', 'model')


=== TEST 30: width alone: param height
--- request_body
{"model":"sora-2","width":1280}
--- error_code: 400
--- response_json
err('invalid_parameter', 'height')


=== TEST 31: height alone: param width
--- request_body
{"model":"sora-2","height":720}
--- error_code: 400
--- response_json
err('invalid_parameter', 'width')


=== TEST 32: size "abc"
--- request_body
{"model":"sora-2","size":"abc"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'size')


=== TEST 33: size "1280x"
--- request_body
{"model":"sora-2","size":"1280x"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'size')


=== TEST 34: size "0x720"
--- request_body
{"model":"sora-2","size":"0x720"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'size')


=== TEST 35: size as a number
--- request_body
{"model":"sora-2","size":1280}
--- error_code: 400
--- response_json
err('invalid_parameter', 'size')


=== TEST 36: seconds 0
--- request_body
{"model":"sora-2","seconds":0}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 37: seconds -1
--- request_body
{"model":"sora-2","seconds":-1}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 38: seconds "1e3" (exponent in a string)
--- request_body
{"model":"sora-2","seconds":"1e3"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 39: seconds " 4" (space)
--- request_body
{"model":"sora-2","seconds":" 4"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 40: seconds "4."
--- request_body
{"model":"sora-2","seconds":"4."}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 41: seconds ".5"
--- request_body
{"model":"sora-2","seconds":".5"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 42: seconds "-4" (sign in a string)
--- request_body
{"model":"sora-2","seconds":"-4"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 43: seconds "0x10" (hex)
--- request_body
{"model":"sora-2","seconds":"0x10"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 44: seconds "4.1234567" (7 fractional digits in a string)
--- request_body
{"model":"sora-2","seconds":"4.1234567"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 45: seconds true
--- request_body
{"model":"sora-2","seconds":true}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 46: seconds 1e400 (not finite)
--- request_body
{"model":"sora-2","seconds":1e400}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 47: seconds over max_seconds (12)
--- request_body
{"model":"sora-2","seconds":12.000001}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 48: seconds " 4" in multipart
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
multipart('xyz', model => 'sora-2', seconds => ' 4')
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 49: frames over max_seconds x fps (12 x 24 = 288): param num_frames
--- request_body
{"model":"sora-2","num_frames":289}
--- error_code: 400
--- response_json
err('invalid_parameter', 'num_frames')


=== TEST 50: frames not whole
--- request_body
{"model":"sora-2","num_frames":24.5}
--- error_code: 400
--- response_json
err('invalid_parameter', 'num_frames')


=== TEST 51: n 2.5
--- request_body
{"model":"sora-2","n":2.5}
--- error_code: 400
--- response_json
err('invalid_parameter', 'n')


=== TEST 52: n 0
--- request_body
{"model":"sora-2","n":0}
--- error_code: 400
--- response_json
err('invalid_parameter', 'n')


=== TEST 53: n over max_n (4)
--- request
POST /v1/images
--- request_body
{"model":"flux","size":"1024x1024","n":5}
--- error_code: 400
--- response_json
err('invalid_parameter', 'n')


=== TEST 54: size over max_pixels (4194304 = 2048x2048)
--- request
POST /v1/images
--- request_body
{"model":"flux","size":"2049x2048"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'size')


=== TEST 55: no size and no default_size in the rule
--- request
POST /v1/images
--- request_body
{"model":"flux"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'size')


=== TEST 56: steps 0: param num_inference_steps
--- request
POST /v1/images
--- request_body
{"model":"flux","size":"1024x1024","num_inference_steps":0}
--- error_code: 400
--- response_json
err('invalid_parameter', 'num_inference_steps')


=== TEST 57: video without seconds and no default_seconds
--- request_body
{"model":"huge","size":"64x64"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')


=== TEST 58: an estimate that does not fit int64: invalid_parameter, param null
--- request_body
{"model":"huge","size":"100000000x100000000","num_frames":1000000000}
--- error_code: 400
--- response_json
err('invalid_parameter', undef)


=== TEST 59: configured path: width alone under input: param input.height
--- request
POST /v2/videos
--- request_body
{"input":{"model":"sora-2","width":1280}}
--- error_code: 400
--- response_json
err('invalid_parameter', 'input.height')


=== TEST 60: configured path: bad input.width
--- request
POST /v2/videos
--- request_body
{"input":{"model":"sora-2","width":"abc","height":720}}
--- error_code: 400
--- response_json
err('invalid_parameter', 'input.width')


=== TEST 61: configured path: bad input.duration
--- request
POST /v2/videos
--- request_body
{"input":{"model":"sora-2","duration":"4s"}}
--- error_code: 400
--- response_json
err('invalid_parameter', 'input.duration')


=== TEST 62: configured path: model at the top level is not input.model
--- request
POST /v2/videos
--- request_body
{"model":"sora-2"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'input.model')


=== TEST 63: unknown model
--- request_body
{"model":"dall-e-3"}
--- error_code: 400
--- response_json
err('unknown_model', 'model')


=== TEST 64: exact patterns are case-sensitive and whole
--- requests
{ code => 400, body => '{"model":"Sora-2"}', json => err('unknown_model', 'model') },
{ code => 400, body => '{"model":"sora-2-pro"}', json => err('unknown_model', 'model') },
{ code => 400, body => '{"model":"sora"}', json => err('unknown_model', 'model') },


=== TEST 65: a duplicate key is refused, naming it (bad first or not)
--- requests
{ code => 400, body => '{"model":"sora-2","seconds":"x","seconds":4}', json => err('invalid_parameter', 'seconds') },
{ code => 400, body => '{"model":"sora-2","seconds":4,"seconds":4}', json => err('invalid_parameter', 'seconds') },
{ code => 400, body => '{"model":"sora-2","model":"sora-2"}', json => err('invalid_parameter', 'model') },


=== TEST 65b: a key in another case is refused, naming the field
--- requests
{ code => 400, body => '{"model":"sora-2","Seconds":12}', json => err('invalid_parameter', 'seconds') },
{ code => 400, body => '{"MODEL":"sora-2"}', json => err('invalid_parameter', 'model') },
{ code => 400, body => '{"model":"sora-2","N":4}', json => err('invalid_parameter', 'n') },


=== TEST 65c: configured paths: duplicates at every level of the path
--- request
POST /v2/videos
--- requests
{ code => 400, body => '{"input":{"model":"sora-2","width":1,"width":2,"height":1}}', json => err('invalid_parameter', 'input.width') },
{ code => 400, body => '{"input":{"model":"sora-2"},"input":{"model":"sora-2"}}', json => err('invalid_parameter', 'input.model') },
{ code => 400, body => '{"Input":{"model":"sora-2"}}', json => err('invalid_parameter', 'input.model') },


=== TEST 65d: multipart: a repeated field is refused, naming it
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- requests
{ code => 400, body => multipart('xyz', model => 'sora-2', seconds => '8', seconds => '4'), json => err('invalid_parameter', 'seconds') },
{ code => 400, body => multipart('xyz', model => 'sora-2', Model => 'sora-2'), json => err('invalid_parameter', 'model') },


=== TEST 66: access is checked before cost_cap (pre-content phase): 403, no key
--- request
POST /denied/videos
--- request_body
{"model":"sora-2"}
--- error_code: 403


=== TEST 67: a level with cost_cap_model replaces the inherited rules
--- config
cost_cap_model flux base=0.5 per_mpx_frame=1.2 default_size=1024x1024;
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
--- request_body
{"model":"flux"}
--- error_code: 400
--- response_json
err('unknown_model', 'model')


=== TEST 68: nested path through a non-object: absent
--- request
POST /v2/videos
--- request_body
{"input":"sora-2"}
--- error_code: 400
--- response_json
err('invalid_parameter', 'input.model')


=== TEST 69: seconds as a JSON exponent over max_seconds (1e3)
--- request_body
{"model":"sora-2","seconds":1e3}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')

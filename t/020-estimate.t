# SPEC section 4: estimates of admitted requests, exact to the micro-USD,
# in X-Cost-Cap-Estimate, in the $cost_cap_* variables and in Redis.
#
# Rules (cost_cap_gpu_price default 3.50):
#   sora-2        per_mpx_frame=0.9 fps=24 default 1280x720, 4 s, max 12 s
#   ~^sora-2-pro  per_mpx_frame=2.4 fps=24 default 1280x720, 4 s, max 12 s
#   ~*^veo        per_mpx_frame=1.5 fps=30 default 1920x1080, 8 s, price 2
#   flux          base=0.5 per_mpx_frame=1.2 ref_steps=28 default 1024x1024
#   ~^sora        per_mpx_frame=100 fps=24 default 1280x720, 4 s
#
# cost = n x (base + per_mpx_frame x W x H / 10^6 x frames x steps /
# ref_steps) x gpu_price / 3600, rounded up once to whole micro-USD.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_macro(TEST_NGINX_MODELS => <<'END');
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~^sora-2-pro per_mpx_frame=2.4 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~*^veo per_mpx_frame=1.5 fps=30 default_size=1920x1080 default_seconds=8 max_seconds=8 gpu_price=2;
cost_cap_model flux base=0.5 per_mpx_frame=1.2 ref_steps=28 default_size=1024x1024 max_n=4;
cost_cap_model ~^sora per_mpx_frame=100 fps=24 default_size=1280x720 default_seconds=4;
cost_cap_model tiny per_mpx_frame=0.000001 default_size=1x1;
END

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

add_default(config => <<'END');
cost_cap_tenant $http_x_tenant;
cost_cap_limit 100 per=day;

location /v1/ {
    cost_cap on;
    $TEST_NGINX_MODELS
    add_header X-Var-Tenant $cost_cap_tenant always;
    add_header X-Var-Model $cost_cap_model always;
    add_header X-Var-Gpu $cost_cap_gpu_seconds always;
    add_header X-Var-Estimate $cost_cap_estimate always;
    add_header X-Var-Spent $cost_cap_spent always;
    add_header X-Var-Remaining $cost_cap_remaining always;
    add_header X-Var-Result $cost_cap_result always;
    proxy_pass http://backend;
}

location /v2/ {
    cost_cap on;
    $TEST_NGINX_MODELS
    cost_cap_field model input.model;
    cost_cap_field width input.width;
    cost_cap_field height input.height;
    cost_cap_field seconds input.duration;
    proxy_pass http://backend;
}

location /v3/ {
    cost_cap on;
    cost_cap_gpu_price 2.75;
    $TEST_NGINX_MODELS
    proxy_pass http://backend;
}

location /v4/ {
    cost_cap on;
    client_body_in_file_only on;
    client_max_body_size 1m;
    $TEST_NGINX_MODELS
    proxy_pass http://backend;
}

location /off/ {
    cost_cap off;
    add_header X-Var-Result $cost_cap_result always;
    proxy_pass http://backend;
}

location /v5/ {
    cost_cap on;
    $TEST_NGINX_MODELS
    proxy_intercept_errors on;
    error_page 404 = @fallback;
    proxy_pass http://backend/missing;
}

location @fallback {
    cost_cap on;
    $TEST_NGINX_MODELS
    proxy_pass http://backend;
}

location /v6/ {
    cost_cap on;
    $TEST_NGINX_MODELS
    error_page 502 = /v1/videos;
    proxy_pass http://127.0.0.1:1;
}
END

add_default(backend_config => <<'END');
location /missing {
    return 404;
}
location / {
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(error_code => 200);

run_tests();

done_testing();

__DATA__

=== TEST 1: sora-2 defaults: headers, variables, Redis
# 1280x720 = 0.9216 Mpx, 4 s x 24 = 96 frames
# gpu_s = 0.9 x 0.9216 x 96 = 79.62624
# cost = 79.62624 x 3.5 / 3600 = 0.0774144 -> 77415 micro-USD
--- request_body
{"model":"sora-2"}
--- response_headers
X-Cost-Cap-Estimate: 0.077415
X-Cost-Cap-Limit: 100
X-Cost-Cap-Remaining: 99.922585
X-Cost-Cap-Reset: {end_day}~3
X-Var-Tenant: acme
X-Var-Model: sora-2
X-Var-Gpu: 79.62624
X-Var-Estimate: 0.077415
X-Var-Spent: 0
X-Var-Remaining: 99.922585
X-Var-Result: admitted
--- response_json
{ id => 'gen_1', status => 'queued' }
--- redis
costcap:{acme}:day:{day} 77415
--- backend_hits: 1


=== TEST 2: $cost_cap_spent is the spend before this request
# spent 1 USD; 100 - 1 - 0.077415 = 98.922585
--- redis_cmd
SET costcap:{acme}:day:{day} 1000000
--- request_body
{"model":"sora-2"}
--- response_headers
X-Cost-Cap-Estimate: 0.077415
X-Cost-Cap-Remaining: 98.922585
X-Var-Spent: 1
X-Var-Remaining: 98.922585
--- redis
costcap:{acme}:day:{day} 1077415


=== TEST 3: size and seconds
# 1920x1080 = 2.0736 Mpx, 8 s x 24 = 192 frames
# gpu_s = 0.9 x 2.0736 x 192 = 358.31808
# cost = 358.31808 x 3.5 / 3600 = 0.3483648 -> 348365
--- request_body
{"model":"sora-2","size":"1920x1080","seconds":8}
--- response_headers
X-Cost-Cap-Estimate: 0.348365
X-Var-Gpu: 358.31808
--- redis
costcap:{acme}:day:{day} 348365


=== TEST 4: seconds at max_seconds (12) is allowed
# 288 frames: gpu_s = 0.9 x 0.9216 x 288 = 238.87872
# cost = 0.2322432 -> 232244
--- request_body
{"model":"sora-2","seconds":12}
--- response_headers
X-Cost-Cap-Estimate: 0.232244


=== TEST 5: fractional seconds, exact result not rounded up
# 2.5 s x 24 = 60 frames: gpu_s = 0.9 x 0.9216 x 60 = 49.7664
# cost = 49.7664 x 3.5 / 3600 = 0.048384 exactly -> 48384
--- request_body
{"model":"sora-2","seconds":2.5}
--- response_headers
X-Cost-Cap-Estimate: 0.048384
X-Var-Gpu: 49.7664


=== TEST 6: frames from seconds x fps are not rounded
# 2.51 s x 24 = 60.24 frames: gpu_s = 0.9 x 0.9216 x 60.24 = 49.9654656
# cost = 0.048577536 -> 48578 (60 frames would give 48384, 61: 49190)
--- request_body
{"model":"sora-2","seconds":"2.51"}
--- response_headers
X-Cost-Cap-Estimate: 0.048578


=== TEST 7: a JSON number is taken at 6 fractional digits, rounded to nearest
# 2.5000004 -> 2.5: as TEST 5, 48384
--- request_body
{"model":"sora-2","seconds":2.5000004}
--- response_headers
X-Cost-Cap-Estimate: 0.048384


=== TEST 8: frames win over seconds (SPEC: 0.08064 is 80640, not 80641)
# 100 frames: gpu_s = 0.9 x 0.9216 x 100 = 82.944
# cost = 82.944 x 3.5 / 3600 = 0.08064 -> 80640
--- request_body
{"model":"sora-2","seconds":12,"num_frames":100}
--- response_headers
X-Cost-Cap-Estimate: 0.08064
--- redis
costcap:{acme}:day:{day} 80640


=== TEST 9: n as a number, a whole float and a string
# n = 2: 2 x 0.0774144 = 0.1548288 -> 154829; three requests: 464487
--- requests
{ code => 200, body => '{"model":"sora-2","n":2}', response_headers => "X-Cost-Cap-Estimate: 0.154829" },
{ code => 200, body => '{"model":"sora-2","n":2.0}', response_headers => "X-Cost-Cap-Estimate: 0.154829" },
{ code => 200, body => '{"model":"sora-2","n":"2"}', response_headers => "X-Cost-Cap-Estimate: 0.154829" },
--- redis
costcap:{acme}:day:{day} 464487


=== TEST 10: width and height instead of size; size wins over them
# 1280x720 either way: 77415
--- requests
{ code => 200, body => '{"model":"sora-2","width":1280,"height":720}', response_headers => "X-Cost-Cap-Estimate: 0.077415" },
{ code => 200, body => '{"model":"sora-2","width":"1280","height":"720"}', response_headers => "X-Cost-Cap-Estimate: 0.077415" },
{ code => 200, body => '{"model":"sora-2","size":"1280x720","width":1920,"height":1080}', response_headers => "X-Cost-Cap-Estimate: 0.077415" },


=== TEST 11: regex rule ~^sora-2-pro
# gpu_s = 2.4 x 0.9216 x 96 = 212.33664; cost = 0.2064384 -> 206439
--- requests
{ code => 200, body => '{"model":"sora-2-pro"}', response_headers => "X-Cost-Cap-Estimate: 0.206439\nX-Var-Model: sora-2-pro" },
{ code => 200, body => '{"model":"sora-2-pro-2025"}', response_headers => "X-Cost-Cap-Estimate: 0.206439" },


=== TEST 12: case-insensitive regex ~*^veo with its own gpu_price
# 1920x1080 = 2.0736 Mpx, 8 s x 30 = 240 frames
# gpu_s = 1.5 x 2.0736 x 240 = 746.496; cost = 746.496 x 2 / 3600
# = 0.41472 -> 414720
--- requests
{ code => 200, body => '{"model":"veo-3"}', response_headers => "X-Cost-Cap-Estimate: 0.41472" },
{ code => 200, body => '{"model":"VEO-3-fast"}', response_headers => "X-Cost-Cap-Estimate: 0.41472" },
--- redis
costcap:{acme}:day:{day} 829440


=== TEST 13: the first matching rule in config order wins
# sora-3 only matches ~^sora: gpu_s = 100 x 0.9216 x 96 = 8847.36
# cost = 8847.36 x 3.5 / 3600 = 8.6016 -> 8601600
# (sora-2 also matches ~^sora but its exact rule comes first: 77415)
--- requests
{ code => 200, body => '{"model":"sora-3"}', response_headers => "X-Cost-Cap-Estimate: 8.6016" },
{ code => 200, body => '{"model":"sora-2"}', response_headers => "X-Cost-Cap-Estimate: 0.077415" },


=== TEST 14: image model: base, n, steps / ref_steps; seconds and frames ignored
# 1024x1024 = 1.048576 Mpx, 1 frame, steps 50 / 28
# gpu_s = 0.5 + 1.2 x 1.048576 x 50 / 28 = 2.746948571428...
# cost = 4 x 2.746948571428... x 3.5 / 3600 = 0.010682577... -> 10683
--- request
POST /v1/images
--- request_body
{"model":"flux","n":4,"num_inference_steps":50,"seconds":100,"num_frames":1000}
--- response_headers
X-Cost-Cap-Estimate: 0.010683


=== TEST 15: image model without steps: factor 1
# gpu_s = 0.5 + 1.2 x 1.048576 = 1.7582912
# ($cost_cap_gpu_seconds is in whole micro GPU-s, rounded up: 1.758292)
# cost = 1.7582912 x 3.5 / 3600 = 0.00170944977... -> 1710
--- request
POST /v1/images
--- request_body
{"model":"flux"}
--- response_headers
X-Cost-Cap-Estimate: 0.00171
X-Var-Gpu: 1.758292


=== TEST 16: cost_cap_gpu_price in the location; a rule's gpu_price wins
# sora-2: 79.62624 x 2.75 / 3600 = 0.0608256 -> 60826
# veo-3: gpu_price=2 in the rule: 414720
--- request
POST /v3/videos
--- requests
{ code => 200, body => '{"model":"sora-2"}', response_headers => "X-Cost-Cap-Estimate: 0.060826" },
{ code => 200, body => '{"model":"veo-3"}', response_headers => "X-Cost-Cap-Estimate: 0.41472" },
--- redis
costcap:{acme}:day:{day} 475546


=== TEST 17: numeric strings price as numbers
# as TEST 3: 348365
--- request_body
{"model":"sora-2","size":"1920x1080","seconds":"8"}
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 18: multipart prices as JSON; file parts are never fields
# as TEST 3: 348365 (the file part named seconds is skipped)
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW
--- request_body_eval
multipart('----WebKitFormBoundary7MA4YWxkTrZu0gW',
    prompt => 'a cat on a skateboard',
    seconds => { filename => 'seconds', content => '12' },
    model => 'sora-2',
    input_reference => { filename => 'ref.png', type => 'image/png',
                         content => "\x89PNG\r\n\x1a\n" . ("\0" x 300) . "--" },
    size => '1920x1080',
    seconds => '8')
--- response_headers
X-Cost-Cap-Estimate: 0.348365
--- redis
costcap:{acme}:day:{day} 348365


=== TEST 19: multipart with a quoted boundary
# as TEST 3: 348365
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary="quoted:boundary"
--- request_body_eval
multipart('quoted:boundary', model => 'sora-2', size => '1920x1080', seconds => '8')
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 20: multipart: a field given twice is refused, nothing charged
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
multipart('xyz', model => 'sora-2', seconds => '8', seconds => '4')
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')
--- redis_keys: 0
--- backend_hits: 0


=== TEST 21: JSON: a key given twice is refused, nothing charged
--- request_body
{"model":"sora-2","seconds":8,"seconds":4}
--- error_code: 400
--- response_json
err('invalid_parameter', 'seconds')
--- redis_keys: 0
--- backend_hits: 0


=== TEST 22: configured nested paths (input.width ...), JSON
# as TEST 3: 348365
--- request
POST /v2/videos
--- request_body
{"input":{"model":"sora-2","width":1920,"height":1080,"duration":8},"seconds":1}
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 23: configured paths in multipart are field names
# as TEST 3: 348365
--- request
POST /v2/videos
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
multipart('xyz', 'input.model' => 'sora-2', 'input.width' => '1920',
          'input.height' => '1080', 'input.duration' => '8')
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 24: JSON null is absent: rule defaults
# as TEST 1: 77415
--- request_body
{"model":"sora-2","size":null,"seconds":null,"n":null}
--- response_headers
X-Cost-Cap-Estimate: 0.077415


=== TEST 25: Content-Type parameters are allowed
# as TEST 1: 77415
--- more_headers
X-Tenant: acme
Content-Type: application/json; charset=utf-8
--- request_body
{"model":"sora-2"}
--- response_headers
X-Cost-Cap-Estimate: 0.077415


=== TEST 26: body in a temp file (client_body_in_file_only)
# as TEST 3: 348365
--- request
POST /v4/videos
--- request_body
{"model":"sora-2","size":"1920x1080","seconds":8}
--- response_headers
X-Cost-Cap-Estimate: 0.348365
--- redis
costcap:{acme}:day:{day} 348365


=== TEST 27: big body in a temp file (900 KB)
# as TEST 1: 77415
--- request
POST /v4/videos
--- request_body_eval
'{"prompt":"' . ("p" x 900_000) . '","model":"sora-2"}'
--- response_headers
X-Cost-Cap-Estimate: 0.077415


=== TEST 28: big multipart body with a file part (900 KB), in memory
# as TEST 3: 348365
--- request
POST /v4/videos
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
multipart('xyz', model => 'sora-2',
          input_reference => { filename => 'a.mp4', content => "\0\1--xy" x 150_000 },
          size => '1920x1080', seconds => '8')
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 29: internal redirect to a named cost_cap location prices once
# backend 404 -> error_page 404 = @fallback (cost_cap on): one estimate
--- request
POST /v5/videos
--- request_body
{"model":"sora-2"}
--- response_json
{ id => 'gen_1', status => 'queued' }
--- redis
costcap:{acme}:day:{day} 77415
--- backend_hits: 2


=== TEST 30: error_page 502 = /v1/videos (another cost_cap location) prices once
# the first proxy fails (502), the redirect reaches the backend: 77415
--- request
POST /v6/videos
--- request_body
{"model":"sora-2"}
--- redis
costcap:{acme}:day:{day} 77415
--- backend_hits: 1


=== TEST 31: two tenants, two keys
--- requests
[200, '{"model":"sora-2"}', "X-Tenant: acme"],
[200, '{"model":"sora-2","n":2}', "X-Tenant: globex"],
[200, '{"model":"sora-2"}', "X-Tenant: acme"],
--- redis
costcap:{acme}:day:{day} 154830
costcap:{globex}:day:{day} 154829


=== TEST 32: chunked request body
# as TEST 3: 348365
--- more_headers
X-Tenant: acme
Content-Type: application/json
Transfer-Encoding: chunked
--- request_body_eval
my $b = '{"model":"sora-2","size":"1920x1080","seconds":8}';
join('', map { sprintf("%x\r\n%s\r\n", length, $_) } $b =~ /(.{1,7})/gs) . "0\r\n\r\n"
--- response_headers
X-Cost-Cap-Estimate: 0.348365
--- redis
costcap:{acme}:day:{day} 348365


=== TEST 33: the smallest cost rounds up to one micro-USD
# tiny: 0.000001 x 1x1 / 10^6 x 1 frame = 10^-12 GPU-s -> 1 micro-USD
--- request_body
{"model":"tiny"}
--- response_headers
X-Cost-Cap-Estimate: 0.000001
--- redis
costcap:{acme}:day:{day} 1


=== TEST 34: JSON escapes, whitespace and exponents are plain JSON
# "sora\u002d2" is sora-2; 8e0 s, n 1E0: as TEST 3 with n=1: 348365
--- request_body
 { "model" : "sora\u002d2" ,
   "size" : "1920x1080", "seconds" : 8e0, "n": 1E0 }
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 35: multipart with a preamble, an epilogue and lower-case headers
# as TEST 3: 348365
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"This is the preamble.\r\n"
. "--xyz\r\ncontent-disposition: form-data; name=\"model\"\r\ncontent-type: text/plain\r\n\r\nsora-2\r\n"
. "--xyz\r\nContent-Disposition: form-data; name=\"size\"\r\n\r\n1920x1080\r\n"
. "--xyz\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n8\r\n"
. "--xyz--\r\nThis is the epilogue.\r\n"
--- response_headers
X-Cost-Cap-Estimate: 0.348365


=== TEST 36: a file part whose content looks like a boundary-less field
# the file holds text like a part; it is skipped; as TEST 1: 77415
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
multipart('xyz', model => 'sora-2',
          notes => { filename => 'n.txt', type => 'text/plain',
                     content => "--xy\r\nContent-Disposition: form-data; name=\"seconds\"\r\n\r\n12\r\n" })
--- response_headers
X-Cost-Cap-Estimate: 0.077415


=== TEST 37: cost_cap off: no pricing, $cost_cap_result off
--- request
POST /off/videos
--- more_headers
X-Tenant: acme
Content-Type: text/plain
--- request_body
not json at all
--- response_headers
X-Var-Result: off
!X-Cost-Cap-Estimate
--- redis_keys: 0

# SPEC section 4: when= conditions, list-price terms and cost_cap_field
# sources (a path, a value with variables, off), exact to the micro-USD.
#
# /img/   list prices per image by quality and size (OpenAI-style: width
#         and height not read; quality absent or auto = the dearest)
# /models/NAME/predict   the model from the URI, fields under parameters.
#         (Vertex-style), per second by audio
# /mpx/   per megapixel plus GPU time, rounded once
# /num/   conditions on numbers and booleans, as written

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
map $http_x_model $hdr_model { default $http_x_model; }
END

add_default(config => <<'END');
cost_cap_tenant $http_x_tenant;
cost_cap_limit 100 per=day;
cost_cap_field quality tier;

location /img/ {
    cost_cap on;
    cost_cap_field quality quality;
    cost_cap_field width off;
    cost_cap_field height off;
    cost_cap_model gpt-image-1 when=quality:low when=size:1024x1024 usd_per_output=0.011;
    cost_cap_model gpt-image-1 when=quality:low when=size:1536x1024|1024x1536|auto|- usd_per_output=0.016;
    cost_cap_model gpt-image-1 when=quality:high|auto|- when=size:1024x1024 usd_per_output=0.167;
    cost_cap_model gpt-image-1 when=quality:high|auto|- when=size:1536x1024|1024x1536|auto|- usd_per_output=0.25;
    add_header X-Var-Model $cost_cap_model always;
    add_header X-Var-Gpu $cost_cap_gpu_seconds always;
    proxy_pass http://backend;
}

location ~ ^/models/(?<m>[^/]*)/predict$ {
    cost_cap on;
    cost_cap_field model $m;
    cost_cap_field seconds parameters.durationSeconds;
    cost_cap_field n parameters.sampleCount;
    cost_cap_field audio parameters.generateAudio;
    cost_cap_field size off;
    cost_cap_field width off;
    cost_cap_field height off;
    cost_cap_model veo when=audio:true|- usd_per_second=0.40 default_seconds=8 max_seconds=8 max_n=4;
    cost_cap_model veo when=audio:false usd_per_second=0.20 default_seconds=8 max_seconds=8 max_n=4;
    add_header X-Var-Model $cost_cap_model always;
    proxy_pass http://backend;
}

location /mpx/ {
    cost_cap on;
    cost_cap_gpu_price 3.60;
    cost_cap_model flux usd_per_mpx=0.025 default_size=1024x768;
    cost_cap_model both base=0.0004 usd_per_mpx=0.000001 usd_per_output=0.5;
    proxy_pass http://backend;
}

location /num/ {
    cost_cap on;
    cost_cap_field hd hd;
    cost_cap_model m when=n:1|2 when=hd:true usd_per_output=1;
    cost_cap_model m when=n:1|2 when=hd:false|- usd_per_output=0.5;
    cost_cap_model m when=n:- usd_per_output=0.25;
    proxy_pass http://backend;
}

location /hdr/ {
    cost_cap on;
    cost_cap_field model $hdr_model;
    cost_cap_model sora-2 usd_per_second=0.10 default_seconds=4;
    proxy_pass http://backend;
}

location /inherit/ {
    cost_cap on;
    cost_cap_field model input.model;
    cost_cap_model m when=quality:a usd_per_output=1;
    cost_cap_model m when=quality:- usd_per_output=2;
    proxy_pass http://backend;
}
END

add_default(request => 'POST /img/generations');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(error_code => 200);

run_tests();

done_testing();

__DATA__

=== TEST 1: list price per image by quality and size
--- requests
{ code => 200, body => '{"model":"gpt-image-1","quality":"low","size":"1024x1024"}', response_headers => "X-Cost-Cap-Estimate: 0.011\nX-Var-Gpu: 0" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"low","size":"1536x1024"}', response_headers => "X-Cost-Cap-Estimate: 0.016" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"low","size":"1024x1536"}', response_headers => "X-Cost-Cap-Estimate: 0.016" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"high","size":"1024x1024"}', response_headers => "X-Cost-Cap-Estimate: 0.167" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"high","size":"1536x1024"}', response_headers => "X-Cost-Cap-Estimate: 0.25" },
--- redis
costcap:{acme}:day:{day} 460000


=== TEST 2: quality absent, null or auto is the dearest; size auto or absent the dearest
--- requests
{ code => 200, body => '{"model":"gpt-image-1"}', response_headers => "X-Cost-Cap-Estimate: 0.25" },
{ code => 200, body => '{"model":"gpt-image-1","quality":null,"size":null}', response_headers => "X-Cost-Cap-Estimate: 0.25" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"auto","size":"auto"}', response_headers => "X-Cost-Cap-Estimate: 0.25" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"auto","size":"1024x1024"}', response_headers => "X-Cost-Cap-Estimate: 0.167" },
{ code => 200, body => '{"model":"gpt-image-1","quality":"low","size":"auto"}', response_headers => "X-Cost-Cap-Estimate: 0.016" },


=== TEST 3: n multiplies the list price
--- requests
{ code => 200, body => '{"model":"gpt-image-1","quality":"low","size":"1024x1024","n":3}', response_headers => "X-Cost-Cap-Estimate: 0.033" },
{ code => 200, body => '{"model":"gpt-image-1","n":"10"}', response_headers => "X-Cost-Cap-Estimate: 2.5" },


=== TEST 4: width and height are not read where they are off
# OpenAI ignores them: a 1x1 image is still 1536x1024 at most, priced so
--- requests
{ code => 200, body => '{"model":"gpt-image-1","prompt":"x","width":1,"height":1}', response_headers => "X-Cost-Cap-Estimate: 0.25" },
{ code => 200, body => '{"model":"gpt-image-1","width":"junk","width":[],"height":{}}', response_headers => "X-Cost-Cap-Estimate: 0.25" },


=== TEST 5: a value no rule's condition lists: 400 naming the first unmet condition of the last rule
--- requests
{ code => 400, body => '{"model":"gpt-image-1","quality":"ultra"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","quality":"Low"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","quality":5}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","quality":{"a":1}}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","quality":["low"]}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","size":"2048x2048"}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"gpt-image-1","size":"abc"}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"gpt-image-1","quality":"high","size":1024}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"gpt-image-2"}', json => err('unknown_model', 'model') },
--- redis_keys: 0
--- backend_hits: 0


=== TEST 6: a named field read twice or in another case: 400 naming it
--- requests
{ code => 400, body => '{"model":"gpt-image-1","quality":"low","quality":"high"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","Quality":"high"}', json => err('invalid_parameter', 'quality') },
--- redis_keys: 0
--- backend_hits: 0


=== TEST 7: multipart prices as JSON (image edits)
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=b0undary
--- requests
{ code => 200, body => multipart('b0undary', model => 'gpt-image-1', image => { filename => 'a.png', type => 'image/png', content => "\x89PNG\r\n\x1a\n" . ("\0" x 100) }, quality => 'low', size => '1024x1024', n => '2'), response_headers => "X-Cost-Cap-Estimate: 0.022" },
{ code => 200, body => multipart('b0undary', model => 'gpt-image-1', prompt => 'x', size => 'auto'), response_headers => "X-Cost-Cap-Estimate: 0.25" },
{ code => 400, body => multipart('b0undary', model => 'gpt-image-1', quality => 'low', quality => 'high'), json => err('invalid_parameter', 'quality') },
{ code => 400, body => multipart('b0undary', model => 'gpt-image-1', quality => ''), json => err('invalid_parameter', 'quality') },


=== TEST 8: the model from the URI (a capture): per second, by audio
# 0.40 x 8 s default = 3.2; 0.40 x 4 = 1.6; 0.20 x 4 = 0.8; x 2 samples
--- request
POST /models/veo/predict
--- requests
{ code => 200, body => '{"instances":[{"prompt":"a"}]}', response_headers => "X-Cost-Cap-Estimate: 3.2\nX-Var-Model: veo" },
{ code => 200, body => '{"instances":[{"prompt":"a"}],"parameters":{"durationSeconds":4}}', response_headers => "X-Cost-Cap-Estimate: 1.6" },
{ code => 200, body => '{"parameters":{"durationSeconds":4,"generateAudio":false}}', response_headers => "X-Cost-Cap-Estimate: 0.8" },
{ code => 200, body => '{"parameters":{"durationSeconds":"4","generateAudio":"false","sampleCount":2}}', response_headers => "X-Cost-Cap-Estimate: 1.6" },
{ code => 200, body => '{"parameters":{"generateAudio":true,"sampleCount":4}}', response_headers => "X-Cost-Cap-Estimate: 12.8" },
{ code => 200, body => '{"model":"not-read","parameters":null}', response_headers => "X-Cost-Cap-Estimate: 3.2" },
--- redis
costcap:{acme}:day:{day} 23200000


=== TEST 9: the model from the URI: unknown, empty, and errors in the body
--- requests
{ request => 'POST /models/veo-2/predict', code => 400, body => '{}', json => err('unknown_model', 'model') },
{ request => 'POST /models/veo/predict', code => 400, body => '{"parameters":{"generateAudio":"yes"}}', json => err('invalid_parameter', 'parameters.generateAudio') },
{ request => 'POST /models/veo/predict', code => 400, body => '{"parameters":{"generateAudio":1}}', json => err('invalid_parameter', 'parameters.generateAudio') },
{ request => 'POST /models/veo/predict', code => 400, body => '{"parameters":{"durationSeconds":9}}', json => err('invalid_parameter', 'parameters.durationSeconds') },
{ request => 'POST /models/veo/predict', code => 400, body => '{"parameters":{"sampleCount":5}}', json => err('invalid_parameter', 'parameters.sampleCount') },
{ request => 'POST /models/veo/predict', code => 400, body => '{"parameters":{},"parameters":{}}', json => err('invalid_parameter', 'parameters.durationSeconds') },
{ request => 'POST /models/veo/predict', code => 400, body => '{"Parameters":{}}', json => err('invalid_parameter', 'parameters.durationSeconds') },
--- redis_keys: 0
--- backend_hits: 0


=== TEST 10: the model from a header through a map; an empty value is absent
--- request
POST /hdr/videos
--- requests
{ code => 200, headers => "X-Model: sora-2", body => '{"model":"other"}', response_headers => "X-Cost-Cap-Estimate: 0.4" },
{ code => 400, body => '{"model":"sora-2"}', json => err('invalid_parameter', 'model') },


=== TEST 11: per megapixel: 0.025 x 1024 x 768 / 10^6 = 0.0196608 -> 0.019661
--- request
POST /mpx/images
--- requests
{ code => 200, body => '{"model":"flux"}', response_headers => "X-Cost-Cap-Estimate: 0.019661" },
{ code => 200, body => '{"model":"flux","size":"1024x1024","n":4}', response_headers => "X-Cost-Cap-Estimate: 0.104858" },
{ code => 200, body => '{"model":"flux","width":512,"height":512}', response_headers => "X-Cost-Cap-Estimate: 0.006554" },


=== TEST 12: every term summed, then rounded up once
# base 0.0004 GPU-s at 3.60/h = 0.0000004; 0.000001 x 0.4 Mpx = 0.0000004;
# 0.5 per output: 0.5000008 -> 0.500001 (rounding each term: 0.500002)
--- request
POST /mpx/images
--- request_body
{"model":"both","size":"800x500"}
--- response_headers
X-Cost-Cap-Estimate: 0.500001
--- redis
costcap:{acme}:day:{day} 500001


=== TEST 13: conditions on numbers (as written) and booleans
# "True": the last rule whose pattern matched is "when=n:-": param n
--- request
POST /num/x
--- requests
{ code => 200, body => '{"model":"m","n":1,"hd":true}', response_headers => "X-Cost-Cap-Estimate: 1" },
{ code => 200, body => '{"model":"m","n":"2","hd":"true"}', response_headers => "X-Cost-Cap-Estimate: 2" },
{ code => 200, body => '{"model":"m","n":1,"hd":false}', response_headers => "X-Cost-Cap-Estimate: 0.5" },
{ code => 200, body => '{"model":"m","n":1}', response_headers => "X-Cost-Cap-Estimate: 0.5" },
{ code => 200, body => '{"model":"m"}', response_headers => "X-Cost-Cap-Estimate: 0.25" },
{ code => 400, body => '{"model":"m","n":1.0}', json => err('invalid_parameter', 'n') },
{ code => 400, body => '{"model":"m","n":3}', json => err('invalid_parameter', 'n') },
{ code => 400, body => '{"model":"m","n":1,"hd":"True"}', json => err('invalid_parameter', 'n') },


=== TEST 14: cost_cap_field per name: the location's model path, the server's quality path
--- request
POST /inherit/x
--- requests
{ code => 200, body => '{"input":{"model":"m"},"tier":"a"}', response_headers => "X-Cost-Cap-Estimate: 1" },
{ code => 200, body => '{"input":{"model":"m"},"quality":"a"}', response_headers => "X-Cost-Cap-Estimate: 2" },
{ code => 400, body => '{"model":"m"}', json => err('invalid_parameter', 'input.model') },


=== TEST 15: nginx -t: a when= field nobody declares
--- config
location / {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_model gpt-image-1 when=quality:low usd_per_output=0.011;
}
--- nginx_t_fail
cost_cap_model
"quality"
"gpt-image-1"


=== TEST 16: nginx -t: a field declared in another location does not count
--- config
cost_cap_model gpt-image-1 when=quality:low usd_per_output=0.011;
location /a/ {
    cost_cap_field quality quality;
}
location /b/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
}
--- nginx_t_fail
unknown field "quality"


=== TEST 17: nginx -t: rules and fields declared at other levels are fine
--- config
cost_cap_model gpt-image-1 when=quality:low usd_per_output=0.011;
cost_cap_model gpt-image-1 when=quality:- when=width:- when=steps:- usd_per_output=0.2;
location /a/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_field quality $arg_quality;
    cost_cap_field width off;
}
--- nginx_t_ok


=== TEST 18: nginx -t: a rule with no price
--- config
location / { cost_cap_model m base=1 fps=24; }
--- nginx_t_fail
cost_cap_model
"m"
per_mpx_frame
usd_per_output


=== TEST 19: nginx -t: malformed conditions
--- config
location / { cost_cap_model m when=quality usd_per_output=1; }
--- nginx_t_fail
"when=quality"
cost_cap_model


=== TEST 20: nginx -t: an empty value in a condition
--- config
location / { cost_cap_model m when=quality:low| usd_per_output=1; }
--- nginx_t_fail
"when=quality:low|"


=== TEST 21: nginx -t: a bad field name in a condition
--- config
location / { cost_cap_model m when=qu.ality:low usd_per_output=1; }
--- nginx_t_fail
"when=qu.ality:low"


=== TEST 22: nginx -t: a negative list price
--- config
location / { cost_cap_model m usd_per_output=-1; }
--- nginx_t_fail
"usd_per_output=-1"


=== TEST 23: nginx -t: bad cost_cap_field paths and duplicates
--- config
location / {
    cost_cap_field quality a..b;
}
--- nginx_t_fail
cost_cap_field
"a..b"


=== TEST 24: nginx -t: cost_cap_field twice for one name at one level
--- config
location / {
    cost_cap_field quality quality;
    cost_cap_field quality tier;
}
--- nginx_t_fail
"cost_cap_field" "quality" is duplicate


=== TEST 25: nginx -t: a path segment over 64 bytes
--- config_eval
"location / { cost_cap_field quality a." . ('b' x 65) . "; }"
--- nginx_t_fail
cost_cap_field
"quality"


=== TEST 26: nginx -t: the model cannot be off
--- config
location / { cost_cap_field model off; }
--- nginx_t_fail
"cost_cap_field" "model" cannot be "off"

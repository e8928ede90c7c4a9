# conf/presets: every row of every price list, to the micro-USD, as a real
# client sends it: JSON, and multipart/form-data where the API takes it
# (OpenAI's image edits and videos).  The expected prices are the
# providers' list prices in the presets' comments, times n, rounded up.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

add_macro(TEST_NGINX_PRESETS => repo_root() . '/conf/presets');

add_default(http_config => <<'END');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
include $TEST_NGINX_PRESETS/vertex-veo.http.conf;
include $TEST_NGINX_PRESETS/fal.http.conf;
END

add_default(config => <<'END');
cost_cap_tenant $http_x_tenant;
client_max_body_size 1m;

location ~ ^/v1/images/(generations|edits)$ {
    cost_cap on;
    include $TEST_NGINX_PRESETS/openai-images.conf;
    proxy_pass http://backend;
}

location = /v1/videos {
    cost_cap on;
    include $TEST_NGINX_PRESETS/openai.conf;
    proxy_pass http://backend;
}

location ~ :predictLongRunning$ {
    cost_cap on;
    include $TEST_NGINX_PRESETS/vertex-veo.conf;
    proxy_pass http://backend;
}

location /fal-ai/ {
    cost_cap on;
    include $TEST_NGINX_PRESETS/fal.conf;
    proxy_pass http://backend;
}

location = /v1/open {
    cost_cap on;
    include $TEST_NGINX_PRESETS/open-models.conf;
    proxy_pass http://backend;
}
END

add_default(request => 'POST /v1/images/generations');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(error_code => 200);


# micro-USD as X-Cost-Cap-Estimate writes it
sub main::usd {
    my $m = shift;
    my $s = sprintf '%d.%06d', int($m / 1e6), $m % 1e6;
    $s =~ s/\.?0+$// if $s =~ /\./;
    return $s;
}

sub main::json_body {
    my %f = @_;
    return '{' . join(',', map {
        my $v = $f{$_};
        "\"$_\":" . ($v =~ /^(-?\d+|true|false|null|\{.*\})$/ ? $v : "\"$v\"")
    } sort keys %f) . '}';
}

sub main::mp {
    my %f = @_;
    return multipart('Xb0undary', image => { filename => 'in.png',
        type => 'image/png', content => "\x89PNG\r\n\x1a\n" . ("\0" x 64) },
        map { $_ => $f{$_} } sort keys %f);
}

my $MP = "X-Tenant: acme\nContent-Type: multipart/form-data; boundary=Xb0undary";


# ---- openai-images.conf: model => { quality => [small, big] } (micro-USD)

my %IMG = (
    'gpt-image-1' => { small => '1024x1024', big => [qw(1024x1536 1536x1024)],
                       q => { low => [11000, 16000], medium => [42000, 63000],
                              high => [167000, 250000] }, dear => 'high' },
    'gpt-image-1-mini' => { small => '1024x1024',
                       big => [qw(1024x1536 1536x1024)],
                       q => { low => [5000, 6000], medium => [11000, 15000],
                              high => [36000, 52000] }, dear => 'high' },
    'dall-e-3' => { small => '1024x1024', big => [qw(1024x1792 1792x1024)],
                    q => { standard => [40000, 80000], hd => [80000, 120000] },
                    dear => 'hd' },
);

sub main::images {
    my ($how) = @_;
    my @r;
    for my $model (sort keys %IMG) {
        my $m = $IMG{$model};
        for my $q ((sort keys %{ $m->{q} }), 'auto', undef) {
            my $price = $m->{q}{ defined $q && $q ne 'auto' ? $q : $m->{dear} };
            for my $size ($m->{small}, @{ $m->{big} }, 'auto', undef) {
                my $p = $price->[defined $size && $size eq $m->{small} ? 0 : 1];
                for my $n (1, 3) {
                    my %f = (model => $model, prompt => 'a red fox');
                    $f{quality} = $q if defined $q;
                    $f{size} = $size if defined $size;
                    $f{n} = $n if $n > 1;
                    my $label = join ' ', $model, $q // '-', $size // '-', "n=$n";
                    push @r, $how eq 'json'
                        ? { code => 200, body => main::json_body(%f),
                            label => "$label json",
                            response_headers => 'X-Cost-Cap-Estimate: '
                                                . main::usd($p * $n) }
                        : { code => 200, request => 'POST /v1/images/edits',
                            headers => $MP, body => main::mp(%f),
                            label => "$label multipart",
                            response_headers => 'X-Cost-Cap-Estimate: '
                                                . main::usd($p * $n) };
                }
            }
        }
    }
    return @r;
}


# ---- vertex-veo.conf: (resolution, audio) => micro-USD per second

sub main::veo {
    my @r;
    my %ps = ('720p' => [400000, 200000], '1080p' => [400000, 200000],
              '4k' => [600000, 600000]);
    for my $model (qw(veo-3.1-generate-001 veo-3.1-generate-preview)) {
        for my $res ('720p', '1080p', '4k', undef) {
            for my $audio ('true', 'false', undef) {
                my $per = $ps{ $res // '720p' }[($audio // 'true') eq 'true' ? 0 : 1];
                for my $secs (4, 6, 8, undef) {
                    for my $count (1, 4) {
                        my @p;
                        push @p, "\"durationSeconds\":$secs" if defined $secs;
                        push @p, "\"sampleCount\":$count" if $count > 1;
                        push @p, "\"resolution\":\"$res\"" if defined $res;
                        push @p, "\"generateAudio\":$audio" if defined $audio;
                        my $body = '{"instances":[{"prompt":"a red fox"}],'
                                 . '"parameters":{' . join(',', @p) . '}}';
                        push @r, {
                            code => 200, body => $body,
                            request => "POST /v1/projects/p1/locations/us-central1/publishers/google/models/$model:predictLongRunning",
                            label => join(' ', $model, $res // '-', $audio // '-', $secs // '-', $count),
                            response_headers => 'X-Cost-Cap-Estimate: '
                                . main::usd($per * ($secs // 8) * $count),
                        };
                    }
                }
            }
        }
    }
    return @r;
}


# ---- fal.conf: image_size => pixels

sub main::fal {
    my @r;
    my %px = (square_hd => 1024 * 1024, square => 512 * 512,
              portrait_4_3 => 768 * 1024, portrait_16_9 => 576 * 1024,
              landscape_4_3 => 1024 * 768, landscape_16_9 => 1024 * 576);
    my @sizes = ((map { [$_, "\"$_\"", $px{$_}] } sort keys %px),
                 [absent => undef, $px{landscape_4_3}],
                 ['1024x1024 object', '{"width":1024,"height":1024}', 1024 * 1024],
                 ['1920x1080 object', '{"height":1080,"width":1920}', 1920 * 1080]);
    for my $s (@sizes) {
        for my $n (undef, 1, 2, 4) {
            my $body = '{"prompt":"a red fox"'
                     . (defined $s->[1] ? ",\"image_size\":$s->[1]" : '')
                     . (defined $n ? ",\"num_images\":$n" : '') . '}';
            # 0.025 USD per 10^6 pixels: 25000 micro-USD x px / 10^6, up
            my $num = 25000 * $s->[2] * ($n // 1);
            my $m = int($num / 1e6) + ($num % 1e6 ? 1 : 0);
            push @r, { code => 200, request => 'POST /fal-ai/flux/dev',
                       body => $body, label => "$s->[0] x" . ($n // '-'),
                       response_headers => 'X-Cost-Cap-Estimate: ' . main::usd($m) };
        }
    }
    return @r;
}


# ---- openai.conf (the retired Videos API): model, size => micro-USD/s

sub main::sora {
    my ($how) = @_;
    my @r;
    my @rows = (['sora-2', [qw(720x1280 1280x720), undef], 100000],
                ['sora-2-pro', [qw(720x1280 1280x720), undef], 300000],
                ['sora-2-pro', [qw(1024x1792 1792x1024)], 500000]);
    for my $row (@rows) {
        my ($model, $sizes, $per) = @$row;
        for my $size (@$sizes) {
            for my $secs ('4', '8', '12', undef) {
                my %f = (model => $model, prompt => 'a red fox');
                $f{size} = $size if defined $size;
                $f{seconds} = $secs if defined $secs;
                my $want = 'X-Cost-Cap-Estimate: ' . main::usd($per * ($secs // 4));
                my $label = join ' ', $model, $size // '-', $secs // '-', $how;
                push @r, $how eq 'json'
                    ? { code => 200, request => 'POST /v1/videos',
                        body => main::json_body(%f), label => $label,
                        response_headers => $want }
                    : { code => 200, request => 'POST /v1/videos',
                        headers => $MP, body => main::mp(%f), label => $label,
                        response_headers => $want };
            }
        }
    }
    return @r;
}

run_tests();

done_testing();

__DATA__

=== TEST 1: openai-images.conf: every model, quality and size, JSON (generations)
--- requests
main::images('json')


=== TEST 2: openai-images.conf: the same as multipart (edits, with an image file)
--- requests
main::images('multipart')


=== TEST 3: openai-images.conf: width and height are not read; nothing else makes it cheaper
--- requests
{ code => 200, body => '{"model":"gpt-image-1","prompt":"x","width":1,"height":1}', response_headers => 'X-Cost-Cap-Estimate: 0.25' },
{ code => 200, body => '{"model":"gpt-image-1","prompt":"x","num_inference_steps":1,"seconds":"1","num_frames":1}', response_headers => 'X-Cost-Cap-Estimate: 0.25' },
{ code => 200, body => '{"model":"gpt-image-1-mini","quality":"low","size":"1024x1024","response_format":"b64_json","output_format":"webp","background":"transparent"}', response_headers => 'X-Cost-Cap-Estimate: 0.005' },


=== TEST 4: openai-images.conf: what the models do not take is refused, naming it
--- requests
{ code => 400, body => '{"model":"gpt-image-1","quality":"ultra"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","quality":"standard"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"gpt-image-1","size":"1792x1024"}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"gpt-image-1","size":"256x256"}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"dall-e-3","quality":"high"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"dall-e-3","size":"1536x1024"}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"gpt-image-1","n":0}', json => err('invalid_parameter', 'n') },
{ code => 400, body => '{"model":"gpt-image-1","n":1,"n":10}', json => err('invalid_parameter', 'n') },
{ code => 400, body => '{"model":"gpt-image-1","quality":"low","Quality":"high"}', json => err('invalid_parameter', 'quality') },
{ code => 400, body => '{"model":"dall-e-2"}', json => err('unknown_model', 'model') },
--- backend_hits: 0


=== TEST 5: vertex-veo.conf: every resolution, audio, duration and count (the model from the URL)
--- requests
main::veo()


=== TEST 6: vertex-veo.conf: the Gemini API's URL too; the body's model is not read
--- requests
{ code => 200, request => 'POST /v1beta/models/veo-3.1-generate-preview:predictLongRunning', body => '{"instances":[{"prompt":"x"}],"parameters":{"durationSeconds":6,"generateAudio":false}}', response_headers => 'X-Cost-Cap-Estimate: 1.2' },
{ code => 200, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001:predictLongRunning', body => '{"model":"cheap","parameters":{"durationSeconds":"4"}}', response_headers => 'X-Cost-Cap-Estimate: 1.6' },


=== TEST 7: vertex-veo.conf: unknown models and values are refused
--- requests
{ code => 400, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-fast-generate-001:predictLongRunning', body => '{}', json => err('unknown_model', 'model') },
{ code => 400, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001:predictLongRunning', body => '{"parameters":{"resolution":"8k"}}', json => err('invalid_parameter', 'parameters.resolution') },
{ code => 400, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001:predictLongRunning', body => '{"parameters":{"generateAudio":"maybe"}}', json => err('invalid_parameter', 'parameters.generateAudio') },
{ code => 400, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001:predictLongRunning', body => '{"parameters":{"durationSeconds":10}}', json => err('invalid_parameter', 'parameters.durationSeconds') },
{ code => 400, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001:predictLongRunning', body => '{"parameters":{"sampleCount":5}}', json => err('invalid_parameter', 'parameters.sampleCount') },
{ code => 400, request => 'POST /v1/projects/p/locations/l/publishers/google/models/veo-3.1-generate-001:predictLongRunning', body => '{"parameters":{"sampleCount":1,"sampleCount":4}}', json => err('invalid_parameter', 'parameters.sampleCount') },
--- backend_hits: 0


=== TEST 8: fal.conf: every image_size, {width, height}, num_images (the model from the URL)
--- requests
main::fal()


=== TEST 9: fal.conf: what fal does not take is refused
--- request
POST /fal-ai/flux/dev
--- requests
{ code => 400, body => '{"image_size":"huge"}', json => err('invalid_parameter', 'image_size.width') },
{ code => 400, body => '{"image_size":{"width":1024}}', json => err('invalid_parameter', 'image_size.height') },
{ code => 400, body => '{"image_size":{"width":1024.5,"height":1024}}', json => err('invalid_parameter', 'image_size.width') },
{ code => 400, body => '{"num_images":5}', json => err('invalid_parameter', 'num_images') },
{ code => 400, request => 'POST /fal-ai/flux/schnell', body => '{}', json => err('unknown_model', 'model') },
--- backend_hits: 0


=== TEST 10: openai.conf (retired Videos API): every model, size and duration, JSON
--- requests
main::sora('json')


=== TEST 11: openai.conf: the same as multipart (with an input_reference file)
--- requests
main::sora('multipart')


=== TEST 12: openai.conf: sizes the model does not take
--- request
POST /v1/videos
--- requests
{ code => 400, body => '{"model":"sora-2","size":"1792x1024"}', json => err('invalid_parameter', 'size') },
{ code => 400, body => '{"model":"sora-2","seconds":"16"}', json => err('invalid_parameter', 'seconds') },
--- backend_hits: 0


=== TEST 13: open-models.conf kept: GPU time at cost_cap_gpu_price
# FLUX.1-dev 1024x1024, 28 steps: 0.3 + 3.25 x 1.048576 = 3.707872 GPU-s
# x 3.50 / 3600 = 0.0036048755... -> 0.003605; 56 steps: 0.3 + 6.815744
# = 7.115744 GPU-s -> 0.0069180844... -> 0.006919; Wan2.1 1280x720, 5 s x
# 16 fps, 50 steps: 10 + 25.46 x 0.9216 x 80 = 1887.11488 GPU-s ->
# 1.8346950222... -> 1.834696
--- request
POST /v1/open
--- requests
{ code => 200, body => '{"model":"black-forest-labs/FLUX.1-dev"}', response_headers => 'X-Cost-Cap-Estimate: 0.003605' },
{ code => 200, body => '{"model":"flux.1-dev","num_inference_steps":56}', response_headers => 'X-Cost-Cap-Estimate: 0.006919' },
{ code => 200, body => '{"model":"Wan-AI/Wan2.1-T2V-14B","size":"1280x720","seconds":5}', response_headers => 'X-Cost-Cap-Estimate: 1.834696' },

# SPEC section 10: cost_cap_idempotency.  A priced request whose key this
# tenant already used within ttl is admitted uncharged (the first
# request's estimate); the same key at another price is 409
# idempotency_key_reused; a refund of the first request frees the key; a
# retry admitted uncharged is not refunded again.  The key is part of a
# Redis key name: 1-128 characters of A-Z a-z 0-9 . _ ~ : @ + = / -, else
# 400 invalid_parameter (param idempotency_key).
#
# sora-2 at its defaults costs 77415 micro-USD; at seconds=8, 154829.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More;

my $CONF = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_parent $http_x_org;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_limit 10 per=day;
cost_cap_idempotency $http_idempotency_key;

location /v1/ {
    cost_cap on;
    proxy_pass http://backend;
}
location /short/ {
    cost_cap on;
    cost_cap_idempotency $http_idempotency_key ttl=2s;
    proxy_pass http://backend/v1/;
}
location /none/ {
    cost_cap on;
    cost_cap_idempotency "";
    proxy_pass http://backend/v1/;
}
location = /v1/videos/create {
    cost_cap on;
    cost_cap_job create id=id;
    proxy_pass http://backend;
}
location ~ ^/v1/videos/status/(?<video>[^/]+)$ {
    cost_cap_job poll id=$video status=status failed=failed succeeded=completed;
    proxy_pass http://backend;
}
END

my $BACKEND = <<'END';
location = /v1/videos/create {
    return 200 '{"id":"video_${arg_fate}_$http_idempotency_key","status":"queued"}';
}
location ~ ^/v1/videos/status/(?<v>video_failed_[^/]*)$ {
    return 200 '{"id":"$v","status":"failed"}';
}
location / {
    if ($arg_status = 502) {
        return 502 '{"error":{}}';
    }
    if ($arg_status = 500) {
        return 500 '{"error":{}}';
    }
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

start_redis();
my $n = start_nginx(workers => 2,
                    http_config => 'cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s connect_timeout=2s;',
                    config => $CONF, backend_config => $BACKEND);

my %w = window_info();
sub day { redis()->cmd('GET', "costcap:{$_[0]}:day:$w{day}") // 0 }
sub tday { redis()->cmd('GET', "costcap:{$_[0]}:$_[1]:day:$w{day}") // 0 }

sub post {
    my ($uri, $tenant, $key, $body, %o) = @_;
    my $h = "X-Tenant: $tenant\nContent-Type: application/json";
    $h .= "\nIdempotency-Key: $key" if defined $key;
    $h .= "\nX-Org: $o{org}" if $o{org};
    return $n->request(method => 'POST', uri => $uri, headers => $h,
                       body => $body // '{"model":"sora-2"}', timeout => 10);
}

my $EIGHT = '{"model":"sora-2","seconds":8}';


# -------------------------------------------------------------------------
# the same key sent 5 times at once: charged once, all admitted

{
    my @s = map {
        http_send(port => $n->port, method => 'POST', uri => '/v1/videos',
                  headers => "X-Tenant: acme\nContent-Type: application/json\n"
                           . 'Idempotency-Key: retry-7f3a',
                  body => '{"model":"sora-2"}')
    } 1 .. 5;
    my @r = map { http_read($_, 10) } @s;
    is_deeply([map { $_->{status} } @r], [(200) x 5],
              'five concurrent requests with one key: all admitted');
    is_deeply([map { header_value($_, 'X-Cost-Cap-Estimate') } @r],
              [('0.077415') x 5], '... each with the estimate');
    is(day('acme'), 77415, '... charged once');
    is(redis()->cmd('GET', 'costcap:{acme}:idem:retry-7f3a') =~ s/:.*//r,
       77415, 'the key holds the estimate it was charged at');
    my $ttl = redis()->cmd('TTL', 'costcap:{acme}:idem:retry-7f3a');
    ok($ttl > 86400 - 10 && $ttl <= 86400, "the key lives 24h ($ttl s)");

    my $r = post('/v1/videos', 'acme', 'retry-7f3a');
    is($r->{status}, 200, 'a sixth, later: admitted');
    is(day('acme'), 77415, '... not charged');

    $r = post('/v1/videos', 'globex', 'retry-7f3a');
    is($r->{status}, 200, 'the same key from another tenant: its own');
    is(day('globex'), 77415, '... charged to it');
}


# -------------------------------------------------------------------------
# the same key at another price: 409, nothing charged

{
    my $r = post('/v1/videos', 'acme', 'retry-7f3a', $EIGHT);
    is($r->{status}, 409, 'another price under the key: 409');
    json_matches($r->{body}, err('idempotency_key_reused', undef),
                 '... idempotency_key_reused');
    is(day('acme'), 77415, '... nothing charged');
}


# -------------------------------------------------------------------------
# a refunded first request frees its key; a retry admitted uncharged is
# not refunded again

{
    my $r = post('/v1/videos?status=502', 'initech', 'k-refund');
    is($r->{status}, 502, 'first request: 502 from the backend');
    ok(poll_until(sub { day('initech') == 0 }, 5), '... refunded');
    ok(poll_until(sub {
           !redis()->cmd('EXISTS', 'costcap:{initech}:idem:k-refund') }, 5),
       '... and its key freed');

    $r = post('/v1/videos', 'initech', 'k-refund', $EIGHT);
    is($r->{status}, 200, 'the key again, at another price: admitted');
    is(day('initech'), 154829, '... and charged');

    $r = post('/v1/videos?status=500', 'initech', 'k-refund', $EIGHT);
    is($r->{status}, 500, 'a retry, uncharged, fails at the backend');
    ok(!poll_until(sub { day('initech') != 154829 }, 0.5),
       '... and is not refunded: the first stands');
    ok(redis()->cmd('EXISTS', 'costcap:{initech}:idem:k-refund'),
       '... and the key stays');
}


# -------------------------------------------------------------------------
# what a key may be

{
    my $k128 = 'a' x 100 . ':@+=/-._~' . 'Z' x 19;
    is(length $k128, 128, '128 characters');
    my $r = post('/v1/videos', 'umbrella', $k128);
    is($r->{status}, 200, 'a key of 128 characters of the safe set');
    ok(redis()->cmd('EXISTS', "costcap:{umbrella}:idem:$k128"), '... used');

    for my $bad ('a' x 129, 'has space', "uni\xc3\xa9", 'semi;colon',
                 'br{ace}', 'star*') {
        my $before = day('umbrella');
        $r = post('/v1/videos', 'umbrella', $bad);
        is($r->{status}, 400, "key '" . substr($bad, 0, 12) . "': 400");
        json_matches($r->{body}, err('invalid_parameter', 'idempotency_key'),
                     '... invalid_parameter, param idempotency_key');
        is(day('umbrella'), $before, '... nothing charged');
    }

    $r = post('/v1/videos', 'umbrella', '');
    is($r->{status}, 200, 'an empty key: none');
    $r = post('/none/videos', 'umbrella', 'k-none');
    is($r->{status}, 200, 'cost_cap_idempotency "" turns it off');
    $r = post('/none/videos', 'umbrella', 'k-none');
    is(day('umbrella'), 4 * 77415, '... each request charged');
    ok(!redis()->cmd('EXISTS', 'costcap:{umbrella}:idem:k-none'),
       '... and no key written');
}


# -------------------------------------------------------------------------
# under a parent: the tenant's key, in the parent's slot

{
    my $r = post('/v1/videos', 'team-a', 'k-org', undef, org => 'org');
    is($r->{status}, 200, 'a tenant under a parent');
    ok(redis()->cmd('EXISTS', 'costcap:{org}:team-a:idem:k-org'),
       '... its key is costcap:{PARENT}:TENANT:idem:KEY');
    $r = post('/v1/videos', 'team-b', 'k-org', undef, org => 'org');
    is($r->{status}, 200, 'another tenant of the parent, the same key');
    is(tday('org', 'team-b'), 77415, '... charged: keys are per tenant');
    $r = post('/v1/videos', 'team-a', 'k-org', undef, org => 'org');
    is($r->{status}, 200, 'the first tenant again');
    is(tday('org', 'team-a'), 77415, '... not charged');
}


# -------------------------------------------------------------------------
# ttl

{
    my $r = post('/short/videos', 'hooli', 'k-ttl');
    is($r->{status}, 200, 'ttl=2s: first');
    my $ttl = redis()->cmd('TTL', 'costcap:{hooli}:idem:k-ttl');
    ok($ttl >= 1 && $ttl <= 2, "... the key lives 2 s ($ttl)");
    post('/short/videos', 'hooli', 'k-ttl');
    is(day('hooli'), 77415, '... a retry within it: not charged');
    ok(poll_until(sub {
           !redis()->cmd('EXISTS', 'costcap:{hooli}:idem:k-ttl') }, 5),
       '... the key expires');
    post('/short/videos', 'hooli', 'k-ttl');
    is(day('hooli'), 2 * 77415, '... a retry after it: charged');
}


# -------------------------------------------------------------------------
# a job created twice with one key: one hold; its failure frees the key

{
    my $h = "X-Tenant: pied\nContent-Type: application/json\n"
          . 'Idempotency-Key: job-1';
    my @s = map {
        http_send(port => $n->port, method => 'POST',
                  uri => '/v1/videos/create?fate=failed', headers => $h,
                  body => '{"model":"sora-2"}')
    } 1 .. 3;
    my @r = map { http_read($_, 10) } @s;
    is_deeply([map { $_->{status} } @r], [200, 200, 200],
              'a job create sent 3 times with one key');
    is(day('pied'), 77415, '... charged once');
    my $id = 'video_failed_job-1';
    ok(poll_until(sub {
           redis()->cmd('HGET', "costcap:{pied}:job:$id", 'amount') }, 5),
       '... one hold');
    is(redis()->cmd('HGET', "costcap:{pied}:job:$id", 'idempotency_key'),
       'costcap:{pied}:idem:job-1', '... which knows its idempotency key');

    $r[0] = $n->request(method => 'GET', uri => "/v1/videos/status/$id",
                        headers => 'X-Tenant: pied', timeout => 5);
    like($r[0]{body}, qr/failed/, 'the job fails');
    ok(poll_until(sub { day('pied') == 0 }, 5), '... refunded');
    ok(!redis()->cmd('EXISTS', 'costcap:{pied}:idem:job-1'),
       '... and its key freed');
    $r[0] = $n->request(method => 'POST', uri => '/v1/videos/create?fate=ok',
                        headers => $h, body => '{"model":"sora-2"}');
    is($r[0]{status}, 200, 'created again with the key');
    is(day('pied'), 77415, '... charged again');
}

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[emerg\]|exited on signal/,
       'no crash, no alert');

done_testing();

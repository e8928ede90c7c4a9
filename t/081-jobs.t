# SPEC section 10: asynchronous jobs.  A create call's reservation becomes a
# hold (costcap:{TAG}:[TENANT:]job:ID) when its answer names the job; the
# job's outcome, read from a status call's answer or from the backend's
# callback, settles it once: a failed job is refunded, a succeeded one
# kept, or adjusted to its actual GPU-seconds.
#
# Three stand-in backends, as nginx locations with fixed rules: the job id
# carries its fate (ok, failed, run), which the status calls answer.
#   OpenAI videos   POST /v1/videos -> {"id": "video_FATE_N"};
#                   GET /v1/videos/ID -> status queued|completed|failed
#   Replicate       POST /v1/predictions -> {"id": "rep_FATE_N"}; the test
#                   plays Replicate's webhook (metrics.predict_time)
#   Vertex AI       POST .../models/M:predictLongRunning -> {"name": ".../
#                   operations/op_FATE_N"}; POST .../M:fetchPredictOperation
#                   -> {"done": true, "error": {...}} or {"done": true,
#                   "response": {...}} or {"done": false}
#
# 300 jobs of five tenants (one under a parent), a third failing (102): after the
# status calls and callbacks every counter holds the cost of the succeeded
# jobs to the micro-dollar; replays change nothing; another tenant's status
# call of a job settles nothing.

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
cost_cap_model ~^veo per_mpx_frame=0.5 fps=24 default_size=1280x720 default_seconds=8 max_seconds=8;
cost_cap_limit 1000 per=day;
cost_cap_limit 10000 per=month;
cost_cap_parent_limit 5000 per=day;

location = /metrics {
    cost_cap_metrics;
}

location = /v1/videos {
    cost_cap on;
    cost_cap_job create id=id;
    proxy_pass http://backend;
}
location ~ ^/v1/videos/(?<video>[^/]+)$ {
    cost_cap_job poll id=$video status=status failed=failed succeeded=completed;
    proxy_pass http://backend;
}

location = /v1/predictions {
    cost_cap on;
    cost_cap_field model version;
    cost_cap_field seconds input.duration;
    cost_cap_job create id=id;
    proxy_pass http://backend;
}
location = /hooks/replicate {
    cost_cap_job webhook id=id status=status failed=failed|canceled succeeded=succeeded actual=metrics.predict_time;
}

location ~ ^/v1/models/(?<vmodel>[^/:]+):predictLongRunning$ {
    cost_cap on;
    cost_cap_field model $vmodel;
    cost_cap_field seconds parameters.durationSeconds;
    cost_cap_job create id=name;
    proxy_pass http://backend;
}
location ~ ^/v1/models/[^/:]+:fetchPredictOperation$ {
    cost_cap_job poll id=name status=done failed=error:* succeeded=true;
    proxy_pass http://backend;
}
END

my $BACKEND = <<'END';
location = /v1/videos {
    return 200 '{"id":"video_${arg_fate}_$request_id","object":"video","status":"queued"}';
}
location ~ ^/v1/videos/(?<v>[^/]+)$ {
    if ($arg_state = running) {
        return 200 '{"id":"$v","status":"in_progress","progress":40}';
    }
    if ($v ~ ^video_failed_) {
        return 200 '{"id":"$v","status":"failed","error":{"code":"moderation_blocked"}}';
    }
    if ($v ~ ^video_ok_) {
        return 200 '{"id":"$v","status":"completed","progress":100}';
    }
    return 200 '{"id":"$v","status":"queued","progress":0}';
}
location = /v1/predictions {
    return 201 '{"id":"rep_${arg_fate}_$request_id","status":"starting","urls":{"get":"x"}}';
}
location ~ ^/v1/models/(?<m>[^/:]+):predictLongRunning$ {
    return 200 '{"name":"projects/p/locations/us-central1/publishers/google/models/$m/operations/op_${arg_fate}_$request_id"}';
}
location ~ :fetchPredictOperation$ {
    if ($http_x_state = running) {
        return 200 '{"name":"$http_x_op","done":false,"metadata":{}}';
    }
    if ($http_x_op ~ /op_failed_) {
        return 200 '{"name":"$http_x_op","done":true,"error":{"code":3,"message":"prompt rejected"}}';
    }
    if ($http_x_op ~ /op_ok_) {
        return 200 '{"name":"$http_x_op","done":true,"response":{"videos":[{"gcsUri":"gs://b/v.mp4"}]}}';
    }
    return 200 '{"name":"$http_x_op","done":false}';
}
END

my @TENANTS = (['acme'], ['globex'], ['initech'], ['umbrella'],
               ['team-a', 'org']);

start_redis();
my $n = start_nginx(workers => 2,
                    http_config => 'cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s connect_timeout=2s;',
                    config => $CONF, backend_config => $BACKEND);

sub metrics {
    my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    my %m;
    for (split /\n/, $res->{body} // '') {
        $m{$1} = $2 if /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/;
    }
    return \%m;
}

sub headers {
    my ($t, @more) = @_;
    my $h = "X-Tenant: $t->[0]\nContent-Type: application/json";
    $h .= "\nX-Org: $t->[1]" if $t->[1];
    $h .= "\n$_" for @more;
    return $h;
}

# USD decimal -> micro-USD, exactly
sub micro {
    my ($i, $f) = $_[0] =~ /^(\d+)(?:\.(\d{1,6}))?$/ or return undef;
    return $i * 1000000 + ($f // '') . ('0' x (6 - length($f // '')));
}

# ceil(gpu_us * price / 3600e6), in integers
sub gpu_cost {
    my ($gpu_us, $price) = @_;
    use integer;
    return ($gpu_us * $price + 3600000000 - 1) / 3600000000;
}

# requests in batches of 20 at once: [method, uri, headers, body]
sub batch {
    my @req = @_;
    my @res;
    while (my @b = splice @req, 0, 20) {
        my @s = map { http_send(port => $n->port, method => $_->[0],
                                uri => $_->[1], headers => $_->[2],
                                body => $_->[3]) } @b;
        push @res, map { http_read($_, 15) } @s;
    }
    return @res;
}

# the counters of a tenant (or a parent): day and month, over all periods
sub counters {
    my ($t) = @_;
    my $prefix = $t->[1] ? "costcap:{$t->[1]}:$t->[0]:" : "costcap:{$t->[0]}:";
    my %sum = (day => 0, month => 0);
    for my $w (qw(day month)) {
        my $keys = redis()->cmd('KEYS', "$prefix$w:*");
        $sum{$w} += redis()->cmd('GET', $_) // 0 for @$keys;
    }
    return \%sum;
}

sub holds {
    my $keys = redis()->cmd('KEYS', 'costcap:{*job:*');
    return scalar grep { redis()->cmd('HEXISTS', $_, 'reservation') } @$keys;
}


# -------------------------------------------------------------------------
# 300 create calls

my (@jobs, @req);
for my $i (0 .. 299) {
    my $shape = (qw(openai replicate vertex))[$i % 3];
    my $fate = int($i / 3) % 3 == 0 ? 'failed' : 'ok';
    my $t = $TENANTS[$i % @TENANTS];
    my $seconds = 4 + 4 * (int($i / 9) % 3);
    $seconds = 8 if $shape eq 'vertex';
    my $job = { i => $i, shape => $shape, fate => $fate, tenant => $t,
                seconds => $seconds };
    push @jobs, $job;

    if ($shape eq 'openai') {
        push @req, ['POST', "/v1/videos?fate=$fate", headers($t),
                    qq({"model":"sora-2","prompt":"p$i","seconds":"$seconds"})];
    } elsif ($shape eq 'replicate') {
        push @req, ['POST', "/v1/predictions?fate=$fate", headers($t),
                    qq({"version":"sora-2","input":{"duration":$seconds}})];
    } else {
        push @req, ['POST', "/v1/models/veo-3:predictLongRunning?fate=$fate",
                    headers($t),
                    qq({"instances":[{"prompt":"p$i"}],"parameters":{"durationSeconds":$seconds}})];
    }
}

my @res = batch(@req);
my $bad = 0;
for my $k (0 .. $#jobs) {
    my ($j, $r) = ($jobs[$k], $res[$k]);
    my $want = $j->{shape} eq 'replicate' ? 201 : 200;
    my $body = json_decode($r->{body} // '') // {};
    $j->{id} = $j->{shape} eq 'vertex' ? $body->{name} : $body->{id};
    $j->{estimate} = micro(header_value($r, 'X-Cost-Cap-Estimate') // '');
    unless (($r->{status} // 0) == $want && $j->{id} && $j->{estimate}) {
        $bad++;
        diag("create $k: " . ($r->{status} // $r->{error}) . ' '
             . ($r->{body} // ''));
    }
}
is($bad, 0, '300 create calls admitted, each naming its job');

ok(poll_until(sub { (metrics()->{cost_cap_jobs_opened_total} // 0) == 300 },
              10),
   '300 holds made') or diag(explain(metrics()));
is(holds(), 300, '300 hold keys');
is(redis()->cmd('ZCARD', 'costcap:jobs:expiry'), 300,
   '300 holds in the expiry index');

my $all = 0;
$all += $_->{estimate} for @jobs;
is(micro(metrics()->{cost_cap_jobs_held_usd}), $all,
   'cost_cap_jobs_held_usd is every estimate');

for my $t (@TENANTS) {
    my $sum = 0;
    $sum += $_->{estimate} for grep { $_->{tenant} == $t } @jobs;
    is_deeply(counters($t), { day => $sum, month => $sum },
              "$t->[0]: every job charged while held");
}

# a hold as an operator reads it
{
    my $j = $jobs[1];
    my %h = @{ redis()->cmd('HGETALL', "costcap:{globex}:job:$j->{id}") };
    my %w = window_info();
    is($h{amount}, $j->{estimate}, 'hold: amount');
    is($h{job}, $j->{id}, 'hold: job id');
    is($h{tenant}, 'globex', 'hold: tenant');
    is($h{keys}, "costcap:{globex}:day:$w{day} costcap:{globex}:month:$w{month}",
       'hold: the counters charged');
    is($h{on_expiry}, 'keep', 'hold: on_expiry keep by default');
    ok($h{expires_at} >= $w{now} + 86400 - 5 && $h{expires_at} <= $w{now} + 86400,
       'hold: expires in 24h');
    is(redis()->cmd('GET', "costcap:job:$j->{id}"), 'costcap:{globex}:',
       'pointer costcap:job:ID names the hold\'s prefix');
    my $p = $jobs[4];
    is(redis()->cmd('GET', "costcap:job:$p->{id}"), 'costcap:{org}:team-a:',
       'a tenant under a parent: the pointer names both');
    ok(redis()->cmd('EXISTS', "costcap:{org}:team-a:job:$p->{id}"),
       'a tenant under a parent: its hold is costcap:{PARENT}:TENANT:job:ID');
}


# -------------------------------------------------------------------------
# another tenant's status call of a failed job: nothing of it is settled

{
    my ($j) = grep { $_->{shape} eq 'openai' && $_->{fate} eq 'failed'
                     && $_->{tenant}[0] eq 'acme' } @jobs;
    my $before = counters($j->{tenant});
    my $r = $n->request(method => 'GET', uri => "/v1/videos/$j->{id}",
                        headers => headers($TENANTS[1]), timeout => 5);
    is($r->{status}, 200, 'globex polls a job of acme');
    like($r->{body}, qr/"failed"/, '... which has failed');
    # the settlement ran, found no hold of globex's, and left the outcome
    # in globex's own key (for a hold of its own that might still come)
    ok(poll_until(sub {
           redis()->cmd('HGET', "costcap:{globex}:job:$j->{id}", 'outcome')
       }, 5), 'the outcome is kept under globex\'s own tag only');
    is_deeply(counters($j->{tenant}), $before, 'acme\'s counters unchanged');
    is(redis()->cmd('HGET', "costcap:{acme}:job:$j->{id}", 'amount'),
       $j->{estimate}, 'acme\'s hold still there');
}


# -------------------------------------------------------------------------
# a running job settles nothing

{
    my ($o) = grep { $_->{shape} eq 'openai' && $_->{fate} eq 'failed' } @jobs;
    my ($v) = grep { $_->{shape} eq 'vertex' && $_->{fate} eq 'ok' } @jobs;
    my ($rep) = grep { $_->{shape} eq 'replicate' } @jobs;
    my @r = batch(
        ['GET', "/v1/videos/$o->{id}?state=running", headers($o->{tenant}),
         undef],
        ['POST', '/v1/models/veo-3:fetchPredictOperation',
         headers($v->{tenant}, "X-Op: $v->{id}", 'X-State: running'),
         qq({"operationName":"$v->{id}"})],
        ['POST', '/hooks/replicate', "Content-Type: application/json",
         qq({"id":"$rep->{id}","status":"processing","metrics":{}})],
    );
    is_deeply([map { $_->{status} } @r], [200, 200, 204],
              'status calls of running jobs, and a "processing" callback');
    like($r[0]{body}, qr/in_progress/, '... answered as running');
    is(holds(), 300, 'no hold settled');
}


# -------------------------------------------------------------------------
# every job's outcome: status calls (OpenAI, Vertex), callbacks (Replicate)

my @settle;
for my $j (@jobs) {
    if ($j->{shape} eq 'openai') {
        push @settle, ['GET', "/v1/videos/$j->{id}", headers($j->{tenant}),
                       undef];
    } elsif ($j->{shape} eq 'vertex') {
        push @settle, ['POST', '/v1/models/veo-3:fetchPredictOperation',
                       headers($j->{tenant}, "X-Op: $j->{id}"),
                       qq({"operationName":"$j->{id}"})];
    } else {
        # predict_time: 10.000001 + i/1000 s, also reported when it failed
        $j->{gpu} = 10000001 + $j->{i} * 1000;
        my $pt = sprintf '%d.%06d', int($j->{gpu} / 1e6), $j->{gpu} % 1e6;
        my $st = $j->{fate} eq 'ok' ? 'succeeded' : 'failed';
        push @settle, ['POST', '/hooks/replicate',
                       'Content-Type: application/json',
                       qq({"id":"$j->{id}","version":"sora-2","status":"$st",)
                       . qq("metrics":{"predict_time":$pt},"logs":"done"})];
    }
}

@res = batch(@settle);
is(scalar(grep { ($_->{status} // 0) == 200 || ($_->{status} // 0) == 204 }
          @res), 300, 'every status call and callback answered');

my $failed = grep { $_->{fate} eq 'failed' } @jobs;
ok(poll_until(sub {
       my $m = metrics();
       ($m->{'cost_cap_jobs_settled_total{outcome="succeeded"}'} // 0)
           == 300 - $failed
       && ($m->{'cost_cap_jobs_settled_total{outcome="failed"}'} // 0)
           == $failed
   }, 15), (300 - $failed) . " holds settled as succeeded, $failed as failed")
    or diag(explain(metrics()));

# what each tenant owes: succeeded jobs at their estimate, or at their
# actual GPU-seconds (Replicate) at 3.50 USD per GPU-hour
my %owed;
for my $j (grep { $_->{fate} eq 'ok' } @jobs) {
    $owed{$j->{tenant}[0]} += $j->{shape} eq 'replicate'
                              ? gpu_cost($j->{gpu}, 3500000) : $j->{estimate};
}
my $parent = 0;
for my $t (@TENANTS) {
    my $o = $owed{$t->[0]} // 0;
    is_deeply(counters($t), { day => $o, month => $o },
              "$t->[0]: counters equal the succeeded jobs' cost ($o)");
    $parent += $o if $t->[1];
}
is_deeply(counters(['org']), { day => $parent, month => 0 },
          'the parent: its day counter equals its tenant\'s succeeded jobs');

is(holds(), 0, 'no hold left');
ok(poll_until(sub { redis()->cmd('ZCARD', 'costcap:jobs:expiry') == 0 }, 5),
   'expiry index empty');
ok(poll_until(sub { !@{ redis()->cmd('KEYS', 'costcap:job:*') } }, 5),
   'no pointer left');

my $m = metrics();
is($m->{cost_cap_jobs_held_usd}, 0, 'cost_cap_jobs_held_usd back to 0');
is($m->{cost_cap_settlement_drops_total}, 0, 'nothing dropped');
is($m->{'cost_cap_jobs_expired_total{policy="keep"}'}, 0, 'none expired');
note(join "\n", 'metrics after the 300 jobs:',
     map { "$_ $m->{$_}" } grep { /jobs|drops|refunded_usd|adjusted_usd/ }
     sort keys %$m);


# -------------------------------------------------------------------------
# replays: status calls and callbacks again change nothing

my %before = map { $_->[0] => counters($_) } @TENANTS;
@res = batch(@settle);
is(scalar(grep { ($_->{status} // 0) == 200 || ($_->{status} // 0) == 204 }
          @res), 300, 'every status call and callback answered again');

# each replay ran: a terminal outcome that finds no hold is kept a while
# under the tenant's tag (status calls) or at the pointer (callbacks)
ok(poll_until(sub {
       my $h = redis()->cmd('KEYS', 'costcap:{*job:*');
       my $p = redis()->cmd('KEYS', 'costcap:job:*');
       # (globex's status call of acme's job left one more)
       return @$h == 201 && @$p == 100;
   }, 15), 'every replay looked for its hold');
is_deeply({ map { $_->[0] => counters($_) } @TENANTS }, \%before,
          'counters unchanged by the replays');
my $m2 = metrics();
is_deeply([map { $m2->{$_} } grep { /jobs_settled|jobs_opened/ } sort keys %$m2],
          [map { $m->{$_} } grep { /jobs_settled|jobs_opened/ } sort keys %$m],
          'no settlement counted by the replays');
is(holds(), 0, 'still no hold');

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[emerg\]|exited on signal/,
       'no crash, no alert');
unlike($n->error_log, qr/cost_cap: .*(dropped|malformed|given up)/,
       'nothing dropped or malformed');

done_testing();

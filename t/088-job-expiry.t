# SPEC sections 9 and 10: what happens to a hold that its job's outcome
# does not settle in time, or settles when Redis is away, or settles
# before the hold exists.
#
#   - ttl=2s on_expiry=keep: the sweeper deletes the hold, the charge stays;
#     a status call that says failed afterwards changes nothing
#   - ttl=2s on_expiry=refund: the sweeper refunds it (and frees its
#     idempotency key)
#   - Redis down when a job's outcome comes (status call, callback): the
#     settlement waits, and is applied once Redis is back
#   - an outcome before its hold (the job ended at once, the status call or
#     callback came before the create call's log phase): kept for the hold,
#     which is settled as it is made
#
# sora-2 at its defaults costs 77415 micro-USD; 30 GPU-seconds at 3.50 USD
# an hour cost 29167.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More;

my $CONF = <<'END';
access_log $TEST_NGINX_TMP/jobs.log jobs;
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
cost_cap_limit 100 per=day;
cost_cap_idempotency $http_idempotency_key;

location = /metrics {
    cost_cap_metrics;
}
location = /keep/videos {
    cost_cap on;
    cost_cap_job create id=id ttl=2s;
    proxy_pass http://backend/v1/videos;
}
location = /refund/videos {
    cost_cap on;
    cost_cap_job create id=id ttl=2s on_expiry=refund;
    proxy_pass http://backend/v1/videos;
}
location = /v1/videos {
    cost_cap on;
    cost_cap_job create id=id;
    proxy_pass http://backend;
}
location = /leased/videos {
    cost_cap on;
    cost_cap_lease 2 ttl=300ms;
    cost_cap_job create id=id;
    proxy_pass http://backend/v1/videos;
}
location ~ ^/v1/videos/(?<video>[^/]+)$ {
    cost_cap_job poll id=$video status=status failed=failed succeeded=completed;
    proxy_pass http://backend;
}
location = /hooks/job {
    cost_cap_job webhook id=id status=status failed=failed succeeded=succeeded actual=metrics.predict_time;
}
END

my $BACKEND = <<'END';
location = /v1/videos {
    return 200 '{"id":"video_${arg_fate}_$arg_jid","status":"queued"}';
}
location ~ ^/v1/videos/(?<v>video_failed_[^/]*)$ {
    return 200 '{"id":"$v","status":"failed"}';
}
location ~ ^/v1/videos/(?<v>video_ok_[^/]*)$ {
    return 200 '{"id":"$v","status":"completed"}';
}
END

my $redis = start_redis();
my $n = start_nginx(workers => 2,
                    http_config => 'cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s connect_timeout=200ms;'
                                   . "\nlog_format jobs '\$request_method \$uri \$status job=\$cost_cap_job';",
                    config => $CONF, backend_config => $BACKEND);

sub metrics {
    my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    my %m;
    for (split /\n/, $res->{body} // '') {
        $m{$1} = $2 if /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/;
    }
    return \%m;
}

sub day {
    my %w = window_info();
    return redis()->cmd('GET', "costcap:{$_[0]}:day:$w{day}") // 0;
}

sub hold {
    my ($t, $id) = @_;
    my %h = @{ redis()->cmd('HGETALL', "costcap:{$t}:job:$id") };
    return \%h;
}

sub create {
    my ($uri, $tenant, $fate, $jid, $key) = @_;
    my $h = "X-Tenant: $tenant\nContent-Type: application/json";
    $h .= "\nIdempotency-Key: $key" if $key;
    return $n->request(method => 'POST', uri => "$uri?fate=$fate&jid=$jid",
                       headers => $h, body => '{"model":"sora-2"}',
                       timeout => 10);
}

sub poll {
    my ($tenant, $id) = @_;
    return $n->request(method => 'GET', uri => "/v1/videos/$id",
                       headers => "X-Tenant: $tenant", timeout => 10);
}

sub hook {
    my ($id, $status, $gpu) = @_;
    return $n->request(method => 'POST', uri => '/hooks/job',
                       headers => 'Content-Type: application/json',
                       body => qq({"id":"$id","status":"$status",)
                             . qq("metrics":{"predict_time":$gpu}}),
                       timeout => 10);
}

sub expired { metrics()->{"cost_cap_jobs_expired_total{policy=\"$_[0]\"}"}
              // 0 }


# -------------------------------------------------------------------------
# on_expiry=keep

{
    my $id = 'video_failed_k1';
    is(create('/keep/videos', 'tkeep', 'failed', 'k1')->{status}, 200,
       'keep: a job created with ttl=2s');
    ok(poll_until(sub { hold('tkeep', $id)->{amount} }, 5), 'keep: held');
    is(hold('tkeep', $id)->{on_expiry}, 'keep', 'keep: on_expiry keep');
    ok(defined redis()->cmd('ZSCORE', 'costcap:jobs:expiry',
                            "costcap:{tkeep}:job:$id"),
       'keep: in the expiry index');
    my $x = hold('tkeep', $id)->{expires_at};
    ok(!poll_until(sub { expired('keep') }, 0.5),
       'keep: not expired before its time');

    ok(poll_until(sub { expired('keep') == 1 }, 10),
       'keep: expired, counted once');
    ok(redis()->cmd('TIME')->[0] >= $x, 'keep: not before expires_at');
    ok(!%{ hold('tkeep', $id) }, 'keep: the hold is gone');
    is(day('tkeep'), 77415, 'keep: the charge stays');
    ok(poll_until(sub { !defined redis()->cmd('ZSCORE', 'costcap:jobs:expiry',
                                              "costcap:{tkeep}:job:$id") }, 5),
       'keep: out of the index');

    like(poll('tkeep', $id)->{body}, qr/failed/,
         'keep: a status call says failed, after the expiry');
    ok(poll_until(sub { hold('tkeep', $id)->{outcome} }, 5),
       '... it ran (and found no hold)');
    is(day('tkeep'), 77415, '... the charge stays');
}


# -------------------------------------------------------------------------
# on_expiry=refund

{
    my $id = 'video_ok_r1';
    is(create('/refund/videos', 'trefund', 'ok', 'r1', 'key-r1')->{status},
       200, 'refund: a job created with ttl=2s, and an idempotency key');
    ok(poll_until(sub { hold('trefund', $id)->{amount} }, 5),
       'refund: held');
    is(day('trefund'), 77415, 'refund: charged');
    ok(redis()->cmd('EXISTS', 'costcap:{trefund}:idem:key-r1'),
       'refund: its idempotency key');

    ok(poll_until(sub { expired('refund') == 1 }, 10),
       'refund: expired, counted once');
    ok(!%{ hold('trefund', $id) }, 'refund: the hold is gone');
    is(day('trefund'), 0, 'refund: refunded');
    ok(!redis()->cmd('EXISTS', 'costcap:{trefund}:idem:key-r1'),
       'refund: the idempotency key freed');
    is(expired('keep'), 1, 'keep: still 1');
}


# -------------------------------------------------------------------------
# Redis away when the job ends: the settlement is applied when it is back

{
    my ($f, $s) = ('video_failed_d1', 'video_ok_d2');
    is(create('/v1/videos', 'tdown', 'failed', 'd1')->{status}, 200,
       'down: a job that will fail');
    is(create('/v1/videos', 'tdown', 'ok', 'd2')->{status}, 200,
       'down: a job that will succeed');
    ok(poll_until(sub { hold('tdown', $f)->{amount}
                        && hold('tdown', $s)->{amount} }, 5), 'down: held');
    is(day('tdown'), 2 * 77415, 'down: both charged');
    my $m0 = metrics();

    # the restarted Redis loads this
    redis()->cmd('SAVE');
    $redis->stop('KILL');

    like(poll('tdown', $f)->{body}, qr/failed/,
         'down: the status call says failed');
    is(hook($s, 'succeeded', 30)->{status}, 204,
       'down: the callback says succeeded after 30 GPU-seconds');
    ok(poll_until(sub { (metrics()->{cost_cap_settlement_retries_total} // 0)
                        >= ($m0->{cost_cap_settlement_retries_total} // 0) + 2
                      }, 5),
       'down: both wait for Redis') or diag(explain(metrics()));

    $redis->start;
    unlink "$redis->{dir}/dump.rdb";

    ok(poll_until(sub { day('tdown') == 29167 }, 10),
       'down: refunded and adjusted once Redis is back')
        or diag('day ' . day('tdown'));
    ok(!%{ hold('tdown', $f) } && !%{ hold('tdown', $s) },
       'down: both holds settled');
    my $m = metrics();
    is($m->{'cost_cap_jobs_settled_total{outcome="failed"}'}
       - $m0->{'cost_cap_jobs_settled_total{outcome="failed"}'}, 1,
       'down: one failed');
    is($m->{'cost_cap_jobs_settled_total{outcome="succeeded"}'}
       - $m0->{'cost_cap_jobs_settled_total{outcome="succeeded"}'}, 1,
       'down: one succeeded');
    is($m->{cost_cap_settlement_drops_total}, 0, 'down: nothing dropped');
    ok(!poll_until(sub { day('tdown') != 29167 }, 0.5),
       'down: applied once');
}


# -------------------------------------------------------------------------
# an outcome before its hold

{
    my $id = 'video_failed_e1';
    like(poll('tearly', $id)->{body}, qr/failed/,
         'early: a status call says failed before the job is held');
    ok(poll_until(sub { (hold('tearly', $id)->{outcome} // '') eq 'f' }, 5),
       'early: the outcome is kept in the hold\'s key');
    my $ttl = redis()->cmd('TTL', "costcap:{tearly}:job:$id");
    ok($ttl > 0 && $ttl <= 300, "early: for 5 minutes at most ($ttl s)");

    is(create('/v1/videos', 'tearly', 'failed', 'e1')->{status}, 200,
       'early: the create call');
    ok(poll_until(sub { !%{ hold('tearly', $id) } }, 5),
       'early: its hold is settled as it is made');
    ok(poll_until(sub { day('tearly') == 0 }, 5), 'early: refunded');

    my $id2 = 'video_ok_e2';
    is(hook($id2, 'succeeded', 30)->{status}, 204,
       'early: a callback says succeeded before the job is held');
    ok(poll_until(sub { (redis()->cmd('GET', "costcap:job:$id2") // '')
                        eq '~s:30000000' }, 5),
       'early: the outcome is kept at the pointer');
    is(create('/v1/videos', 'tearly', 'ok', 'e2')->{status}, 200,
       'early: the create call');
    ok(poll_until(sub { !%{ hold('tearly', $id2) } }, 5),
       'early: its hold is settled as it is made');
    ok(poll_until(sub { day('tearly') == 29167 }, 5),
       'early: at its actual cost');
}

# -------------------------------------------------------------------------
# jobs admitted from a lease (SPEC 13): held, settled on the counters; once
# the lease gives back what it did not use, the counter is the succeeded
# jobs' cost

{
    my @ids;
    for my $i (1 .. 6) {
        my $fate = $i % 2 ? 'failed' : 'ok';
        is(create('/leased/videos', 'tlease', $fate, "l$i")->{status}, 200,
           "lease: job $i created");
        push @ids, "video_${fate}_l$i";
    }
    ok(poll_until(sub { !grep { !hold('tlease', $_)->{amount} } @ids }, 5),
       'lease: six holds');
    is(scalar(grep { (hold('tlease', $_)->{reservation} // '')
                     =~ /^[0-9a-f]{24}\z/ } @ids), 6,
       'lease: each hold with an id of its own');
    ok(scalar(grep { !redis()->cmd('EXISTS', "costcap:{tlease}:op:"
                                   . hold('tlease', $_)->{reservation}) }
              @ids) >= 1, 'lease: some admitted from the lease, unreserved');
    poll('tlease', $_) for @ids;
    ok(poll_until(sub { !grep { hold('tlease', $_)->{amount} } @ids }, 5),
       'lease: all settled');
    ok(poll_until(sub { day('tlease') == 3 * 77415 }, 5),
       'lease: once the lease is back, the three succeeded jobs\' cost')
        or diag('day ' . day('tlease'));
    ok(!poll_until(sub { day('tlease') != 3 * 77415 }, 0.5),
       'lease: and it stays');
}


# $cost_cap_job in the access log: the create call's once its answer passed
my $log = CostCap::Test::_slurp($n->dir . '/jobs.log');
like($log, qr{^POST /v1/videos 200 job=video_ok_e2$}m,
     '$cost_cap_job: the job a create call made');
like($log, qr{^GET /v1/videos/video_failed_e1 200 job=video_failed_e1$}m,
     '$cost_cap_job: the job of a status call');
like($log, qr{^POST /hooks/job 204 job=video_ok_e2$}m,
     '$cost_cap_job: the job of a callback');
like($log, qr{^GET /metrics 200 job=-$}m, '$cost_cap_job: none elsewhere');

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[emerg\]|exited on signal/,
       'no crash, no alert');
unlike($n->error_log, qr/cost_cap: .*(dropped|malformed|given up)/,
       'nothing dropped');

done_testing();

# SPEC section 10: a hold is settled on exactly the counters it was charged
# to, whatever the periods are when the job ends.  Redis runs with
# t/lib/fakeclock.c preloaded (as in t/035-periods.t), its clock set to the
# last seconds of 2026; jobs created then end after midnight, in 2027: the
# failed one is refunded, the succeeded one adjusted to its actual
# GPU-seconds, on the minute, hour, day and month of 2026 (and the ISO week
# 2026-W53, which goes on into 2027); a job created after midnight is
# charged to 2027's and left alone.
#
# sora-2 at its defaults costs 77415 micro-USD; 30 GPU-seconds at 3.50 USD
# an hour cost 29167.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More;
use Time::Local qw(timegm);

my $LIB = tmp_dir() . '/fakeclock.so';
my $CLOCK = tmp_dir() . '/fakeclock';

system('gcc', '-shared', '-fPIC', '-O2', '-o', $LIB,
       "$FindBin::Bin/lib/fakeclock.c") == 0
    or BAIL_OUT('cannot build t/lib/fakeclock.c');

sub set_clock {
    my $t = shift;
    open my $fh, '>', "$CLOCK.tmp" or die "$CLOCK: $!";
    print $fh $t - time, "\n";
    close $fh;
    rename "$CLOCK.tmp", $CLOCK or die "$CLOCK: $!";
}

set_clock(time);

{
    local $ENV{LD_PRELOAD} = $LIB;
    local $ENV{FAKECLOCK_FILE} = $CLOCK;
    start_redis();
}

my $n = start_nginx(http_config => <<'HTTP', config => <<'LOC',
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s connect_timeout=2s;
HTTP
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
cost_cap_limit 100 per=minute;
cost_cap_limit 200 per=hour;
cost_cap_limit 300 per=day;
cost_cap_limit 400 per=week;
cost_cap_limit 500 per=month;
cost_cap_limit 600 per=total;
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
location = /hooks/job {
    cost_cap_job webhook id=id status=status failed=failed succeeded=succeeded actual=metrics.predict_time;
}
LOC
    backend_config => <<'BACKEND');
location = /v1/videos {
    return 200 '{"id":"video_${arg_fate}_$request_id","status":"queued"}';
}
location ~ ^/v1/videos/(?<v>video_failed_[^/]*)$ {
    return 200 '{"id":"$v","status":"failed"}';
}
location ~ ^/v1/videos/(?<v>[^/]*)$ {
    return 200 '{"id":"$v","status":"in_progress"}';
}
BACKEND

my @WIN = qw(minute hour day week month);
my $H = "X-Tenant: acme\nContent-Type: application/json";

sub create {
    my $fate = shift;
    my $r = $n->request(method => 'POST', uri => "/v1/videos?fate=$fate",
                        headers => $H, body => '{"model":"sora-2"}',
                        timeout => 5);
    my $b = json_decode($r->{body} // '') // {};
    return ($r->{status}, $b->{id});
}

sub hold {
    my %h = @{ redis()->cmd('HGETALL', "costcap:{acme}:job:$_[0]") };
    return \%h;
}

sub get { redis()->cmd('GET', $_[0]) // 0 }

sub metric {
    my $name = shift;
    my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    my ($v) = ($res->{body} // '') =~ /^\Q$name\E (\S+)$/m;
    return $v // 0;
}


# -------------------------------------------------------------------------
# two jobs in the last seconds of 2026 (again if the machine was so slow
# that the year ended before they were reserved)

my $LATE = timegm(57, 59, 23, 31, 11, 2026);
my %old = window_info($LATE);
my ($failed, $ok);

for my $try (1 .. 3) {
    set_clock($LATE);
    redis()->cmd('FLUSHALL');
    my ($s1, $s2);
    ($s1, $failed) = create('failed');
    ($s2, $ok) = create('ok');
    is("$s1 $s2", '200 200', "try $try: two jobs created at 23:59:57");
    ok(poll_until(sub { hold($failed)->{keys} && hold($ok)->{keys} }, 5),
       "try $try: both held");
    last if hold($failed)->{keys} =~ /:day:20261231\b/
            && hold($ok)->{keys} =~ /:day:20261231\b/;
    diag("try $try: reserved after midnight, again");
}

my $keys = join ' ', map { "costcap:{acme}:$_:$old{$_}" } @WIN;
is($old{week}, '2026-W53', 'the last days of 2026 are in ISO week 2026-W53');
is(hold($failed)->{keys}, "$keys costcap:{acme}:total:all",
   'the hold lists the periods of 2026');

for my $w (@WIN) {
    is(get("costcap:{acme}:$w:$old{$w}"), 2 * 77415, "2026's $w charged");
}


# -------------------------------------------------------------------------
# after midnight: a new job in 2027, then the old ones end

my $NEW = timegm(30, 0, 0, 1, 0, 2027);
my %new = window_info($NEW);
set_clock($NEW);
ok(poll_until(sub { redis()->cmd('TIME')->[0] >= $NEW }, 2),
   'Redis is in 2027');

my ($s3, $fresh) = create('ok');
is($s3, 200, 'a job created at 00:00:30 on 1 January 2027');
ok(poll_until(sub { hold($fresh)->{keys} }, 5), '... held');
is(hold($fresh)->{keys},
   "costcap:{acme}:minute:$new{minute} costcap:{acme}:hour:$new{hour} "
   . "costcap:{acme}:day:20270101 costcap:{acme}:week:2026-W53 "
   . "costcap:{acme}:month:202701 costcap:{acme}:total:all",
   '... on 2027\'s periods (and the week of both years)');

my $r = $n->request(method => 'GET', uri => "/v1/videos/$failed",
                    headers => 'X-Tenant: acme', timeout => 5);
like($r->{body} // '', qr/"failed"/, 'the first job failed, in 2027');

$r = $n->request(method => 'POST', uri => '/hooks/job',
                 headers => 'Content-Type: application/json',
                 body => qq({"id":"$ok","status":"succeeded",)
                       . qq("metrics":{"predict_time":30}}));
is($r->{status}, 204, 'the second succeeded, in 2027, after 30 GPU-seconds');

ok(poll_until(sub { !%{ hold($failed) } && !%{ hold($ok) } }, 5),
   'both holds settled');

# 2026's periods: the failed job refunded, the other at 29167
for my $w (qw(minute hour day month)) {
    is(get("costcap:{acme}:$w:$old{$w}"), 29167,
       "2026's $w: the succeeded job at its actual cost only");
}
is(get('costcap:{acme}:week:2026-W53'), 29167 + 77415,
   'the week: the settled job, and the new one');
is(get('costcap:{acme}:total:all'), 29167 + 77415,
   'total: the same');
for my $w (qw(minute hour day month)) {
    is(get("costcap:{acme}:$w:$new{$w}"), 77415,
       "2027's $w: only the new job, untouched by the settlements");
}
my $ttl = redis()->cmd('TTL', "costcap:{acme}:day:$old{day}");
ok($ttl > 0 && $ttl <= 2 * 86400, "2026's day keeps its TTL ($ttl s)");
is(metric('cost_cap_jobs_held_usd'), '0.077415',
   'cost_cap_jobs_held_usd: the new job only');

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[emerg\]|exited on signal/,
       'no crash, no alert');

done_testing();

# SPEC section 6: periods, key names and TTLs from the Redis server's clock,
# on the dates where calendars go wrong: ISO weeks that belong to another
# year, month and year ends, leap days, the last second of a window.  Redis
# runs with t/lib/fakeclock.c preloaded, its wall clock shifted for each
# date through a file; the expected periods come from strftime (%G-W%V for
# ISO weeks), not from the module's own arithmetic.

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

my $n = start_nginx(http_config => <<'HTTP', config => <<'LOC');
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
HTTP
location /v1/videos {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=minute;
    cost_cap_limit 200 per=hour;
    cost_cap_limit 300 per=day;
    cost_cap_limit 400 per=week;
    cost_cap_limit 500 per=month;
    cost_cap_limit 600 per=total;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT;
}
LOC

my @DATES = (
    [2020, 12, 31, 23, 59, 59],     # 2020-W53, the last second of a year
    [2021,  1,  1,  0,  0,  0],     # still 2020-W53
    [2021,  1,  3, 23, 59, 30],     # Sunday: the end of 2020-W53
    [2021,  1,  4,  0,  0,  1],     # 2021-W01 begins
    [2024,  2, 29, 12, 30, 45],     # a leap day
    [2024, 12, 30,  8,  0,  0],     # 2025-W01 in December
    [2026,  2, 28, 23, 59, 59],     # the end of February, not a leap year
    [2026, 11, 26, 18,  0,  0],     # an ordinary Thursday
    [2026, 12, 31, 23, 59, 59],     # 2026-W53
    [2027,  1,  1,  0,  0,  0],     # still 2026-W53, in 2027
    [2100,  2, 28, 23, 59, 59],     # 2100 is not a leap year
);

my @WIN = qw(minute hour day week month);

for my $d (@DATES) {
    my $t = timegm($d->[5], $d->[4], $d->[3], $d->[2], $d->[1] - 1, $d->[0]);
    my $name = sprintf '%04d-%02d-%02d %02d:%02d:%02d', @$d;

    set_clock($t);
    redis()->cmd('FLUSHALL');
    my $now = redis_time();
    ok($now >= $t && $now <= $t + 10, "$name: Redis runs on the fake clock")
        or diag("Redis TIME $now, expected $t");

    my $res = $n->request(method => 'POST', uri => '/v1/videos',
                          headers => "X-Tenant: acme\n"
                                   . "Content-Type: application/json",
                          body => '{"model":"sora-2"}');
    is($res->{status}, 200, "$name: admitted");
    my $after = redis_time();

    # what the reservation saw: Redis' clock when it ran, some second of
    # [now, after]; on a busy machine the last second of a window may be
    # over by then (the request ran in the next minute, or day, or year):
    # the windows are those of now, or else those of after
    my ($base, %w) = ($now, window_info($now));
    if (!defined redis()->cmd('GET', "costcap:{acme}:minute:$w{minute}")) {
        ($base, %w) = ($after, window_info($after));
    }
    for my $win (@WIN) {
        my $key = "costcap:{acme}:$win:$w{$win}";
        is(redis()->cmd('GET', $key), 77415, "$name: $key");

        # one day after the window's end, counted from the TTL's reading
        my $ttl = redis()->cmd('TTL', $key);
        my $want = $base + $w{"end_$win"} + 86400 - redis_time();
        ok($ttl <= $want + 1 && $ttl >= $want - 2,
           "$name: $win TTL $ttl is one day after the window ends")
            or diag("expected $want");
    }

    is(redis()->cmd('GET', 'costcap:{acme}:total:all'), 77415,
       "$name: total");
    is(redis()->cmd('TTL', 'costcap:{acme}:total:all'), -1,
       "$name: total never expires");
    is(redis_keys(), 6, "$name: six keys, no other");

    # the binding window is the minute (least left): its reset, from the
    # second the reservation ran
    my $reset = header_value($res, 'X-Cost-Cap-Reset');
    my $end = $base + $w{end_minute};
    my ($lo, $hi) = ($end - $after - 1, $end - $now);
    $hi = 60 if $hi > 60;
    ok(defined $reset && $reset <= $hi && $reset >= $lo,
       "$name: X-Cost-Cap-Reset is the minute's end")
        or diag('X-Cost-Cap-Reset ' . ($reset // 'absent')
                . ", expected $lo to $hi");
}

$n->stop;
unlike($n->error_log, qr/exited on signal|\[alert\]/, 'no crash, no alert');

done_testing();

# SPEC sections 1, 2 (steps 6-7), 4 ("Redis time", "Late replies") and 5
# (503): chaos under load.  One nginx (2 workers, timeout=200ms,
# cost_cap_on_error closed), one Redis; 16 client processes send requests
# of mixed cost for ~20 s while Redis is killed (SIGKILL)
# and restarted on the same port, stalled (SIGSTOP ~1 s, then SIGCONT), and
# nginx is reloaded twice.  Half the clients are tenant acme, whose cap
# (3000 USD) is reached during the run: 200 then 429; the other half
# beta, whose cap is never reached: admitted all along, through every
# event.  Both counters are compared with the sum of admitted estimates.
#
# How soon acme reaches its cap must not depend on how fast this machine
# serves (under ASan, next to other jobs, it served half as many requests
# as alone, and the cap was not reached): at t = 1 s acme's counters are
# topped up (INCRBY, counted as spend like any other) so that, at the rate
# acme spent in that first second, the cap falls due about 8 s later
# (after the kill, around the stall).
#
# Redis runs with --appendonly yes: a restart after SIGKILL reloads every
# write Redis made before it died, so the restarted server holds the
# admitted spend and the final comparison can be exact.  (A snapshot taken
# "right before" the kill cannot be: reservations keep arriving between the
# read and the kill.)  --appendfsync no, not always: a SIGKILL of the
# process loses nothing the process has write()n (the kernel keeps it;
# fsync only matters for a crash of the machine), and "always" widens the
# window described next by an fsync per event loop iteration.
#
# The one case left where the counter may hold more than the admitted
# spend: a reservation Redis has applied and appended to its AOF, whose
# reply was never sent because the SIGKILL came between the AOF write and
# the reply write (both in one event loop iteration: beforeSleep); the
# module answers 503 for it (its connection died) and the counter keeps
# it.  No client-side protocol can tell it from a reservation never
# applied.  The test allows exactly that: the excess must be the sum of
# some of the requests in flight at the kill (all answered 503); it
# reports how many.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use POSIX ();
use Time::HiRes qw(time sleep);

my $CLIENTS = 16;
my $RUN = 20;                       # seconds of load
my $CLIENT_TIMEOUT = 5;             # each request
my $REDIS_TIMEOUT = 0.2;
my $SLACK = 2;                      # on top of the Redis timeout
my $BACK = 1.5;                     # service back after Redis is: the
                                    # reconnect backoff (at most 0.5 s)
                                    # and a busy machine (0.78 s seen
                                    # under ASan next to other jobs)
my $CAP_USD = 3000;                 # acme's cap
my $CAP_DUE = 8;                    # seconds after t=1 it falls due
my $CAP = $CAP_USD * 1_000_000;
my @TENANTS = ('acme', 'beta');

# body => estimate in micro-USD (see t/040-concurrency.t)
my %BODY = (
    '{"model":"sora-2","seconds":1}' => 19354,
    '{"model":"sora-2"}' => 77415,
    '{"model":"sora-2","seconds":"2.51"}' => 48578,
    '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
    '{"model":"sora-2","size":"1920x1080","seconds":12}' => 522548,
    '{"model":"sora-2","size":"720x1280","n":2}' => 154829,
);
my @BODIES = sort keys %BODY;

my $AOF = '--appendonly yes --appendfsync no';

my $HTTP = <<"END";
cost_cap_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT timeout=200ms;
map \$http_x_tenant \$cap {
    acme    $CAP_USD;
    default 1000000;
}
END

my $CONF = <<"END";
location /v1/ {
    cost_cap on;
    cost_cap_on_error closed;
    cost_cap_tenant \$http_x_tenant;
    cost_cap_limit \$cap per=day;
    cost_cap_limit \$cap per=month;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    proxy_pass http://backend;
}
END

sub micro {
    my $usd = shift;
    return undef unless defined $usd && $usd =~ /^(\d+)(?:\.(\d{1,6}))?$/;
    return $1 * 1_000_000 + substr(($2 // '') . '000000', 0, 6);
}

my $t_begin = time;
my $r = start_redis(args => $AOF);
my $port = $r->{port};
my $n = start_nginx(http_config => $HTTP, config => $CONF, workers => 2,
                    log_level => 'warn');
my $dir = tmp_dir();
my %w0 = window_info();

pipe my $go_r, my $go_w or die "pipe: $!";
my $t0 = time + 0.2;
my @pids;
for my $c (0 .. $CLIENTS - 1) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $go_w;
        alarm $RUN + 30;
        my $buf;
        sysread $go_r, $buf, 1;
        open my $out, '>', "$dir/chaos-$c" or POSIX::_exit(2);
        my $i = 0;
        my $tenant = $TENANTS[$c % 2];
        while (time < $t0 + $RUN) {
            my $body = $BODIES[($c * 7 + $i++) % @BODIES];
            my $start = time;
            my $res = http_request(port => $n->port, method => 'POST',
                uri => '/v1/videos', body => $body,
                headers => "X-Tenant: $tenant\nContent-Type: "
                           . 'application/json',
                timeout => $CLIENT_TIMEOUT);
            my $end = time;
            my $st = $res->{status} // 'ERR';
            my $est = header_value($res, 'X-Cost-Cap-Estimate') // '-';
            (my $err = $res->{error} // '-') =~ s/\s+/ /g;
            print $out join("\t", $start, $end, $st, $est, $body, $err,
                            $tenant), "\n";
        }
        close $out;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}

sleep $t0 - time if $t0 > time;
close $go_r;
close $go_w;

my %ev;
sub at { my $t = shift; sleep $t0 + $t - time if $t0 + $t > time }

sub reload {
    my @old = sort $n->worker_pids;
    system(nginx_bin(), '-p', $n->dir . '/', '-c', $n->dir . '/nginx.conf',
           '-s', 'reload') == 0 or die "nginx -s reload failed\n";
    poll_until(sub {
        my %old = map { $_ => 1 } @old;
        my @new = grep { !$old{$_} } $n->worker_pids;
        return @new >= 2;
    }, 5) or diag('reload: no new workers');
}

# t=1 s: acme's top-up (see the top)
at(1);
my %w1 = window_info();
my @acme = ("costcap:{acme}:day:$w1{day}", "costcap:{acme}:month:$w1{month}");
my $spent1 = redis()->cmd('GET', $acme[0]) // 0;
my $TOPUP = $CAP - $spent1 - $spent1 / (time - $t0) * $CAP_DUE;
$TOPUP = $TOPUP > 0 ? int $TOPUP : 0;
redis()->cmd('INCRBY', $_, $TOPUP) for @acme;
$ev{topup} = time;
my %base = (acme => $TOPUP, beta => 0);

# t=3 s: SIGKILL, 1 s down, restart on the same port from the AOF
at(3);
$ev{kill} = time;
$r->stop('KILL');
at(4);
$r = start_redis(port => $port, args => $AOF);
$ev{up} = time;

# t=8 s: stalled for ~1 s
at(8);
$ev{stop} = time;
$r->pause;
at(9);
$r->resume;
$ev{cont} = time;

# t=12 s and t=15 s: reloads
at(12);
$ev{reload1} = time;
reload();
at(15);
$ev{reload2} = time;
reload();

my %left = map { $_ => 1 } @pids;
poll_until(sub {
    for my $p (keys %left) {
        delete $left{$p} if waitpid($p, POSIX::WNOHANG()) == $p;
    }
    return !%left;
}, $RUN + $CLIENT_TIMEOUT + 10);
ok(!%left, 'every client finished in time')
    or do { kill 'KILL', keys %left; waitpid $_, 0 for keys %left };

my (@rows, %status);
for my $c (0 .. $CLIENTS - 1) {
    open my $in, '<', "$dir/chaos-$c" or next;
    while (<$in>) {
        chomp;
        my ($s, $e, $st, $est, $body, $err, $t) = split /\t/;
        push @rows, { start => $s, end => $e, status => $st, est => $est,
                      body => $body, err => $err, tenant => $t };
        $status{$st}++;
    }
}

ok(@rows > 1000, scalar(@rows) . ' requests');
is_deeply([sort grep { !/^(200|429|503)$/ } keys %status], [],
          'every request answered 200, 429 or 503')
    or diag(Test::More::explain(\%status),
            join "\n", map { "$_->{status} $_->{err}" }
                       grep { $_->{status} !~ /^(200|429|503)$/ } @rows);

my ($max_lat) = sort { $b <=> $a } map { $_->{end} - $_->{start} } @rows;
ok($max_lat <= $REDIS_TIMEOUT + $SLACK,
   sprintf('max latency %.3f s <= %.1f s', $max_lat,
           $REDIS_TIMEOUT + $SLACK));

# service back: the first answer Redis gave (200 or 429) after it returns
sub recovery {
    my $since = shift;
    my ($first) = sort { $a <=> $b } map { $_->{end} }
        grep { $_->{status} =~ /^(200|429)$/ && $_->{start} >= $since }
        @rows;
    return defined $first ? $first - $since : 99;
}
my $rec_kill = recovery($ev{up});
my $rec_stop = recovery($ev{cont});
ok($rec_kill <= $BACK, sprintf('service back %.3f s after the restart',
                               $rec_kill));
ok($rec_stop <= $BACK, sprintf('service back %.3f s after SIGCONT',
                               $rec_stop));

my @r503 = grep { $_->{status} == 503 } @rows;
ok(@r503 > 0, 'some 503 while Redis was away');
# A 503 overlaps the time Redis was away (give or take the reconnect);
# elsewhere only a Redis timeout is excused: a busy machine (ASan, other
# jobs) may delay a reply past the 200 ms timeout (a few 503s of 200 ms to
# 1 s, around a reload or not, were seen in one make test of five), but a
# 503 sooner than the timeout means the module gave up on a live Redis,
# and many timeouts mean it lost one.
sub during {
    my ($row, $from, $to) = @_;
    return $row->{end} >= $from - 0.05 && $row->{start} <= $to + $BACK;
}
my @stray = grep {
    !(during($_, $ev{kill}, $ev{up}) || during($_, $ev{stop}, $ev{cont}))
} @r503;
my @fast = grep { $_->{end} - $_->{start} < $REDIS_TIMEOUT } @stray;
sub spans {
    my @r = @_;
    return join "\n", map { sprintf '%.3f-%.3f', $_->{start} - $t0,
                                      $_->{end} - $t0 }
                      @r[0 .. ($#r < 9 ? $#r : 9)];
}
is(scalar @fast, 0, '503 sooner than the Redis timeout only while Redis '
                    . 'was down or stalled')
    or diag(spans(@fast));
ok(@stray <= @rows / 100, sprintf('Redis timeouts elsewhere: %d of %d '
                                  . 'requests (at most 1%%)', scalar @stray,
                                  scalar @rows))
    or diag(spans(@stray));

my (%sum, %adm, $bad_est);
$bad_est = 0;
for my $row (grep { $_->{status} == 200 } @rows) {
    my $m = micro($row->{est});
    $bad_est++ unless defined $m && $m == $BODY{$row->{body}};
    $sum{$row->{tenant}} += $m // 0;
    $adm{$row->{tenant}}++;
}
is($bad_est, 0, 'every admitted estimate as computed');
ok((grep { $_->{status} == 429 && $_->{tenant} eq 'acme' } @rows) > 0,
   "acme's cap was reached");
is(scalar(grep { $_->{status} == 429 && $_->{tenant} eq 'beta' } @rows), 0,
   "beta's cap was not");
ok($sum{acme} + $TOPUP <= $CAP,
   "acme: admitted spend $sum{acme} + top-up $TOPUP <= cap $CAP");

# counters, polled: late replies are given back asynchronously
my %w = window_info();
my @keys = map { ["costcap:{$_}:day:$w{day}", $_],
                 ["costcap:{$_}:month:$w{month}", $_] } @TENANTS;
my %got;
poll_until(sub {
    %got = map { $_->[0] => redis()->cmd('GET', $_->[0]) // 0 } @keys;
    return !grep { $got{$_->[0]} != $sum{$_->[1]} + $base{$_->[1]} }
                 @keys;
}, 10);

# the one excuse (see the top): requests in flight at the kill, answered
# 503; the excess must be the sum of some of them
sub subset_of {
    my ($target, @est) = @_;
    my %can = (0 => []);
    for my $e (@est) {
        for my $s (keys %can) {
            $can{$s + $e} //= [@{$can{$s}}, $e];
        }
    }
    return $can{$target};
}
my (%explained, %kill503);
for my $kt (@keys) {
    my ($k, $t) = @$kt;
    my @in = grep { $_->{tenant} eq $t && $_->{end} >= $ev{kill}
                    && $_->{start} <= $ev{kill} } @r503;
    $kill503{$t} = @in;
    my $diff = $got{$k} - $sum{$t} - $base{$t};
    if ($w{day} ne $w0{day} && $k =~ /:day:/) {
        pass("$k: the day changed during the run, not compared");
        next;
    }
    my $subset = $diff > 0
        ? subset_of($diff, map { $BODY{$_->{body}} } @in) : undef;
    $explained{$t} = $subset ? scalar @$subset : 0;
    ok($diff == 0 || $subset,
       "$k = $got{$k}: admitted sum $sum{$t}"
       . ($base{$t} ? " + top-up $base{$t}" : '')
       . ($diff ? ", excess $diff = " . @{$subset // []} . ' of the '
                  . @in . ' reservations in flight at the kill'
                : ''))
        or diag(scalar(@in) . " requests in flight at the kill: "
                . join(' ', map { $BODY{$_->{body}} } @in));
}

$n->stop;
my $log = $n->error_log;
unlike($log, qr/exited on signal/, 'no worker crash');
unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/, 'no [alert], [crit]')
    or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ } split /\n/, $log);
my $errors = () = $log =~ /\[error\]/g;

my $took = time - $t_begin;
ok($took < 60, sprintf('whole run bounded (%.1f s)', $took));

diag(sprintf "chaos: %d requests, %d admitted, %d 429, %d 503, "
     . "max latency %.3f s", scalar @rows, $status{200} // 0,
     $status{429} // 0, $status{503} // 0, $max_lat);
diag(sprintf "chaos: recovery (first 200/429) %.3f s after the restart, "
     . "%.3f s after SIGCONT", $rec_kill, $rec_stop);
for my $t (@TENANTS) {
    my ($d, $m) = map { $got{$_->[0]} } grep { $_->[1] eq $t } @keys;
    diag(sprintf "chaos: %s: %d admitted, counters day %s month %s, "
         . "admitted sum %d, top-up %d, excess %d (%d of %d requests in "
         . "flight at the kill)", $t, $adm{$t} // 0, $d, $m, $sum{$t} // 0,
         $base{$t}, $d - ($sum{$t} // 0) - $base{$t}, $explained{$t} // 0,
         $kill503{$t} // 0);
}
my ($last200) = sort { $b <=> $a } map { $_->{end} - $t0 }
    grep { $_->{status} == 200 && $_->{tenant} eq 'acme' } @rows;
diag(sprintf "chaos: acme cap %d, last acme 200 at t=%.1f s; events at "
     . "t=%s; %d [error] lines; run %.1f s", $CAP, $last200 // -1,
     join(' ', map { sprintf '%s:%.2f', $_, $ev{$_} - $t0 }
               sort { $ev{$a} <=> $ev{$b} } keys %ev), $errors, $took);

done_testing();

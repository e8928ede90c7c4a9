# SPEC section 1: caps are hard across workers and gateways.  Two nginx
# instances (2 workers each) share one Redis; 64 client processes send
# 2048 requests of mixed cost for one tenant against a 50 USD cap.  The
# cap is a per=total one: a daily cap renews at midnight UTC, and a run
# across it admitted twice the cap (once a day; seen in a make test).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes ();

my $CAP = 50_000_000;               # micro-USD
my $CLIENTS = 64;
my $PER_CLIENT = 32;

# body => expected estimate in micro-USD (sora-2: 0.9 GPU-s per
# megapixel-frame, 24 fps, 3.50 USD per GPU-hour)
my %BODY = (
    # 1280x720, 24 frames: 0.9 x 0.9216 x 24 = 19.90656 GPU-s
    # x 3.5 / 3600 = 0.0193536 -> 19354
    '{"model":"sora-2","seconds":1}' => 19354,
    # 96 frames: 79.62624 GPU-s -> 0.0774144 -> 77415
    '{"model":"sora-2"}' => 77415,
    # 60.24 frames: 49.9654656 GPU-s -> 0.048577536 -> 48578
    '{"model":"sora-2","seconds":"2.51"}' => 48578,
    # 1920x1080, 192 frames: 358.31808 GPU-s -> 0.3483648 -> 348365
    '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
    # 1920x1080, 288 frames: 537.47712 GPU-s -> 0.5225472 -> 522548
    '{"model":"sora-2","size":"1920x1080","seconds":12}' => 522548,
    # n = 2 x 0.0774144 = 0.1548288 -> 154829
    '{"model":"sora-2","size":"720x1280","n":2}' => 154829,
);
my @BODIES = sort keys %BODY;
my ($LARGEST) = sort { $b <=> $a } values %BODY;

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
END

my $CONF = <<'END';
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 50 per=total;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    proxy_pass http://backend;
}
END

sub micro {
    my $usd = shift;
    return undef unless defined $usd && $usd =~ /^(\d+)(?:\.(\d{1,6}))?$/;
    return $1 * 1_000_000 + substr(($2 // '') . '000000', 0, 6);
}

my $t0 = Time::HiRes::time();
start_redis();
my @gw = map { start_nginx(http_config => $HTTP, config => $CONF,
                           workers => 2, log_level => 'warn') } 1 .. 2;
my $dir = tmp_dir();

# the children wait on this pipe, so that all of them start together
pipe my $go_r, my $go_w or die "pipe: $!";

my @pids;
for my $c (0 .. $CLIENTS - 1) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close $go_w;
        alarm 50;
        my $buf;
        sysread $go_r, $buf, 1;          # EOF: go
        my $ka = $c % 2;                # half keep-alive, half not
        my @ua = map { HTTP::Tiny->new(keep_alive => $ka, timeout => 20) }
                 @gw;
        open my $out, '>', "$dir/client-$c" or POSIX::_exit(2);
        for my $i (0 .. $PER_CLIENT - 1) {
            my $g = ($c + $i) % 2;
            my $body = $BODIES[($c * 7 + $i) % @BODIES];
            my $res = $ua[$g]->post(
                'http://127.0.0.1:' . $gw[$g]->port . '/v1/videos',
                { headers => { 'x-tenant' => 'acme',
                               'content-type' => 'application/json' },
                  content => $body });
            my $est = $res->{headers}{'x-cost-cap-estimate'} // '-';
            if ($res->{status} == 429) {
                my $j = json_decode($res->{content});
                $est = $j ? $j->{error}{estimate} : '-';
            }
            print $out join("\t", $res->{status}, $est, $g, $body), "\n";
        }
        close $out;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
close $go_r;
close $go_w;

my %left = map { $_ => 1 } @pids;
poll_until(sub {
    for my $p (keys %left) {
        delete $left{$p} if waitpid($p, POSIX::WNOHANG()) == $p;
    }
    return !%left;
}, 55);
ok(!%left, 'every client finished in time')
    or do { kill 'KILL', keys %left; waitpid $_, 0 for keys %left };

my (@rows, %status);
for my $c (0 .. $CLIENTS - 1) {
    open my $in, '<', "$dir/client-$c" or next;
    while (<$in>) {
        chomp;
        my ($st, $est, $g, $body) = split /\t/, $_, 4;
        push @rows, { status => $st, est => $est, gw => $g, body => $body };
        $status{$st}++;
    }
}

is(scalar @rows, $CLIENTS * $PER_CLIENT, 'every request answered');
is_deeply([sort grep { $_ != 200 && $_ != 429 } keys %status], [],
          'every response is 200 or 429')
    or diag(Test::More::explain(\%status));

my ($sum, $bad_est) = (0, 0);
for my $r (@rows) {
    next unless $r->{status} == 200 || $r->{status} == 429;
    my $m = $r->{status} == 200 ? micro($r->{est})
                                : int($r->{est} * 1_000_000 + 0.5);
    $bad_est++ unless defined $m && $m == $BODY{$r->{body}};
    $sum += $m if $r->{status} == 200 && defined $m;
}
is($bad_est, 0, 'every estimate as computed');

my $admitted = $status{200} // 0;
ok($admitted > 0 && ($status{429} // 0) > 0, 'some admitted, some rejected')
    or diag(Test::More::explain(\%status));
for my $g (0, 1) {
    ok((grep { $_->{gw} == $g && $_->{status} == 200 } @rows) > 0,
       "gateway $g admitted some");
}

ok($sum <= $CAP, "admitted spend $sum <= cap $CAP");
ok($sum >= $CAP - $LARGEST,
   "admitted spend $sum >= cap - largest estimate (" . ($CAP - $LARGEST)
   . ')');

my $key = 'costcap:{acme}:total:all';
my $counter = redis()->cmd('GET', $key);
is($counter, $sum, 'Redis counter equals the sum of admitted estimates');

# one script call per priced request, and nothing else per request
my ($calls) = redis()->cmd('INFO', 'commandstats')
              =~ /cmdstat_evalsha:calls=(\d+)/;
is($calls, scalar @rows, 'exactly one Redis round trip per priced request');
Test::More::diag(sprintf 'cap %d, admitted spend %d, Redis counter %s, '
                 . '%d requests (%d admitted), %s EVALSHA calls',
                 $CAP, $sum, $counter // 'nil', scalar @rows,
                 $status{200} // 0, $calls // 'no');

$_->stop for @gw;
for my $i (0, 1) {
    my $log = $gw[$i]->error_log;
    unlike($log, qr/exited on signal/, "gateway $i: no worker crash");
    unlike($log, qr/\[alert\]|\[emerg\]/, "gateway $i: no alert");
}

my $took = Time::HiRes::time() - $t0;
ok($took < 60, sprintf('whole run bounded (%.1f s)', $took));
Test::More::note(sprintf '%d requests, %d admitted, %.1f s',
                 scalar @rows, $admitted, $took);

done_testing();

# SPEC section 3 (cost_cap_metrics): Prometheus text counters of the
# whole nginx (every worker, shared memory), across `nginx -s reload`.
#
# Estimates (cost_cap_gpu_price 3.50):
#   sora-2 defaults: 79.62624 GPU-s -> 0.0774144 -> 77415 micro-USD
#   sora-2 seconds=1: 19.90656 GPU-s -> 0.0193536 -> 19354
#   sora-2 1920x1080 8 s: 358.31808 GPU-s -> 0.3483648 -> 348365
#   flux 1024x1024: 0.5 + 1.2 x 1.048576 = 1.7582912 GPU-s
#       -> 0.00170945... -> 1710
# Actual: sora-2 100 GPU-s -> 97223 (+19808); flux 0.5 GPU-s -> 487 (-1223)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use JSON::PP ();
use POSIX ();
use Time::HiRes ();

my $T0 = Time::HiRes::time();

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

my $MODELS = <<'END';
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~^flux\.1 base=0.5 per_mpx_frame=1.2 default_size=1024x1024;
cost_cap_model ~^flux base=0.5 per_mpx_frame=1.2 default_size=1024x1024;
cost_cap_model unused per_mpx_frame=1 default_size=1x1;
END

my $CONF = <<"END";
cost_cap_tenant \$http_x_tenant;
$MODELS
location = /metrics {
    cost_cap_metrics;
}
location /v1/ {
    cost_cap on;
    cost_cap_limit 0.2 per=day;
    cost_cap_actual \$upstream_http_x_gpu_seconds;
    proxy_pass http://backend;
}
location /dry/ {
    cost_cap on;
    cost_cap_dry_run on;
    cost_cap_limit 0.1 per=day;
    proxy_pass http://backend/v1/;
}
location /open/ {
    cost_cap on;
    cost_cap_on_error open;
    cost_cap_limit 0.2 per=day;
    proxy_pass http://backend/v1/;
}
location /big/ {
    cost_cap on;
    cost_cap_limit 100 per=day;
    proxy_pass http://backend/v1/;
}
END

my $BACKEND = <<'END';
location /v1/500 { return 500; }
location /v1/502 { return 502; }
location / {
    add_header X-GPU-Seconds $arg_gpu;
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

my $SORA = '{"model":"sora-2"}';
my $FLUX = '{"model":"flux"}';
my $JSON = 'Content-Type: application/json';

sub post {
    my ($n, $uri, $tenant, $body, %o) = @_;
    my $h = defined $tenant ? "X-Tenant: $tenant\n" : '';
    $h .= $o{ct} // $JSON;
    return $n->request(method => 'POST', uri => $uri, headers => $h,
                       body => $body, port => $o{port} // $n->port,
                       timeout => 5);
}

# the scrape as name{labels} => value, and the raw text
sub scrape {
    my ($n, $port) = @_;
    my $res = http_request(port => $port // $n->port, method => 'GET',
                           uri => '/metrics', timeout => 5);
    my %m;
    for (split /\n/, $res->{body} // '') {
        next if /^# (HELP|TYPE) cost_cap_\w+ /;
        /^(cost_cap_[a-z_]+(?:\{[a-z]+="(?:[^"\\]|\\.)*"\})?) (-?\d+(?:\.\d*[1-9])?)$/
            or ++$res->{bad_lines}, next;
        $m{$1} = $2;
    }
    return wantarray ? (\%m, $res) : \%m;
}

sub usd { my $m = shift; sprintf('%d.%06d', int($m / 1e6), $m % 1e6)
          =~ s/\.?0+$//r }

# the subset of a scrape that is not the latency histogram
sub counters {
    my $m = shift;
    return { map { $_ => $m->{$_} }
             grep { !/^cost_cap_redis_latency_seconds_(bucket|sum)/ }
             keys %$m };
}

sub evalsha_calls {
    my $s = redis()->cmd('INFO', 'commandstats');
    return $s =~ /cmdstat_evalsha:calls=(\d+)/ ? $1 : 0;
}

sub day { my %w = window_info(); return $w{day} }

sub wait_reloaded {
    my ($n, $nworkers, @old) = @_;
    my %old = map { $_ => 1 } @old;
    return poll_until(sub {
        my @w = $n->worker_pids;
        return @w == $nworkers && !grep { $old{$_} } @w;
    }, 10);
}

sub reload {
    my ($n, $nworkers) = @_;
    my @old = $n->worker_pids;
    kill 'HUP', $n->{pid};
    return wait_reloaded($n, $nworkers, @old);
}

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[emerg\]/, "$name: no alert");
}


# -------------------------------------------------------------------------

my $LAST_SCRAPE;

{
    my $name = 'exact counters';
    start_redis();
    redis()->cmd('CONFIG', 'RESETSTAT');
    my $n = start_nginx(http_config => $HTTP, config => $CONF,
                        backend_config => $BACKEND);

    my @seq = (
        # [uri, tenant, body, status]
        ['/v1/videos', 'acme', $SORA, 200],
        ['/v1/videos?gpu=100', 'acme', $SORA, 200],     # +19808
        ['/v1/videos', 'acme', $SORA, 429],
        ['/v1/videos', 'acme', $FLUX, 200],
        ['/v1/videos?gpu=0.5', 'acme', $FLUX, 200],     # -1223
        ['/v1/videos', 'acme', '{"model":"nope"}', 400],
        ['/v1/videos', 'acme', '{"model":"sora-2","seconds":-1}', 400],
        ['/v1/videos', 'acme', 'not json', 400],
        ['/v1/videos', undef, $SORA, 401],
        ['/v1/502', 'globex', $SORA, 502],              # refund 77415
        ['/v1/500', 'globex', $FLUX, 500],              # refund 1710
        ['/dry/videos', 'initech', $SORA, 200],
        ['/dry/videos', 'initech', $SORA, 200],         # dry_run_rejected
        ['/big/videos', 'acme', '{"model":"flux.1"}', 200],
    );
    for my $s (@seq) {
        my ($uri, $t, $b, $st) = @$s;
        is(post($n, $uri, $t, $b)->{status}, $st,
           "$name: POST $uri " . ($t // '-') . " $b");
    }
    is(post($n, '/v1/videos', 'acme', $SORA, ct => 'Content-Type: text/plain')
       ->{status}, 415, "$name: 415");
    is($n->request(method => 'GET', uri => '/v1/502',
                   headers => 'X-Tenant: acme')->{status}, 502,
       "$name: GET passes unpriced, uncounted");

    my %day = (acme => 174638 + 1710 + 487 + 1710, globex => 0, initech => 154830);
    for my $t (sort keys %day) {
        ok(poll_until(sub {
               (redis()->cmd('GET', "costcap:{$t}:day:" . day()) // -1)
               == $day{$t} }, 10),
           "$name: Redis counter of $t is $day{$t}");
    }

    my ($m, $res) = scrape($n);
    is($res->{status}, 200, "$name: /metrics 200");
    is($res->{bad_lines} // 0, 0,
       "$name: every line a HELP, a TYPE or a sample; decimals without "
       . 'trailing zeros');
    is(header_value($res, 'Content-Type'),
       'text/plain; version=0.0.4; charset=utf-8', "$name: content type");
    like($res->{body}, qr/^# TYPE cost_cap_requests_total counter$/m,
         "$name: TYPE lines");
    like($res->{body},
         qr/^# TYPE cost_cap_redis_latency_seconds histogram$/m,
         "$name: histogram TYPE");

    my $calls = evalsha_calls();
    is($calls, 14, "$name: Redis ran 10 reservations + 4 settlements");

    my %exp = (
        'cost_cap_requests_total{result="admitted"}' => 8,
        'cost_cap_requests_total{result="rejected"}' => 1,
        'cost_cap_requests_total{result="invalid"}' => 5,
        'cost_cap_requests_total{result="error"}' => 0,
        'cost_cap_requests_total{result="error_open"}' => 0,
        'cost_cap_requests_total{result="dry_run_rejected"}' => 1,
        'cost_cap_requests_total{result="quote"}' => 0,
        'cost_cap_admitted_usd_total{model="sora-2"}' => usd(5 * 77415),
        'cost_cap_admitted_usd_total{model="~^flux"}' => usd(3 * 1710),
        'cost_cap_admitted_usd_total{model="unused"}' => 0,
        'cost_cap_refunded_usd_total{model="sora-2"}' => usd(77415),
        'cost_cap_refunded_usd_total{model="~^flux"}' => usd(1710),
        'cost_cap_refunded_usd_total{model="unused"}' => 0,
        'cost_cap_adjusted_usd_total{model="sora-2"}' => usd(19808),
        'cost_cap_adjusted_usd_total{model="~^flux"}' => '-0.001223',
        'cost_cap_adjusted_usd_total{model="unused"}' => 0,
        'cost_cap_estimated_gpu_seconds_total{model="sora-2"}' => '398.1312',
        'cost_cap_estimated_gpu_seconds_total{model="~^flux"}' => 'FLUX3',
        'cost_cap_estimated_gpu_seconds_total{model="unused"}' => 0,
        'cost_cap_calibration_estimated_gpu_seconds_total{model="sora-2"}'
            => '79.62624',
        'cost_cap_calibration_estimated_gpu_seconds_total{model="~^flux"}'
            => 'FLUX1',
        'cost_cap_calibration_estimated_gpu_seconds_total{model="unused"}'
            => 0,
        'cost_cap_calibration_actual_gpu_seconds_total{model="sora-2"}'
            => 100,
        'cost_cap_calibration_actual_gpu_seconds_total{model="~^flux"}'
            => '0.5',
        'cost_cap_calibration_actual_gpu_seconds_total{model="unused"}'
            => 0,
        # the label escapes the backslash of the pattern
        'cost_cap_admitted_usd_total{model="~^flux\\\\.1"}' => usd(1710),
        'cost_cap_refunded_usd_total{model="~^flux\\\\.1"}' => 0,
        'cost_cap_adjusted_usd_total{model="~^flux\\\\.1"}' => 0,
        'cost_cap_estimated_gpu_seconds_total{model="~^flux\\\\.1"}'
            => 'FLUX1',
        'cost_cap_calibration_estimated_gpu_seconds_total{model="~^flux\\\\.1"}'
            => 0,
        'cost_cap_calibration_actual_gpu_seconds_total{model="~^flux\\\\.1"}'
            => 0,
        'cost_cap_redis_latency_seconds_count' => $calls,
        'cost_cap_redis_errors_total' => 0,
        'cost_cap_redis_reconnects_total' => 0,
        'cost_cap_settlement_retries_total' => 0,
        'cost_cap_settlement_drops_total' => 0,
        'cost_cap_give_backs_total' => 0,
        'cost_cap_redis_retries_total' => 0,
        'cost_cap_redis_redirects_total' => 0,
        'cost_cap_redis_stalls_total' => 0,
        'cost_cap_reject_cache_hits_total' => 0,
        'cost_cap_leases_total' => 0,
        'cost_cap_lease_admitted_total' => 0,
        'cost_cap_lease_returns_total' => 0,
        'cost_cap_jobs_opened_total' => 0,
        'cost_cap_jobs_settled_total{outcome="succeeded"}' => 0,
        'cost_cap_jobs_settled_total{outcome="failed"}' => 0,
        'cost_cap_jobs_expired_total{policy="keep"}' => 0,
        'cost_cap_jobs_expired_total{policy="refund"}' => 0,
        'cost_cap_jobs_held_usd' => 0,
    );
    # flux: 1.7582912 GPU-s per request, at micro precision
    my $f1 = $m->{'cost_cap_calibration_estimated_gpu_seconds_total{model="~^flux"}'} // '';
    ok($f1 eq '1.758291' || $f1 eq '1.758292',
       "$name: flux GPU-seconds at micro precision ($f1)");
    (my $f1m = $f1) =~ s/\.//;
    $f1m = 0 unless $f1m =~ /^\d+$/;
    for (values %exp) {
        $_ = usd(3 * $f1m) if $_ eq 'FLUX3';
        $_ = $f1 if $_ eq 'FLUX1';
    }
    is_deeply(counters($m), \%exp, "$name: every counter exact")
        or diag(Test::More::explain(counters($m)));

    # histogram: cumulative, ends at +Inf = count; sum of round trips
    my @b = map { [$1, $m->{$_}] }
            sort { ($a =~ /"([\d.]+)"/)[0] <=> ($b =~ /"([\d.]+)"/)[0] }
            grep { /_bucket\{le="([\d.]+)"\}/ } keys %$m;
    is(scalar @b, 10, "$name: 10 finite buckets");
    my $mono = 1;
    $mono &&= $b[$_][1] >= $b[$_ - 1][1] for 1 .. $#b;
    ok($mono, "$name: buckets cumulative");
    is($m->{'cost_cap_redis_latency_seconds_bucket{le="+Inf"}'}, $calls,
       "$name: +Inf bucket = count");
    ok($m->{cost_cap_redis_latency_seconds_sum} > 0
       && $m->{cost_cap_redis_latency_seconds_sum} < 5,
       "$name: latency sum plausible");
    is(post($n, '/metrics', 'acme', $SORA)->{status}, 405,
       "$name: POST /metrics is 405");

    # ------------------------------------------------------------------
    my $rname = 'metrics survive nginx -s reload';
    ok(reload($n, 1), "$rname: new worker in place");
    my $m2 = scrape($n);
    is_deeply($m2, $m, "$rname: every line unchanged")
        or diag(Test::More::explain($m2));

    is(post($n, '/v1/videos', 'hooli', $SORA)->{status}, 200,
       "$rname: admitted after reload");
    is(post($n, '/v1/videos', undef, $SORA)->{status}, 401,
       "$rname: invalid after reload");
    my $m3 = scrape($n);
    my %grow = (
        'cost_cap_requests_total{result="admitted"}' => 9,
        'cost_cap_requests_total{result="invalid"}' => 6,
        'cost_cap_admitted_usd_total{model="sora-2"}' => usd(6 * 77415),
        'cost_cap_estimated_gpu_seconds_total{model="sora-2"}'
            => '477.75744',
        'cost_cap_redis_latency_seconds_count' => $calls + 1,
    );
    is_deeply({ map { $_ => $m3->{$_} } keys %grow }, \%grow,
              "$rname: counters grow from where they were");
    is_deeply(counters({ %$m3, map { $_ => $m->{$_} } keys %grow }),
              counters($m), "$rname: the others unchanged");

    # a reload with a new model listed first: counters stay with their
    # model's name, the new one starts at 0
    my $conf = CostCap::Test::_slurp($n->dir . '/nginx.conf');
    $conf =~ s/(cost_cap_model sora-2 )/cost_cap_model veo-3 per_mpx_frame=1.5 fps=30 default_size=1920x1080 default_seconds=8;\n$1/
        or die 'no model line';
    open my $fh, '>', $n->dir . '/nginx.conf' or die $!;
    print $fh $conf;
    close $fh;
    my $xname = 'reload adding a model';
    ok(reload($n, 1), "$xname: new worker in place");
    my $m4 = scrape($n);
    is($m4->{'cost_cap_admitted_usd_total{model="sora-2"}'},
       usd(6 * 77415), "$xname: sora-2 kept");
    is($m4->{'cost_cap_admitted_usd_total{model="~^flux"}'},
       usd(3 * 1710), "$xname: flux kept");
    is($m4->{'cost_cap_admitted_usd_total{model="veo-3"}'}, 0,
       "$xname: veo-3 listed at 0");
    is(post($n, '/v1/videos', 'hooli', '{"model":"veo-3","seconds":1}')
       ->{status}, 200, "$xname: veo-3 admitted");
    # 1920x1080 x 30 frames x 1.5 = 93.312 GPU-s -> 0.090720 -> 90720
    my $m5 = scrape($n);
    is($m5->{'cost_cap_admitted_usd_total{model="veo-3"}'}, usd(90720),
       "$xname: veo-3 counted under its own name");
    is($m5->{'cost_cap_admitted_usd_total{model="sora-2"}'},
       usd(6 * 77415), "$xname: not under sora-2");
    is($m5->{'cost_cap_requests_total{result="admitted"}'}, 10,
       "$xname: admitted 10");

    # ------------------------------------------------------------------
    my $ename = 'Redis down: error and error_open';
    redis_server()->stop('KILL');
    is(post($n, '/v1/videos', 'acme', $SORA)->{status}, 503,
       "$ename: 503");
    is(post($n, '/v1/videos', 'acme', $SORA)->{status}, 503,
       "$ename: 503 again");
    is(post($n, '/open/videos', 'acme', $SORA)->{status}, 200,
       "$ename: admitted open");
    my $m6 = scrape($n);
    is($m6->{'cost_cap_requests_total{result="error"}'}, 2,
       "$ename: error 2");
    is($m6->{'cost_cap_requests_total{result="error_open"}'}, 1,
       "$ename: error_open 1");
    is($m6->{'cost_cap_requests_total{result="admitted"}'}, 10,
       "$ename: admitted unchanged");
    is($m6->{'cost_cap_admitted_usd_total{model="sora-2"}'},
       usd(6 * 77415), "$ename: nothing reserved, nothing counted");
    ok($m6->{cost_cap_redis_errors_total} >= 1,
       "$ename: cost_cap_redis_errors_total $m6->{cost_cap_redis_errors_total}");
    redis_server()->start;
    ok(poll_until(sub { post($n, '/v1/videos', 'acme2', $SORA)->{status}
                        == 200 }, 5), "$ename: recovers");
    my $m7 = scrape($n);
    ok($m7->{cost_cap_redis_reconnects_total} >= 1,
       "$ename: cost_cap_redis_reconnects_total "
       . $m7->{cost_cap_redis_reconnects_total});
    $n->stop;
    no_crash($n, $name);
}


# -------------------------------------------------------------------------
# two workers: every scrape, whichever worker answers, has the sum

{
    my $name = 'two workers';
    my $rp = free_port();
    start_redis();
    redis()->cmd('CONFIG', 'RESETSTAT');
    my $http = $HTTP . <<"END";
log_format pid '\$pid \$cost_cap_result \$status';
server {
    listen 127.0.0.1:$rp reuseport;
    access_log \$TEST_NGINX_TMP/pid.log pid;
    cost_cap_tenant \$http_x_tenant;
    $MODELS
    location = /metrics {
        cost_cap_metrics;
    }
    location /v1/ {
        cost_cap on;
        cost_cap_limit 3 per=day;
        proxy_pass http://backend;
    }
}
END
    my $n = start_nginx(http_config => $http, config => $CONF,
                        backend_config => $BACKEND, workers => 2);
    ok(poll_until(sub { $n->worker_pids == 2 }, 5), "$name: 2 workers");

    # 3 USD: 155 x 19354 = 2999870 admitted, then 429s
    my %st;
    $st{ post($n, '/v1/videos', 'acme', '{"model":"sora-2","seconds":1}',
              port => $rp)->{status} }++ for 1 .. 200;
    is_deeply(\%st, { 200 => 155, 429 => 45 }, "$name: 155 admitted, 45 not");

    my @scrapes = map { scalar scrape($n, $rp) } 1 .. 10;
    my %pids;
    open my $fh, '<', $n->dir . '/pid.log' or die $!;
    while (<$fh>) {
        $pids{$1}++ if /^(\d+) /;
    }
    close $fh;
    is(scalar keys %pids, 2, "$name: both workers served requests")
        or diag(Test::More::explain(\%pids));

    my $m = $scrapes[0];
    my $js = JSON::PP->new->canonical;
    is_deeply([grep { $js->encode($_) ne $js->encode($m) } @scrapes], [],
              "$name: every scrape is the same, whichever worker answers");
    is($m->{'cost_cap_requests_total{result="admitted"}'}, 155,
       "$name: admitted summed");
    is($m->{'cost_cap_requests_total{result="rejected"}'}, 45,
       "$name: rejected summed");
    is($m->{'cost_cap_admitted_usd_total{model="sora-2"}'}, usd(155 * 19354),
       "$name: admitted USD summed");
    is($m->{'cost_cap_estimated_gpu_seconds_total{model="sora-2"}'},
       usd(155 * 19906560), "$name: GPU-seconds summed");
    is($m->{cost_cap_redis_latency_seconds_count}, 200,
       "$name: one script call per request");
    is(evalsha_calls(), 200, "$name: Redis agrees");
    is(redis()->cmd('GET', 'costcap:{acme}:day:' . day()), 155 * 19354,
       "$name: Redis counter");
    $n->stop;
    no_crash($n, $name);
}


# -------------------------------------------------------------------------
# reload twice while a client sends a steady stream of requests

{
    my $name = 'reload under traffic';
    my $N = 600;
    start_redis();
    my $conf = <<"END";
cost_cap_tenant \$http_x_tenant;
$MODELS
location = /metrics {
    cost_cap_metrics;
}
location /v1/ {
    cost_cap on;
    cost_cap_limit 80 per=day;
    proxy_pass http://backend;
}
END
    my $n = start_nginx(http_config => $HTTP, config => $conf,
                        backend_config => $BACKEND, workers => 2,
                        log_level => 'notice');
    ok(poll_until(sub { $n->worker_pids == 2 }, 5), "$name: 2 workers");

    my @bodies = ('{"model":"sora-2"}', '{"model":"sora-2","seconds":1}',
                  '{"model":"sora-2","size":"1920x1080","seconds":8}');
    my %est = (0 => 77415, 1 => 19354, 2 => 348365);
    my $out = tmp_dir() . '/stream.out';
    my $port = $n->port;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        alarm 50;
        open my $o, '>', $out or POSIX::_exit(2);
        $o->autoflush(1);
        for my $i (0 .. $N - 1) {
            my $k = $i % 3;
            my $r = http_request(port => $port, method => 'POST',
                                 uri => '/v1/videos', timeout => 10,
                                 headers => "X-Tenant: stream\n$JSON",
                                 body => $bodies[$k]);
            my $e = header_value($r, 'X-Cost-Cap-Estimate') // '-';
            print $o join("\t", $k, $r->{status} // 'none', $e), "\n";
            Time::HiRes::sleep(0.002);
        }
        close $o;
        POSIX::_exit(0);
    }

    my $lines = sub {
        open my $fh, '<', $out or return 0;
        my $c = 0;
        $c++ while <$fh>;
        return $c;
    };
    my @at;
    for my $mark (100, 250) {
        poll_until(sub { $lines->() >= $mark }, 20);
        push @at, $lines->();
        ok(reload($n, 2), "$name: reload at request $at[-1]");
    }
    push @at, $lines->();
    ok($at[-1] < $N, "$name: both reloads under traffic (@at of $N)");

    my $done = poll_until(sub { waitpid($pid, POSIX::WNOHANG()) == $pid },
                          40);
    ok($done, "$name: client finished")
        or do { kill 'KILL', $pid; waitpid $pid, 0 };

    my (%st, $sum, $bad);
    open my $fh, '<', $out or die "$out: $!";
    while (<$fh>) {
        chomp;
        my ($k, $s, $e) = split /\t/;
        $st{$s}++;
        next unless $s eq '200';
        my ($i, $f) = $e =~ /^(\d+)(?:\.(\d{1,6}))?$/ or ++$bad, next;
        my $m = $i * 1_000_000 + substr(($f // '') . '000000', 0, 6);
        $bad++ unless $m == $est{$k};
        $sum += $m;
    }
    close $fh;
    is(($st{200} // 0) + ($st{429} // 0), $N,
       "$name: every response is 200 or 429")
        or diag(Test::More::explain(\%st));
    ok($st{200} && $st{429}, "$name: some admitted, some rejected");
    is($bad // 0, 0, "$name: estimates as computed");
    is(redis()->cmd('GET', 'costcap:{stream}:day:' . day()), $sum,
       "$name: Redis counter = sum of admitted estimates ($sum)");

    my ($m, $res) = scrape($n);
    is($m->{'cost_cap_admitted_usd_total{model="sora-2"}'}, usd($sum),
       "$name: admitted_usd_total = the same sum");
    is($m->{'cost_cap_requests_total{result="admitted"}'}, $st{200},
       "$name: admitted count");
    is($m->{'cost_cap_requests_total{result="rejected"}'}, $st{429},
       "$name: rejected count");
    is($m->{cost_cap_redis_latency_seconds_count}, $N,
       "$name: one script call per request");
    is($m->{cost_cap_redis_errors_total}, 0, "$name: no Redis error");
    $LAST_SCRAPE = $res->{body};
    $n->stop;
    no_crash($n, $name);
    unlike($n->error_log, qr/\[error\]/, "$name: no error logged");
}

Test::More::note("final scrape:\n$LAST_SCRAPE") if $LAST_SCRAPE;
my $took = Time::HiRes::time() - $T0;
ok($took < 60, sprintf('whole run bounded (%.1f s)', $took));

done_testing();

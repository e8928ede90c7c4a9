# SPEC section 13: cost_cap_reject_cache.  After a 429 a worker answers
# 429 without Redis to a request of that tenant whose estimate exceeds
# what was left; a smaller one still goes to Redis; the memory ends with
# its time, a refund elsewhere is seen then; a parent's window is shared
# by its tenants; and the cache never admits what Redis would refuse.
#
# sora-2 at its defaults is 77415 micro-USD, at seconds=1 19354.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Time::HiRes ();

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
map $http_x_tenant $org { ~^team org; default ""; }
END

my $CONF = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
location /v1/ {
    cost_cap on;
    cost_cap_limit 0.2 per=day;
    cost_cap_reject_cache 1s;
    proxy_pass http://backend;
}
location /parent/ {
    cost_cap on;
    cost_cap_parent $org;
    cost_cap_parent_limit 0.2 per=day;
    cost_cap_reject_cache 1s;
    proxy_pass http://backend;
}
location /dry/ {
    cost_cap on;
    cost_cap_dry_run on;
    cost_cap_limit 0.1 per=day;
    cost_cap_reject_cache 10s;
    proxy_pass http://backend;
}
location = /metrics {
    cost_cap_metrics;
}
END

my %DEF = (body => '{"model":"sora-2"}');
my %SMALL = (body => '{"model":"sora-2","seconds":1}');

sub req {
    my ($n, $tenant, $uri, %o) = @_;
    return $n->request(method => 'POST', uri => $uri,
                       headers => "X-Tenant: $tenant\n"
                                  . "Content-Type: application/json",
                       body => $o{body} // $DEF{body});
}

sub evalsha_calls {
    my $s = redis()->cmd('INFO', 'commandstats');
    return $s =~ /cmdstat_evalsha:calls=(\d+)/ ? $1 : 0;
}

sub metric {
    my ($n, $name) = @_;
    my $body = $n->request(uri => '/metrics')->{body} // '';
    return $body =~ /^\Q$name\E (\S+)$/m ? $1 : undef;
}

sub day { 'costcap:{' . shift() . '}:day:' . {window_info()}->{day} }

start_redis();
my $n = start_nginx(http_config => $HTTP, config => $CONF);

{
    my $name = 'a 429 is remembered';
    redis()->cmd('FLUSHALL');
    is(req($n, 'acme', '/v1/x')->{status}, 200, "$name: admitted");
    is(req($n, 'acme', '/v1/x')->{status}, 200, "$name: admitted again");
    my $r = req($n, 'acme', '/v1/x');
    is($r->{status}, 429, "$name: 429 from Redis");
    my $calls = evalsha_calls();
    my $c = req($n, 'acme', '/v1/x');
    is($c->{status}, 429, "$name: 429 again");
    is(evalsha_calls(), $calls, "$name: without a round trip");
    is($c->{body}, $r->{body}, "$name: the same body as Redis' answer");
    is(header_value($c, 'Retry-After'), header_value($r, 'Retry-After'),
       "$name: the same Retry-After");
    is(metric($n, 'cost_cap_reject_cache_hits_total'), 1,
       "$name: counted as a hit");
    is(metric($n, 'cost_cap_requests_total{result="rejected"}'), 2,
       "$name: counted as rejected");

    # 0.2 - 0.15483 = 0.04517 left: 0.019354 fits, and goes to Redis
    is(req($n, 'acme', '/v1/x', %SMALL)->{status}, 200,
       "$name: a smaller estimate that fits is admitted");
    is(evalsha_calls(), $calls + 1, "$name: by Redis");
    is(redis()->cmd('GET', day('acme')), 2 * 77415 + 19354,
       "$name: and charged");

    # another tenant is not affected
    is(req($n, 'globex', '/v1/x')->{status}, 200,
       "$name: another tenant is admitted");
}

{
    my $name = 'the memory ends with its time';
    redis()->cmd('FLUSHALL');
    req($n, 'initech', '/v1/x') for 1 .. 2;
    is(req($n, 'initech', '/v1/x')->{status}, 429, "$name: 429");
    # a refund elsewhere (another gateway, an operator)
    redis()->cmd('DECRBY', day('initech'), 77415);
    is(req($n, 'initech', '/v1/x')->{status}, 429,
       "$name: still remembered within its time");
    my $calls = evalsha_calls();
    ok(poll_until(sub { req($n, 'initech', '/v1/x')->{status} == 200 }, 3),
       "$name: admitted once it ends");
    ok(evalsha_calls() > $calls, "$name: Redis asked again");
    is(redis()->cmd('GET', day('initech')), 2 * 77415,
       "$name: charged once");
}

{
    my $name = "a parent's window is shared by its tenants";
    redis()->cmd('FLUSHALL');
    is(req($n, 'team-a', '/parent/x')->{status}, 200, "$name: a admitted");
    is(req($n, 'team-b', '/parent/x')->{status}, 200, "$name: b admitted");
    my $r = req($n, 'team-a', '/parent/x');
    is($r->{status}, 429, "$name: a refused by the parent");
    like($r->{body}, qr/"level":"parent"/, "$name: at the parent level");
    my $calls = evalsha_calls();
    my $b = req($n, 'team-b', '/parent/x');
    is($b->{status}, 429, "$name: b refused from the cache");
    like($b->{body}, qr/"tenant":"team-b","level":"parent"/,
         "$name: b's own body");
    is(evalsha_calls(), $calls, "$name: without a round trip");
}

{
    my $name = 'dry run is never answered from the cache';
    redis()->cmd('FLUSHALL');
    req($n, 'dry', '/dry/x') for 1 .. 3;
    my $calls = evalsha_calls();
    my $r = req($n, 'dry', '/dry/x');
    is($r->{status}, 200, "$name: admitted");
    is(header_value($r, 'X-Cost-Cap-Dry-Run'), 'rejected',
       "$name: marked");
    is(evalsha_calls(), $calls + 1, "$name: counted in Redis");
    is(redis()->cmd('GET', day('dry')), 4 * 77415, "$name: every request");
}

{
    # many requests of mixed size against one cap, from 8 processes: what
    # the cache refuses Redis would refuse too, and the cap is filled as
    # without it, to within the largest estimate
    my $name = 'mixed load';
    redis()->cmd('FLUSHALL');
    my $dir = tmp_dir();
    my @pids;
    for my $c (0 .. 7) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open my $out, '>', "$dir/rc-$c" or POSIX::_exit(2);
            for my $i (1 .. 40) {
                my %o = ($c + $i) % 3 ? %SMALL : %DEF;
                my $res = req($n, 'umbrella', '/v1/x', %o);
                print $out ($res->{status} // 'ERR'), ' ',
                    (header_value($res, 'X-Cost-Cap-Estimate') // '-'), "\n";
            }
            close $out;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid $_, 0 for @pids;
    my ($admitted, %st) = (0);
    for my $c (0 .. 7) {
        open my $in, '<', "$dir/rc-$c" or next;
        while (<$in>) {
            my ($s, $e) = split;
            $st{$s}++;
            $admitted += $e =~ /^0\.(\d+)$/ ? $1 . '0' x (6 - length $1) : 0
                if $s eq '200';
        }
    }
    my $spent = redis()->cmd('GET', day('umbrella'));
    is($st{200} + $st{429}, 320, "$name: every request answered 200 or 429")
        or diag(explain(\%st));
    is($spent, $admitted, "$name: the counter is the admitted spend");
    ok($spent <= 200000, "$name: within the cap ($spent)");
    ok($spent > 200000 - 77415, "$name: the cap filled to within one "
                                . "estimate ($spent)");
}

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[crit\]|exited on signal/,
       'no crash, no alert');

done_testing();

# SPEC section 11 (caps in Redis): with cost_cap_caps_from_redis on, the
# reservation script reads costcap:{TAG}:caps (and, under a parent,
# costcap:{PARENT}:TENANT:caps and costcap:{PARENT}:caps) in the same
# round trip.  Two gateways (2 workers each) share one Redis: an HSET
# takes effect on the next request at both, without a reload; `off`
# disables a window; a window only in the hash is enforced; a malformed
# value is 500 cost_cap_misconfigured and logged, never a silent pass.
#
# sora-2 at its defaults costs 77415 micro-USD (see t/030-redis.t).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More import => [qw(subtest diag)];
use Time::HiRes ();

my $T0 = Time::HiRes::time();
my $EST = 77415;

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
END

my $CONF = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
add_header X-Var-Result $cost_cap_result always;

location /v1/ {
    cost_cap on;
    cost_cap_caps_from_redis on;
    cost_cap_limit 0.1 per=day;
    proxy_pass http://backend;
}
location /org/ {
    cost_cap on;
    cost_cap_caps_from_redis on;
    cost_cap_parent $http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_parent_limit 0.2 per=day;
    proxy_pass http://backend;
}
location /alert/ {
    cost_cap on;
    cost_cap_caps_from_redis on;
    cost_cap_limit 1 per=day;
    cost_cap_alert 50;
    proxy_pass http://backend;
}
location /static/ {
    cost_cap on;
    cost_cap_limit 0.1 per=day;
    proxy_pass http://backend;
}
END

my $r = start_redis();
my @gw = map { start_nginx(http_config => $HTTP, config => $CONF,
                           workers => 2) } 1 .. 2;
my @pid = map { $_->{pid} } @gw;

sub req {
    my ($g, $uri, $tenant, $org) = @_;
    my $h = "X-Tenant: $tenant\nContent-Type: application/json";
    $h .= "\nX-Org: $org" if defined $org;
    return $gw[$g]->request(method => 'POST', uri => $uri, headers => $h,
                            body => '{"model":"sora-2"}');
}

sub hv { header_value(@_) // '(absent)' }

sub day { my %w = window_info(); return $w{day} }

# the counter of a window, as operators read it (SPEC section 6)
sub counter {
    my ($key) = @_;
    return $r->cmd('GET', $key) // 0;
}

my $log_off = [map { $_->log_size('error.log') } @gw];

# the error lines each gateway logged since the subtest began
sub new_log {
    my $i = shift;
    return $gw[$i]->error_log($log_off->[$i]);
}

# the commands clients sent (not those of scripts) that MONITOR saw until
# now: a marker ECHOed by the test ends them
sub monitored {
    my $mon = shift;
    my $mark = 'end-' . rand();
    $r->cmd('ECHO', $mark);
    my @l;
    while (defined(my $line = eval { $mon->_line })) {
        last if $line =~ /"ECHO" "\Q$mark\E"/;
        next if $line =~ /^\+?[\d.]+ \[\d+ lua\]/;
        push @l, $1 if $line =~ /^\+?[\d.]+ \[\d+ [^\]]+\] (.*)/;
    }
    $mon->close;
    return @l;
}

sub mark_logs { $log_off = [map { $_->log_size('error.log') } @gw] }

# an [error] line with TEXT in the log of gateway I since mark_logs
sub logged {
    my ($i, $text) = @_;
    my $re = qr/\[error\][^\n]*\Q$text\E/;
    return 1 if poll_until(sub { new_log($i) =~ $re }, 2);
    diag(new_log($i));
    return 0;
}


subtest 'HSET of a cap: the next request at either gateway has it' => sub {
    $r->cmd('FLUSHALL');
    my $key = 'costcap:{acme}:day:' . day();
    is(req(0, '/v1/x', 'acme')->{status}, 200, 'first admitted (0.1 cap)');
    my $res = req(1, '/v1/x', 'acme');
    is($res->{status}, 429, 'second refused at the other gateway');
    my $j = json_decode($res->{body});
    is($j && $j->{error}{limit}, 0.1, '429 says the configured cap');

    # raise it: 0.25 USD
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', 250000);
    for my $g (0, 1) {
        my $res = req($g, '/v1/x', 'acme');
        is($res->{status}, 200, "gateway $g: admitted at once");
        is(hv($res, 'X-Cost-Cap-Limit'), '0.25', "gateway $g: limit 0.25");
    }
    is(counter($key), 3 * $EST, 'counter: three admitted');
    for my $g (0, 1) {
        my $res = req($g, '/v1/x', 'acme');
        is($res->{status}, 429, "gateway $g: refused past 0.25");
        my $j = json_decode($res->{body});
        is($j && $j->{error}{limit}, 0.25, "gateway $g: 429 says 0.25");
        is($j && $j->{error}{spent}, 0.232245, "gateway $g: spent 0.232245");
    }

    # lower it below the spend: every gateway refuses at once
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', 100000);
    for my $g (0, 1) {
        my $j = json_decode(req($g, '/v1/x', 'acme')->{body});
        is($j && $j->{error}{limit}, 0.1, "gateway $g: lowered to 0.1");
    }

    # `off`: the window is not enforced (nor counted) for this tenant
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', 'off');
    for my $g (0, 1) {
        my $res = req($g, '/v1/x', 'acme');
        is($res->{status}, 200, "gateway $g: day off, admitted");
        is(hv($res, 'X-Cost-Cap-Limit'), '(absent)',
           "gateway $g: no window reported");
        is(hv($res, 'X-Cost-Cap-Estimate'), '0.077415',
           "gateway $g: the estimate still");
    }
    is(counter($key), 3 * $EST, 'counter unchanged while off');

    # HDEL: the configured cap again
    $r->cmd('HDEL', 'costcap:{acme}:caps', 'day');
    for my $g (0, 1) {
        my $j = json_decode(req($g, '/v1/x', 'acme')->{body});
        is($j && $j->{error}{limit}, 0.1, "gateway $g: HDEL, 0.1 again");
    }

    # another tenant is not affected by acme's hash
    is(req(0, '/v1/x', 'globex')->{status}, 200, 'globex admitted');
    is(req(1, '/v1/x', 'globex')->{status}, 429, 'globex at its 0.1');

    # a location without cost_cap_caps_from_redis never reads it
    $r->cmd('HSET', 'costcap:{initech}:caps', 'day', 'off');
    is(req(0, '/static/x', 'initech')->{status}, 200, 'static: admitted');
    is(req(1, '/static/x', 'initech')->{status}, 429,
       'static: the hash is not read there');

    is_deeply([map { $_->{pid} } @gw], \@pid, 'no gateway restarted');
    for my $g (0, 1) {
        unlike($gw[$g]->error_log, qr/reconfiguring|signal 1 \(SIGHUP\)/,
               "gateway $g: no reload");
    }
};


subtest 'a window only in the hash is enforced' => sub {
    $r->cmd('FLUSHALL');
    # total: no period boundary can cross the test
    $r->cmd('HSET', 'costcap:{acme}:caps', 'total', 160000, 'day', 1000000);
    for my $g (0, 1) {
        my $res = req($g, '/v1/x', 'acme');
        is($res->{status}, 200, "gateway $g: admitted");
    }
    is(counter('costcap:{acme}:total:all'), 2 * $EST, 'total counted');
    is(counter('costcap:{acme}:day:' . day()), 2 * $EST, 'day counted');
    my $res = req(0, '/v1/x', 'acme');
    is($res->{status}, 429, 'third refused by the total cap');
    my $j = json_decode($res->{body});
    is($j && $j->{error}{window}, 'total', '429 names the total window');
    is($j && $j->{error}{limit}, 0.16, '... its cap from Redis');
    is($j && $j->{error}{reset_in}, undef, '... reset_in null');
    ok(!defined header_value($res, 'Retry-After'), 'no Retry-After');

    # windows not in the hash nor configured are declared, not counted
    my @k = grep { !/:op:[0-9a-f]{24}$/ }
            @{$r->cmd('KEYS', 'costcap:{acme}:*')};
    is_deeply([sort @k], [sort 'costcap:{acme}:caps',
                          'costcap:{acme}:day:' . day(),
                          'costcap:{acme}:total:all'],
              'only the enforced windows have counters');

    # an hour cap, with its period key and expiry
    $r->cmd('HSET', 'costcap:{acme}:caps', 'total', 'off', 'hour', 100000);
    my %w = window_info();
    is(req(1, '/v1/x', 'acme')->{status}, 200, 'hour: first admitted');
    my $hk = "costcap:{acme}:hour:$w{hour}";
    my %w2 = window_info();
    if ($w2{hour} eq $w{hour}) {
        is(counter($hk), $EST, "hour counter $hk");
        my $ttl = $r->cmd('TTL', $hk);
        ok($ttl > 86400 && $ttl <= $w{end_hour} + 86400,
           "it expires a day after its hour ($ttl s)");
        is(req(0, '/v1/x', 'acme')->{status}, 429,
           'hour: second refused (0.1)');
    }
};


subtest 'malformed values: 500 cost_cap_misconfigured, logged' => sub {
    $r->cmd('FLUSHALL');
    my $key = 'costcap:{acme}:day:' . day();
    my @hits = map { $_->log_size('backend_access.log') } @gw;
    my $n = 0;
    for my $v ('abc', '12.5', '-1', '', '1e6', ' 100', '100 ', '0x10',
               'OFF', '9007199254740992', '99999999999999999999')
    {
        # a configured window, and one only in the hash
        for my $w ('day', 'week') {
            $r->cmd('DEL', 'costcap:{acme}:caps');
            $r->cmd('HSET', 'costcap:{acme}:caps', $w, $v);
            mark_logs();
            my $g = $n++ % 2;
            my $res = req($g, '/v1/x', 'acme');
            is($res->{status}, 500, "$w '$v': 500");
            json_matches($res->{body}, err('cost_cap_misconfigured', undef),
                         "$w '$v': cost_cap_misconfigured");
            is(hv($res, 'X-Var-Result'), 'invalid',
               "$w '$v': \$cost_cap_result invalid");
            ok(logged($g, qq{cost_cap: cap "$v" in costcap:{acme}:caps }
                          . qq{field $w is not an amount (tenant "acme")}),
               "$w '$v': logged with the hash, field and value");
        }
    }
    is(counter($key), 0, 'nothing was charged');
    is($gw[0]->backend_hits($hits[0]) + $gw[1]->backend_hits($hits[1]), 0,
       'nothing reached the backend');

    # the largest amount Redis' Lua counts exactly is a cap
    $r->cmd('DEL', 'costcap:{acme}:caps');
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', '9007199254740991');
    is(req(0, '/v1/x', 'acme')->{status}, 200, '2^53 - 1: a cap');
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', '0');
    is(req(1, '/v1/x', 'acme')->{status}, 429, '0: refuses everything');

    # a counter that is not a whole number is no silent pass either
    $r->cmd('DEL', 'costcap:{acme}:caps');
    $r->cmd('SET', $key, 'garbage');
    mark_logs();
    my $res = req(0, '/v1/x', 'acme');
    is($res->{status}, 500, 'a garbage counter: 500');
    json_matches($res->{body}, err('cost_cap_misconfigured', undef),
                 '... cost_cap_misconfigured');
    ok(logged(0, "cost_cap: counter $key is not an amount"),
       '... logged with its key');
    is($r->cmd('GET', $key), 'garbage', '... left as it was');
};


subtest "the parent's caps hash and the tenant's under it" => sub {
    $r->cmd('FLUSHALL');
    my $d = day();
    my $pk = "costcap:{orgA}:day:$d";
    my $tk = "costcap:{orgA}:a1:day:$d";

    # configured: tenant 1 USD, parent 0.2 USD
    is(req(0, '/org/x', 'a1', 'orgA')->{status}, 200, 'a1 admitted');
    is(req(1, '/org/x', 'a2', 'orgA')->{status}, 200, 'a2 admitted');
    my $res = req(0, '/org/x', 'a1', 'orgA');
    is($res->{status}, 429, 'the third crosses the parent cap');
    my $j = json_decode($res->{body});
    is($j && $j->{error}{level}, 'parent', '429 level parent');
    is($j && $j->{error}{limit}, 0.2, '... the parent cap');
    is($j && $j->{error}{tenant}, 'a1', '... for tenant a1');

    # the parent's hash raises it at both gateways
    $r->cmd('HSET', 'costcap:{orgA}:caps', 'day', 320000);
    for my $g (0, 1) {
        my $res = req($g, '/org/x', 'a1', 'orgA');
        is($res->{status}, 200, "gateway $g: parent raised, admitted");
    }
    is(counter($pk), 4 * $EST, 'parent counter');
    is(counter($tk), 3 * $EST, "a1's counter under the parent");
    is(counter("costcap:{orgA}:a2:day:$d"), $EST, "a2's counter");

    # a1's own cap, in the hash under the parent's tag
    $r->cmd('HSET', 'costcap:{orgA}:caps', 'day', 'off');
    $r->cmd('HSET', 'costcap:{orgA}:a1:caps', 'day', 250000);
    $res = req(1, '/org/x', 'a1', 'orgA');
    is($res->{status}, 429, "a1 refused by its cap of 0.25 under orgA");
    $j = json_decode($res->{body});
    is($j && $j->{error}{level}, 'tenant', '... level tenant');
    is($j && $j->{error}{limit}, 0.25, '... its cap from the hash');
    is(req(0, '/org/x', 'a2', 'orgA')->{status}, 200,
       'a2 admitted: parent window off, a2 at 1 USD');

    # the hash of the tenant's own tag is not the one under a parent
    $r->cmd('HSET', 'costcap:{a2}:caps', 'day', 0);
    is(req(1, '/org/x', 'a2', 'orgA')->{status}, 200,
       'costcap:{a2}:caps does not apply to a2 under orgA');
    # without a parent, it does
    is(req(0, '/org/x', 'a2')->{status}, 429,
       'a2 without a parent: its own hash, cap 0');

    # a window only in the parent's hash
    $r->cmd('HSET', 'costcap:{orgA}:caps', 'total', 2 * $EST);
    is(req(0, '/org/x', 'a2', 'orgA')->{status}, 200, 'total: 1st');
    is(req(1, '/org/x', 'a3', 'orgA')->{status}, 200, 'total: 2nd');
    $res = req(0, '/org/x', 'a4', 'orgA');
    is($res->{status}, 429, "total: 3rd refused by the parent's total");
    $j = json_decode($res->{body});
    is($j && "$j->{error}{level} $j->{error}{window}", 'parent total',
       '... level parent, window total');
    is(counter('costcap:{orgA}:total:all'), 2 * $EST, 'parent total');
    is(counter('costcap:{orgA}:a4:day:' . $d), 0, 'nothing charged to a4');

    # malformed in the parent's hash: 500, and the log names that hash
    $r->cmd('HSET', 'costcap:{orgA}:caps', 'day', '2 USD');
    mark_logs();
    $res = req(1, '/org/x', 'a5', 'orgA');
    is($res->{status}, 500, "parent's malformed cap: 500");
    json_matches($res->{body}, err('cost_cap_misconfigured', undef),
                 '... cost_cap_misconfigured');
    ok(logged(1, 'cost_cap: cap "2 USD" in costcap:{orgA}:caps field day '
                 . 'is not an amount (tenant "a5")'),
       "... logged with the parent's hash");
    $r->cmd('HDEL', 'costcap:{orgA}:caps', 'day');
    $r->cmd('HSET', 'costcap:{orgA}:a5:caps', 'month', 'x');
    mark_logs();
    is(req(0, '/org/x', 'a5', 'orgA')->{status}, 500,
       "tenant's malformed cap under the parent: 500");
    ok(logged(0, 'cost_cap: cap "x" in costcap:{orgA}:a5:caps field month '),
       '... logged with its hash');
};


subtest 'thresholds of a cap from the hash' => sub {
    $r->cmd('FLUSHALL');
    my $d = day();
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', 150000);
    is(req(0, '/alert/x', 'acme')->{status}, 200, '77415 of 150000');
    ok(poll_until(sub { $r->cmd('XLEN', 'costcap:events') == 1 }, 3),
       'an event');
    my $x = $r->cmd('XRANGE', 'costcap:events', '-', '+');
    my %f = @{$x->[0][1] || []};
    is("$f{percent}% $f{spent} of $f{limit}", '50% 77415 of 150000',
       '... 50% of the cap in the hash');
    is_deeply([sort @{$r->cmd('HKEYS', 'costcap:{acme}:alerts')}],
              ["tenant:day:" . (int($f{time} / 86400) * 86400) . ':50'],
              'the alerts hash: one field, window, period start, percent');

    # raised: 50% of it was announced in this period already
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', 200000);
    is(req(1, '/alert/x', 'acme')->{status}, 200, '154830 of 200000');
    # the field gone (HDEL), a crossing is announced again
    $r->cmd('DEL', 'costcap:{acme}:alerts');
    $r->cmd('HSET', 'costcap:{acme}:caps', 'day', 400000);
    is(req(0, '/alert/x', 'acme')->{status}, 200, '232245 of 400000');
    ok(poll_until(sub { $r->cmd('XLEN', 'costcap:events') == 2 }, 3),
       'after the alerts hash was deleted, an event again');
    is(req(1, '/alert/x', 'acme')->{status}, 200, '309660 of 400000');
    Time::HiRes::sleep(0.2);
    is($r->cmd('XLEN', 'costcap:events'), 2, 'and no more');
    $x = $r->cmd('XRANGE', 'costcap:events', '-', '+');
    %f = @{$x->[1][1] || []};
    is("$f{percent}% $f{spent} of $f{limit} $f{period}",
       "50% 232245 of 400000 $d", '... 50% of the new cap');
};


subtest 'one round trip per request, caps hashes included' => sub {
    $r->cmd('FLUSHALL');
    $r->cmd('HSET', 'costcap:{orgB}:caps', 'hour', 10_000_000, 'day',
            10_000_000);
    $r->cmd('HSET', 'costcap:{orgB}:b1:caps', 'week', 10_000_000);
    my $mon = $r->connect;
    $mon->cmd('MONITOR');
    my $n = 0;
    for my $i (1 .. 10) {
        $n++ if req($i % 2, '/org/x', 'b1', 'orgB')->{status} == 200;
        $n++ if req($i % 2, '/v1/x', "t$i")->{status} == 200;
    }
    is($n, 20, 'twenty admitted');
    my @sent = monitored($mon);
    is(scalar(grep { /^"EVALSHA"/ } @sent), 20, 'twenty EVALSHA');
    is_deeply([grep { !/^"EVALSHA"/ } @sent], [], 'and no other command');
    my @hashes = map { /"(costcap:\{[^"]*:caps)"/g } @sent;
    is(scalar(grep { $_ eq 'costcap:{orgB}:b1:caps' } @hashes), 10,
       "the tenant's hash declared by each of b1's");
    is(scalar(grep { $_ eq 'costcap:{orgB}:caps' } @hashes), 10,
       "the parent's too");
};


for my $g (0, 1) {
    my $log = $gw[$g]->error_log;
    unlike($log, qr/exited on signal|\[alert\]|\[emerg\]|runtime error:/,
           "gateway $g: no crash, no alert");
}
$_->stop for @gw;
ok(Time::HiRes::time() - $T0 < 60, 'bounded in time');

done_testing();

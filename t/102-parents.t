# SPEC section 11 (parent budgets, threshold events), 5 (`level` in the
# 429), 6 (keys under a parent), 7 ($cost_cap_parent).  One Redis, two
# gateways of 2 workers each; 2 parents of 5 tenants, every level capped
# on its day and total windows (CostCap::Test::Budget); 64 clients send
# mixed estimates.  No counter above its cap at either level, each
# parent's counter the sum of its tenants' to the micro-dollar, and
# exactly one event per threshold crossed in costcap:events, with a
# notice line each.  Before that, one request at a time: a rejected
# request emits no event, the 429 names the level, the parent is
# validated as the tenant is.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Budget;
use Test::More import => [qw(subtest diag)];
use Time::HiRes ();

my $T0 = Time::HiRes::time();

my $r = start_redis();



subtest 'one request at a time: levels, events, variables' => sub {
    my $n = start_nginx(log_level => 'notice', http_config => <<'END',
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=2s;
END
        config => <<'END');
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
add_header X-Var-Parent $cost_cap_parent always;
add_header X-Var-Tenant $cost_cap_tenant always;
add_header X-Var-Result $cost_cap_result always;

location /small/ {
    cost_cap on;
    cost_cap_limit 0.1 per=day;
    cost_cap_alert 50 80 100;
    proxy_pass http://backend;
}
location /open/ {
    cost_cap on;
    cost_cap_on_error open;
    cost_cap_parent $http_x_org;
    cost_cap_limit 0.1 per=day;
    cost_cap_parent_limit 1 per=day;
    cost_cap_alert 50;
    proxy_pass http://backend;
}
location /lease/ {
    cost_cap on;
    cost_cap_limit 100 per=day;
    cost_cap_lease 2 ttl=300ms;
    cost_cap_alert 1;
    proxy_pass http://backend;
}
location /org/ {
    cost_cap on;
    cost_cap_parent $http_x_org;
    cost_cap_limit 0.1 per=day;
    cost_cap_parent_limit 0.15483 per=day;
    cost_cap_alert 50 100;
    proxy_pass http://backend;
}
END
    my %w = window_info();
    my $req = sub {
        my ($uri, $tenant, $org, $body) = @_;
        my $h = "X-Tenant: $tenant\nContent-Type: application/json";
        $h .= "\nX-Org: $org" if defined $org;
        return $n->request(method => 'POST', uri => $uri, headers => $h,
                           body => $body // '{"model":"sora-2"}');
    };
    my $events = sub {
        my $x = $r->cmd('XRANGE', 'costcap:events', '-', '+');
        return map { my %f = @{$_->[1]};
                     "$f{level} $f{tenant}/$f{parent} $f{window} "
                     . "$f{percent} $f{spent}/$f{limit}" } @$x;
    };

    # 77415 of 100000: 50% crossed
    is($req->('/small/x', 'acme')->{status}, 200, '77% admitted');
    # 154830 would cross 80% and 100%: refused, and no event
    is($req->('/small/x', 'acme')->{status}, 429, '154% refused');
    # 19354 more: 96769, 80% crossed
    is($req->('/small/x', 'acme', undef, '{"model":"sora-2","seconds":1}')
       ->{status}, 200, '96% admitted');
    is($req->('/small/x', 'acme', undef, '{"model":"sora-2","seconds":1}')
       ->{status}, 429, '116% refused');
    is_deeply([$events->()],
              ['tenant acme/ day 50 77415/100000',
               'tenant acme/ day 80 96769/100000'],
              'two events: the refused requests emitted none');

    # under a parent: the tenant's level, then the parent's
    $r->cmd('DEL', 'costcap:events');
    my $res = $req->('/org/x', 'u1', 'org1');
    is($res->{status}, 200, 'u1 admitted');
    is(header_value($res, 'X-Var-Parent'), 'org1', '$cost_cap_parent');
    is(header_value($res, 'X-Var-Tenant'), 'u1', '$cost_cap_tenant');
    is(header_value($res, 'X-Cost-Cap-Remaining'), '0.022585',
       'remaining: the tighter window (the tenant\'s 0.1)');
    $res = $req->('/org/x', 'u1', 'org1');
    is($res->{status}, 429, 'u1 refused by its own cap');
    json_matches($res->{body}, err('cost_cap_exceeded', undef,
        tenant => 'u1', level => 'tenant', window => 'day', limit => 0.1,
        spent => 0.077415, estimate => 0.077415, reset_in => ANY_INT),
        '429 level tenant');
    $res = $req->('/org/x', 'u2', 'org1');
    is($res->{status}, 200, 'u2 admitted: the parent at its cap exactly');
    $res = $req->('/org/x', 'u3', 'org1');
    is($res->{status}, 429, 'u3 refused by the parent');
    json_matches($res->{body}, err('cost_cap_exceeded', undef,
        tenant => 'u3', level => 'parent', window => 'day', limit => 0.15483,
        spent => 0.15483, estimate => 0.077415, reset_in => ANY_INT),
        '429 level parent, its spend and cap');
    is(header_value($res, 'X-Var-Parent'), 'org1', '$cost_cap_parent');
    ok(defined header_value($res, 'Retry-After'), 'Retry-After');
    is($r->cmd('GET', "costcap:{org1}:day:$w{day}"), 154830,
       'parent counter costcap:{org1}:day:DAY');
    is($r->cmd('GET', "costcap:{org1}:u1:day:$w{day}"), 77415,
       "u1's counter costcap:{org1}:u1:day:DAY");
    is($r->cmd('EXISTS', "costcap:{u1}:day:$w{day}"), 0,
       'nothing under the tenant\'s own tag');
    is($r->cmd('EXISTS', "costcap:{org1}:u3:day:$w{day}"), 0,
       'nothing charged to u3');
    is_deeply([sort $events->()],
              ['parent u1/org1 day 50 77415/154830',
               'parent u2/org1 day 100 154830/154830',
               'tenant u1/org1 day 50 77415/100000',
               'tenant u2/org1 day 50 77415/100000'],
              'events of both levels, the parent\'s named with the tenant '
              . 'that crossed');

    # an empty parent: the tenant alone, under its own tag
    is($req->('/org/x', 'solo')->{status}, 200, 'no parent: admitted');
    is($r->cmd('GET', "costcap:{solo}:day:$w{day}"), 77415,
       'counter under the tenant\'s own tag');

    # the parent is validated as the tenant is (SPEC section 2 step 1)
    for my $bad ('a b', 'x' x 129, 'org{1}', "caf\xc3\xa9") {
        my $res = $req->('/org/x', 'u9', $bad);
        is($res->{status}, 400, 'parent "' . substr($bad, 0, 10)
                                . '...": 400');
        json_matches($res->{body}, err('tenant_invalid', 'parent'),
                     '... tenant_invalid, param parent');
        is(header_value($res, 'X-Var-Parent') // '', '',
           '... $cost_cap_parent empty');
    }
    is($r->cmd('EXISTS', "costcap:{u9}:day:$w{day}"), 0,
       'nothing charged for them');

    # served while Redis was away (cost_cap_on_error open), charged when
    # it is back: that charge's crossing is an event too
    $r->cmd('DEL', 'costcap:events');
    my $port = redis_port();
    stop_redis();
    $res = $req->('/open/x', 'late', 'org2');
    is(header_value($res, 'X-Var-Result'), 'error_open',
       'Redis down: admitted open');
    $r = start_redis(port => $port);
    ok(poll_until(sub { ($r->cmd('GET', "costcap:{org2}:late:day:$w{day}")
                         // 0) == 77415 }, 5), 'charged once Redis is back');
    ok(poll_until(sub { $r->cmd('XLEN', 'costcap:events') == 1 }, 3),
       'its event written');
    is_deeply([$events->()], ['tenant late/org2 day 50 77415/100000'],
              '... one, the tenant\'s (the parent is at 7%)');

    # served open because Redis was slow: its reservation's late reply
    # keeps the charge, and its events
    $r->cmd('DEL', 'costcap:events');
    $r->pause;
    $res = $req->('/open/x', 'slow', 'org2');
    $r->resume;
    is(header_value($res, 'X-Var-Result'), 'error_open',
       'Redis paused past the timeout: admitted open');
    ok(poll_until(sub { ($r->cmd('GET', "costcap:{org2}:slow:day:$w{day}")
                         // 0) == 77415 }, 5), 'the late reply charged it');
    ok(poll_until(sub { $r->cmd('XLEN', 'costcap:events') == 1 }, 3),
       'its event written');
    is_deeply([$events->()], ['tenant slow/org2 day 50 77415/100000'],
              '... the tenant\'s');

    # a lease is counted at once: its crossing says so
    $r->cmd('DEL', 'costcap:events');
    is($req->('/lease/x', 'lz')->{status}, 200, 'admitted with a lease');
    ok(poll_until(sub { $r->cmd('XLEN', 'costcap:events') == 1 }, 3),
       'its event written');
    is_deeply([$events->()], ['tenant lz/ day 1 2077415/100000000'],
              '... spent: the estimate and the 2 USD lease, as counted');

    # one notice line per event
    $n->stop;
    my @lines = grep { /\[notice\].*cost_cap: (tenant|parent) "/ }
                split /\n/, $n->error_log;
    is(scalar @lines, 10, 'ten notice lines, one per event');
    ok((grep { /cost_cap: tenant "late" reached 50% of its day cap in /
               && /\(tenant "late", 77415 of 100000 micro-USD\)/ } @lines)
       == 1, 'the late charge\'s line');
    my $want = 'cost_cap: parent "org1" reached 100% of its day cap in '
             . qq{$w{day} (tenant "u2", 154830 of 154830 micro-USD)};
    ok((grep { index($_, $want) >= 0 } @lines) == 1, "the parent's line")
        or diag(join "\n", @lines);
};


subtest 'concurrency: 2 parents x 5 tenants, 2 gateways x 2 workers, '
        . '64 clients' => sub {
    $r->cmd('FLUSHALL');
    my $store = CostCap::Test::Budget::Single->new($r);
    my $s = CostCap::Test::Budget->new(orgs => ['orgA', 'orgB'],
                                       store => $store);
    my @gw = map { start_nginx(
        http_config => $s->http_config('127.0.0.1:' . redis_port()
                                       . ' timeout=3s connect_timeout=1s'),
        config => $s->config, workers => 2, log_level => 'notice') } 1 .. 2;
    $store->reset_stats;
    my $l = $s->load(ports => [map { $_->port } @gw], clients => 64,
                     requests => 32);
    ok($l->wait(70), 'every client finished in time');
    is(scalar $l->rows, 64 * 32, 'every request answered');
    $_->stop for @gw;
    my $sum = $s->check($l, @gw);
    diag('parents, one Redis: ' . $s->text($sum));
    for my $i (0, 1) {
        unlike($gw[$i]->error_log,
               qr/exited on signal|\[(alert|crit|emerg)\]|runtime error:/,
               "gateway $i: no crash, no alert");
    }
};

ok(Time::HiRes::time() - $T0 < 60, sprintf 'bounded in time (%.1f s)',
   Time::HiRes::time() - $T0);

done_testing();

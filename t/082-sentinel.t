# SPEC section 9 (mode=sentinel): the module against a real Sentinel
# deployment (CostCap::Test::Sentinel: one master, one replica, three
# Sentinels).  Discovery with SENTINEL get-master-addr-by-name, the caps
# exact on the master the Sentinels name; passwords of the data nodes and
# of the Sentinels (password=, sentinel_password=), wrong ones answered
# 503 with one error line; Sentinels that are down skipped; SENTINEL
# FAILOVER during load: how many 503 and for how long, counters against
# the admitted spend, and what the switch loses (SENTINEL FAILOVER promotes
# the replica at once: what the old master takes until the gateway
# follows, it keeps for itself).  Configuration errors fail nginx -t.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More import => [qw(subtest done_testing)];
use CostCap::Test::Faults qw(clients client_kill);
use CostCap::Test::Load;
use CostCap::Test::Sentinel;
use Time::HiRes qw(time sleep);

my $T0 = time;

# body => estimate in micro-USD (see t/040-concurrency.t)
my %BODY = (
    '{"model":"sora-2","seconds":1}' => 19354,
    '{"model":"sora-2"}' => 77415,
    '{"model":"sora-2","seconds":"2.51"}' => 48578,
    '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
    '{"model":"sora-2","size":"1920x1080","seconds":12}' => 522548,
    '{"model":"sora-2","size":"720x1280","n":2}' => 154829,
);

my $SORA = 'cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 '
         . 'default_size=1280x720 default_seconds=4 max_seconds=12;';

my $CONF = <<"END";
location /v1/ {
    cost_cap on;
    cost_cap_on_error closed;
    cost_cap_tenant \$http_x_tenant;
    cost_cap_limit \$cap per=day;
    cost_cap_limit \$cap per=total;
    $SORA
    proxy_pass http://backend;
}
END

sub http {
    my ($redis, %caps) = @_;
    my $map = join '', map { "    $_ $caps{$_};\n" } sort keys %caps;
    return "cost_cap_redis $redis;\n"
         . "map \$http_x_tenant \$cap {\n$map    default 1000000;\n}\n";
}

my @REQ = (method => 'POST', uri => '/v1/videos',
           body => '{"model":"sora-2"}');

sub req {
    my ($n, $tenant, %o) = @_;
    return $n->request(@REQ, %o,
                       headers => "X-Tenant: $tenant\n"
                                  . 'Content-Type: application/json');
}

sub total_key { 'costcap:{' . $_[0] . '}:total:all' }
sub day_key { 'costcap:{' . $_[0] . '}:day:' . {window_info()}->{day} }

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/, "$name: no alert")
        or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ }
                           split /\n/, $log);
}

# the module's connections to a data node: the last command they ran
sub kill_module_clients {
    my $node = shift;
    my $n = 0;
    for my $c (clients($node)) {
        next unless ($c->{cmd} // '') =~ /^(evalsha|script|time|info|role)/;
        $n += client_kill($node, id => $c->{id});
    }
    return $n;
}


subtest 'nginx -t: mode=sentinel errors' => sub {
    for my $b (['127.0.0.1:26379 mode=sentinel',
                '"cost_cap_redis" mode=sentinel requires master=NAME'],
               ['127.0.0.1:26379 mode=sentinel master=m sentinel_user=u',
                '"cost_cap_redis" sentinel_user= requires sentinel_password='],
               ['127.0.0.1:26379 mode=sentinel master=m user=u',
                '"cost_cap_redis" user= requires password='],
               ['127.0.0.1:26379 mode=sentinel master=m sentinel_passwd=x9',
                'unknown parameter "sentinel_passwd=..." of "cost_cap_redis"'],
               ['127.0.0.1:26379 mode=sentinel master=',
                'invalid parameter "master=" of "cost_cap_redis"']) {
        my ($args, $want) = @$b;
        my ($ok, $out) = CostCap::Test::Nginx->new(
            http_config => http($args), config => $CONF)->test_config;
        ok(!$ok, "cost_cap_redis $args: nginx -t fails");
        like($out, qr/\Q$want\E/, "... $want");
        unlike($out, qr/x9/, '... the value is not shown') if $args =~ /x9/;
    }
    my ($ok, $out) = CostCap::Test::Nginx->new(
        http_config => http('127.0.0.1:26379 127.0.0.1:26380 localhost:26381 '
                            . 'mode=sentinel master=mymaster password=p '
                            . 'sentinel_password=s sentinel_user=u'),
        config => $CONF)->test_config;
    ok($ok, 'three Sentinels, passwords: nginx -t passes') or diag($out);
};


my $t = time;
my $sen = CostCap::Test::Sentinel->new->start;
diag(sprintf 'Sentinel group started: %.2f s', time - $t);
my $SEN = $sen->sentinel_addrs;


subtest 'discovery; a tenant capped exactly on the master' => sub {
    my $m = $sen->master;
    my $n = start_nginx(
        http_config => http("$SEN mode=sentinel master=costcap timeout=2s "
                            . 'connect_timeout=1s',
                            acme => '0.15483'),
        config => $CONF, workers => 2);
    my @st = map { req($n, 'acme')->{status} } 1 .. 3;
    is("@st", '200 200 429', 'two admitted (spend = cap), the third refused');
    is($m->cmd('GET', total_key('acme')), 154830, 'the counter is on the '
                                                . 'master ' . $m->addr);
    is($m->cmd('GET', day_key('acme')), 154830, 'day counter too');
    my ($rep) = $sen->replicas;
    ok(poll_until(sub { ($rep->cmd('GET', total_key('acme')) // 0)
                        == 154830 }, 5), 'replicated to ' . $rep->addr);
    my $ma = $m->addr;
    like($n->error_log, qr/cost_cap: redis master "costcap" is \Q$ma\E/,
         'the master the Sentinels named is logged');
    $n->stop;
    no_crash($n, 'discovery');
};


subtest 'Sentinels that are down are skipped' => sub {
    my $m = $sen->master;
    $sen->stop_sentinel(0);
    $sen->stop_sentinel(1);
    my @down = map { $sen->sentinel($_)->addr } 0, 1;
    # the running one last: every discovery after the first asks the
    # stopped ones first (each round starts after the Sentinel that
    # answered the last)
    my $addrs = join ' ', @down, $sen->sentinel(2)->addr;
    my $n = start_nginx(
        http_config => http("$addrs mode=sentinel master=costcap "
                            . 'timeout=2s connect_timeout=1s'),
        config => $CONF, workers => 1);
    my $r = req($n, 'skip', timeout => 5);
    is($r->{status}, 200, 'admitted through the one Sentinel running');
    ok($r->{elapsed} < 2, sprintf 'in %.3f s', $r->{elapsed});
    my $admitted = 1;
    for my $round (1 .. 2) {
        ok(poll_until(sub { kill_module_clients($m) > 0 }, 3),
           "round $round: the module's connection to the master killed");
        # the Sentinels are asked again; a request that comes before the
        # master's reconnect (its backoff) is answered 503 at once
        my $t0 = time;
        my @st;
        ok(poll_until(sub {
            push @st, req($n, 'skip', timeout => 5)->{status};
            $admitted++ if $st[-1] == 200;
            return $st[-1] == 200;
        }, 3), sprintf "round $round: admitted after rediscovery, in %.3f "
                       . 's (%s)', time - $t0, "@st");
        ok(!grep({ !/^(200|503)$/ } @st), "round $round: 200 or 503 only");
    }
    my $log = $n->error_log;
    like($log, qr/cost_cap: redis \Q$_\E: .*retrying/,
         "the stopped Sentinel $_ was tried and skipped") for @down;
    is($m->cmd('GET', total_key('skip')), $admitted * 77415,
       "$admitted reservations");
    $n->stop;
    no_crash($n, 'down Sentinels');
    $sen->start_sentinel($_) for 0, 1;
    $sen->wait_ready(30);
};


subtest 'SENTINEL FAILOVER during load' => sub {
    my $old = $sen->master_addr;
    my ($low, $high) = ('slow', 'shigh');
    my $cap = 3;
    # connect_timeout=1s: see t/080-cluster.t (a new connection's
    # handshake on a loaded machine); the failover's 503 are what counts
    my $n = start_nginx(
        http_config => http("$SEN mode=sentinel master=costcap timeout=2s "
                            . 'connect_timeout=1s', $low => $cap),
        config => $CONF, workers => 2);
    ok(poll_until(sub { req($n, $high)->{status} == 200 }, 5), 'warm');
    my $l = CostCap::Test::Load->new(ports => [$n->port], clients => 12,
        duration => 40, timeout => 10, tenants => [$low, $high],
        bodies => \%BODY)->start;
    my %ev;
    sleep 1.5;
    $ev{failover} = time;
    my $new = $sen->failover(old_replica => 0);
    $ev{done} = time;
    sleep 2.5;
    $l->stop;
    ok($l->wait(20), 'every client finished');
    isnt($new, $old, "the Sentinels name $new");
    my $st = $l->status;
    is_deeply([sort grep { !/^(200|429|503)$/ } keys %$st], [],
              'every response is 200, 429 or 503')
        or diag(Test::More::explain($st));
    is($l->bad_estimates, 0, 'every estimate as computed');
    my @after = grep { $_->{start} > $ev{done} + 1 } $l->rows;
    ok(@after > 0 && !grep({ $_->{status} !~ /^(200|429)$/ } @after),
       scalar(@after) . ' requests after the failover, all 200 or 429');
    ok($l->max_latency < 2 + 1.5, sprintf 'max latency %.3f s',
                                          $l->max_latency);
    my $log = $n->error_log;
    like($log, qr/\+switch-master costcap \S+ \d+ \S+ \d+/,
         'the switch came through the subscription');
    like($log, qr/cost_cap: redis master "costcap" is \Q$new\E/,
         'the workers follow the new master');
    # at the promotion (the leader's +failover-state-send-slaveof-noone)
    # or, at the latest, at the switch
    like($log, qr/cost_cap: redis \Q$old\E: (?:failover in progress|master switched)/,
         'the connection to the old master is closed');
    like($log, qr/failover of master "costcap": slave \Q$new\E/,
         'the promotion came through the subscription');
    my $o = $l->outage;
    my %want = ($low => $l->admitted($low),
                $high => $l->admitted($high) + 77415);
    ok($want{$low} <= $cap * 1e6, "$low: admitted $want{$low} <= its cap");
    my $nm = $sen->node_at($new);
    my $om = $sen->node_at($old);
    my %got;
    poll_until(sub {
        %got = map { $_ => $nm->cmd('GET', total_key($_)) // 0 } keys %want;
        return !grep { $got{$_} > $want{$_} } keys %want;
    }, 5);
    my $lost = 0;
    for my $t (sort keys %want) {
        ok($got{$t} <= $want{$t}, "$t: counter on the new master $got{$t} "
                                  . "<= admitted $want{$t}");
        $lost += $want{$t} - $got{$t};
    }
    # what the old master took between the promotion and the switch: a
    # short while (the subscription), not until Sentinel converts it
    my $window = 0;
    $window += $_->{est} for grep { $_->{status} eq '200'
                                    && $_->{end} >= $ev{failover}
                                    && $_->{start} <= $ev{done} + 1 }
                            $l->rows;
    ok($lost <= $window, "lost $lost <= admitted from the failover to 1 s "
                         . "after it ($window)");
    my $old_high = $om->cmd('GET', total_key($high)) // 0;
    my @ok = grep { $_->{status} eq '200' } $l->rows;
    my $dur = @ok ? $ok[-1]{end} - $ok[0]{start} : 1;
    my $rate = ($want{$low} + $want{$high}) / ($dur || 1);
    diag(sprintf 'SENTINEL FAILOVER: %d requests (%d 200, %d 429, %d 503), '
         . '503 from t=%.2f to t=%.2f s (%.2f s); failover %.2f s (t=%.2f '
         . 'to %.2f); max latency %.3f s', scalar $l->rows, $st->{200} // 0,
         $st->{429} // 0, $st->{503} // 0, $o->{first}, $o->{last},
         $o->{span}, $ev{done} - $ev{failover}, $ev{failover} - $l->t0,
         $ev{done} - $l->t0, $l->max_latency);
    diag(sprintf 'SENTINEL FAILOVER: new master %s: %s; admitted %s; lost '
         . '%d micro-USD, %.2f s of the admitted spend (written on the old '
         . 'master %s after the promotion; it holds %s = %d)', $new,
         join(' ', map { "$_ $got{$_}" } sort keys %got),
         join(' ', map { "$_ $want{$_}" } sort keys %want), $lost,
         $lost / ($rate || 1), $old, total_key($high), $old_high);
    $n->stop;
    no_crash($n, 'failover');
    # the old master follows the new one (Sentinel would, 10 s later)
    $om->cmd('REPLICAOF', split /:/, $new);
    $sen->wait_replica_of($old, $new, 30);
};


subtest 'passwords of the data nodes and of the Sentinels' => sub {
    my $t = time;
    my $ps = CostCap::Test::Sentinel->new(name => 'guarded',
        password => 'data-pw', sentinel_password => 'sent-pw')->start;
    diag(sprintf 'Sentinel group with passwords started: %.2f s',
         time - $t);
    my $addrs = $ps->sentinel_addrs;
    my $m = $ps->master;
    my $n = start_nginx(
        http_config => http("$addrs mode=sentinel master=guarded "
                            . 'password=data-pw sentinel_password=sent-pw '
                            . 'timeout=2s connect_timeout=1s'),
        config => $CONF);
    is(req($n, 'pw')->{status}, 200, 'both passwords right: admitted');
    is($m->cmd('GET', total_key('pw')), 77415, 'counted on the master');
    $n->stop;
    no_crash($n, 'passwords');

    for my $case (['sentinel_password=wrong-sp password=data-pw',
                   qr/cost_cap: redis \S+: AUTH failed: WRONGPASS/,
                   'the Sentinels refuse the module'],
                  ['password=data-pw',
                   qr/cost_cap: redis sentinel \S+ answered: NOAUTH/,
                   'no sentinel_password'],
                  ['sentinel_password=sent-pw password=wrong-dp',
                   qr/cost_cap: redis \Q${\$m->addr}\E: AUTH failed: WRONGP/,
                   'the master refuses the module']) {
        my ($args, $line, $name) = @$case;
        my $b = start_nginx(
            http_config => http("$addrs mode=sentinel master=guarded $args "
                                . 'timeout=500ms connect_timeout=500ms'),
            config => $CONF);
        my @st = map { req($b, 'pw', timeout => 5)->{status} } 1 .. 10;
        is_deeply([grep { $_ != 503 } @st], [], "$name: 503 every time");
        $b->stop;
        my $log = $b->error_log;
        like($log, $line, "$name: logged");
        unlike($log, qr/wrong-sp|wrong-dp|sent-pw|data-pw/,
               "$name: no password in the log");
        my $errors = () = $log =~ /\[error\]/g;
        ok($errors <= 12, "$name: $errors [error] lines for 10 requests");
        no_crash($b, $name);
    }
    is($m->cmd('GET', total_key('pw')), 77415, 'nothing counted meanwhile');
    $ps->stop;
};

diag(sprintf 'total %.1f s', time - $T0);

done_testing();

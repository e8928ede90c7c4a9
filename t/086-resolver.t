# SPEC section 9 (hostnames): cost_cap_redis HOST:PORT resolved with the
# http block's resolver at every connect, so that a failover behind a DNS
# name (managed Redis services) works without a reload.  A DNS responder
# of the harness (CostCap::Test::DNS) answers for redis.test, switching
# between two Redis servers on 127.0.0.2 and 127.0.0.3 (same port).  The
# switch as a managed service makes it during load: writes paused on the
# old master, the replica promoted, the name moved, the old master made
# its replica (-READONLY), writes let go; then a switch back noticed by a
# connection loss.  NXDOMAIN and a silent name server end in 503 within
# the timeouts; without a resolver in the http block a name is resolved
# once, when the configuration is read (unknown: nginx -t fails).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More import => [qw(subtest done_testing)];
use CostCap::Test::DNS;
use CostCap::Test::Faults qw(client_kill replicaof promote pause_clients
                             unpause_clients);
use CostCap::Test::Load;
use CostCap::Test::Node;
use Time::HiRes qw(time sleep);

my $T0 = time;

my %BODY = (
    '{"model":"sora-2","seconds":1}' => 19354,
    '{"model":"sora-2"}' => 77415,
    '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
);

my $SORA = 'cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 '
         . 'default_size=1280x720 default_seconds=4 max_seconds=12;';

my $CONF = <<"END";
location /v1/ {
    cost_cap on;
    cost_cap_on_error closed;
    cost_cap_tenant \$http_x_tenant;
    cost_cap_limit 1000000 per=total;
    $SORA
    proxy_pass http://backend;
}
END

my @REQ = (method => 'POST', uri => '/v1/videos',
           body => '{"model":"sora-2"}');

sub req {
    my ($n, $tenant) = @_;
    return $n->request(@REQ, timeout => 10,
                       headers => "X-Tenant: $tenant\n"
                                  . 'Content-Type: application/json');
}

sub total { $_[0]->cmd('GET', 'costcap:{' . $_[1] . '}:total:all') // 0 }

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/, "$name: no alert")
        or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ }
                           split /\n/, $log);
}

sub count { my ($log, $re) = @_; return scalar(() = $log =~ /$re/g) }

# until the replica has every write of its master (writes paused there)
sub caught_up {
    my ($master, $replica) = @_;
    return poll_until(sub {
        my $m = $master->info('replication')->{master_repl_offset};
        my $r = $replica->info('replication')->{master_repl_offset};
        return defined $m && defined $r && $m == $r;
    }, 10);
}

# a managed service's switchover from OLD to NEW (NEW a replica of OLD)
sub switchover {
    my ($dns, $old, $new, $how) = @_;
    pause_clients($old, 10_000, 'WRITE');
    caught_up($old, $new) or die "the replica did not catch up\n";
    promote($new);
    $dns->set_answer('redis.test', $new->host);
    if ($how eq 'replica') {
        replicaof($old, $new);          # writes on it: -READONLY
        unpause_clients($old);
    } else {
        $old->stop;                     # its connections close
    }
}


my ($two, $three) = CostCap::Test::Node->twins(name => 'dns');
my $PORT = $two->port;
replicaof($three, $two);
my $dns = CostCap::Test::DNS->new(ttl => 1)->start;
$dns->set_answer('redis.test', '127.0.0.2');
my $RESOLVER = 'resolver ' . $dns->addr . " valid=1s ipv6=off;\n";

my $n = start_nginx(
    http_config => $RESOLVER . "cost_cap_redis redis.test:$PORT timeout=2s "
                   . "connect_timeout=1s;\n",
    config => $CONF, workers => 2);
poll_until(sub { $n->worker_pids == 2 }, 5);
my @WORKERS = sort $n->worker_pids;


subtest 'a name resolved by the resolver at connect' => sub {
    is(req($n, 'dns')->{status}, 200, 'admitted');
    is(req($n, 'dns')->{status}, 200, 'admitted again');
    is(total($two, 'dns'), 2 * 77415, 'counted on 127.0.0.2');
    ok(poll_until(sub { total($three, 'dns') == 2 * 77415 }, 5),
       '127.0.0.3 follows it');
    ok($dns->queries('redis.test', 'A') >= 1,
       $dns->queries('redis.test', 'A') . ' A queries for redis.test');
    is($dns->queries('redis.test', 'AAAA'), 0, 'ipv6=off: no AAAA');
};


# a reconnect resolves the name again: requests that come meanwhile are
# queued on the connection, and go behind its handshake
subtest 'requests while the name is being resolved' => sub {
    my $before = total($two, 'dns');
    my $q0 = $dns->queries('redis.test', 'A');
    sleep 2.1;                          # the cached answer ages: valid=1s
                                        # keeps it 1 to 2 s (whole seconds)
    $dns->set_delay('redis.test', 400);
    ok(client_kill($two) >= 2, "the workers' connections closed");
    sleep 0.15;                         # the reconnect, resolving
    my @socks = map { http_send(port => $n->port, @REQ,
                                headers => "X-Tenant: dns\n"
                                    . 'Content-Type: application/json') }
                1 .. 10;
    my @res = map { http_read($_, 5) } @socks;
    is(join(' ', map { $_->{status} // 'ERR' } @res), join(' ', (200) x 10),
       'every request admitted');
    $dns->set_delay('redis.test', 0);
    ok($dns->queries('redis.test', 'A') > $q0, 'the name was resolved again');
    is(total($two, 'dns'), $before + 10 * 77415, 'each counted once');
    unlike($n->error_log, qr/unexpected reply/,
           'every reply went to its own command');
};


subtest 'switchover behind the name during load: -READONLY' => sub {
    my $q0 = $dns->queries('redis.test', 'A');
    my $before = total($two, 'dns');
    # the answer cached at the last connect ages first (see above): the
    # reconnect after the switch asks the name server
    sleep 2.1;
    my $l = CostCap::Test::Load->new(ports => [$n->port], clients => 8,
        duration => 30, timeout => 10, tenants => ['dns'],
        bodies => \%BODY)->start;
    my %ev;
    sleep 1.5;
    $ev{switch} = time;
    switchover($dns, $two, $three, 'replica');
    $ev{done} = time;
    sleep 2.5;
    $l->stop;
    ok($l->wait(20), 'every client finished');
    my $st = $l->status;
    is_deeply([sort grep { !/^(200|503)$/ } keys %$st], [],
              'every response is 200 or 503')
        or diag(Test::More::explain($st));
    my @after = grep { $_->{start} > $ev{done} + 1 } $l->rows;
    ok(@after > 0 && !grep({ $_->{status} ne '200' } @after),
       scalar(@after) . ' requests after the switch, all admitted');
    ok($l->max_latency < 2 + 1.5, sprintf 'max latency %.3f s',
                                          $l->max_latency);
    is_deeply([sort $n->worker_pids], \@WORKERS, 'no reload: same workers')
        or diag("workers @{[sort $n->worker_pids]} vs @WORKERS");
    my $q1 = $dns->queries('redis.test', 'A');
    ok($q1 > $q0, "re-resolved: A queries $q0 -> $q1");
    is($two->role->[0], 'slave', '127.0.0.2 is a replica now');
    my $want = $before + $l->admitted('dns');
    my $got = total($three, 'dns');
    is($got, $want, 'the counter on 127.0.0.3 = every admitted request '
                    . '(writes paused during the switch: nothing lost)');
    like($n->error_log,
         qr/cost_cap: redis redis\.test:$PORT answered: READONLY/,
         'the -READONLY is logged');
    my $o = $l->outage;
    diag(sprintf 'DNS switchover: %d requests (%d 200, %d 503), 503 from '
         . 't=%.2f to t=%.2f s (%.2f s); switch t=%.2f to %.2f; max latency '
         . '%.3f s; A queries %d -> %d; counter %d vs admitted %d',
         scalar $l->rows, $st->{200} // 0, $st->{503} // 0, $o->{first},
         $o->{last}, $o->{span}, $ev{switch} - $l->t0, $ev{done} - $l->t0,
         $l->max_latency, $q0, $q1, $got, $want);
};


subtest 'switch back behind the name: a connection loss' => sub {
    my $q0 = $dns->queries('redis.test', 'A');
    my $before = total($three, 'dns');
    switchover($dns, $three, $two, 'stop');
    my $t = time;
    # until both workers have reconnected: six admitted in a row
    my ($admitted, $row, @st) = (0, 0);
    ok(poll_until(sub {
        my $st = req($n, 'dns')->{status};
        push @st, $st;
        $admitted++ if $st == 200;
        $row = $st == 200 ? $row + 1 : 0;
        return $row >= 6;
    }, 5), sprintf 'admitted again after %.2f s (%s)', time - $t, "@st");
    ok(!grep({ !/^(200|503)$/ } @st), 'every response 200 or 503');
    is_deeply([sort $n->worker_pids], \@WORKERS, 'no reload: same workers')
        or diag("workers @{[sort $n->worker_pids]} vs @WORKERS");
    ok($dns->queries('redis.test', 'A') > $q0,
       're-resolved: A queries ' . $dns->queries('redis.test', 'A'));
    is(total($two, 'dns'), $before + $admitted * 77415,
       "the $admitted admitted counted on 127.0.0.2");
    $n->stop;
    no_crash($n, 'resolver');
};


subtest 'NXDOMAIN, a silent name server: 503 within the timeouts' => sub {
    my $r = redis();
    $dns->remove('gone.test');
    $dns->set_silent('slow.test');
    for my $case (['gone.test',
                   qr/redis "gone\.test" could not be resolved \(3: Host not/],
                  ['slow.test',
                   qr/cost_cap: redis slow\.test:\d+: connect timed out/]) {
        my ($name, $line) = @$case;
        my $g = start_nginx(
            http_config => $RESOLVER . "cost_cap_redis $name:"
                . $r->{port} . " timeout=500ms connect_timeout=500ms;\n",
            config => $CONF, workers => 1);
        my @res = map { req($g, 'nx') } 1 .. 8;
        is_deeply([grep { $_ != 503 } map { $_->{status} } @res], [],
                  "$name: 503 every time");
        my ($max) = sort { $b <=> $a } map { $_->{elapsed} } @res;
        ok($max < 0.5 + 0.5 + 1, sprintf "$name: within the timeouts "
                                         . '(max %.3f s)', $max);
        $g->stop;
        my $log = $g->error_log;
        like($log, $line, "$name: logged");
        ok(count($log, qr/\[error\]/) <= 4,
           "$name: " . count($log, qr/\[error\]/) . ' [error] lines for 8 '
           . 'requests');
        no_crash($g, $name);
    }
    ok($dns->queries('slow.test', 'A') >= 1, 'slow.test was asked');
};


subtest 'no resolver in the http block: resolved once, when read' => sub {
    my $r = redis();
    my $rp = $r->{port};
    my ($ok, $out) = CostCap::Test::Nginx->new(
        http_config => "cost_cap_redis redis.test:$rp;\n",
        config => $CONF)->test_config;
    ok(!$ok, 'a name the system does not know: nginx -t fails');
    like($out, qr/host not found in "redis\.test:$rp" of "cost_cap_redis"/,
         '... naming the directive and the address');
    ($ok, $out) = CostCap::Test::Nginx->new(
        http_config => "cost_cap_redis redis.test:$rp;\n",
        config => $RESOLVER . $CONF)->test_config;
    ok(!$ok, 'a resolver in a server block only is not the module\'s');
    my $q0 = $dns->queries;
    my $g = start_nginx(http_config => "cost_cap_redis localhost:$rp "
                                       . "timeout=1s;\n",
                        config => $CONF, workers => 1);
    is(req($g, 'lh')->{status}, 200, 'localhost, resolved at configuration');
    $r->stop;
    is(req($g, 'lh')->{status}, 503, 'Redis stopped: 503');
    $r->start;
    ok(poll_until(sub { req($g, 'lh')->{status} == 200 }, 5),
       'the same address after the restart');
    is($dns->queries, $q0, 'the DNS responder was never asked');
    is(total($r, 'lh'), 77415, 'counted');
    $g->stop;
    no_crash($g, 'no resolver');
};

diag(sprintf 'total %.1f s', time - $T0);

done_testing();

# SPEC sections 4 ("Late replies"), 6 (noeviction) and 9 ("In every
# mode", "Exact accounting under faults"): one check per point of issue
# 11, each against a real Redis made to misbehave (a relay that stalls
# without closing, error replies of Redis's own making, a connection lost
# between Redis's write and its reply, a worker that exits while Redis is
# stalled), each a check the client before issue 11 fails.
#
# sora-2 at its defaults costs 77415 micro-USD (see 020-estimate.t);
# 100 GPU-seconds at 3.50 USD/h cost 97223 (see 050-settle.t).
#
# The scenarios run in order; COST_CAP_ONLY=REGEX runs those whose name
# matches.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Gated qw(gate_arrived gate_open);
use CostCap::Test::Faults qw(busy masterdown_on masterdown_off oom_on
                             oom_off replicaof promote client_kill);
use CostCap::Test::Node;
use CostCap::Test::Relay;
use POSIX ();
use Time::HiRes qw(time sleep);

my $E = 77415;
my $T_BEGIN = time;

# -------------------------------------------------------------------------
# a backend that holds its answer (CostCap::Test::Gated): ?gate=NAME,
# status=CODE, gpu=V

my $SLOW_PORT = CostCap::Test::Gated::start(alarm => 150);

# -------------------------------------------------------------------------
# the gateway: REDIS is the address nginx connects to (Redis or a relay)

# a handshake may take more than the default 100 ms on a loaded machine
sub http_conf {
    my ($addr, $opts) = @_;
    $opts .= ' connect_timeout=1s' unless $opts =~ /connect_timeout/;
    return "cost_cap_redis $addr $opts;\n";
}

my $LOC = <<"END";
cost_cap_tenant \$http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_limit 100 per=total;
add_header X-Var-Result \$cost_cap_result always;

location /v1/ {
    cost_cap on;
    proxy_pass http://backend;
}
location /open/ {
    cost_cap on;
    cost_cap_on_error open;
    proxy_pass http://backend;
}
location /open-cap/ {
    cost_cap on;
    cost_cap_on_error open;
    cost_cap_limit 0.1 per=total;
    proxy_pass http://backend;
}
location /open-slow/ {
    cost_cap on;
    cost_cap_on_error open;
    proxy_pass http://127.0.0.1:$SLOW_PORT;
}
location /slow/ {
    cost_cap on;
    cost_cap_actual \$upstream_http_x_gpu_seconds;
    proxy_pass http://127.0.0.1:$SLOW_PORT;
}
location /body/ {
    cost_cap on;
    client_max_body_size 64;
    error_page 400 413 = \@fallback;
    proxy_pass http://backend;
}
location \@fallback {
    cost_cap on;
    proxy_pass http://backend;
}
location /lease/ {
    cost_cap on;
    cost_cap_lease 2 ttl=30s;
    proxy_pass http://backend;
}
location /lease-open/ {
    cost_cap on;
    cost_cap_lease 2 ttl=30s;
    cost_cap_on_error open;
    proxy_pass http://backend;
}
location = /metrics {
    cost_cap_metrics;
}
END

my $SEQ = 0;
my $TENANT;

# every scenario charges a tenant of its own: its total counter starts at 0
sub new_tenant { $TENANT = 't' . $$ . '-' . ++$SEQ }

sub req {
    my (%o) = @_;
    return (method => 'POST', uri => $o{uri} // '/v1/videos',
            headers => 'X-Tenant: ' . ($o{tenant} // $TENANT)
                       . "\nContent-Type: application/json",
            body => $o{body} // '{"model":"sora-2"}',
            timeout => $o{timeout} // 10);
}

# a request sent, its answer not read
sub hsend { my ($n, %o) = @_; return http_send(port => $n->port, req(%o)) }

sub total_key { 'costcap:{' . ($_[0] // $TENANT) . '}:total:all' }

sub spent { redis()->cmd('GET', total_key(@_)) // 0 }

sub metrics {
    my $n = shift;
    my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    my %m;
    for (split /\n/, $res->{body} // '') {
        $m{$1} = $2 if /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/;
    }
    return \%m;
}

# the reservation markers of a tenant: { id => value }
sub markers {
    my $t = shift // $TENANT;
    my %m;
    my $cursor = 0;
    do {
        my $res = redis()->cmd('SCAN', $cursor, 'MATCH',
                               "costcap:{$t}:op:*", 'COUNT', 1000);
        $cursor = $res->[0];
        for my $k (@{$res->[1]}) {
            my ($id) = $k =~ /:op:([0-9a-f]{24})\z/ or next;
            $m{$id} = redis()->cmd('GET', $k);
        }
    } while ($cursor);
    return \%m;
}

sub evalsha_calls {
    my $info = redis()->cmd('INFO', 'commandstats');
    return $info =~ /^cmdstat_evalsha:calls=(\d+)/m ? $1 : 0;
}

# nginx with the module connected: a request of another tenant admitted
sub ready {
    my $n = shift;
    my $st;
    poll_until(sub {
        $st = $n->request(req(tenant => "ready-$TENANT"))->{status} // 0;
        return $st == 200;
    }, 5);
    return $n;
}

# started and connected
sub gateway { ready(start_nginx(@_)) }

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/, "$name: no alert")
        or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ } split /\n/,
                $log);
}

sub scenario {
    my ($name, $code) = @_;
    return if $ENV{COST_CAP_ONLY} && $name !~ /$ENV{COST_CAP_ONLY}/;
    new_tenant();
    my $t0 = time;
    unless (eval { $code->($name); 1 }) {
        my $err = $@;
        # what the harness's processes said (a relay that died, ...)
        for my $f (glob tmp_dir() . '/relay-*.log') {
            my $t = CostCap::Test::_slurp($f);
            diag("$f:\n$t") if length $t;
        }
        fail("$name: $err");
    }
    diag(sprintf '%s: %.1f s', $name, time - $t0)
        if $ENV{TEST_VERBOSE};
}


# -------------------------------------------------------------------------
# 1. a connection that stops answering without closing is recycled; the
# handshake has the connect timeout; TCP keepalive is on

scenario('1a: replies stop without a close (a silent drop)', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=200ms'),
                        config => $LOC);

    is($n->request(req())->{status}, 200, "$name: admitted before");
    my $accepted = $relay->stats->{accepted};

    $relay->stall;
    my @res = map { $n->request(req(timeout => 5)) } 1 .. 3;
    is_deeply([map { $_->{status} // 'none' } @res], [503, 503, 503],
              "$name: 503 while the replies stop");
    my ($slow) = sort { $b <=> $a } map { $_->{elapsed} } @res;
    ok($slow < 1.5, sprintf "$name: each answered in %.3f s at most", $slow);

    # the module gives up on the silent connection after max(8 x timeout,
    # 2 s) and connects again (the new ones are stalled too, until resume)
    ok(poll_until(sub { $n->error_log =~ /not answering, retrying/ }, 4),
       "$name: the silent connection is closed ('not answering')");
    $relay->resume('dead');
    my $t = time;
    ok(poll_until(sub { $n->request(req(timeout => 5))->{status} == 200 },
                  5),
       sprintf "$name: admitted again on a new connection (%.2f s after "
               . 'the network came back)', time - $t);
    ok($relay->stats->{accepted} > $accepted,
       "$name: through a connection made after the stall");
    is(spent(), 2 * $E, "$name: the counter holds the two admitted");
    $n->stop;
    no_crash($n, $name);
});


scenario('1b: an idle connection that went silent', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: admitted before");

    # the network drops while nothing is in flight, and comes back for
    # new connections only: the first requests find the dead one
    $relay->stall;
    $relay->resume('dead');
    my $t = time;
    my @st;
    poll_until(sub {
        push @st, $n->request(req(timeout => 5))->{status} // 'none';
        return $st[-1] eq '200';
    }, 6);
    my $took = time - $t;
    is($st[-1], 200, sprintf "$name: admitted again %.2f s later, after "
                             . '%d answers 503', $took, @st - 1);
    ok($took < 4, "$name: within the stall bound (2 s) and a reconnect");
    is(scalar(grep { $_ ne '503' && $_ ne '200' } @st), 0,
       "$name: 503 meanwhile") or diag("@st");
    is(spent(), 2 * $E, "$name: the counter holds the two admitted");
    $n->stop;
    no_crash($n, $name);
});


scenario('1c: a handshake that is never answered', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    # the TCP handshake completes, AUTH ... SCRIPT LOAD go unanswered
    $relay->stall;
    my $n = start_nginx(http_config => http_conf($relay->addr,
                            'timeout=200ms connect_timeout=300ms'),
                        config => $LOC);
    my $res = $n->request(req(timeout => 5));
    is($res->{status}, 503, "$name: 503 while the handshake is unanswered");
    ok(poll_until(sub { $n->error_log =~ /handshake timed out, retrying/ },
                  3),
       "$name: the handshake times out");
    $relay->resume('dead');
    my $t = time;
    ok(poll_until(sub { $n->request(req(timeout => 5))->{status} == 200 },
                  4),
       sprintf "$name: admitted %.2f s after the network came back",
               time - $t);
    $n->stop;
    no_crash($n, $name);
});


scenario('1d: TCP keepalive on the connection to Redis', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: admitted");
    my ($w) = $n->worker_pids;
    my $ss = `ss -tnopH state established dst 127.0.0.1:$r->{port} 2>&1`;
    my @mine = grep { /pid=$w,/ } split /\n/, $ss;
    ok(@mine >= 1, "$name: the worker's connection to Redis")
        or diag($ss);
    ok(@mine && !(grep { !/timer:\(keepalive/ } @mine),
       "$name: SO_KEEPALIVE is set (a keepalive timer runs)")
        or diag($ss);
    $n->stop;
    no_crash($n, $name);
});


# -------------------------------------------------------------------------
# 2. replies that say the command did not run are retried within the
# request's timeout (and -READONLY sends the worker to connect again)

sub retried {
    my ($name, $on, $off, $log, $timeout) = @_;
    my $n = gateway(http_config => http_conf(
                            '127.0.0.1:' . redis_port(),
                            'timeout=' . ($timeout // '3s')),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: admitted before");
    my $h = $on->();
    my $t = time;
    my $sock = hsend($n);
    sleep 0.4;
    $off->($h);
    my $res = http_read($sock, 5);
    my $el = time - $t;
    is($res->{status}, 200, sprintf "$name: admitted once Redis recovers "
                                    . '(%.2f s)', $el)
        or diag($res->{body} // $res->{error});
    ok($el >= 0.35, "$name: ... after the fault, not before");
    is(spent(), 2 * $E, "$name: charged once");
    like($n->error_log, $log, "$name: the error reply logged");
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0,
       "$name: nothing dropped");
    $n->stop;
    no_crash($n, $name);
}

scenario('2a: -BUSY (a long script) is retried', sub {
    my $name = shift;
    my $r = start_redis();
    retried($name, sub { my $b = busy($r, seconds => 20); $b->wait; $b },
            sub { $_[0]->stop }, qr/answered: BUSY/);
});

scenario('2b: -MASTERDOWN is retried', sub {
    my $name = shift;
    my $r = start_redis();
    retried($name, sub { masterdown_on($r) }, sub { masterdown_off($r) },
            qr/answered: MASTERDOWN/);
});

scenario('2c: -LOADING is retried', sub {
    my $name = shift;
    my $r = start_redis(args => '--enable-debug-command local');
    # DEBUG RELOAD saves and loads again; 10000 keys at 20 us each keep
    # Redis loading (answering -LOADING) for about a second
    $r->cmd('DEBUG', 'POPULATE', 10000, 'fill');
    $r->cmd('CONFIG', 'SET', 'key-load-delay', 20);
    $r->cmd('CONFIG', 'SET', 'loading-process-events-interval-bytes', 1024);
    my $reload;
    retried($name, sub {
        $reload = CostCap::Test::Faults::connect_to($r, timeout => 30);
        $reload->send_cmd('DEBUG', 'RELOAD');
        poll_until(sub {
            my $c = CostCap::Test::Faults::connect_to($r, timeout => 2);
            my ($x, $e) = eval { $c->try_cmd('SET', 'probe', 1) };
            $c->close;
            return ($e // '') =~ /^LOADING/;
        }, 5) or diag("$name: Redis never answered -LOADING");
    }, sub {
        # the reload ends by itself; the test waits for it after 0.4 s
        my ($x, $e) = $reload->read_reply;
        diag("DEBUG RELOAD: $e") if defined $e;
    }, qr/answered: LOADING/, '6s');
    $r->cmd('CONFIG', 'SET', 'key-load-delay', 0);
});

scenario('2d: -READONLY (made a replica) is retried on a new connection',
         sub {
    my $name = shift;
    my $r = start_redis();
    my $m = CostCap::Test::Node->new(name => 'master')->start;
    my $before;
    retried($name, sub {
        # a full sync replaces the replica's data with the master's
        $m->cmd('SET', total_key(), $E);
        replicaof($r, $m);
        $before = spent();
    }, sub { promote($r) }, qr/is a replica now, retrying/);
    is($before, $E, "$name: (the replica holds the master's data)");
    $m->stop;
});


# -------------------------------------------------------------------------
# 3. cost_cap_on_error open keeps, and charges, what it lets through

scenario('3a: open, Redis slower than the timeout: late reservations kept',
         sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=150ms'),
                        config => $LOC);
    is($n->request(req(uri => '/open/videos'))->{status}, 200,
       "$name: admitted before");
    $relay->delay(600);
    my @res = map { $n->request(req(uri => '/open/videos')) } 1 .. 3;
    is_deeply([map { $_->{status} } @res], [200, 200, 200],
              "$name: admitted on timeout");
    is_deeply([map { header_value($_, 'X-Var-Result') } @res],
              [('error_open') x 3], "$name: \$cost_cap_result error_open");
    $relay->delay(0);
    ok(poll_until(sub { spent() == 4 * $E }, 3),
       "$name: every request served is counted")
        or diag('total ' . spent());
    # a give-back would come right after the late reply: none comes
    sleep 0.3;
    is(spent(), 4 * $E, "$name: and stays counted");
    $n->stop;
    no_crash($n, $name);
});

scenario('3b: open, a late reply that crossed the cap: charged anyway',
         sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=150ms'),
                        config => $LOC);
    is($n->request(req(uri => '/open-cap/videos'))->{status}, 200,
       "$name: admitted (77415 of the 100000 cap)");
    $relay->delay(600);
    my $res = $n->request(req(uri => '/open-cap/videos'));
    is($res->{status}, 200, "$name: the second admitted on timeout");
    $relay->delay(0);
    ok(poll_until(sub { spent() == 2 * $E }, 3),
       "$name: it was served: charged past the cap")
        or diag('total ' . spent());
    is($n->request(req(uri => '/open-cap/videos'))->{status}, 429,
       "$name: the next one refused");
    $n->stop;
    no_crash($n, $name);
});

scenario('3c: open, Redis down: charged when it is back', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req(uri => '/open/videos'))->{status}, 200,
       "$name: admitted before");
    $r->stop;
    my @res = map { $n->request(req(uri => '/open/videos')) } 1 .. 3;
    is_deeply([map { $_->{status} } @res], [200, 200, 200],
              "$name: admitted while Redis is down");
    $r->start;
    ok(poll_until(sub { spent() == 3 * $E }, 5),
       "$name: the three are charged once Redis is back (it restarted "
       . 'empty)') or diag('total ' . spent());
    $n->stop;
    no_crash($n, $name);
});

scenario('3d: open, Redis down: a refund status takes the charge back', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req(uri => '/open/videos'))->{status}, 200,
       "$name: admitted before");
    $r->stop;
    is($n->request(req(uri => '/open-slow/videos?status=502'))->{status}, 502,
       "$name: admitted while Redis is down, the backend fails");
    is($n->request(req(uri => '/open-slow/videos'))->{status}, 200,
       "$name: admitted while Redis is down, the backend answers");
    $r->start;
    ok(poll_until(sub { spent() == $E }, 5),
       "$name: only the one served is charged once Redis is back")
        or diag('total ' . spent());
    sleep 0.3;
    is(spent(), $E, "$name: and nothing more later");
    $n->stop;
    no_crash($n, $name);
});


# -------------------------------------------------------------------------
# 4. settlements: error replies retried until the deadline, applied once;
# a reservation whose outcome is unknown given back exactly, by its id;
# a worker that exits delivers what it owes

scenario('4a: a refund answered -OOM is retried until Redis has room', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=500ms'),
                        config => $LOC);
    my $s = hsend($n, uri => '/slow/videos?gate=oom&status=502');
    ok(gate_arrived('oom'), "$name: reserved, at the backend");
    is(spent(), $E, "$name: charged");
    oom_on($r);
    gate_open('oom');
    is(http_read($s, 5)->{status}, 502, "$name: 502 from the backend");
    ok(poll_until(sub { $n->error_log =~ /answered: OOM/ }, 3),
       "$name: the refund is answered -OOM");
    sleep 0.3;
    is(spent(), $E, "$name: not applied while Redis is out of memory");
    oom_off($r);
    ok(poll_until(sub { spent() == 0 }, 3),
       "$name: applied once Redis has room") or diag('total ' . spent());
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0,
       "$name: nothing dropped");
    $n->stop;
    no_crash($n, $name);
});

scenario('4b: an actual-cost settlement answered -BUSY is retried', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=500ms'),
                        config => $LOC);
    my $s = hsend($n, uri => '/slow/videos?gate=busy&gpu=100');
    ok(gate_arrived('busy'), "$name: reserved, at the backend");
    my $b = busy($r, seconds => 20);
    $b->wait;
    gate_open('busy');
    is(http_read($s, 5)->{status}, 200, "$name: 200 from the backend");
    ok(poll_until(sub { $n->error_log =~ /answered: BUSY/ }, 3),
       "$name: the settlement is answered -BUSY");
    sleep 0.3;
    $b->stop;
    ok(poll_until(sub { spent() == 97223 }, 3),
       "$name: the actual cost applied once Redis is free")
        or diag('total ' . spent());
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0,
       "$name: nothing dropped");
    $n->stop;
    no_crash($n, $name);
});

scenario('4c: a refund whose reply is lost is sent again, applied once',
         sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=500ms'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: one admitted");
    my $s = hsend($n, uri => '/slow/videos?gate=lost&status=502');
    ok(gate_arrived('lost'), "$name: another reserved, at the backend");
    is(spent(), 2 * $E, "$name: both charged");

    # Redis applies the refund; its reply is held, then the connection is
    # reset: the module cannot know, and sends it again
    $relay->delay(3000);
    gate_open('lost');
    is(http_read($s, 5)->{status}, 502, "$name: 502 from the backend");
    ok(poll_until(sub { spent() == $E }, 3), "$name: refund applied");
    my $calls = evalsha_calls();
    $relay->delay(0);
    $relay->drop;
    ok(poll_until(sub { evalsha_calls() > $calls }, 3),
       "$name: sent again on a new connection");
    is(spent(), $E, "$name: applied once (the settlement's marker)");
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0,
       "$name: not counted as dropped");
    $n->stop;
    no_crash($n, $name);
});

scenario('4d: a reservation whose reply is lost while its request waits',
         sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=3s'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: one admitted");
    $relay->delay(5000);
    my $s = hsend($n);
    ok(poll_until(sub { spent() == 2 * $E }, 3),
       "$name: Redis applied the second");
    $relay->delay(0);
    $relay->drop;
    my $res = http_read($s, 5);
    is($res->{status}, 200, "$name: admitted: the resend finds it applied")
        or diag($res->{body} // $res->{error});
    is(spent(), 2 * $E, "$name: charged once");
    $n->stop;
    no_crash($n, $name);
});

scenario('4e: a reservation whose reply is lost after its 503', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: one admitted");
    $relay->delay(5000);
    my $res = $n->request(req());
    is($res->{status}, 503, "$name: the second answered 503 on timeout");
    ok(poll_until(sub { spent() == 2 * $E }, 3),
       "$name: Redis applied it");
    $relay->delay(0);
    $relay->drop;
    ok(poll_until(sub { spent() == $E }, 3),
       "$name: given back exactly by its id") or diag('total ' . spent());
    my $m = markers();
    is(scalar(grep { $_ eq 'R' } values %$m), 1,
       "$name: its marker says refunded");
    is(metrics($n)->{cost_cap_settlement_drops_total}, 0,
       "$name: nothing dropped");
    $n->stop;
    no_crash($n, $name);
});

scenario('4f: a reservation lost before Redis read it: nothing to give '
         . 'back, and it never applies', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: one admitted");
    $relay->stall;
    is($n->request(req())->{status}, 503, "$name: the second answered 503");
    $relay->resume('reset');
    ok(poll_until(sub { grep { $_ eq 'C' } values %{markers()} }, 3),
       "$name: a tombstone for its id");
    is(spent(), $E, "$name: nothing was given back that was not charged");
    is(scalar(grep { /^A/ } values %{markers()}), 1,
       "$name: one reservation applied");
    $n->stop;
    no_crash($n, $name);
});

scenario('4g: nginx -s quit while Redis is stalled: the old worker gives '
         . 'back what it owes', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=200ms'),
                        config => $LOC);
    is($n->request(req())->{status}, 200, "$name: one admitted");
    $r->pause;
    my @socks = map { hsend($n) } 1 .. 5;
    my @st = map { http_read($_, 5)->{status} // 'none' } @socks;
    is_deeply(\@st, [(503) x 5], "$name: five answered 503 (Redis stalled)");
    kill 'QUIT', $n->{pid};
    sleep 0.5;
    ok($n->running, "$name: nginx waits for what its worker owes");
    my $t = time;
    $r->resume;
    ok(poll_until(sub { !$n->running }, 10),
       sprintf "$name: nginx exits once Redis answers (%.2f s)", time - $t);
    ok(poll_until(sub { spent() == $E }, 2),
       "$name: the late reservations were given back")
        or diag('total ' . spent());
    no_crash($n, $name);
    unlike($n->error_log, qr/dropped|unconfirmed/, "$name: nothing dropped");
});


# 4h-4j: a reservation that asked for a lease (cost_cap_lease 2: granted
# 2 USD at once, the cap being far) and whose reply is lost or late: the
# lease is charged with it, and no worker will use it, so it goes back at
# once, not in its 30 s; the counter ends at what was served

my $LEASE = 2_000_000;

sub leases_left {
    return scalar grep { !/:op:/ }
        @{redis()->cmd('KEYS', "costcap:{$TENANT}:lease:*")};
}

scenario('4h: a reservation that took a lease, its reply lost while its '
         . 'request waits: the resend finds it applied, the lease goes '
         . 'back', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=10s'),
                        config => $LOC);
    $relay->delay(15000);
    my $s = hsend($n, uri => '/lease/videos');
    ok(poll_until(sub { spent() == $E + $LEASE }, 5),
       "$name: Redis applied it, with a lease") or diag('total ' . spent());
    $relay->delay(0);
    $relay->drop;
    my $res = http_read($s, 10);
    is($res->{status}, 200, "$name: admitted: the resend finds it applied")
        or diag($res->{body} // $res->{error});
    ok(poll_until(sub { spent() == $E }, 5),
       "$name: the lease nobody holds is given back")
        or diag('total ' . spent());
    is(leases_left(), 0, "$name: no lease left in Redis");
    $n->stop;
    no_crash($n, $name);
    unlike($n->error_log, qr/dropped|unconfirmed/, "$name: nothing dropped");
});

scenario('4i: open, a reservation that took a lease, its reply lost after '
         . 'its request was served: charged once, the lease goes back',
         sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=200ms'),
                        config => $LOC);
    $relay->delay(15000);
    my $res = $n->request(req(uri => '/lease-open/videos'));
    is($res->{status}, 200, "$name: admitted on timeout");
    ok(poll_until(sub { spent() == $E + $LEASE }, 5),
       "$name: Redis applied it, with a lease") or diag('total ' . spent());
    $relay->delay(0);
    $relay->drop;
    ok(poll_until(sub { spent() == $E }, 5),
       "$name: charged once, the lease given back")
        or diag('total ' . spent());
    is(leases_left(), 0, "$name: no lease left in Redis");
    $n->stop;
    no_crash($n, $name);
    unlike($n->error_log, qr/dropped|unconfirmed/, "$name: nothing dropped");
});

scenario('4j: open, a reservation that took a lease answered after its '
         . 'request was served: the lease goes back', sub {
    my $name = shift;
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $n = gateway(http_config => http_conf($relay->addr,
                                                 'timeout=200ms'),
                        config => $LOC);
    $relay->delay(1000);
    my $res = $n->request(req(uri => '/lease-open/videos'));
    is($res->{status}, 200, "$name: admitted on timeout");
    ok(poll_until(sub { spent() == $E }, 5),
       "$name: the late reply kept the charge, the lease given back")
        or diag('total ' . spent());
    is(leases_left(), 0, "$name: no lease left in Redis");
    # (the return's own reply is still held: stopped now, it is logged as
    # unconfirmed, though Redis applied it)
    $relay->delay(0);
    $n->stop;
    no_crash($n, $name);
});


# -------------------------------------------------------------------------
# 5. a body NGINX gives up reading, then an error_page to a location where
# cost_cap is on: answered, not held until the client leaves

scenario('5: a body NGINX gives up reading, and an error_page', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=500ms'),
                        config => $LOC);
    my $small = '{"model":"sora-2"}';
    my $big = $small . (' ' x 200);
    my %chunk = (
        small => sprintf("%x\r\n%s\r\n0\r\n\r\n", length $small, $small),
        big => sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big),
        bad => "zz\r\n$small\r\n0\r\n\r\n",
    );
    my %h = (method => 'POST', uri => '/body/videos',
             headers => "X-Tenant: $TENANT\nContent-Type: application/json"
                        . "\nTransfer-Encoding: chunked");

    my $res = http_request(port => $n->port, %h, body => $chunk{small},
                           timeout => 5);
    is($res->{status}, 200, "$name: a chunked body within the limit: priced");
    is(header_value($res, 'X-Cost-Cap-Estimate'), '0.077415',
       "$name: ... and charged");

    for my $case (['big', 'with the headers', 0],
                  ['big', 'after the headers', 1],
                  ['bad', 'bad chunking, after the headers', 1]) {
        my ($body, $what, $later) = @$case;
        my $t = time;
        my $s = http_send(port => $n->port, %h, body => $chunk{$body},
                          $later ? (partial => 0) : ());
        if ($later) {
            sleep 0.1;
            syswrite $s, $chunk{$body};
        }
        my $res = http_read($s, 4);
        my $el = time - $t;
        ok(defined $res->{status},
           sprintf "$name: %s body %s: answered (%s) in %.2f s", $body,
                   $what, $res->{status} // $res->{error}, $el);
        ok($el < 2, "$name: ... not held");
    }
    is(spent(), $E, "$name: only the first charged");
    $n->stop;
    no_crash($n, $name);
});


# -------------------------------------------------------------------------
# 6. a counter that is not a whole number; the eviction policy

scenario('6a: a counter that is not a whole number', sub {
    my $name = shift;
    my $r = start_redis();
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=500ms'),
                        config => $LOC);
    redis()->cmd('SET', total_key(), '1.5');
    my $res = $n->request(req());
    is($res->{status}, 500, "$name: 500");
    json_matches($res->{body}, err('cost_cap_misconfigured', undef),
                 "$name: cost_cap_misconfigured");
    is(redis()->cmd('GET', total_key()), '1.5', "$name: nothing written");
    my $key = total_key();
    like($n->error_log,
         qr/counter \Q$key\E is not an amount \(tenant "\Q$TENANT\E"\)/,
         "$name: logged, naming the key (the window's) and the tenant");
    $n->stop;
    no_crash($n, $name);
});

scenario('6b: an eviction policy other than noeviction: warned once', sub {
    my $name = shift;
    my $r = start_redis(args => '--maxmemory-policy allkeys-lru');
    my $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=500ms'),
                        config => $LOC, workers => 2);
    is($n->request(req())->{status}, 200, "$name: admitted");
    # every connection is made again, in each worker
    client_kill($r);
    poll_until(sub { $n->request(req())->{status} == 200 }, 3);
    $n->request(req()) for 1 .. 4;
    $n->stop;
    my @w = $n->error_log =~ /(\[warn\].*maxmemory-policy.*)/g;
    is(scalar @w, 1, "$name: one warning for the whole nginx") or diag("@w");
    like($w[0] // '', qr/"allkeys-lru".*noeviction/,
         "$name: it names the policy and the remedy");
    no_crash($n, $name);

    $r = start_redis();
    $n = gateway(http_config => http_conf("127.0.0.1:$r->{port}",
                                              'timeout=500ms'),
                     config => $LOC);
    is($n->request(req())->{status}, 200, "$name: admitted (noeviction)");
    $n->stop;
    unlike($n->error_log, qr/maxmemory-policy/, "$name: noeviction: silent");
});

scenario('6c: metrics of the most models, scraped across reloads that add '
         . 'models', sub {
    my $name = shift;
    # names of 70 bytes, quotes and backslashes after the number: 64 kept,
    # each escaped into two in the label
    my $models = sub {
        my ($from, $to) = @_;
        return join '', map {
            my $pat = sprintf('m%03d', $_) . ('"\\\\' x 33);
            "cost_cap_model '$pat' per_mpx_frame=1 default_size=1x1;\n";
        } $from .. $to;
    };
    my $conf = sub { <<"END" . $models->(@_) };
location = /metrics {
    cost_cap_metrics;
}
END
    my $r = start_redis();
    my $n = start_nginx(http_config => http_conf("127.0.0.1:$r->{port}",
                                                 'timeout=500ms'),
                        config => $conf->(1, 100), workers => 2);
    my $scrapes = tmp_dir() . '/scrapes';
    mkdir $scrapes;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $i = 0;
        my $t = time;
        while (time < $t + 2.5) {
            my $res = $n->request(method => 'GET', uri => '/metrics',
                                  timeout => 5);
            open my $f, '>', "$scrapes/" . $i++;
            print $f ($res->{status} // 'ERR'), "\n", $res->{body} // '';
            close $f;
            sleep 0.02;
        }
        POSIX::_exit(0);
    }
    # the names go to shared memory in the master, while the workers of
    # the configuration before still answer scrapes
    for my $to (120, 126, 127, 160) {
        sleep 0.4;
        $n->{config} = $conf->(1, $to);
        CostCap::Test::_spit($n->dir . '/nginx.conf', $n->_conf);
        kill 'HUP', $n->{pid};
    }
    waitpid $pid, 0;
    my ($count, $bad, %lines) = (0, 0);
    for my $f (glob "$scrapes/*") {
        my $t = CostCap::Test::_slurp($f);
        $count++;
        my ($st, @l) = split /\n/, $t;
        my @m = grep { /^cost_cap_admitted_usd_total\{/ } @l;
        $lines{scalar @m}++;
        my @odd = grep { !/^# (HELP|TYPE) /
                         && !/^[a-z_]+(\{[a-z]+="(?:[^"\\]|\\["\\n])*"\})?
                              \ -?[\d.]+$/x } @l;
        next if $st eq '200' && !@odd
                && $t =~ /\ncost_cap_settlement_drops_total \d+\n/
                && $t =~ /\ncost_cap_redis_stalls_total \d+\n/
                && $t =~ /\n\z/;
        diag("$name: $f: status $st, " . scalar(@odd) . " odd lines: "
             . join("\n", @odd[0 .. 2])) unless $bad++;
    }
    ok($count > 10, "$name: $count scrapes");
    is($bad, 0, "$name: each complete and well-formed");
    my ($most) = sort { $b <=> $a } keys %lines;
    is($most, 128, "$name: at most 128 models, the last one _other")
        or diag(Test::More::explain(\%lines));
    like($n->request(method => 'GET', uri => '/metrics')->{body},
         qr/\{model="_other"\}/, "$name: _other");
    $n->stop;
    no_crash($n, $name);
});

my $took = time - $T_BEGIN;
ok($took < 80, sprintf 'whole file bounded (%.1f s)', $took);

done_testing();

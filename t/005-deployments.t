# The harness for Redis as production runs it, proven without the module:
# a Redis Cluster (3 masters, 3 replicas; a slot migrated in steps, with
# ASK then MOVED; CLUSTER FAILOVER; a master killed), Sentinel (master,
# replica, three Sentinels, passwords; SENTINEL FAILOVER), TLS (right CA,
# wrong CA, wrong name, mutual TLS; TLS cluster and Sentinel), the DNS
# responder (answers switching between 127.0.0.2 and 127.0.0.3, counted;
# checked against the resolver of a plain nginx), the TCP relay (stall,
# resume, drop, delay) and the fault helpers (-OOM, -BUSY, -READONLY,
# -MASTERDOWN, CLIENT KILL, CLIENT PAUSE, DEBUG SLEEP).  Every process is
# a real redis-server 7.0 (or nginx without the module) on loopback,
# stopped by PID.  Every wait is a poll with a bound.

use strict;
use warnings;

BEGIN { $ENV{COST_CAP_NO_MODULE} = 1 }

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More import => [qw(subtest done_testing)];
use CostCap::Test::Cluster;
use CostCap::Test::DNS;
use CostCap::Test::Faults qw(clients client_kill replicaof promote
                             masterdown_on masterdown_off oom_on oom_off
                             pause_clients unpause_clients busy
                             debug_sleep connect_to);
use CostCap::Test::Node;
use CostCap::Test::Relay;
use CostCap::Test::Sentinel;
use CostCap::Test::TLS;
use Time::HiRes qw(time);

my $T0 = time;
my $TLS = CostCap::Test::TLS->shared;

sub slot_of { CostCap::Test::Cluster::slot_of(@_) }

# the error of a command on a fresh connection, or its reply
sub answer_of {
    my ($node, @cmd) = @_;
    my $c = $node->connect(timeout => 5)
        or return "connect: $CostCap::Test::Client::ERROR";
    my ($r, $e) = eval { $c->try_cmd(@cmd) };
    $c->close;
    return $@ ? "died: $@" : defined $e ? "-$e" : $r;
}


subtest 'CRC16 and slots, without a server' => sub {
    is(sprintf('%04x', CostCap::Test::Cluster::crc16('123456789')), '31c3',
       'CRC16-XMODEM check value');
    is(slot_of('foo'), 12182, 'slot of foo');
    is(slot_of('{acme}:day'), slot_of('acme'), 'hash tag');
    is(slot_of('a{}b'), CostCap::Test::Cluster::crc16('a{}b') & 16383,
       'empty tag: the whole key');
    is(slot_of('x{a}{b}'), slot_of('a'), 'first tag only');
};


# Sentinel first: Sentinel converts the old master some 10 s after a
# failover; the wait for it comes at the end, the rest runs meanwhile
my $sen = CostCap::Test::Sentinel->new(password => 'data-pw',
                                       sentinel_password => 'sent-pw');
my ($SEN_OLD, $SEN_NEW);

subtest 'Sentinel: discovery, passwords, failover' => sub {
    $sen->start;
    my @s = $sen->sentinels;
    is(scalar @s, 3, 'three Sentinels');
    my $m = $sen->master;
    ok($m, 'Sentinels name a master: ' . $sen->master_addr);
    is($m->role->[0], 'master', 'it answers ROLE master');
    is($sen->master_addr($_), $m->addr, "Sentinel $_ agrees") for 0 .. 2;
    my ($rep) = $sen->replicas;
    is($rep->role->[2], $m->port, 'the replica follows it');
    my $np = CostCap::Test::Client->new(port => $m->port);
    my (undef, $e) = $np->try_cmd('GET', 'x');
    like($e, qr/^NOAUTH/, 'the master wants its password');
    my $ns = CostCap::Test::Client->new(port => $s[0]->port);
    (undef, $e) = $ns->try_cmd('SENTINEL', 'MASTERS');
    like($e, qr/^NOAUTH/, 'the Sentinels want theirs');

    $m->cmd('SET', 'costcap:{acme}:day:1', 4242);
    is($m->cmd('WAIT', 1, 5000), 1, 'the write reached the replica');
    $SEN_OLD = $m->addr;
    my $t = time;
    $SEN_NEW = $sen->failover(old_replica => 0);
    diag(sprintf 'Sentinel failover: %.2f s', time - $t);
    isnt($SEN_NEW, $SEN_OLD, "new master $SEN_NEW");
    is($SEN_NEW, $rep->addr, 'the replica was promoted');
    is($sen->master_addr($_), $SEN_NEW, "Sentinel $_ reports it")
        for 0 .. 2;
    is($sen->master->cmd('GET', 'costcap:{acme}:day:1'), 4242,
       'the counter is on the new master');
    is($sen->master->cmd('INCRBY', 'costcap:{acme}:day:1', 1), 4243,
       'the new master takes writes');
};


my $cl = CostCap::Test::Cluster->new;

subtest 'Cluster: creation, topology, slots, routing' => sub {
    my $t = time;
    $cl->start;
    diag(sprintf 'cluster started: %.2f s', time - $t);
    my @m = $cl->masters;
    my @r = $cl->replicas;
    is(scalar @m, 3, 'three masters');
    is(scalar @r, 3, 'three replicas');
    my %mm = map { $_ => 1 } @m;
    ok($mm{($cl->nodes)[$_ + 3]{master} // 0}, "replica $_ follows a master")
        for 0 .. 2;
    is(scalar(split ' ', $cl->seeds), 6, 'six seed addresses');
    is($cl->node($m[0])->cmd('CLUSTER', 'KEYSLOT', $_), slot_of($_),
       'slot of ' . unpack('H*', $_) . ' as Redis says')
        for 'foo', '{acme}:day:20261201', 'x{a}{b}', 'a{}b', "\xff\x00bin";

    my @tags = $cl->tags_per_master('tenant');
    is(scalar @tags, 3, "one tag per master: @tags");
    for my $i (0 .. 2) {
        is($cl->master_of_slot(slot_of("{$tags[$i]}")), $m[$i],
           "{$tags[$i]} is served by master $i");
        is($cl->cmd('INCRBY', "costcap:{$tags[$i]}:day:1", 100 * ($i + 1)),
           100 * ($i + 1), "write of tenant $tags[$i]");
        is_deeply([$cl->locate("costcap:{$tags[$i]}:day:1")], [$m[$i]],
                  '... lands on its master');
    }
    is($cl->sum('costcap:*'), 600, 'sum over every master');
    is(scalar keys %{$cl->keys('costcap:*')}, 3, 'three counters');
    my $raw = $cl->node($m[1])->connect;
    my (undef, $e) = $raw->try_cmd('GET', "costcap:{$tags[0]}:day:1");
    like($e, qr/^MOVED \d+ 127\.0\.0\.1:$m[0]$/,
         'a wrong node answers MOVED');
    my $ev = $cl->cmd('EVAL', 'return redis.call("GET", KEYS[1])', 1,
                      "costcap:{$tags[2]}:day:1");
    is($ev, 300, 'EVAL routed by its declared key');
};


subtest 'Cluster: slot migration in steps, ASK then MOVED' => sub {
    my @m = $cl->masters;
    my $tag = $cl->tag_for_master($m[0], 'mig');
    my $slot = slot_of("{$tag}");
    $cl->cmd('SET', "{$tag}:k$_", $_) for 1 .. 30;
    my $mig = $cl->migrate_slot($slot, $m[1]);
    is($mig->source, $m[0], 'source');
    is($mig->target, $m[1], 'target');
    $mig->begin;
    my $src = $cl->node($m[0])->connect;
    my $dst = $cl->node($m[1])->connect;
    is(($src->try_cmd('GET', "{$tag}:k1"))[0], 1,
       'MIGRATING: the source serves a key it has');
    my (undef, $e) = $src->try_cmd('GET', "{$tag}:absent");
    like($e, qr/^ASK $slot 127\.0\.0\.1:$m[1]$/,
         'MIGRATING: ASK for a key it lacks');
    (undef, $e) = $dst->try_cmd('GET', "{$tag}:k1");
    like($e, qr/^MOVED $slot 127\.0\.0\.1:$m[0]$/,
         'IMPORTING: MOVED without ASKING');
    my @r = $dst->pipeline(['ASKING'], ['GET', "{$tag}:absent"]);
    is_deeply($r[1], [undef, undef], 'IMPORTING: served after ASKING');

    is($mig->move_keys(batch => 7, max => 15), 15, '15 keys migrated');
    is($mig->keys_left, 15, '15 left on the source');
    my $ask0 = $cl->client->{stats}{ask};
    is($cl->get("{$tag}:k$_"), $_, "k$_ read wherever it is") for 1 .. 30;
    ok($cl->client->{stats}{ask} > $ask0, 'the routing client followed ASK');
    my ($st, $out) = CostCap::Test::Node::run_cmd(10,
        CostCap::Test::tmp_dir() . '/redis-cli.log',
        'redis-cli', '-c', '-p', $m[0], 'GET', "{$tag}:k30");
    like($out, qr/^30$/m, 'redis-cli -c follows the same redirections');

    is($mig->move_keys, 15, 'the rest migrated');
    is($mig->keys_left, 0, 'none left');
    $mig->finish;
    is($cl->master_of_slot($slot), $m[1], 'the slot is on the target');
    (undef, $e) = $src->try_cmd('GET', "{$tag}:k1");
    like($e, qr/^MOVED $slot 127\.0\.0\.1:$m[1]$/,
         'after SETSLOT NODE: MOVED');
    my $mv0 = $cl->client->{stats}{moved};
    $cl->client->refresh;
    $cl->client->{map}[$slot] = "127.0.0.1:$m[0]";      # a stale map
    is($cl->get("{$tag}:k1"), 1, 'read with a stale map');
    is($cl->client->{stats}{moved}, $mv0 + 1, '... after one MOVED');
    is($cl->sum("{$tag}:*"), 465, 'nothing lost in the move');
};


subtest 'Cluster: CLUSTER FAILOVER, a master killed' => sub {
    my @m = $cl->masters;
    my $tag = $cl->tag_for_master($m[2], 'fo');
    $cl->cmd('SET', "{$tag}:c", 7);
    my ($rep) = $cl->replicas_of($m[2]);
    my $t = time;
    my $new = $cl->failover($m[2]);
    diag(sprintf 'cluster failover: %.2f s', time - $t);
    is($new, $rep, 'the replica took over');
    is($cl->master_of_key("{$tag}"), $new, 'it serves the slots');
    is($cl->node($m[2])->role->[0], 'slave', 'the old master is a replica');
    is($cl->get("{$tag}:c"), 7, 'the key is there');
    my (undef, $e) = $cl->node($m[2])->connect->try_cmd('SET', "{$tag}:c", 8);
    like($e, qr/^MOVED/, 'a write on the old master: MOVED');

    my ($victim) = $cl->masters;
    my ($heir) = $cl->replicas_of($victim);
    my $vtag = $cl->tag_for_master($victim, 'kill');
    $cl->cmd('SET', "{$vtag}:c", 9);
    is($cl->node($victim)->cmd('WAIT', 1, 5000), 1, 'replicated');
    $t = time;
    $cl->kill_node($victim);
    $cl->wait_ok(30);
    diag(sprintf 'failover after SIGKILL of a master: %.2f s', time - $t);
    is($cl->master_of_key("{$vtag}"), $heir, 'its replica took over');
    is($cl->get("{$vtag}:c"), 9, 'the key survived');
    $cl->start_node($victim);
    ok(CostCap::Test::poll_until(sub {
        my $r = eval { $cl->node($victim)->role };
        $r && $r->[0] eq 'slave' && $r->[2] == $heir
           && $r->[3] eq 'connected';
    }, 30), 'restarted, it rejoins as a replica');
    $cl->wait_ok(30);
};


subtest 'TLS: CA, names, mutual TLS' => sub {
    my $s = CostCap::Test::Node->new(name => 'tls', tls => $TLS)->start;
    is($s->cmd('SET', 'k', 'v'), 'OK', 'TLS client with the CA');
    my $ip = CostCap::Test::Client->new(port => $s->port,
                                        tls => { ca => $TLS->ca });
    ok($ip && $ip->ok_ping, 'name 127.0.0.1 verified (IP SAN)');
    my $c = CostCap::Test::Client->new(port => $s->port,
        tls => { ca => $TLS->other_ca, name => 'localhost' });
    ok(!$c, 'a CA that did not sign it: refused');
    like($CostCap::Test::Client::ERROR, qr/certificate verify failed/,
         '... certificate verify failed');
    $c = CostCap::Test::Client->new(port => $s->port,
        tls => { ca => $TLS->ca, name => 'other.example' });
    ok(!$c, 'a name the certificate lacks: refused');
    like($CostCap::Test::Client::ERROR, qr/hostname verification failed/,
         '... hostname verification failed');
    $c = CostCap::Test::Client->new(port => $s->port,
        tls => { ca => $TLS->ca, name => 'redis.test' });
    ok($c && $c->ok_ping, 'redis.test is in the certificate');
    my $p = CostCap::Test::Client->new(port => $s->port, timeout => 2);
    ok(!($p && $p->ok_ping), 'plain TCP to a TLS port: no answer');

    my $w = CostCap::Test::Node->new(name => 'tls-wrong', tls => $TLS,
                                     tls_cert => 'wrong_name')->start;
    ok(!CostCap::Test::Client->new(port => $w->port,
           tls => { ca => $TLS->ca, name => 'localhost' }),
       'a server certificate for wrong.example: refused as localhost');
    $c = CostCap::Test::Client->new(port => $w->port,
        tls => { ca => $TLS->ca, name => 'wrong.example' });
    ok($c && $c->ok_ping, '... accepted as wrong.example');

    my $m = CostCap::Test::Node->new(name => 'mtls', tls => $TLS,
                                     tls_auth_clients => 'yes')->start;
    ok($m->client->ok_ping, 'mutual TLS with the client certificate');
    $c = CostCap::Test::Client->new(port => $m->port, timeout => 2,
        tls => { ca => $TLS->ca, name => 'localhost' });
    ok(!($c && $c->ok_ping), 'mutual TLS without a certificate: refused');
    $c = CostCap::Test::Client->new(port => $m->port, timeout => 2,
        tls => { ca => $TLS->ca, name => 'localhost',
                 cert => $TLS->file('other_client.crt'),
                 key => $TLS->file('other_client.key') });
    ok(!($c && $c->ok_ping), '... with a certificate of the other CA: '
                             . 'refused');
    my ($st, $out) = CostCap::Test::Node::run_cmd(10,
        CostCap::Test::tmp_dir() . '/redis-cli.log',
        'redis-cli', $TLS->cli_args, '-p', $m->port, 'PING');
    like($out, qr/^PONG$/m, 'redis-cli --tls with the client certificate');
    my $big = 'z' x 200_000;
    $m->cmd('SET', 'big', $big);
    is(length $m->cmd('GET', 'big'), 200_000, 'a 200 KB reply over TLS');
};


subtest 'TLS: Cluster, mutual TLS' => sub {
    my $t = time;
    my $tc = CostCap::Test::Cluster->new(tls => $TLS, password => 'c-pw',
                                         tls_auth_clients => 'yes')->start;
    diag(sprintf 'TLS cluster started: %.2f s', time - $t);
    my @m = $tc->masters;
    is(scalar @m, 3, 'three masters over TLS');
    my @tags = $tc->tags_per_master('tls');
    $tc->cmd('INCRBY', "costcap:{$_}:day:1", 5) for @tags;
    is($tc->sum('costcap:*'), 15, 'a counter on every master');
    my $slot = slot_of("{$tags[0]}");
    $tc->migrate_slot($slot, $m[1])->run;
    is($tc->master_of_slot($slot), $m[1], 'a slot migrated over TLS');
    is($tc->get("costcap:{$tags[0]}:day:1"), 5, 'its key moved with it');
    my $new = $tc->failover($m[2]);
    is($tc->master_of_key("{$tags[2]}"), $new, 'failover over TLS');
    is($tc->sum('costcap:*'), 15, 'counters intact');
    my $p = CostCap::Test::Client->new(port => $m[0], timeout => 2);
    ok(!($p && $p->ok_ping), 'no plain TCP');
    $p = CostCap::Test::Client->new(port => $m[0], timeout => 2,
        password => 'c-pw', tls => { ca => $TLS->ca, name => 'localhost' });
    ok(!($p && $p->ok_ping), 'no TLS without a client certificate');
    $tc->stop;
};


subtest 'TLS: Sentinel' => sub {
    my $t = time;
    my $ts = CostCap::Test::Sentinel->new(name => 'tls', tls => $TLS)
                                     ->start;
    diag(sprintf 'TLS Sentinel group started: %.2f s', time - $t);
    my $old = $ts->master_addr;
    ok($ts->sentinel(0)->client->ok_ping, 'Sentinel over TLS');
    $ts->master->cmd('SET', 'k', 1);
    my $new = $ts->failover(old_replica => 'convert');
    isnt($new, $old, "failover over TLS: $new");
    is($ts->node_at($old)->role->[0], 'slave', 'the old master follows');
    is($ts->master->cmd('GET', 'k'), 1, 'data on the new master');
    $ts->stop;
};


subtest 'DNS responder' => sub {
    my ($two, $three) = CostCap::Test::Node->twins(name => 'dns');
    is($two->port, $three->port, 'two Redis on one port: ' . $two->port);
    is($two->host, '127.0.0.2', 'on 127.0.0.2');
    is($three->host, '127.0.0.3', 'and 127.0.0.3');
    $two->cmd('SET', 'who', 'two');
    $three->cmd('SET', 'who', 'three');
    is($two->cmd('GET', 'who'), 'two', 'each its own data');

    my $dns = CostCap::Test::DNS->new->start;
    $dns->set_answer('redis.test', '127.0.0.2');
    my $q = CostCap::Test::DNS::query($dns->port, 'redis.test');
    is_deeply($q->{addrs}, ['127.0.0.2'], 'A answer');
    is($q->{ttl}, 1, 'TTL 1 s');
    is($q->{rcode}, 'NOERROR', 'NOERROR');
    my $c = CostCap::Test::Client->new(host => $q->{addrs}[0],
                                       port => $two->port);
    is($c->cmd('GET', 'who'), 'two', 'the name reaches 127.0.0.2');
    $dns->set_answer('redis.test', '127.0.0.3');
    $q = CostCap::Test::DNS::query($dns->port, 'REDIS.test.', tcp => 1);
    is_deeply($q->{addrs}, ['127.0.0.3'], 'switched (over TCP, any case)');
    $c = CostCap::Test::Client->new(host => $q->{addrs}[0],
                                    port => $two->port);
    is($c->cmd('GET', 'who'), 'three', 'the name reaches 127.0.0.3');
    is(CostCap::Test::DNS::query($dns->port, 'redis.test', type => 'AAAA')
           ->{rcode}, 'NOERROR', 'AAAA: NOERROR');
    is(CostCap::Test::DNS::query($dns->port, 'nope.test')->{rcode},
       'NXDOMAIN', 'unknown name: NXDOMAIN');
    is($dns->queries('redis.test', 'A'), 2, 'A queries counted');
    is($dns->queries('redis.test'), 3, 'all queries for the name');
    is($dns->queries, 4, 'all queries');
    $dns->set_rcode('redis.test', 'SERVFAIL');
    is(CostCap::Test::DNS::query($dns->port, 'redis.test')->{rcode},
       'SERVFAIL', 'SERVFAIL on demand');
    $dns->set_silent('redis.test');
    ok(!CostCap::Test::DNS::query($dns->port, 'redis.test',
                                  timeout => 0.3), 'silence on demand');
    $dns->reset_counts;
    is($dns->queries, 0, 'counters reset');

    # the resolver of a plain nginx (no module): proxy_pass to a name
    # resolved at request time, answers switching between two servers
    $dns->set_answer('redis.test', '127.0.0.2');
    my $hp = CostCap::Test::Node::free_port_on('127.0.0.2', '127.0.0.3');
    my $n = start_nginx(
        http_config => 'resolver ' . $dns->addr . " valid=1s ipv6=off;\n"
            . "server { listen 127.0.0.2:$hp; return 200 two; }\n"
            . "server { listen 127.0.0.3:$hp; return 200 three; }\n",
        config => "location /r { set \$h redis.test; "
            . "proxy_pass http://\$h:$hp/; }\n");
    is($n->request(uri => '/r')->{body}, 'two', 'nginx resolves the name');
    $dns->set_answer('redis.test', '127.0.0.3');
    ok(poll_until(sub { ($n->request(uri => '/r')->{body} // '')
                        eq 'three' }, 10),
       'nginx re-resolves after the TTL');
    ok($dns->queries('redis.test', 'A') >= 2, 'nginx asked again: '
       . $dns->queries('redis.test', 'A') . ' A queries');
    is($dns->queries('redis.test', 'AAAA'), 0, 'ipv6=off: no AAAA');
    $n->stop;
};


subtest 'TCP relay' => sub {
    my $r0 = CostCap::Test::Node->new(name => 'relayed')->start;
    my $r = CostCap::Test::Relay->new(to => $r0)->start;
    my $c = CostCap::Test::Client->new(port => $r->port, timeout => 2);
    is($c->cmd('PING'), 'PONG', 'PING through the relay');
    my $big = 'r' x 500_000;
    $c->cmd('SET', 'big', $big);
    is(length $c->cmd('GET', 'big'), 500_000, '500 KB each way');
    my $st = $r->stats;
    is($st->{accepted}, 1, 'one connection accepted');
    ok($st->{up} > 500_000 && $st->{down} > 500_000, 'bytes counted');

    $r->stall;
    $c->timeout(0.5);
    my $t = time;
    ok(!eval { $c->cmd('PING'); 1 }, 'stalled: PING unanswered');
    like($@, qr/reply timeout/, '... a timeout, not a close');
    my $c2 = CostCap::Test::Client->new(port => $r->port, timeout => 0.5);
    ok($c2, 'stalled: a new connection is accepted');
    ok(!eval { $c2->cmd('PING'); 1 }, '... and gets nothing');
    ok(poll_until(sub { $r->stats->{stalled} == 2 }, 5),
       'two connections stalled');
    is($r->stats->{state}, 'stall', 'state stall');

    $r->resume;
    my $c3 = CostCap::Test::Client->new(port => $r->port, timeout => 2);
    is($c3->cmd('PING'), 'PONG', 'resumed: a new connection works');
    $c->timeout(0.3);
    ok(!eval { $c->cmd('PING'); 1 }, 'a stalled one stays dead');
    is($r->stats->{dead}, 2, 'two dead connections');

    is($r->drop, 3, 'drop closes every connection');
    ok(!eval { $c3->cmd('PING'); 1 }, 'dropped: the client sees it');
    like($@, qr/reset|closed/, '... reset: ' . ($@ =~ s/\n//r));

    $r->delay(300);
    my $c4 = CostCap::Test::Client->new(port => $r->port, timeout => 5);
    $t = time;
    is($c4->cmd('PING'), 'PONG', 'PING with replies delayed');
    my $el = time - $t;
    ok($el >= 0.3, sprintf 'answered after %.2f s (>= 0.3)', $el);
    $r->delay(0);

    $r->stall;
    my $c5 = CostCap::Test::Client->new(port => $r->port, timeout => 0.3);
    ok(!eval { $c5->cmd('PING'); 1 }, 'stalled again');
    $r->resume('heal');
    $c5->timeout(5);
    is(($c5->read_reply)[0], 'PONG', 'healed: the late reply arrives');
    is($c5->cmd('PING'), 'PONG', '... and the connection works');

    my $other = CostCap::Test::Node->new(name => 'relay-b')->start;
    $other->cmd('SET', 'who', 'b');
    $r->target($other);
    my $c6 = CostCap::Test::Client->new(port => $r->port, timeout => 2);
    is($c6->cmd('GET', 'who'), 'b', 'retargeted: new connections go there');
    is($r->stats->{accepted}, 6, 'six connections accepted in all');
    $r->stop;
};


subtest 'Fault helpers on one server' => sub {
    my $s = CostCap::Test::Node->new(name => 'faults',
        args => ['--enable-debug-command', 'local'])->start;
    my $other = CostCap::Test::Node->new(name => 'faults-master')->start;
    $s->cmd('SET', 'k', 1);

    my $v = connect_to($s);
    $v->cmd('CLIENT', 'SETNAME', 'victim');
    my ($vc) = grep { ($_->{name} // '') eq 'victim' } clients($s);
    is($vc->{addr}, $v->local_addr, 'CLIENT LIST shows the victim');
    is(client_kill($s, addr => $v->local_addr), 1, 'CLIENT KILL ADDR');
    ok(!eval { $v->cmd('PING'); 1 }, 'the killed connection is closed');
    like($@, qr/closed|reset/, '... ' . ($@ =~ s/\n//r));
    my @v = map { connect_to($s) } 1 .. 3;
    # a PING each: Redis has accepted them (connect() returns before)
    $_->cmd('PING') for @v;
    is(client_kill($s), 3, 'CLIENT KILL TYPE normal SKIPME yes: 3');
    ok(!eval { $_->cmd('PING'); 1 }, 'victim closed') for @v;
    is($s->cmd('PING'), 'PONG', 'our own connection kept');

    oom_on($s);
    my (undef, $e) = $s->try_cmd('SET', 'k2', 1);
    like($e, qr/^OOM /, 'maxmemory: a write answers -OOM');
    (undef, $e) = $s->try_cmd('EVAL',
        'return redis.call("INCRBY", KEYS[1], 1)', 1, 'k');
    like($e, qr/OOM/, '... and so does a script that writes');
    is($s->cmd('GET', 'k'), 1, 'reads still work');
    oom_off($s);
    is($s->cmd('INCRBY', 'k', 1), 2, 'oom_off: writes again');
    is($s->cmd('CONFIG', 'GET', 'maxmemory')->[1], 0, 'maxmemory restored');

    replicaof($s, $other);
    (undef, $e) = $s->try_cmd('SET', 'k', 1);
    like($e, qr/^READONLY/, 'REPLICAOF: a write answers -READONLY');
    promote($s);
    is($s->cmd('SET', 'k', 3), 'OK', 'REPLICAOF NO ONE: writes again');

    masterdown_on($s);
    (undef, $e) = $s->try_cmd('GET', 'k');
    like($e, qr/^MASTERDOWN/, 'a replica without its master: -MASTERDOWN');
    masterdown_off($s);
    is($s->cmd('GET', 'k'), 3, 'back, data kept');

    pause_clients($s, 10_000, 'WRITE');
    my $pw = connect_to($s, timeout => 0.3);
    ok(!eval { $pw->cmd('SET', 'k', 4); 1 }, 'CLIENT PAUSE WRITE: a write '
                                           . 'waits');
    is(answer_of($s, 'GET', 'k'), 3, '... a read does not');
    unpause_clients($s);
    $pw->timeout(5);
    is(($pw->read_reply)[0], 'OK', 'unpaused: the write completes');

    my $b = busy($s);
    like($b->wait, qr/^BUSY/, 'a long script: others get -BUSY');
    like($b->stop, qr/killed/i, 'SCRIPT KILL ends it');
    is($s->cmd('PING'), 'PONG', 'Redis answers again');

    my $sl = debug_sleep($s, 2);
    ok($sl->wait_blocked, 'DEBUG SLEEP: a PING goes unanswered');
    is($sl->wait, 'OK', 'DEBUG SLEEP ends');
    is($s->cmd('PING'), 'PONG', 'Redis answers again');

    # the same helpers on the harness's own Redis
    my $h = redis();
    $h->cmd('SET', 'h', 1);
    $b = busy($h);
    like($b->wait, qr/^BUSY/, "busy() on the harness's Redis");
    $b->stop;
    replicaof($h, $other);
    my (undef, $he) = $h->client->try_cmd('SET', 'h', 2);
    like($he, qr/^READONLY/, "replicaof() on the harness's Redis");
    promote($h);
};


subtest 'Sentinel: the old master becomes a replica' => sub {
    my $t = time;
    $sen->wait_replica_of($SEN_OLD, $SEN_NEW, 40);
    diag(sprintf 'old master converted %.2f s after the other tests', 
         time - $t);
    my $old = $sen->node_at($SEN_OLD);
    like(answer_of($old, 'SET', 'x', 1), qr/^-READONLY/,
         'the old master answers -READONLY');
    is($old->cmd('GET', 'costcap:{acme}:day:1'), 4243,
       'it has the new master\'s data');
    $sen->stop_sentinel(2);
    my $t1 = time;
    my $back = $sen->failover(old_replica => 'convert');
    diag(sprintf 'failover back with two Sentinels: %.2f s', time - $t1);
    is($back, $SEN_OLD, 'failover back to the first master');
    $sen->start_sentinel(2);
    ok(CostCap::Test::poll_until(sub {
           (eval { $sen->master_addr(2) } // '') eq $SEN_OLD }, 20),
       'the restarted Sentinel learns the new master');
};

diag(sprintf 'total %.1f s', time - $T0);

done_testing();

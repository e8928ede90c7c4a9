# SPEC sections 4 ("Late replies") and 9 ("In every mode", "Exact
# accounting under faults"), issue 11: Redis misbehaving under load.  Each
# scenario: two gateways (2 workers each, timeout=200ms, cost_cap_on_error
# closed), 6 client processes, requests of mixed cost for a tenant whose
# cap (150 USD total) is reached in the run and one never capped; some
# requests are refunded (the backend answers 502) or settled to an actual
# cost, their backend answers held 250 ms so that settlements are in
# flight when the fault comes.  Each ends with every counter (total and
# month of each tenant) equal to the spend the answers admitted, to the
# micro-dollar, and prints requests, answers by status, the longest
# answer and the counters (prove -v).
#
#   stall   a relay between the gateways and Redis stops forwarding
#           without closing, for 3.5 s (17 times the timeout; past the
#           2 s stall bound), then forwards again on new connections only
#   kill    CLIENT KILL of every gateway connection, six times; three of
#           them sent while Redis sleeps 0.3 s (DEBUG SLEEP), so that
#           reservations and settlements are in flight: some applied and
#           unanswered (given back by id, or found applied by the resend),
#           some never read (a tombstone)
#   errors  Redis at maxmemory with noeviction (-OOM) for 1.5 s, healthy
#           for 0.5 s, a script keeping it -BUSY for 1.5 s, then healthy

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Chaos;
use CostCap::Test::Faults qw(client_kill oom_on oom_off busy debug_sleep);
use CostCap::Test::Relay;
use Time::HiRes qw(time sleep);

my $T_BEGIN = time;
my @KINDS = (kinds => [qw(plain refund actual)]);

sub only { !$ENV{COST_CAP_ONLY} || $_[0] =~ /$ENV{COST_CAP_ONLY}/ }


if (only('stall')) {
    my $r = start_redis();
    my $relay = CostCap::Test::Relay->new(to => $r)->start;
    my $s = CostCap::Test::Chaos->new(name => 'stall', redis => $relay->addr,
                                      @KINDS);
    my $l = $s->start_load;
    $s->at(1.5);
    $s->mark('stall');
    $relay->stall;
    $s->at(5);
    $relay->resume('dead');
    my $back = $s->mark('resume');
    $s->at(9);
    my $sum = $s->finish;

    ok($sum->{status}{503}, 'stall: 503 while the relay is silent');
    # once the gateways are on new connections, a 503 is a reply slower
    # than 200 ms (a loaded machine), not the stall; 1.5 s of answers, at
    # least 30 of them however busy the machine
    my @after = grep { $_->{start} > $back + 2.5 } $l->rows;
    my $late = grep { $_->{status} == 503 } @after;
    ok(@after >= 30 && $late <= @after / 100,
       sprintf 'stall: once on new connections, %d 503 of %d answers',
               $late, scalar @after);
    my $first = $l->first_after($back, qr/^(200|429)$/);
    ok(defined $first && $first - $back < 2.5,
       sprintf 'stall: service back %.2f s after the relay forwards again',
               defined $first ? $first - $back : 99);
    my $st = $relay->stats;
    ok($st->{accepted} > 4, "stall: the gateways connected again "
                            . "($st->{accepted} connections in all)");
    my $errors = 0;
    for my $n ($s->gateways) {
        $errors += () = $n->error_log =~ /not answering, retrying/g;
    }
    ok($errors >= 1, "stall: silent connections closed ($errors times)");
    $s->stop;
    $s->no_crash;
    $relay->stop;
}


if (only('kill')) {
    my $r = start_redis(args => '--enable-debug-command local');
    # the gateways log in as gw: CLIENT KILL USER gw kills theirs only
    $r->cmd(qw(ACL SETUSER gw on >gwpass ~* +@all));
    my $s = CostCap::Test::Chaos->new(name => 'kill',
                                      redis => "127.0.0.1:$r->{port}",
                                      redis_opts => 'user=gw password=gwpass',
                                      @KINDS);
    my $l = $s->start_load;
    my $killed = 0;
    for my $i (1 .. 6) {
        $s->at($i);
        $s->mark("kill$i");
        if ($i % 2) {
            $killed += client_kill($r, user => 'gw');
            next;
        }
        # the kill waits in Redis's input while it sleeps, with the
        # gateways' commands: it runs among them when Redis wakes up
        my $sleep = debug_sleep($r, 0.3);
        $sleep->wait_blocked;
        my $k = CostCap::Test::Faults::connect_to($r, timeout => 5);
        $k->send_cmd('CLIENT', 'KILL', 'USER', 'gw');
        $sleep->wait;
        my ($n, $e) = $k->read_reply;
        $k->close;
        $killed += $n // 0;
    }
    $s->at(8);
    my $sum = $s->finish;
    ok($killed >= 6 * 4, "kill: $killed connections killed");
    # what the kills left behind: given back (R) or never applied (C)
    my (%m, $cursor);
    $cursor = 0;
    do {
        my $res = $r->cmd('SCAN', $cursor, 'MATCH', 'costcap:*:op:*',
                          'COUNT', 1000);
        $cursor = $res->[0];
        $m{substr($r->cmd('GET', $_) // '-', 0, 1)}++ for @{$res->[1]};
    } while ($cursor);
    ok(($m{R} // 0) + ($m{C} // 0) > 0,
       'kill: reservations were in flight at a kill');
    diag(sprintf 'kill: markers: %d applied, %d given back, %d tombstones, '
         . '%d settlements', $m{A} // 0, $m{R} // 0, $m{C} // 0,
         $m{S} // 0);
    $s->stop;
    $s->no_crash;
}


if (only('errors')) {
    my $r = start_redis();
    my $s = CostCap::Test::Chaos->new(name => 'errors',
                                      redis => "127.0.0.1:$r->{port}",
                                      @KINDS);
    my $l = $s->start_load;
    $s->at(1.5);
    $s->mark('oom');
    oom_on($r);
    $s->at(3);
    oom_off($r);
    $s->mark('room');
    # a healthy half second: each connection logs its next error reply
    # again (one line until a command succeeds)
    $s->at(3.5);
    $s->mark('busy');
    my $b = busy($r, seconds => 20);
    $b->wait;
    $s->at(5);
    $b->stop;
    my $back = $s->mark('healthy');
    $s->at(7.5);
    my $sum = $s->finish;
    ok($sum->{status}{503}, 'errors: 503 while Redis answers errors');
    my $first = $l->first_after($back, qr/^(200|429)$/);
    ok(defined $first && $first - $back < 1,
       sprintf 'errors: service back %.2f s after Redis is healthy',
               defined $first ? $first - $back : 99);
    my ($oom, $busy) = (0, 0);
    for my $n ($s->gateways) {
        $oom++ if $n->error_log =~ /answered: OOM/;
        $busy++ if $n->error_log =~ /answered: BUSY/;
    }
    ok($oom && $busy, "errors: both gateways were answered -OOM and -BUSY")
        or diag("OOM in $oom, BUSY in $busy gateways");
    $s->stop;
    $s->no_crash;
}


my $took = time - $T_BEGIN;
ok($took < 75, sprintf 'whole run bounded (%.1f s)', $took);

done_testing();

# SPEC sections 11 and 6 in a Redis Cluster (3 masters, 3 replicas): the
# parents scenario of t/102 (CostCap::Test::Budget: 2 parents x 5
# tenants, 2 gateways x 2 workers, 64 clients, mixed estimates) with
# mode=cluster.  A tenant's keys and its parent's are all under the
# parent's hash tag, in one slot on one master, so that the reservation
# script declares every key it touches (no CROSSSLOT); the events stream
# costcap:events lives in a slot of its own, written by a separate
# command after the reservation's reply.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Budget;
use CostCap::Test::Cluster;
use Test::More import => [qw(subtest diag)];
use Time::HiRes ();

my $T0 = Time::HiRes::time();

my $cl = CostCap::Test::Cluster->new->start;
diag(sprintf 'cluster of 3 masters and 3 replicas started: %.2f s',
     Time::HiRes::time() - $T0);
my @M = $cl->masters;

# INFO errorstats and commandstats of a master
sub stats_of {
    my $node = shift;
    my %s;
    for my $sec ('errorstats', 'commandstats') {
        my $t = $node->cmd('INFO', $sec);
        $s{$1} = $2 while $t =~ /^(errorstat_\w+):count=(\d+)/mg;
        $s{$1} = $2 while $t =~ /^(cmdstat_\w+):calls=(\d+)/mg;
    }
    return \%s;
}


subtest 'parents in a cluster: one slot per parent, no CROSSSLOT' => sub {
    # two parents on two masters; the stream's slot wherever it is
    my @orgs = ($cl->tags_per_master('org'))[0, 1];
    my $s = CostCap::Test::Budget->new(orgs => \@orgs,
        store => CostCap::Test::Budget::Cluster->new($cl));
    my %home = map { $_ => $cl->master_of_key("{$_}") } @orgs;
    my $stream = $cl->master_of_key('costcap:events');
    diag("parents @orgs on masters @home{@orgs}; costcap:events (slot "
         . $cl->slot_of('costcap:events') . ") on $stream");
    # the point of the layout: tenants whose own tag is elsewhere
    my @away = grep { $cl->master_of_key("{$_}")
                      != $home{$s->parent_of($_)} } $s->tenants;
    ok(@away >= 4, scalar(@away) . ' tenants whose own tag lives on '
                   . 'another master than their parent');

    my @gw = map { start_nginx(
        http_config => $s->http_config($cl->seeds . ' mode=cluster '
                                       . 'timeout=3s connect_timeout=1s'),
        config => $s->config, workers => 2, log_level => 'notice') } 1 .. 2;
    # the slot map is there once a request was reserved by each worker
    for my $g (@gw) {
        ok(poll_until(sub {
            $g->request(method => 'POST', uri => '/v1/x',
                        headers => "X-Tenant: warm\n"
                                   . 'Content-Type: application/json',
                        body => '{"model":"sora-2"}')->{status} == 429
        }, 5), 'gateway warmed up (a tenant without caps: cap 0)');
    }
    $cl->node($_)->cmd('CONFIG', 'RESETSTAT') for @M;

    my $l = $s->load(ports => [map { $_->port } @gw], clients => 64,
                     requests => 24);
    ok($l->wait(70), 'every client finished in time');
    is(scalar $l->rows, 64 * 24, 'every request answered');
    $_->stop for @gw;
    my $sum = $s->check($l, @gw);
    diag('parents, cluster: ' . $s->text($sum));

    # where every key is
    for my $org (@orgs) {
        my @keys = keys %{$cl->keys("costcap:{$org}:*:day:*")};
        push @keys, keys %{$cl->keys("costcap:{$org}:day:*")};
        ok(@keys >= 6, "$org: " . scalar(@keys) . ' day counters');
        is_deeply([grep { !$cl->locate($_) || ($cl->locate($_))[0]
                                               != $home{$org} } @keys], [],
                  "$org: every counter, its tenants' too, on its master");
        is(($cl->locate("costcap:{$org}:alerts"))[0], $home{$org},
           "$org: its alerts hash too");
    }
    for my $t ($s->tenants) {
        is(scalar keys %{$cl->keys("costcap:{$t}:*")}, 0,
           "$t: no key under its own tag");
    }
    is(($cl->locate('costcap:events'))[0], $stream,
       'the stream on the master of its slot');
    ok($sum->{events} > 0, 'events were written');

    my ($calls, $per) = (0, '');
    for my $p (@M) {
        my $st = stats_of($cl->node($p));
        is($st->{errorstat_CROSSSLOT} // 0, 0, "master $p: no CROSSSLOT");
        is($st->{errorstat_MOVED} // 0, 0, "master $p: no MOVED");
        my @err = grep { /^errorstat_/ && $st->{$_} } keys %$st;
        is_deeply(\@err, [], "master $p: no error reply at all")
            or diag(Test::More::explain($st));
        my $n = $st->{cmdstat_evalsha} // 0;
        $per .= " $n";
        my $want = 0;
        for my $org (grep { $home{$_} == $p } @orgs) {
            $want += grep { $s->parent_of($_->{tenant}) eq $org } $l->rows;
        }
        $want += $sum->{events} if $p == $stream;
        is($n, $want, "master $p: $want EVALSHA (its parents' "
                      . 'reservations, and the events if the stream is '
                      . 'there)');
    }
    diag("EVALSHA per master:$per");
    for my $i (0, 1) {
        unlike($gw[$i]->error_log,
               qr/exited on signal|\[(alert|crit|emerg)\]|runtime error:/,
               "gateway $i: no crash, no alert");
        unlike($gw[$i]->error_log, qr/CROSSSLOT/, "gateway $i: no CROSSSLOT");
    }
};

ok(Time::HiRes::time() - $T0 < 60, sprintf 'bounded in time (%.1f s)',
   Time::HiRes::time() - $T0);

done_testing();

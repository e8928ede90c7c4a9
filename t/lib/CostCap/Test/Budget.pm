package CostCap::Test::Budget;

# The parents scenario of SPEC section 11, for one Redis (t/102) and for a
# Cluster (t/104): parents of 5 tenants each, every tenant and every
# parent capped on two windows (day and total), threshold events at
# 50 80 95 100 percent; CostCap::Test::Load sends mixed estimates from
# many clients to the gateways; then everything is compared: no counter
# above its cap, each parent's counter the sum of its tenants', every
# counter the spend the answers admitted, exactly one event in
# costcap:events per threshold a counter crossed (none for what was
# refused), with every field of SPEC section 11, and one notice line per
# event in the gateways' logs.
#
#   my $s = CostCap::Test::Budget->new(
#       orgs  => ['orgA', 'orgB'],    parent names (hash tags)
#       store => CostCap::Test::Budget::Single->new($redis)
#                | CostCap::Test::Budget::Cluster->new($cluster));
#   $s->http_config(ADDRS)   the http{} text (cost_cap_redis ADDRS, maps)
#   $s->config               the server{} text (location /v1/)
#   $s->tenants              every tenant ("orgA.t1" ... "orgB.t5")
#   $s->parent_of(T), $s->tenant_cap(T, WINDOW), $s->parent_cap(P, WINDOW)
#                            caps in micro-USD
#   $s->load(ports => [...], clients => 64, requests => 24)
#                            a started CostCap::Test::Load
#   $s->check($load, @gateways)
#                            the tests; returns a summary: {requests,
#                            status => {CODE => N}, levels => {tenant =>
#                            N 429s, parent => N}, admitted => {NAME =>
#                            micro-USD}, counters => {NAME => micro-USD},
#                            events, notices, evalsha}
#   $s->text($summary)       one line of it, for diag
#
# A store (one Redis or a Cluster) answers: get(KEY), cmd(@ARGS) routed
# by its first key, counters(PATTERN) ({key => value} of the string keys
# matching), evalsha_calls (since reset_stats), reset_stats.

use strict;
use warnings;

use Test::More ();

require CostCap::Test;
require CostCap::Test::Load;

# body => estimate in micro-USD (see t/040-concurrency.t)
our %BODY = (
    '{"model":"sora-2","seconds":1}' => 19354,
    '{"model":"sora-2"}' => 77415,
    '{"model":"sora-2","seconds":"2.51"}' => 48578,
    '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
    '{"model":"sora-2","size":"1920x1080","seconds":12}' => 522548,
    '{"model":"sora-2","size":"720x1280","n":2}' => 154829,
);
my @ESTIMATES = sort { $a <=> $b } values %BODY;
our $LARGEST = $ESTIMATES[-1];

our @PERCENTS = (50, 80, 95, 100);

# USD: the tenants' day caps; total caps are 1.5 times these
my @TENANT_DAY = (2, 5, 8, 15, 50);
# USD: the parents' day caps, in orgs order; total caps 1.5 times these
my @PARENT_DAY = (30, 20, 25);

sub new {
    my ($class, %o) = @_;
    my $self = bless { orgs => $o{orgs}, store => $o{store} }, $class;
    for my $i (0 .. $#{$o{orgs}}) {
        my $org = $o{orgs}[$i];
        $self->{pcap}{$org} = { day => int($PARENT_DAY[$i] * 1e6),
                                total => int($PARENT_DAY[$i] * 1.5e6) };
        for my $j (1 .. 5) {
            my $t = "$org.t$j";
            push @{$self->{tenants}}, $t;
            $self->{parent}{$t} = $org;
            $self->{tcap}{$t} = { day => int($TENANT_DAY[$j - 1] * 1e6),
                                  total => int($TENANT_DAY[$j - 1]
                                               * 1.5e6) };
        }
    }
    return $self;
}

sub tenants { @{$_[0]{tenants}} }
sub parent_of { $_[0]{parent}{$_[1]} }
sub tenant_cap { $_[0]{tcap}{$_[1]}{$_[2]} }
sub parent_cap { $_[0]{pcap}{$_[1]}{$_[2]} }

sub _usd { my $m = shift; return $m / 1e6 }

sub http_config {
    my ($self, $addrs) = @_;
    my $t = "cost_cap_redis $addrs;\n"
          . "map \$http_x_tenant \$org {\n"
          . "    \"~^(?<o>[^.]+)\\.t[1-5]\$\" \$o;\n    default \"\";\n}\n";
    for my $w ('day', 'total') {
        $t .= "map \$http_x_tenant \$tcap_$w {\n";
        $t .= sprintf "    %s %s;\n", $_, _usd($self->tenant_cap($_, $w))
            for $self->tenants;
        $t .= "    default 0;\n}\n";
        $t .= "map \$org \$pcap_$w {\n";
        $t .= sprintf "    %s %s;\n", $_, _usd($self->parent_cap($_, $w))
            for @{$self->{orgs}};
        $t .= "    default 0;\n}\n";
    }
    return $t;
}

sub config {
    return <<'END';
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_parent $org;
    cost_cap_limit $tcap_day per=day;
    cost_cap_limit $tcap_total per=total;
    cost_cap_parent_limit $pcap_day per=day;
    cost_cap_parent_limit $pcap_total per=total;
    cost_cap_alert 50 80 95 100;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    proxy_pass http://backend;
}
END
}

sub load {
    my ($self, %o) = @_;
    return CostCap::Test::Load->new(%o, tenants => [$self->tenants],
                                    bodies => \%BODY, duration => 60,
                                    timeout => 20)->start;
}

# every counter of a name (a tenant under its parent, or the parent) and
# window, by period: { period => micro-USD }
sub _counters {
    my ($self, $name, $w) = @_;
    my $org = $self->{parent}{$name};
    my $pre = defined $org ? "costcap:{$org}:$name:$w:"
                           : "costcap:{$name}:$w:";
    my $kv = $self->{store}->counters("$pre*");
    my %c;
    for my $k (keys %$kv) {
        next unless $k =~ /^\Q$pre\E(\d{8}|all)$/;
        $c{$1} = $kv->{$k};
    }
    return \%c;
}

sub _sum { my $s = 0; $s += $_ for values %{$_[0]}; return $s }

# the percents of @PERCENTS that a spend S reached of a cap C, the
# threshold as the script computes it: ceil(C * p / 100)
sub _reached {
    my ($s, $c) = @_;
    return grep {
        my $th = int($c / 100) * $_ + int(($c % 100 * $_ + 99) / 100);
        $c > 0 && $s >= $th;
    } @PERCENTS;
}

sub check {
    my ($self, $l, @gw) = @_;
    my $store = $self->{store};
    my @rows = $l->rows;
    my $st = $l->status;
    my %sum = (requests => scalar @rows, status => $st);

    Test::More::is_deeply([sort grep { $_ ne '200' && $_ ne '429' }
                           keys %$st], [], 'every response is 200 or 429')
        or Test::More::diag(Test::More::explain($st));
    Test::More::is($l->bad_estimates, 0, 'every estimate as computed');
    my %levels;
    $levels{$_->{level}}++ for grep { $_->{status} eq '429' } @rows;
    $sum{levels} = \%levels;
    Test::More::is_deeply([sort keys %levels], ['parent', 'tenant'],
                          'refused at both levels, and at no other')
        or Test::More::diag(Test::More::explain(\%levels));

    # the counters: none above its cap; each the admitted spend
    my (%expect, %admitted, %counters);
    for my $org (@{$self->{orgs}}) {
        my @mine = grep { $self->{parent}{$_} eq $org } $self->tenants;
        my $org_admitted = 0;
        for my $t (@mine) {
            my $a = $l->admitted($t);
            $admitted{$t} = $a;
            $org_admitted += $a;
            for my $w ('day', 'total') {
                my $c = $self->_counters($t, $w);
                my $cap = $self->tenant_cap($t, $w);
                for my $p (sort keys %$c) {
                    Test::More::ok($c->{$p} <= $cap,
                        "$t $w $p: counter $c->{$p} <= cap $cap");
                    $expect{"tenant|$t|$w|$p|$_"} = 1
                        for _reached($c->{$p}, $cap);
                }
                Test::More::is(_sum($c), $a,
                    "$t $w: counter = admitted spend, to the micro-dollar");
                $counters{$t} = _sum($c) if $w eq 'day';
            }
        }
        $admitted{$org} = $org_admitted;
        for my $w ('day', 'total') {
            my $c = $self->_counters($org, $w);
            my $cap = $self->parent_cap($org, $w);
            for my $p (sort keys %$c) {
                Test::More::ok($c->{$p} <= $cap,
                    "parent $org $w $p: counter $c->{$p} <= cap $cap");
                $expect{"parent|$org|$w|$p|$_"} = 1
                    for _reached($c->{$p}, $cap);
                my $tenants = 0;
                $tenants += $self->_counters($_, $w)->{$p} // 0 for @mine;
                Test::More::is($c->{$p}, $tenants, "parent $org $w $p: "
                    . "counter = sum of its tenants', to the micro-dollar");
            }
            Test::More::is(_sum($c), $org_admitted,
                           "parent $org $w: counter = admitted spend");
            $counters{$org} = _sum($c) if $w eq 'day';
        }
        my $day = $self->parent_cap($org, 'day');
        Test::More::ok($org_admitted >= $day - $LARGEST,
            "parent $org: filled to within the largest estimate "
            . "($org_admitted of $day)");
    }
    $sum{admitted} = \%admitted;
    $sum{counters} = \%counters;

    # the events: exactly one per threshold a counter crossed
    my $xr = $store->cmd('XRANGE', 'costcap:events', '-', '+');
    my (@got, %seen, @bad);
    my $now = $store->cmd('TIME')->[0];
    for my $e (@$xr) {
        my %f = @{$e->[1]};
        my $name = ($f{level} // '') eq 'parent' ? $f{parent} : $f{tenant};
        push @got, join '|', map { $_ // '?' }
            $f{level}, $name, $f{window}, $f{period}, $f{percent};
        push @bad, "fields: @{$e->[1]}"
            unless join(',', sort keys %f) eq
                   'level,limit,parent,percent,period,spent,tenant,time,'
                   . 'window';
        my $t = $f{tenant} // '';
        my $cap = ($f{level} // '') eq 'parent'
                ? $self->{pcap}{$f{parent} // ''}{$f{window} // ''}
                : $self->{tcap}{$t}{$f{window} // ''};
        push @bad, "limit: @{$e->[1]}"
            unless defined $cap && ($f{limit} // '') eq $cap;
        push @bad, "parent: @{$e->[1]}"
            unless ($self->{parent}{$t} // '-') eq ($f{parent} // '');
        if (defined $cap) {
            my $p = $f{percent} // 0;
            my $th = int($cap / 100) * $p + int(($cap % 100 * $p + 99) / 100);
            # the reservation that crossed: spend after it at or above the
            # threshold, before it below
            push @bad, "spent: @{$e->[1]}"
                unless ($f{spent} // -1) >= $th && $f{spent} <= $cap
                       && grep { $f{spent} - $_ < $th } @ESTIMATES;
        }
        push @bad, "time: @{$e->[1]}"
            unless ($f{time} // 0) > $now - 120 && $f{time} <= $now;
        push @{$seen{join '|', map { $_ // '?' } $f{level}, $name,
                    $f{percent}, $f{window}, $f{period}, $t, $f{spent},
                    $f{limit}}}, 1;
    }
    Test::More::is_deeply([sort @got], [sort keys %expect],
        'exactly one event per threshold crossed, per level, window and '
        . 'period') or Test::More::diag(scalar(@got) . ' events, '
        . scalar(keys %expect) . ' expected');
    Test::More::is_deeply(\@bad, [], "every event's fields as SPEC 11 "
                                     . 'lists them');
    $sum{events} = scalar @got;

    # one notice line per event, saying the same
    my @notice;
    my $re = '\[notice\].*cost_cap: (tenant|parent) "([^"]+)" reached '
           . '(\d+)% of its (\w+) cap in (\S+) \(tenant "([^"]+)", '
           . '(\d+) of (\d+) micro-USD\)';
    $re = qr/$re/;
    for my $g (@gw) {
        for (split /\n/, $g->error_log) {
            next unless $_ =~ $re;
            push @notice, join '|', $1, $2, $3, $4, $5, $6, $7, $8;
        }
    }
    Test::More::is_deeply([sort @notice], [sort keys %seen],
                          'one notice line per event, with its numbers');
    Test::More::is(scalar(grep { @{$seen{$_}} > 1 } keys %seen), 0,
                   'no event twice');
    $sum{notices} = scalar @notice;

    # each parent's alerts hash: one field per event of its tag
    my $fields = 0;
    $fields += $store->cmd('HLEN', "costcap:{$_}:alerts")
        for @{$self->{orgs}};
    Test::More::is($fields, scalar @got,
                   'the alerts hashes hold one field per event');

    # a round trip per request, and one more per event (its own slot)
    $sum{evalsha} = $store->evalsha_calls;
    Test::More::is($sum{evalsha}, @rows + @got,
                   'EVALSHA: one per request, one per event');
    return \%sum;
}

sub text {
    my ($self, $s) = @_;
    return sprintf '%d requests (%d admitted, %d refused: %d tenant, %d '
        . 'parent); admitted = day counters (micro-USD): %s; %d events, '
        . '%d notice lines, %d EVALSHA', $s->{requests},
        $s->{status}{200} // 0, $s->{status}{429} // 0,
        $s->{levels}{tenant} // 0, $s->{levels}{parent} // 0,
        join(', ', map { "$_ $s->{admitted}{$_}/$s->{counters}{$_}" }
                   @{$self->{orgs}}, $self->tenants),
        $s->{events}, $s->{notices}, $s->{evalsha};
}


# -------------------------------------------------------------------------
# one Redis

package CostCap::Test::Budget::Single;

sub new { bless { r => $_[1] }, $_[0] }

sub get { $_[0]{r}->cmd('GET', $_[1]) }

sub cmd { my $self = shift; return $self->{r}->cmd(@_) }

sub counters {
    my ($self, $pattern) = @_;
    my (%kv, $cursor);
    $cursor = 0;
    do {
        my $r = $self->{r}->cmd('SCAN', $cursor, 'MATCH', $pattern,
                                'COUNT', 1000);
        $cursor = $r->[0];
        $kv{$_} = $self->{r}->cmd('GET', $_) for @{$r->[1]};
    } while ($cursor ne '0');
    return \%kv;
}

sub reset_stats { $_[0]{r}->cmd('CONFIG', 'RESETSTAT') }

sub evalsha_calls {
    my $t = $_[0]{r}->cmd('INFO', 'commandstats');
    return $t =~ /^cmdstat_evalsha:calls=(\d+)/m ? $1 : 0;
}


# -------------------------------------------------------------------------
# a Cluster (CostCap::Test::Cluster)

package CostCap::Test::Budget::Cluster;

sub new { bless { c => $_[1] }, $_[0] }

sub get { $_[0]{c}->get($_[1]) }

sub cmd { my $self = shift; return $self->{c}->cmd(@_) }

sub counters { $_[0]{c}->keys($_[1]) }

sub reset_stats {
    my $c = $_[0]{c};
    $c->node($_)->cmd('CONFIG', 'RESETSTAT') for $c->masters;
}

sub evalsha_calls {
    my $c = $_[0]{c};
    my $n = 0;
    for my $p ($c->masters) {
        my $t = $c->node($p)->cmd('INFO', 'commandstats');
        $n += $1 if $t =~ /^cmdstat_evalsha:calls=(\d+)/m;
    }
    return $n;
}


1;

package CostCap::Test::Sentinel;

# A master, its replicas (REPLICAOF) and three Sentinels watching them
# (`redis-server sentinel.conf --sentinel`, `sentinel monitor NAME
# 127.0.0.1 PORT 2`), all CostCap::Test::Node processes on loopback,
# stopped by PID at the harness's END.  Short down-after-milliseconds and
# failover-timeout: a failover takes seconds.
#
#   my $s = CostCap::Test::Sentinel->new(%o)->start;
#     name              the master group name (default 'costcap')
#     replicas          1 (default)
#     sentinels         3 (default), quorum 2
#     password          requirepass and masterauth on the data nodes,
#                       `sentinel auth-pass NAME` on the Sentinels
#     sentinel_password requirepass of the Sentinels themselves (and
#                       `sentinel sentinel-pass`, so they still talk to
#                       each other): the module's sentinel_password=
#     tls               a CostCap::Test::TLS: every node and Sentinel on
#                       TLS only, replication and Sentinel links over TLS
#     tls_auth_clients  'no' (default), 'yes' (mutual TLS everywhere)
#     down_after        down-after-milliseconds (default 1000): a node
#                       silent that long (DEBUG SLEEP, SIGSTOP) is failed
#                       over
#     failover_timeout  failover-timeout in ms (default 5000)
#     args              [extra redis-server arguments of the data nodes]
#   start waits until every Sentinel sees the master up, every replica
#   with its link up, and the other Sentinels.
#
#   $s->name
#   $s->sentinel(I)         the I-th Sentinel (a CostCap::Test::Node)
#   $s->sentinels           every Sentinel Node
#   $s->sentinel_addrs      "127.0.0.1:P1 127.0.0.1:P2 127.0.0.1:P3"
#   $s->data_nodes          master and replicas, whatever their roles now
#   $s->master_addr(I)      "host:port" of the master as Sentinel I (or
#                           the first running one) reports it
#   $s->master              the Node at that address
#   $s->replicas            the data Nodes whose ROLE is slave now
#   $s->node_at(ADDR)       the data Node at "host:port"
#   $s->failover(timeout => S, old_replica => 1 | 0 | 'convert')
#                           SENTINEL FAILOVER NAME (retried while the
#                           Sentinels find no good replica yet), then
#                           waits until every running Sentinel reports a
#                           new address and the new master answers ROLE
#                           master; then (old_replica 1, the default)
#                           until the old master, if running, is its
#                           connected replica: Sentinel converts it some
#                           10 s later; 'convert' sends the REPLICAOF
#                           Sentinel would send, at once; 0 returns
#                           without waiting.  The new address.
#   $s->wait_replica_of(OLD, NEW, S)  until the data node at OLD is a
#                           connected replica of NEW
#   $s->stop_sentinel(I), start_sentinel(I)
#   $s->wait_ready(SECONDS) what start waits for
#   $s->stop                every process

use strict;
use warnings;

require CostCap::Test::Node;

my $SEQ = 0;

sub new {
    my ($class, %o) = @_;
    return bless {
        name => $o{name} // 'costcap',
        nreplicas => $o{replicas} // 1,
        nsentinels => $o{sentinels} // 3,
        quorum => $o{quorum} // 2,
        password => $o{password},
        sentinel_password => $o{sentinel_password},
        tls => $o{tls},
        tls_auth_clients => $o{tls_auth_clients},
        down_after => $o{down_after} // 1000,
        failover_timeout => $o{failover_timeout} // 5000,
        args => $o{args} // [],
        seq => ++$SEQ,
        data => [],
        sentinels => [],
    }, $class;
}

sub name { $_[0]{name} }
sub sentinels { @{$_[0]{sentinels}} }
sub sentinel { $_[0]{sentinels}[$_[1]] }
sub data_nodes { @{$_[0]{data}} }
sub sentinel_addrs { join ' ', map { $_->addr } @{$_[0]{sentinels}} }

sub start {
    my $self = shift;
    my $tag = "sentinel$self->{seq}";
    my %common = (tls => $self->{tls}, password => $self->{password},
                  tls_auth_clients => $self->{tls_auth_clients});
    my $m = CostCap::Test::Node->new(%common, name => "$tag-master",
                                     args => $self->{args})->start;
    push @{$self->{data}}, $m;
    for my $i (1 .. $self->{nreplicas}) {
        push @{$self->{data}}, CostCap::Test::Node->new(%common,
            name => "$tag-replica$i",
            args => ['--replicaof', $m->host, $m->port,
                     @{$self->{args}}])->start;
    }
    my $synced = CostCap::Test::poll_until(sub {
        for my $r (@{$self->{data}}[1 .. $#{$self->{data}}]) {
            my $role = eval { $r->role } or return 0;
            return 0 unless $role->[3] eq 'connected';
        }
        return 1;
    }, 20);
    die "replicas of the Sentinel master did not sync\n" unless $synced;

    for my $i (1 .. $self->{nsentinels}) {
        push @{$self->{sentinels}}, CostCap::Test::Node->new(
            name => "$tag-s$i", sentinel => 1, tls => $self->{tls},
            tls_auth_clients => $self->{tls_auth_clients},
            password => $self->{sentinel_password},
            conf => $self->_sentinel_conf($m))->start;
    }
    $self->wait_ready(30);
    return $self;
}

sub _sentinel_conf {
    my ($self, $m) = @_;
    my $n = $self->{name};
    my $c = "sentinel monitor $n " . $m->host . ' ' . $m->port
          . " $self->{quorum}\n"
          . "sentinel down-after-milliseconds $n $self->{down_after}\n"
          . "sentinel failover-timeout $n $self->{failover_timeout}\n"
          . "sentinel parallel-syncs $n 1\n";
    $c .= "sentinel auth-pass $n $self->{password}\n"
        if defined $self->{password};
    if (defined(my $sp = $self->{sentinel_password})) {
        $c .= "requirepass $sp\nsentinel sentinel-pass $sp\n";
    }
    return $c;
}

sub _sentinel_hash {
    my $a = shift;
    return { @{$a // []} };
}

sub _ready {
    my $self = shift;
    my $want_others = $self->{nsentinels} - 1;
    my @live = grep { $_->running } @{$self->{sentinels}};
    my $want_others_live = @live - 1;
    for my $s (@live) {
        my $ok = eval {
            my $m = _sentinel_hash($s->cmd('SENTINEL', 'MASTER',
                                           $self->{name}));
            return 0 unless $m->{flags} eq 'master';
            return 0 unless $m->{'num-slaves'} == $self->{nreplicas};
            return 0 unless $m->{'num-other-sentinels'} >= $want_others_live;
            for my $r (@{$s->cmd('SENTINEL', 'REPLICAS', $self->{name})}) {
                my $h = _sentinel_hash($r);
                return 0 unless $h->{flags} eq 'slave'
                                && $h->{'master-link-status'} eq 'ok';
            }
            1;
        };
        return 0 unless $ok;
    }
    return 1;
}

sub wait_ready {
    my ($self, $timeout) = @_;
    CostCap::Test::poll_until(sub { $self->_ready }, $timeout // 20)
        or die "Sentinels not ready:\n" . $self->_dump;
    return $self;
}

sub _dump {
    my $self = shift;
    my $t = '';
    for my $s (grep { $_->running } @{$self->{sentinels}}) {
        my $m = eval { _sentinel_hash($s->cmd('SENTINEL', 'MASTER',
                                              $self->{name})) } || {};
        $t .= $s->addr . ': ' . join(' ', map { "$_=" . ($m->{$_} // '?') }
            qw(ip port flags num-slaves num-other-sentinels)) . "\n";
    }
    return $t;
}

sub master_addr {
    my ($self, $i) = @_;
    my @s = defined $i ? ($self->{sentinels}[$i])
                       : grep { $_->running } @{$self->{sentinels}};
    my $err = 'no Sentinel running';
    for my $s (@s) {
        my $r = eval { $s->cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME',
                               $self->{name}) };
        return "$r->[0]:$r->[1]" if ref $r eq 'ARRAY' && @$r == 2;
        $err = $@ || 'no master';
    }
    die "Sentinel master address of $self->{name}: $err\n";
}

sub node_at {
    my ($self, $addr) = @_;
    my ($n) = grep { $_->addr eq $addr } @{$self->{data}};
    return $n;
}

sub master { $_[0]->node_at($_[0]->master_addr) }

sub replicas {
    my $self = shift;
    return grep {
        my $r = $_->running && eval { $_->role };
        $r && $r->[0] eq 'slave';
    } @{$self->{data}};
}

sub failover {
    my ($self, %o) = @_;
    my $timeout = $o{timeout} // 30;
    my $old = $self->master_addr;
    my $old_node = $self->node_at($old);
    my $s0 = (grep { $_->running } @{$self->{sentinels}})[0]
        or die "no Sentinel running\n";
    my $last = '';
    my $started = CostCap::Test::poll_until(sub {
        my ($r, $e) = eval { $s0->try_cmd('SENTINEL', 'FAILOVER',
                                          $self->{name}) };
        $last = $e // $@ // '';
        return 1 if defined $r || $last =~ /INPROG/;
        return 0;
    }, $timeout);
    die "SENTINEL FAILOVER $self->{name}: $last\n" unless $started;

    my $new;
    my $done = CostCap::Test::poll_until(sub {
        for my $s (grep { $_->running } @{$self->{sentinels}}) {
            my $a = eval { $self->master_addr_of($s) } or return 0;
            return 0 if $a eq $old;
            return 0 if defined $new && $a ne $new;
            $new = $a;
        }
        my $n = $self->node_at($new) or return 0;
        my $r = eval { $n->role } or return 0;
        return $r->[0] eq 'master';
    }, $timeout);
    die "Sentinel failover from $old did not complete:\n" . $self->_dump
        unless $done;
    my $w = $o{old_replica} // 1;
    if ($w && $old_node && $old_node->running) {
        # Sentinel converts the old master some 10 s later (its
        # role-change grace of 8 s, then its next INFO): 'convert' does
        # it at once, as Sentinel would
        $old_node->cmd('REPLICAOF', split /:/, $new) if $w eq 'convert';
        $self->wait_replica_of($old, $new, $timeout);
    }
    return $new;
}

# waits until the data node at OLD is a connected replica of NEW
sub wait_replica_of {
    my ($self, $old, $new, $timeout) = @_;
    my $n = $self->node_at($old) or die "no data node at $old\n";
    CostCap::Test::poll_until(sub {
        my $r = eval { $n->role } or return 0;
        return $r->[0] eq 'slave' && "$r->[1]:$r->[2]" eq $new
               && $r->[3] eq 'connected';
    }, $timeout // 30) or die "$old did not become a replica of $new\n";
    return $self;
}

sub master_addr_of {
    my ($self, $s) = @_;
    my $r = $s->cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', $self->{name});
    return "$r->[0]:$r->[1]";
}

sub stop_sentinel  { $_[0]{sentinels}[$_[1]]->stop }
sub start_sentinel { $_[0]{sentinels}[$_[1]]->start }

sub stop {
    my $self = shift;
    $_->stop for @{$self->{sentinels}}, @{$self->{data}};
}


1;

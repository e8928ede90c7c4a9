package CostCap::Test::Cluster;

# A real Redis Cluster on loopback: N masters and N*R replicas
# (redis-server --cluster-enabled yes, each with its nodes.conf in its own
# directory and its own bus port), created with `redis-cli --cluster
# create ... --cluster-replicas R --cluster-yes`.  Every process is a
# CostCap::Test::Node: stopped by PID at the harness's END.
#
#   my $c = CostCap::Test::Cluster->new(%o)->start;
#     masters       3 (default)
#     replicas      replicas per master, 1 (default)
#     tls           a CostCap::Test::TLS: TLS only, --tls-cluster yes,
#                   --tls-replication yes, redis-cli --tls to create it
#     tls_auth_clients  'no' (default), 'yes' (mutual TLS: clients,
#                   redis-cli and the nodes' own links show a
#                   certificate of the CA) or 'optional'
#     password      requirepass and masterauth on every node
#     node_timeout  cluster-node-timeout in ms (default 2000)
#     args          [extra redis-server arguments for every node]
#   start waits until every node says cluster_state:ok, all agree on the
#   slot map and know every node, and every replica's link is up.
#
# Topology (read from the nodes, so it follows failovers):
#   $c->nodes           ({port, id, role => 'master'|'replica',
#                         master => port of its master (replicas),
#                         slots => [[lo, hi], ...], node => Node}, ...)
#                       sorted masters first, by first slot
#   $c->masters         master ports, by first slot
#   $c->replicas        replica ports
#   $c->replicas_of(P)  ports of the replicas of master P
#   $c->node(P)         the CostCap::Test::Node on port P
#   $c->all_nodes       every Node, whatever its state
#   $c->seeds           "127.0.0.1:P1 127.0.0.1:P2 ..." (every node)
#   $c->id_of(P)        node id
#
# Slots and keys:
#   CostCap::Test::Cluster::slot_of(KEY)  (also $c->slot_of) CRC16-XMODEM
#                       of the {hash tag} (or of the key), mod 16384, as
#                       Redis computes it
#   CostCap::Test::Cluster::crc16(BYTES)
#   $c->master_of_slot(S)   port of the master serving slot S
#   $c->master_of_key(K)
#   $c->tag_for_master(P, PREFIX)   a tag T (PREFIX followed by digits)
#                       whose slot ({T}) master P serves
#   $c->tags_per_master(PREFIX)     one such tag per master, in masters
#                       order
#   $c->tag_in_slot(S, PREFIX)      a tag whose slot is S
#
# Faults:
#   my $m = $c->migrate_slot(S, TO_PORT);   steps a test interleaves with
#                       load (CostCap::Test::Cluster::Migration):
#     $m->begin         SETSLOT IMPORTING on the target, then MIGRATING
#                       on the source: from here the source answers ASK
#                       for keys it lacks, the target MOVED without ASKING
#     $m->move_keys(batch => 10, max => N, replace => 0)
#                       MIGRATE of the slot's keys (CLUSTER GETKEYSINSLOT)
#                       in batches, up to max (default all); the number
#                       moved; dies with Redis's error (e.g. BUSYKEY)
#     $m->keys_left     keys of the slot still on the source
#     $m->finish        SETSLOT NODE on the target, the source, then the
#                       other masters; waits until every node agrees:
#                       from here a stale client gets MOVED
#     $m->run(%o)       all three
#     $m->source, $m->target, $m->slot
#   $c->failover(P, mode => '' | 'FORCE' | 'TAKEOVER', replica => R)
#                       CLUSTER FAILOVER on a replica of master P; waits
#                       until it is master, P (when running) its connected
#                       replica, and the cluster ok; the new master's port
#   $c->stop_node(P), kill_node(P), start_node(P)   (a restarted node
#                       rejoins with its nodes.conf)
#   $c->wait_ok(SECONDS)  the state start waits for, on running nodes
#                       (after a kill: until a replica took over)
#
# Reading counters (any key, wherever it lives):
#   $c->client          a routing client (CostCap::Test::Cluster::Client)
#   $c->cmd(@args)      routed by the command's first key (EVAL/EVALSHA:
#                       the first declared key); follows MOVED and ASK
#   $c->get(KEY)
#   $c->keys(PATTERN)   { key => value } over every master (SCAN of each
#                       master's own keys; string values)
#   $c->sum(PATTERN)    sum of those values
#   $c->locate(KEY)     ports of the masters holding KEY now
#   $c->stop            every node
#
# CostCap::Test::Cluster::Client->new($cluster, timeout => S)
#   ->cmd(@args), ->try_cmd(@args) -> (reply, error),
#   ->try_cmd_key(KEY, @args), ->refresh (CLUSTER SLOTS again),
#   ->{stats}{moved, ask, tryagain, clusterdown, reconnect},
#   ->{last_addr} (the node that answered last)

use strict;
use warnings;

use Time::HiRes ();

require CostCap::Test::Node;

my $SEQ = 0;

# -------------------------------------------------------------------------
# CRC16-XMODEM (polynomial 0x1021, initial 0), table driven

my @CRC;
for my $i (0 .. 255) {
    my $c = $i << 8;
    $c = ($c & 0x8000 ? ($c << 1) ^ 0x1021 : $c << 1) & 0xffff for 1 .. 8;
    $CRC[$i] = $c;
}

sub crc16 {
    my $crc = 0;
    $crc = (($crc << 8) & 0xffff) ^ $CRC[(($crc >> 8) ^ $_) & 0xff]
        for unpack 'C*', $_[0];
    return $crc;
}

sub slot_of {
    my $key = ref $_[0] ? $_[1] : $_[0];
    my $s = index $key, '{';
    if ($s >= 0) {
        my $e = index $key, '}', $s + 1;
        $key = substr $key, $s + 1, $e - $s - 1 if $e > $s + 1;
    }
    return crc16($key) & 16383;
}


# -------------------------------------------------------------------------

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        masters => $o{masters} // 3,
        replicas => $o{replicas} // 1,
        tls => $o{tls},
        tls_auth_clients => $o{tls_auth_clients},
        password => $o{password},
        node_timeout => $o{node_timeout} // 2000,
        args => $o{args} // [],
        seq => ++$SEQ,
        nodes => [],
    }, $class;
    return $self;
}

sub start {
    my $self = shift;
    my $n = $self->{masters} * (1 + $self->{replicas});
    for my $i (1 .. $n) {
        push @{$self->{nodes}}, CostCap::Test::Node->new(
            name => "cluster$self->{seq}-$i", cluster => 1,
            tls => $self->{tls}, password => $self->{password},
            tls_auth_clients => $self->{tls_auth_clients},
            args => ['--cluster-node-timeout', $self->{node_timeout},
                     @{$self->{args}}])->start;
    }
    my $log = CostCap::Test::tmp_dir() . "/cluster$self->{seq}-create.log";
    local $ENV{REDISCLI_AUTH} = $self->{password}
        if defined $self->{password};
    my ($st, $out) = CostCap::Test::Node::run_cmd(60, $log,
        'redis-cli', ($self->{tls} ? $self->{tls}->cli_args : ()),
        '--cluster', 'create', map({ $_->addr } @{$self->{nodes}}),
        '--cluster-replicas', $self->{replicas}, '--cluster-yes');
    die "redis-cli --cluster create failed ($st):\n$out" if $st != 0;
    $self->id_of($_->port) for @{$self->{nodes}};
    $self->wait_ok(30);
    my $up = CostCap::Test::poll_until(sub {
        for my $p ($self->replicas) {
            my $r = eval { $self->node($p)->role } or return 0;
            return 0 unless $r->[0] eq 'slave' && $r->[3] eq 'connected';
        }
        return 1;
    }, 30);
    die "cluster replicas not in sync:\n" . $self->_dump unless $up;
    return $self;
}

sub stop { $_->stop for @{$_[0]{nodes}} }

sub all_nodes { @{$_[0]{nodes}} }

sub node {
    my ($self, $port) = @_;
    my ($n) = grep { $_->port == $port } @{$self->{nodes}};
    die "no cluster node on port $port\n" unless $n;
    return $n;
}

sub node_at {
    my ($self, $addr) = @_;
    my ($h, $p) = $addr =~ /^(.*):(\d+)$/ or return undef;
    my ($n) = grep { $_->port == $p } @{$self->{nodes}};
    return $n;
}

sub seeds { join ' ', map { $_->addr } @{$_[0]{nodes}} }

sub stop_node  { $_[0]->node($_[1])->stop }
sub kill_node  { $_[0]->node($_[1])->kill }
sub start_node { $_[0]->node($_[1])->start }

sub _live { grep { $_->running } @{$_[0]{nodes}} }

# a reply from the first running node that gives one
sub _any_cmd {
    my ($self, @args) = @_;
    my $err = 'no node running';
    for my $n ($self->_live) {
        my ($r, $e) = eval { $n->try_cmd(@args) };
        return $r if defined $r && !defined $e;
        $err = $e // $@;
    }
    die "cluster @args: $err\n";
}

sub _slots { $_[0]->_any_cmd('CLUSTER', 'SLOTS') }

# "lo-hi:port,..." of a CLUSTER SLOTS reply
sub _map_text {
    my $s = shift;
    return join ',', map { "$_->[0]-$_->[1]:$_->[2][1]" }
                     sort { $a->[0] <=> $b->[0] } @$s;
}

sub _ok {
    my $self = shift;
    my @live = $self->_live or return 0;
    my %running = map { $_->port => 1 } @live;
    my %live_id = map { $self->id_of($_->port) => 1 } @live;
    my (%maps, %views);
    for my $n (@live) {
        my $ok = eval {
            my $info = $n->cmd('CLUSTER', 'INFO');
            return 0 unless $info =~ /^cluster_state:ok\r?$/m;
            my ($known) = $info =~ /^cluster_known_nodes:(\d+)/m;
            return 0 unless $known == @{$self->{nodes}};
            my $slots = $n->cmd('CLUSTER', 'SLOTS');
            my $covered = 0;
            for (@$slots) {
                $covered += $_->[1] - $_->[0] + 1;
                return 0 unless $running{$_->[2][1]};
            }
            return 0 unless $covered == 16384;
            $maps{_map_text($slots)}++;
            # every node's view of the running nodes' roles: a master
            # refuses a manual failover from a replica it does not know
            # as its own yet
            $views{$self->_roles_view($n, \%live_id)}++;
            1;
        };
        return 0 unless $ok;
    }
    return CORE::keys(%maps) == 1 && CORE::keys(%views) == 1;
}

# "id master|replica master-id;..." of the running nodes, as N sees them
sub _roles_view {
    my ($self, $n, $live) = @_;
    my @v;
    for my $l (split /\n/, $n->cmd('CLUSTER', 'NODES')) {
        my ($id, $addr, $flags, $master) = split ' ', $l;
        next unless $live->{$id};
        push @v, "$id " . ($flags =~ /master/ ? 'master' : 'replica')
               . " $master";
    }
    return join ';', sort @v;
}

sub wait_ok {
    my ($self, $timeout) = @_;
    CostCap::Test::poll_until(sub { $self->_ok }, $timeout // 20)
        or die "cluster not ok:\n" . $self->_dump;
    return $self;
}

sub _dump {
    my $self = shift;
    my $t = '';
    for my $n (@{$self->{nodes}}) {
        $t .= "-- " . $n->addr . ($n->running ? '' : ' (stopped)') . "\n";
        next unless $n->running;
        $t .= eval { $n->cmd('CLUSTER', 'NODES') } // "($@)";
        my $info = eval { $n->cmd('CLUSTER', 'INFO') } // '';
        $t .= "$1\n" if $info =~ /^(cluster_state:\w+)/m;
    }
    return $t;
}


# -------------------------------------------------------------------------
# topology

sub id_of {
    my ($self, $port) = @_;
    my $n = $self->node($port);
    return $n->{cluster_id} //= $n->cmd('CLUSTER', 'MYID');
}

sub nodes {
    my $self = shift;
    my %by_id = map { $self->id_of($_->port) => $_ } @{$self->{nodes}};
    my @m;
    # each node's own view of itself (its role changes with failovers)
    my %me;
    for my $n ($self->_live) {
        my $t = eval { $n->cmd('CLUSTER', 'NODES') } or next;
        for my $l (split /\n/, $t) {
            my ($id, $addr, $flags, $master, @rest) = split ' ', $l;
            next unless $flags =~ /myself/;
            my @slots = map { /^(\d+)(?:-(\d+))?$/ ? [$1, $2 // $1] : () }
                        @rest[4 .. $#rest];
            $me{$id} = { id => $id, flags => $flags, master_id => $master,
                         slots => \@slots };
        }
    }
    for my $id (keys %me) {
        my $e = $me{$id};
        my $n = $by_id{$id} or next;
        my $role = $e->{flags} =~ /master/ ? 'master' : 'replica';
        my $mp;
        if ($role eq 'replica' && $by_id{$e->{master_id}}) {
            $mp = $by_id{$e->{master_id}}->port;
        }
        push @m, { port => $n->port, id => $id, role => $role,
                   master => $mp, slots => $e->{slots}, node => $n };
    }
    return sort {
        ($a->{role} eq 'master' ? 0 : 1) <=> ($b->{role} eq 'master' ? 0 : 1)
        || ($a->{slots}[0][0] // 1e9) <=> ($b->{slots}[0][0] // 1e9)
        || $a->{port} <=> $b->{port}
    } @m;
}

sub masters {
    return map { $_->{port} }
           grep { $_->{role} eq 'master' && @{$_->{slots}} } $_[0]->nodes;
}

sub replicas {
    return map { $_->{port} } grep { $_->{role} eq 'replica' } $_[0]->nodes;
}

sub replicas_of {
    my ($self, $port) = @_;
    return map { $_->{port} }
           grep { $_->{role} eq 'replica' && ($_->{master} // 0) == $port }
           $self->nodes;
}

sub master_of_slot {
    my ($self, $slot) = @_;
    for my $r (@{$self->_slots}) {
        return $r->[2][1] if $slot >= $r->[0] && $slot <= $r->[1];
    }
    die "slot $slot is not served\n";
}

sub master_of_key { $_[0]->master_of_slot(slot_of($_[1])) }

sub tag_in_slot {
    my ($self, $slot, $prefix) = @_;
    $prefix //= 't';
    for my $i (0 .. 2_000_000) {
        return "$prefix$i" if slot_of("$prefix$i") == $slot;
    }
    die "no tag for slot $slot\n";
}

sub tag_for_master {
    my ($self, $port, $prefix) = @_;
    $prefix //= 't';
    my @mine = map { [$_->[0], $_->[1]] }
               grep { $_->[2][1] == $port } @{$self->_slots};
    die "port $port serves no slot\n" unless @mine;
    for my $i (0 .. 1_000_000) {
        my $s = slot_of("$prefix$i");
        return "$prefix$i" if grep { $s >= $_->[0] && $s <= $_->[1] } @mine;
    }
    die "no tag for master $port\n";
}

sub tags_per_master {
    my ($self, $prefix) = @_;
    return map { $self->tag_for_master($_, $prefix) } $self->masters;
}


# -------------------------------------------------------------------------
# faults

sub migrate_slot {
    my ($self, $slot, $to) = @_;
    return CostCap::Test::Cluster::Migration->new($self, $slot, $to);
}

sub failover {
    my ($self, $port, %o) = @_;
    my $replica = $o{replica} // ($self->replicas_of($port))[0]
        or die "master $port has no replica\n";
    my @mode = $o{mode} ? ($o{mode}) : ();
    $self->node($replica)->cmd('CLUSTER', 'FAILOVER', @mode);
    my $asked = Time::HiRes::time();
    my $old = $self->node($port);
    my $done = CostCap::Test::poll_until(sub {
        my $r = eval { $self->node($replica)->role } or return 0;
        if ($r->[0] ne 'master') {
            # a manual failover gives up after 5 s (a busy machine):
            # asked again
            if (Time::HiRes::time() - $asked > 6) {
                eval { $self->node($replica)->cmd('CLUSTER', 'FAILOVER',
                                                  @mode) };
                $asked = Time::HiRes::time();
            }
            return 0;
        }
        if ($old->running) {
            my $o = eval { $old->role } or return 0;
            return 0 unless $o->[0] eq 'slave' && $o->[2] == $replica
                            && $o->[3] eq 'connected';
        }
        return $self->_ok;
    }, $o{timeout} // 30);
    die "failover of $port to $replica did not complete:\n" . $self->_dump
        unless $done;
    return $replica;
}


# -------------------------------------------------------------------------
# reading counters

sub client {
    my $self = shift;
    $self->{client} ||= CostCap::Test::Cluster::Client->new($self);
    return $self->{client};
}

sub cmd { my $self = shift; return $self->client->cmd(@_) }

sub get { $_[0]->client->cmd('GET', $_[1]) }

sub _live_masters {
    my $self = shift;
    return grep {
        my $r = eval { $_->role };
        $r && $r->[0] eq 'master';
    } $self->_live;
}

sub keys {
    my ($self, $pattern) = @_;
    my %kv;
    for my $n ($self->_live_masters) {
        my $cursor = 0;
        do {
            my $r = $n->cmd('SCAN', $cursor, 'MATCH', $pattern,
                            'COUNT', 1000);
            $cursor = $r->[0];
            for my $k (@{$r->[1]}) {
                # ASKING: the node may hold the key of a slot it imports
                my ($x, $v) = $n->client->pipeline(['ASKING'],
                                                   ['GET', $k]);
                die "GET $k on " . $n->addr . ": $v->[1]\n"
                    if defined $v->[1];
                $kv{$k} = $v->[0];
            }
        } while ($cursor ne '0');
    }
    return \%kv;
}

sub sum {
    my ($self, $pattern) = @_;
    my $kv = $self->keys($pattern);
    my $s = 0;
    $s += $_ for values %$kv;
    return $s;
}

sub locate {
    my ($self, $key) = @_;
    my $slot = slot_of($key);
    my @at;
    for my $n ($self->_live_masters) {
        my $keys = $n->cmd('CLUSTER', 'GETKEYSINSLOT', $slot, 1_000_000);
        push @at, $n->port if grep { $_ eq $key } @$keys;
    }
    return @at;
}


# -------------------------------------------------------------------------
# slot migration in steps

package CostCap::Test::Cluster::Migration;

use strict;
use warnings;

sub new {
    my ($class, $c, $slot, $to) = @_;
    my $from = $c->master_of_slot($slot);
    die "slot $slot is already on $to\n" if $from == $to;
    return bless { c => $c, slot => $slot, source => $from, target => $to,
                   state => 'new' }, $class;
}

sub slot { $_[0]{slot} }
sub source { $_[0]{source} }
sub target { $_[0]{target} }

sub begin {
    my $self = shift;
    my $c = $self->{c};
    $c->node($self->{target})->cmd('CLUSTER', 'SETSLOT', $self->{slot},
        'IMPORTING', $c->id_of($self->{source}));
    $c->node($self->{source})->cmd('CLUSTER', 'SETSLOT', $self->{slot},
        'MIGRATING', $c->id_of($self->{target}));
    $self->{state} = 'migrating';
    return $self;
}

sub keys_left {
    my $self = shift;
    return $self->{c}->node($self->{source})
                ->cmd('CLUSTER', 'COUNTKEYSINSLOT', $self->{slot});
}

sub move_keys {
    my ($self, %o) = @_;
    my $c = $self->{c};
    my $src = $c->node($self->{source});
    my $dst = $c->node($self->{target});
    my $batch = $o{batch} // 10;
    my $max = $o{max};
    my $moved = 0;
    while (!defined $max || $moved < $max) {
        my $n = defined $max && $max - $moved < $batch ? $max - $moved
                                                        : $batch;
        my $keys = $src->cmd('CLUSTER', 'GETKEYSINSLOT', $self->{slot}, $n);
        last unless @$keys;
        my @auth = defined $c->{password} ? ('AUTH', $c->{password}) : ();
        $src->cmd('MIGRATE', $dst->host, $dst->port, '', 0, 5000,
                  ($o{replace} ? 'REPLACE' : ()), @auth, 'KEYS', @$keys);
        $moved += @$keys;
    }
    return $moved;
}

sub finish {
    my $self = shift;
    my $c = $self->{c};
    my $id = $c->id_of($self->{target});
    my %done;
    for my $p ($self->{target}, $self->{source}, $c->masters) {
        next if $done{$p}++;
        $c->node($p)->cmd('CLUSTER', 'SETSLOT', $self->{slot}, 'NODE', $id);
    }
    $self->{state} = 'done';
    $c->wait_ok(20);
    return $self;
}

sub run {
    my ($self, %o) = @_;
    $self->begin;
    $self->move_keys(%o);
    return $self->finish;
}


# -------------------------------------------------------------------------
# routing client

package CostCap::Test::Cluster::Client;

use strict;
use warnings;

use Time::HiRes ();

my %KEYS_AT_3 = map { $_ => 1 }
    qw(EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO);
my %NO_KEY = map { $_ => 1 }
    qw(PING INFO SCRIPT FUNCTION CLUSTER TIME DBSIZE FLUSHALL CONFIG
       CLIENT ECHO ROLE);

sub new {
    my ($class, $cluster, %o) = @_;
    return bless {
        cluster => $cluster, conns => {}, map => [],
        timeout => $o{timeout} // 10,
        stats => { map { $_ => 0 }
                   qw(moved ask tryagain clusterdown reconnect) },
    }, $class;
}

sub _first_key {
    my @a = @_;
    my $cmd = uc $a[0];
    return $a[2] > 0 ? $a[3] : undef if $KEYS_AT_3{$cmd};
    return undef if $NO_KEY{$cmd};
    return $a[1];
}

sub refresh {
    my $self = shift;
    my @map;
    for my $r (@{$self->{cluster}->_slots}) {
        my $addr = "$r->[2][0]:$r->[2][1]";
        $map[$_] = $addr for $r->[0] .. $r->[1];
    }
    $self->{map} = \@map;
}

sub _conn {
    my ($self, $addr) = @_;
    return $self->{conns}{$addr} ||= do {
        my $n = $self->{cluster}->node_at($addr)
            or die "cluster: unknown node $addr\n";
        $n->connect(timeout => 5)
            or die "cluster: cannot connect to $addr: "
                 . "$CostCap::Test::Client::ERROR\n";
    };
}

sub cmd {
    my ($self, @args) = @_;
    my ($r, $e) = $self->try_cmd(@args);
    die "cluster @args: $e\n" if defined $e;
    return $r;
}

sub try_cmd {
    my ($self, @args) = @_;
    return $self->try_cmd_key(_first_key(@args), @args);
}

sub try_cmd_key {
    my ($self, $key, @args) = @_;
    my $slot = defined $key ? CostCap::Test::Cluster::slot_of($key) : 0;
    my $deadline = Time::HiRes::time() + $self->{timeout};
    my ($ask, $last);
    for my $try (1 .. 200) {
        last if Time::HiRes::time() > $deadline;
        eval { $self->refresh } unless @{$self->{map}};
        my $addr = $ask // $self->{map}[$slot];
        unless ($addr) {
            Time::HiRes::sleep(0.05);
            next;
        }
        my $asking = defined $ask;
        undef $ask;
        my $rep = eval {
            my $c = $self->_conn($addr);
            $asking ? ($c->pipeline(['ASKING'], \@args))[1]
                    : [$c->try_cmd(@args)];
        };
        unless ($rep) {
            $last = $@;
            delete $self->{conns}{$addr};
            $self->{stats}{reconnect}++;
            $self->{map} = [];
            Time::HiRes::sleep(0.05);
            next;
        }
        my ($r, $e) = @$rep;
        $self->{last_addr} = $addr;
        if (defined $e) {
            $last = $e;
            if ($e =~ /^MOVED (\d+) (\S+)/) {
                $self->{stats}{moved}++;
                $self->{map}[$1] = $2;
                next;
            }
            if ($e =~ /^ASK (\d+) (\S+)/) {
                $self->{stats}{ask}++;
                $ask = $2;
                next;
            }
            if ($e =~ /^(TRYAGAIN|CLUSTERDOWN)/) {
                $self->{stats}{lc $1}++;
                $self->{map} = [];
                Time::HiRes::sleep(0.05);
                next;
            }
        }
        return ($r, $e);
    }
    die "cluster @args: no answer within $self->{timeout} s"
        . (defined $last ? " (last: $last)" : '') . "\n";
}


1;

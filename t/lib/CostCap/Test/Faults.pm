package CostCap::Test::Faults;

# Faults of one Redis server, made with Redis's own commands, for the
# tests of "Redis misbehaves": each takes SERVER, a CostCap::Test::Node
# or the harness's CostCap::Test::Redis (redis() of CostCap::Test).
# Whatever blocks Redis (a long EVAL, DEBUG SLEEP) is sent on a connection
# of its own without waiting for the reply, so the test goes on while
# Redis is stuck; its handle reads the reply later.
#
#   use CostCap::Test::Faults qw(...);     (or call them fully qualified)
#
#   clients(SERVER)           ({id, addr, laddr, name, cmd, flags, ...},
#                             ...) of CLIENT LIST, our own connection
#                             included
#   client_kill(SERVER, %f)   CLIENT KILL with filters id, addr, laddr,
#                             type, user (default: TYPE normal), SKIPME
#                             yes unless skipme => 'no'; the number
#                             killed
#   replicaof(SERVER, MASTER, wait => 1)
#                             REPLICAOF MASTER (a server object or
#                             "host:port"; masterauth set from its
#                             password, its repl-diskless-sync-delay set
#                             to 0): writes answer -READONLY; a
#                             full sync replaces SERVER's data with
#                             MASTER's; with wait, until the link is up
#   promote(SERVER)           REPLICAOF NO ONE (masters again, data kept)
#   masterdown_on(SERVER)     replica-serve-stale-data no and REPLICAOF
#                             of a port nobody listens on: every data
#                             command answers -MASTERDOWN, the data stays
#   masterdown_off(SERVER)    back to a master, the setting restored
#   oom_on(SERVER)            maxmemory 1 byte with noeviction: writes
#                             (and scripts that write) answer -OOM
#   oom_off(SERVER)           maxmemory and the policy as they were
#   pause_clients(SERVER, MS, 'WRITE' | 'ALL')
#                             CLIENT PAUSE: commands wait, no error
#   unpause_clients(SERVER)
#   busy(SERVER, seconds => 30, threshold_ms => 50)
#                             a read-only Lua loop in EVAL (for up to
#                             seconds, so it ends even if nobody kills
#                             it) with busy-reply-threshold lowered:
#                             others get -BUSY.  A handle:
#     ->wait                  until another connection gets -BUSY
#     ->stop                  SCRIPT KILL, the EVAL's reply read, the
#                             threshold restored; the EVAL's error
#   debug_sleep(SERVER, SECONDS)
#                             DEBUG SLEEP (the server needs
#                             --enable-debug-command yes or local):
#                             nothing answers, no error.  A handle:
#     ->wait_blocked          until a PING from elsewhere goes
#                             unanswered for 0.2 s
#     ->wait                  the DEBUG SLEEP's reply (+OK once it ends)

use strict;
use warnings;

use Exporter 'import';
our @EXPORT_OK = qw(clients client_kill replicaof promote masterdown_on
                    masterdown_off oom_on oom_off pause_clients
                    unpause_clients busy debug_sleep connect_to);

require CostCap::Test::Node;

# a fresh CostCap::Test::Client to SERVER
sub connect_to {
    my ($srv, %o) = @_;
    my $c = $srv->can('tls_client_opts')
        ? $srv->connect(%o)
        : CostCap::Test::Client->new(host => '127.0.0.1',
              port => $srv->{port}, password => $srv->{password}, %o);
    return $c if $c;
    die "cannot connect to redis on port $srv->{port}: "
        . "$CostCap::Test::Client::ERROR\n";
}

sub clients {
    my $srv = shift;
    my @l;
    for my $line (split /\r?\n/, $srv->cmd('CLIENT', 'LIST')) {
        my %h = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split ' ', $line;
        push @l, \%h if %h;
    }
    return @l;
}

sub client_kill {
    my ($srv, %f) = @_;
    my @args;
    for my $k (qw(id addr laddr type user)) {
        push @args, uc $k, $f{$k} if defined $f{$k};
    }
    push @args, 'TYPE', 'normal' unless @args;
    push @args, 'SKIPME', $f{skipme} // 'yes';
    return $srv->cmd('CLIENT', 'KILL', @args);
}

sub replicaof {
    my ($srv, $master, %o) = @_;
    my ($h, $p);
    if (ref $master) {
        ($h, $p) = ($master->can('host') ? $master->host : '127.0.0.1',
                    $master->can('port') ? $master->port : $master->{port});
        my $pw = $master->{password};
        $srv->cmd('CONFIG', 'SET', 'masterauth', $pw) if defined $pw;
        # a full sync at once, not after the default 5 s delay
        $master->cmd('CONFIG', 'SET', 'repl-diskless-sync-delay', 0);
    } else {
        ($h, $p) = split /:/, $master;
    }
    $srv->cmd('REPLICAOF', $h, $p);
    if ($o{wait} // 1) {
        CostCap::Test::poll_until(sub {
            my $r = eval { $srv->cmd('ROLE') } or return 0;
            return $r->[0] eq 'slave' && $r->[3] eq 'connected';
        }, $o{timeout} // 20)
            or die "replica of $h:$p did not sync\n";
    }
    return 1;
}

sub promote { $_[0]->cmd('REPLICAOF', 'NO', 'ONE') }

sub masterdown_on {
    my $srv = shift;
    my $r = $srv->cmd('CONFIG', 'GET', 'replica-serve-stale-data');
    $srv->{_fault_stale} //= $r->[1];
    $srv->cmd('CONFIG', 'SET', 'replica-serve-stale-data', 'no');
    # a port held bound, not listening: nobody listens there, nor can
    $srv->cmd('REPLICAOF', '127.0.0.1', CostCap::Test::dead_port());
    return 1;
}

sub masterdown_off {
    my $srv = shift;
    $srv->cmd('REPLICAOF', 'NO', 'ONE');
    $srv->cmd('CONFIG', 'SET', 'replica-serve-stale-data',
              delete $srv->{_fault_stale} // 'yes');
    return 1;
}

sub oom_on {
    my $srv = shift;
    unless ($srv->{_fault_oom}) {
        my %c = @{$srv->cmd('CONFIG', 'GET', 'maxmemory*')};
        $srv->{_fault_oom} = [$c{maxmemory}, $c{'maxmemory-policy'}];
    }
    $srv->cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    $srv->cmd('CONFIG', 'SET', 'maxmemory', 1);
    return 1;
}

sub oom_off {
    my $srv = shift;
    my $o = delete $srv->{_fault_oom} or return 0;
    $srv->cmd('CONFIG', 'SET', 'maxmemory', $o->[0]);
    $srv->cmd('CONFIG', 'SET', 'maxmemory-policy', $o->[1]);
    return 1;
}

sub pause_clients {
    my ($srv, $ms, $mode) = @_;
    return $srv->cmd('CLIENT', 'PAUSE', $ms, $mode // 'ALL');
}

sub unpause_clients { $_[0]->cmd('CLIENT', 'UNPAUSE') }


# -------------------------------------------------------------------------
# a script that keeps Redis busy

my $BUSY_LUA = <<'END';
local t = redis.call('TIME')
local stop = tonumber(t[1]) + tonumber(ARGV[1])
while tonumber(redis.call('TIME')[1]) < stop do end
return 1
END

sub busy {
    my ($srv, %o) = @_;
    my $secs = $o{seconds} // 30;
    my $th = $srv->cmd('CONFIG', 'GET', 'busy-reply-threshold');
    $srv->cmd('CONFIG', 'SET', 'busy-reply-threshold',
              $o{threshold_ms} // 50);
    my $c = connect_to($srv, timeout => $secs + 10);
    $c->send_cmd('EVAL', $BUSY_LUA, 0, $secs);
    return bless { srv => $srv, c => $c, threshold => $th->[1] },
                 'CostCap::Test::Faults::Busy';
}

package CostCap::Test::Faults::Busy;

sub wait {
    my ($self, $timeout) = @_;
    my $last = '';
    my $ok = CostCap::Test::poll_until(sub {
        my $p = CostCap::Test::Faults::connect_to($self->{srv},
                                                  timeout => 2);
        my ($r, $e) = eval { $p->try_cmd('PING') };
        $p->close;
        $last = $e // $@ // $r // '';
        return defined $e && $e =~ /^BUSY/;
    }, $timeout // 10);
    die "Redis did not answer -BUSY (last: $last)\n" unless $ok;
    return $last;
}

sub stop {
    my $self = shift;
    my $k = CostCap::Test::Faults::connect_to($self->{srv}, timeout => 5);
    my ($r, $e) = $k->try_cmd('SCRIPT', 'KILL');
    $k->close;
    die "SCRIPT KILL: $e\n" if defined $e && $e !~ /^NOTBUSY/;
    my ($er, $ee) = eval { $self->{c}->read_reply };
    $self->{c}->close;
    $self->{srv}->cmd('CONFIG', 'SET', 'busy-reply-threshold',
                      $self->{threshold});
    return $ee // $er;
}


# -------------------------------------------------------------------------
# DEBUG SLEEP

package CostCap::Test::Faults;

sub debug_sleep {
    my ($srv, $secs) = @_;
    my $c = connect_to($srv, timeout => $secs + 10);
    $c->send_cmd('DEBUG', 'SLEEP', $secs);
    return bless { srv => $srv, c => $c }, 'CostCap::Test::Faults::Sleep';
}

package CostCap::Test::Faults::Sleep;

sub wait_blocked {
    my ($self, $timeout) = @_;
    return CostCap::Test::poll_until(sub {
        my $p = CostCap::Test::Faults::connect_to($self->{srv},
                                                  timeout => 0.2);
        my ($r, $e) = eval { $p->try_cmd('PING') };
        my $err = $@;
        $p->close;
        return $err =~ /reply timeout/;
    }, $timeout // 5);
}

sub wait {
    my $self = shift;
    my ($r, $e) = $self->{c}->read_reply;
    $self->{c}->close;
    die "DEBUG SLEEP: $e\n" if defined $e;
    return $r;
}


1;

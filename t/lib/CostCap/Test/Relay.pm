package CostCap::Test::Relay;

# A TCP relay between NGINX and Redis: its own Perl process (started with
# CostCap::Test::_spawn, stopped by PID at the harness's END; it also
# exits when the test process is gone) listening on a free loopback port
# and forwarding each connection to a target, controlled through a UNIX
# socket: every call below returns once the relay has done it.
#
#   my $r = CostCap::Test::Relay->new(to => TARGET, host => '127.0.0.1')
#               ->start;
#     TARGET is "host:port" or an object with host/port (a
#     CostCap::Test::Node) or {port} (the harness's Redis)
#   $r->port, $r->host, $r->addr     where NGINX connects
#   $r->stall         a silent network drop: nothing is read or written
#                     on any connection, none is closed; new connections
#                     are still accepted (the kernel would complete their
#                     handshake anyway) and get nothing either
#   $r->resume(MODE)  forward again; new connections forward; the
#                     connections of the stall:
#                       'dead'  (default) stay silent: Redis's side is
#                               closed, NGINX's side stays open and what
#                               it sends is read and dropped, until NGINX
#                               closes it
#                       'heal'  forward again, as if the network came back
#                       'reset' are closed with RST
#   $r->drop          every connection closed at once with RST (SO_LINGER
#                     0); new ones forward
#   $r->delay(MS)     Redis's replies held MS milliseconds (0: none)
#   $r->target(TARGET) where new connections go
#   $r->stats         { accepted, open, stalled, dead, up, down (bytes
#                     NGINX->Redis and back), dropped (connections
#                     closed by drop or reset), refused (target down),
#                     state => 'forward' | 'stall' }
#   $r->stop

use strict;
use warnings;

use File::Basename ();
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_LINGER SOCK_STREAM);
use Time::HiRes ();

my $SEQ = 0;
my $LIB = File::Basename::dirname(__FILE__) . '/../..';

sub _target {
    my $t = shift;
    return $t unless ref $t;
    return ($t->can('host') ? $t->host : '127.0.0.1') . ':'
         . ($t->can('port') ? $t->port : $t->{port});
}

sub new {
    my ($class, %o) = @_;
    my $n = ++$SEQ;
    my $dir = CostCap::Test::tmp_dir();
    return bless {
        to => _target($o{to} // die "relay: to => TARGET\n"),
        host => $o{host} // '127.0.0.1',
        ctl => "$dir/relay-$n.ctl",
        log => "$dir/relay-$n.log",
        n => $n,
    }, $class;
}

sub start {
    my $self = shift;
    my ($th, $tp) = split /:/, $self->{to};
    $self->{pid} = CostCap::Test::_spawn("relay $self->{n}", $self->{log},
        $^X, "-I$LIB", '-MCostCap::Test::Relay', '-e',
        'CostCap::Test::Relay::serve(@ARGV)',
        $self->{ctl}, $self->{host}, $th, $tp, $$);
    my $port;
    CostCap::Test::poll_until(sub {
        return -1 unless CostCap::Test::_alive($self->{pid});
        $port = eval { $self->_ctl('port') };
        return $port;
    }, 10);
    die "relay did not start:\n" . CostCap::Test::_slurp($self->{log})
        unless $port && $port =~ /^\d+$/;
    $self->{port} = $port;
    return $self;
}

sub port { $_[0]{port} }
sub host { $_[0]{host} }
sub addr { "$_[0]{host}:$_[0]{port}" }

sub _ctl {
    my ($self, $cmd) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $self->{ctl}, Type => SOCK_STREAM)
        or die "relay control: $!\n";
    print $s "$cmd\n";
    $s->flush;
    my $sel = IO::Select->new($s);
    my $line = '';
    my $deadline = Time::HiRes::time() + 5;
    while ($line !~ /\n/) {
        my $left = $deadline - Time::HiRes::time();
        die "relay control: no answer to '$cmd'\n"
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $line, 4096, length $line;
        die "relay control: closed\n" unless $n;
    }
    close $s;
    chomp $line;
    die "relay $cmd: $line\n" unless $line =~ s/^ok ?//;
    return $line;
}

sub stall  { $_[0]->_ctl('stall') }
sub resume { $_[0]->_ctl('resume ' . ($_[1] // 'dead')) }
sub drop   { $_[0]->_ctl('drop') }
sub delay  { $_[0]->_ctl("delay " . (0 + $_[1])) }

sub target {
    my ($self, $t) = @_;
    $self->{to} = _target($t);
    $self->_ctl('target ' . join ' ', split /:/, $self->{to});
}

sub stats {
    my $self = shift;
    return { map { split /=/, $_, 2 } split ' ', $self->_ctl('stats') };
}

sub stop {
    my $self = shift;
    CostCap::Test::_stop_pid($self->{pid}, 'TERM', 5) if $self->{pid};
    delete $self->{pid};
}


# -------------------------------------------------------------------------
# the relay process

my %ST;
my @CONNS;
my $LISTEN;
my ($TH, $TP);
my $DELAY = 0;

sub _nb { $_[0]->blocking(0); $_[0] }

sub _rst {
    my $s = shift or return;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $s;
}

sub _connect_up {
    my $c = shift;
    my $u = IO::Socket::INET->new(PeerAddr => $TH, PeerPort => $TP,
                                  Proto => 'tcp', Timeout => 2);
    unless ($u) {
        $ST{refused}++;
        return 0;
    }
    $c->{u} = _nb($u);
    return 1;
}

sub _close_conn {
    my $c = shift;
    close $c->{c} if $c->{c};
    close $c->{u} if $c->{u};
    @CONNS = grep { $_ != $c } @CONNS;
}

sub _command {
    my $line = shift;
    my ($cmd, @a) = split ' ', $line;
    $cmd //= '';
    if ($cmd eq 'port') {
        return 'ok ' . $LISTEN->sockport;
    }
    if ($cmd eq 'stall') {
        $ST{state} = 'stall';
        $_->{state} = 'stalled' for grep { $_->{state} eq 'fwd' } @CONNS;
        return 'ok';
    }
    if ($cmd eq 'resume') {
        my $mode = $a[0] // 'dead';
        return "error: mode $mode" unless $mode =~ /^(dead|heal|reset)$/;
        $ST{state} = 'forward';
        for my $c (grep { $_->{state} eq 'stalled' } @CONNS) {
            if ($mode eq 'heal') {
                if ($c->{u} || _connect_up($c)) {
                    $c->{state} = 'fwd';
                } else {
                    _close_conn($c);
                }
            } elsif ($mode eq 'reset') {
                _rst($c->{c});
                _rst($c->{u});
                undef $c->{c};
                undef $c->{u};
                _close_conn($c);
                $ST{dropped}++;
            } else {
                close $c->{u} if $c->{u};
                undef $c->{u};
                $c->{state} = 'dead';
            }
        }
        return 'ok';
    }
    if ($cmd eq 'drop') {
        my $n = @CONNS;
        for my $c (@CONNS) {
            _rst($c->{c});
            _rst($c->{u});
        }
        @CONNS = ();
        $ST{dropped} += $n;
        return "ok $n";
    }
    if ($cmd eq 'delay') {
        $DELAY = ($a[0] // 0) / 1000;
        return 'ok';
    }
    if ($cmd eq 'target') {
        ($TH, $TP) = @a;
        return 'ok';
    }
    if ($cmd eq 'stats') {
        my %g = (open => scalar @CONNS,
                 stalled => scalar(grep { $_->{state} eq 'stalled' } @CONNS),
                 dead => scalar(grep { $_->{state} eq 'dead' } @CONNS));
        return 'ok ' . join ' ', map { "$_=" . ($g{$_} // $ST{$_}) }
            qw(accepted open stalled dead up down dropped refused state);
    }
    return "error: unknown command '$cmd'";
}

# bytes of a queue [[due, data], ...] that may be written now
sub _due {
    my ($q, $now) = @_;
    my $out = '';
    $out .= $_->[1] for grep { $_->[0] <= $now } @$q;
    return $out;
}

sub _written {
    my ($q, $n) = @_;
    while ($n > 0 && @$q) {
        my $l = length $q->[0][1];
        if ($l <= $n) {
            shift @$q;
            $n -= $l;
        } else {
            substr($q->[0][1], 0, $n, '');
            $n = 0;
        }
    }
}

sub _qlen { my $l = 0; $l += length $_->[1] for @{$_[0]}; $l }

sub serve {
    my ($ctl_path, $host, $th, $tp, $parent) = @_;
    ($TH, $TP) = ($th, $tp);
    %ST = (accepted => 0, up => 0, down => 0, dropped => 0, refused => 0,
           state => 'forward');
    $SIG{PIPE} = 'IGNORE';
    $LISTEN = IO::Socket::INET->new(LocalAddr => $host, LocalPort => 0,
        Proto => 'tcp', Listen => 128, ReuseAddr => 1)
        or die "relay: listen on $host: $!\n";
    _nb($LISTEN);
    unlink $ctl_path;
    my $ctl = IO::Socket::UNIX->new(Local => $ctl_path, Type => SOCK_STREAM,
                                    Listen => 16)
        or die "relay: control socket $ctl_path: $!\n";
    my %cbuf;       # control connections: fileno => [sock, input]

    while (1) {
        exit 0 unless kill 0, $parent;
        my $now = Time::HiRes::time();
        my (@r, @w);
        my %who;    # fileno => [conn, 'c' | 'u']
        push @r, $LISTEN, $ctl, map { $_->[0] } values %cbuf;
        my $next_due;
        for my $c (@CONNS) {
            if ($c->{state} eq 'dead') {
                push @r, $c->{c};
                $who{fileno $c->{c}} = [$c, 'c'];
                next;
            }
            next unless $c->{state} eq 'fwd';
            $who{fileno $c->{c}} = [$c, 'c'];
            $who{fileno $c->{u}} = [$c, 'u'];
            push @r, $c->{c} if !$c->{c_eof} && _qlen($c->{to_u}) < 1 << 20;
            push @r, $c->{u} if !$c->{u_eof} && _qlen($c->{to_c}) < 1 << 20;
            for ([$c->{to_u}, $c->{u}], [$c->{to_c}, $c->{c}]) {
                my ($q, $s) = @$_;
                next unless @$q;
                if ($q->[0][0] <= $now) {
                    push @w, $s;
                } elsif (!defined $next_due || $q->[0][0] < $next_due) {
                    $next_due = $q->[0][0];
                }
            }
        }
        my $timeout = 0.2;
        $timeout = $next_due - $now
            if defined $next_due && $next_due - $now < $timeout;
        $timeout = 0 if $timeout < 0;
        my ($rr, $ww) = IO::Select->select(IO::Select->new(@r),
            IO::Select->new(@w), undef, $timeout);
        $now = Time::HiRes::time();

        for my $s (@{$rr // []}) {
            if ($s == $LISTEN) {
                while (my $cs = $LISTEN->accept) {
                    $ST{accepted}++;
                    my $c = { c => _nb($cs), to_u => [], to_c => [],
                              state => 'fwd' };
                    if ($ST{state} eq 'stall') {
                        $c->{state} = 'stalled';
                    } elsif (!_connect_up($c)) {
                        close $cs;
                        next;
                    }
                    push @CONNS, $c;
                }
                next;
            }
            if ($s == $ctl) {
                my $cs = $ctl->accept or next;
                $cbuf{fileno $cs} = [$cs, ''];
                next;
            }
            if (my $cb = $cbuf{fileno $s}) {
                my $n = sysread $s, $cb->[1], 4096, length $cb->[1];
                if (!$n) {
                    delete $cbuf{fileno $s};
                    close $s;
                    next;
                }
                while ($cb->[1] =~ s/^(.*)\n//) {
                    my $ans = _command($1);
                    syswrite $s, "$ans\n";
                }
                next;
            }
            my $wh = $who{fileno $s} or next;
            my ($c, $side) = @$wh;
            next unless grep { $_ == $c } @CONNS;
            my $buf = '';
            my $n = sysread $s, $buf, 65536;
            next if !defined $n && ($!{EAGAIN} || $!{EWOULDBLOCK});
            if (!$n) {
                if ($c->{state} eq 'dead' || $side eq 'c' && !$c->{u}) {
                    _close_conn($c);
                    next;
                }
                $c->{$side . '_eof'} = 1;
                next;
            }
            next if $c->{state} eq 'dead';
            if ($side eq 'c') {
                $ST{up} += $n;
                push @{$c->{to_u}}, [$now, $buf];
            } else {
                $ST{down} += $n;
                push @{$c->{to_c}}, [$now + $DELAY, $buf];
            }
        }

        for my $s (@{$ww // []}) {
            my $wh = $who{fileno $s} or next;
            my ($c, $side) = @$wh;
            next unless $c->{state} eq 'fwd' && grep { $_ == $c } @CONNS;
            my $q = $side eq 'u' ? $c->{to_u} : $c->{to_c};
            my $data = _due($q, $now);
            next unless length $data;
            my $n = syswrite $s, $data;
            if (defined $n) {
                _written($q, $n);
            } elsif (!$!{EAGAIN} && !$!{EWOULDBLOCK}) {
                _close_conn($c);
            }
        }

        # a side that ended: close both once the other side has it all
        _close_conn($_) for grep {
            $_->{state} eq 'fwd'
            && ($_->{c_eof} && !@{$_->{to_u}} || $_->{u_eof} && !@{$_->{to_c}})
        } @CONNS;
    }
}


1;

package CostCap::Test::Node;

# One redis-server process (plain, cluster node or Sentinel), on any
# loopback address, with or without TLS, and a RESP client that speaks TLS.
# The building block of CostCap::Test::Cluster and CostCap::Test::Sentinel.
# Processes are started with CostCap::Test::_spawn, so that the harness's
# END block stops them by PID even when a test dies.
#
#   my $n = CostCap::Test::Node->new(%o)->start;
#     name      a label for the directory and the process (default 'redis')
#     host      address to bind (default 127.0.0.1; 127.0.0.2 ... work too:
#               the whole 127/8 is loopback on Linux)
#     port      fixed port (default: a free one, replaced if another
#               process takes it before redis-server binds it)
#     args      [extra redis-server arguments]
#     password  requirepass and masterauth; the client AUTHs with it
#     tls       a CostCap::Test::TLS: the node listens on TLS only
#               (--port 0 --tls-port P)
#     tls_cert  which server certificate: 'server' (default, names
#               localhost and 127.0.0.1-3) or 'wrong_name'
#     tls_auth_clients  'no' (default), 'yes' or 'optional'
#     cluster   1: --cluster-enabled yes, its own nodes.conf and bus port
#     sentinel  1: a Sentinel; conf => text of its sentinel.conf (port,
#               bind and dir are added)
#     conf      configuration file text (given to redis-server first)
#
#   $n->start / stop(SIGNAL) / kill (SIGKILL) / pause / resume (STOP/CONT)
#   $n->running, pid, port, host, addr ("host:port"), dir, log (its output)
#   $n->bus_port                  cluster bus port (cluster nodes)
#   $n->client                    a cached CostCap::Test::Client
#                                 (replaced when found closed, e.g. by
#                                 a CLIENT KILL)
#   $n->connect(%o)               a fresh client (timeout =>, tls => {...}
#                                 overrides, password => ...)
#   $n->cmd(@args)                the reply; dies on an error reply
#   $n->try_cmd(@args)            (reply, error)
#   $n->info(SECTION)             { field => value } of INFO
#   $n->role                      ROLE reply (array)
#   $n->tls_client_opts           the tls => {...} a client of it needs
#
#   CostCap::Test::Node::free_port_on(HOST, ...)  a port free on every
#                                 HOST at once (for twins)
#   CostCap::Test::Node->twins(%o)  two started nodes on 127.0.0.2 and
#                                 127.0.0.3, same port (the DNS tests)
#   CostCap::Test::Node::orphan_guard(@cmd)  @cmd wrapped so that it gets
#                                 SIGTERM if the test process dies
#                                 without its END block (every node is
#                                 started so)
#   CostCap::Test::Node::run_cmd(TIMEOUT, LOG, @cmd)  run a short command
#                                 (redis-cli, openssl) to its end:
#                                 (exit status, output); KILL at the bound
#
# CostCap::Test::Client: RESP over TCP or TLS (IO::Socket::SSL), a subclass
# of CostCap::Test::RESP with the same cmd / try_cmd, and:
#   CostCap::Test::Client->new(host, port, timeout (reply, default 5),
#       connect_timeout (default 2), password, user,
#       tls => { ca, cert, key, name (verified and SNI; default host),
#                verify (default 1) })
#     undef if the connection or the handshake fails;
#     $CostCap::Test::Client::ERROR says why
#   $c->send_cmd(@args)           write a command, read nothing (a long
#                                 EVAL or DEBUG SLEEP: the test goes on)
#   $c->read_reply                (reply, error) of the oldest one sent
#   $c->pipeline([@a], [@b], ...) ([reply, error], ...)
#   $c->timeout(SECONDS)          reply timeout from now on
#   $c->local_addr                "ip:port" of our end (CLIENT KILL ADDR)
#   $c->ok_ping                   true when PING answers PONG in time
#   $c->is_alive                  not closed by the server (no reply
#                                 may be pending)

use strict;
use warnings;

use Errno qw(EAGAIN EWOULDBLOCK EINPROGRESS);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes ();

my $SEQ = 0;


sub new {
    my ($class, %o) = @_;
    my $name = $o{name} // 'redis';
    my $dir = CostCap::Test::tmp_dir() . '/node-' . ++$SEQ . "-$name";
    mkdir $dir or die "$dir: $!";
    my $self = bless {
        %o,
        name => $name,
        dir => $dir,
        host => $o{host} // '127.0.0.1',
        fixed_port => $o{port},
        args => $o{args} // [],
        tls_cert => $o{tls_cert} // 'server',
        tls_auth_clients => $o{tls_auth_clients} // 'no',
    }, $class;
    $self->{port} //= $self->_pick_port;
    $self->{bus_port} //= CostCap::Test::free_port() if $o{cluster};
    return $self;
}

sub _pick_port { free_port_on($_[0]{host}) }

sub port { $_[0]{port} }
sub host { $_[0]{host} }
sub addr { "$_[0]{host}:$_[0]{port}" }
sub dir { $_[0]{dir} }
sub pid { $_[0]{pid} }
sub bus_port { $_[0]{bus_port} }
sub name { $_[0]{name} }
sub password { $_[0]{password} }
sub log { CostCap::Test::_slurp("$_[0]{dir}/redis.out") }

sub running { $_[0]{pid} && CostCap::Test::_alive($_[0]{pid}) }


sub _command {
    my $self = shift;
    my @cmd = ('redis-server');
    my @net;
    if ($self->{tls}) {
        my $t = $self->{tls};
        my $cert = $self->{tls_cert};
        push @net, '--port', 0, '--tls-port', $self->{port},
            '--tls-cert-file', $t->file("$cert.crt"),
            '--tls-key-file', $t->file("$cert.key"),
            '--tls-ca-cert-file', $t->ca,
            '--tls-auth-clients', $self->{tls_auth_clients};
        push @net, '--tls-replication', 'yes';
        push @net, '--tls-cluster', 'yes' if $self->{cluster};
    } else {
        push @net, '--port', $self->{port};
    }
    push @net, '--bind', $self->{host};

    if ($self->{sentinel}) {
        # Sentinel rewrites its configuration file: written once, kept
        # across restarts
        my $conf = "$self->{dir}/sentinel.conf";
        unless (-f $conf) {
            CostCap::Test::_spit($conf, ($self->{conf} // '')
                . "\ndir $self->{dir}\n");
        }
        return (@cmd, $conf, '--sentinel', @net,
                '--daemonize', 'no', @{$self->{args}});
    }

    if (defined $self->{conf}) {
        my $conf = "$self->{dir}/redis.conf";
        CostCap::Test::_spit($conf, $self->{conf});
        push @cmd, $conf;
    }
    push @cmd, @net, '--save', '', '--appendonly', 'no',
        '--dir', $self->{dir}, '--daemonize', 'no',
        '--shutdown-timeout', 0, '--repl-diskless-sync-delay', 0;
    if (defined(my $p = $self->{password})) {
        push @cmd, '--requirepass', $p, '--masterauth', $p;
    }
    if ($self->{cluster}) {
        push @cmd, '--cluster-enabled', 'yes',
            '--cluster-config-file', "$self->{dir}/nodes.conf",
            '--cluster-port', $self->{bus_port};
    }
    return (@cmd, @{$self->{args}});
}


sub start {
    my ($self, $attempt) = @_;
    $attempt //= 0;
    my $out = "$self->{dir}/redis.out";
    my $off = -s $out || 0;
    delete $self->{client};
    $self->{pid} = CostCap::Test::_spawn("redis $self->{name}", $out,
                                         orphan_guard($self->_command));
    my $ok = CostCap::Test::poll_until(sub {
        return -1 unless CostCap::Test::_alive($self->{pid});
        my $c = $self->connect(timeout => 1, connect_timeout => 1,
                               no_auth => 1, tls => { verify => 0 })
            or return 0;
        # this node's own process, not another test's server that has
        # the port (this one then fails to bind it and exits)
        my $own = eval {
            my ($r, $e) = $c->try_cmd('PING');
            if ($e && $e =~ /NOAUTH/) {
                return 1 unless defined $self->{password};
                $c->cmd('AUTH', $self->{password});
                ($r, $e) = $c->try_cmd('PING');
            }
            # -LOADING: still reading its data
            return 0 unless $r && $r eq 'PONG';
            my $info = $c->cmd('INFO', 'server');
            my ($pid) = $info =~ /^process_id:(\d+)/m;
            return defined $pid && $pid == $self->{pid} ? 1 : 0;
        };
        $c->close;
        return $own ? 1 : 0;
    }, 10);
    if ($ok != 1) {
        my $log = CostCap::Test::_slurp($out, $off);
        $self->stop('KILL');
        if ($log =~ /Address already in use/ && $attempt < 5
            && !$self->{fixed_port} && !$self->{started_once})
        {
            # a free port was taken by a parallel test meanwhile
            $self->{port} = $self->_pick_port;
            $self->{bus_port} = CostCap::Test::free_port()
                if $self->{cluster};
            unlink "$self->{dir}/sentinel.conf";
            return $self->start($attempt + 1);
        }
        die "redis-server $self->{name} did not start on "
            . $self->addr . ":\n$log";
    }
    $self->{started_once} = 1;
    return $self;
}

sub stop {
    my ($self, $sig) = @_;
    delete $self->{client};
    CostCap::Test::_stop_pid($self->{pid}, $sig // 'TERM', 5)
        if $self->{pid};
    delete $self->{pid};
    return $self;
}

sub kill { $_[0]->stop('KILL') }
sub pause  { CORE::kill('STOP', $_[0]{pid}) }
sub resume { CORE::kill('CONT', $_[0]{pid}) }


sub tls_client_opts {
    my ($self, %over) = @_;
    my $t = $self->{tls} or return undef;
    return { ca => $t->ca, cert => $t->file('client.crt'),
             key => $t->file('client.key'), name => 'localhost', %over };
}

sub connect {
    my ($self, %o) = @_;
    my $tls = $self->{tls}
        ? $self->tls_client_opts(%{$o{tls} // {}}) : undef;
    my $pw = exists $o{password} ? $o{password}
           : $o{no_auth} ? undef : $self->{password};
    return CostCap::Test::Client->new(host => $self->{host},
        port => $self->{port}, timeout => $o{timeout},
        connect_timeout => $o{connect_timeout}, password => $pw,
        tls => $tls);
}

sub client {
    my $self = shift;
    # a cached connection closed meanwhile (CLIENT KILL: Sentinel kills
    # the clients of every node it reconfigures) is replaced before use
    delete $self->{client}
        if $self->{client} && !$self->{client}->is_alive;
    $self->{client} ||= $self->connect
        or die "cannot connect to redis $self->{name} at " . $self->addr
             . ": $CostCap::Test::Client::ERROR\n";
    return $self->{client};
}

sub try_cmd {
    my ($self, @args) = @_;
    my @r = eval { $self->client->try_cmd(@args) };
    if ($@) {
        delete $self->{client};
        die $@;
    }
    return @r;
}

sub cmd {
    my ($self, @args) = @_;
    my ($r, $e) = $self->try_cmd(@args);
    die "redis $self->{name} @args: $e\n" if defined $e;
    return $r;
}

sub info {
    my ($self, $section) = @_;
    my $t = $self->cmd('INFO', $section // 'default');
    return { map { /^([^:#]+):(.*?)\r?$/ ? ($1, $2) : () }
             split /\n/, $t };
}

sub role { $_[0]->cmd('ROLE') }


# -------------------------------------------------------------------------
# helpers

# a port that every host can bind at this moment
sub free_port_on {
    my @hosts = @_;
    @hosts = ('127.0.0.1') unless @hosts;
    # below the ephemeral range, as CostCap::Test::free_port
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(LocalAddr => $hosts[0],
            LocalPort => CostCap::Test::_candidate_port(), Proto => 'tcp',
            Listen => 1, ReuseAddr => 1)
            or next;
        my $port = $s->sockport;
        my @held = ($s);
        my $all = 1;
        for my $h (@hosts[1 .. $#hosts]) {
            my $o = IO::Socket::INET->new(LocalAddr => $h, LocalPort => $port,
                Proto => 'tcp', Listen => 1, ReuseAddr => 1);
            unless ($o) { $all = 0; last }
            push @held, $o;
        }
        CORE::close($_) for @held;
        return $port if $all;
    }
    die "no port free on all of @hosts\n";
}

# two nodes on 127.0.0.2 and 127.0.0.3 with the same port
sub twins {
    my ($class, %o) = @_;
    for my $attempt (1 .. 5) {
        my $port = free_port_on('127.0.0.2', '127.0.0.3');
        my @n = map {
            $class->new(%o, name => ($o{name} // 'twin') . "-$_",
                        host => "127.0.0.$_", port => $port)
        } 2, 3;
        my $ok = eval { $_->start for @n; 1 };
        return @n if $ok;
        my $err = $@;
        $_->stop('KILL') for @n;
        die $err unless $err =~ /Address already in use/ && $attempt < 5;
    }
}

# the command, run so that it gets SIGTERM when the test process dies
# without its END block (a signal, SIGPIPE of a closed pipe): Linux's
# PR_SET_PDEATHSIG, set by a perl that then execs the command (same pid)
my %PRCTL = (x86_64 => 157, aarch64 => 167);

sub orphan_guard {
    my @cmd = @_;
    require Config;
    my ($arch) = $Config::Config{archname} =~ /^(x86_64|aarch64)/;
    return @cmd unless $arch && $^O eq 'linux';
    return ($^X, '-e', "syscall($PRCTL{$arch}, 1, 15); exec {\$ARGV[0]} "
                     . '@ARGV or die "exec $ARGV[0]: $!\n"', @cmd);
}

# run a short command to its end: (wait status, output)
sub run_cmd {
    my ($timeout, $log, @cmd) = @_;
    my $off = -s $log || 0;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    my $status;
    my $done = CostCap::Test::poll_until(sub {
        my $r = waitpid $pid, WNOHANG;
        return 0 unless $r == $pid;
        $status = $?;
        return 1;
    }, $timeout);
    unless ($done) {
        CORE::kill('KILL', $pid);
        waitpid $pid, 0;
        $status = -1;
    }
    return ($status, CostCap::Test::_slurp($log, $off));
}


# -------------------------------------------------------------------------
# RESP client over TCP or TLS

package CostCap::Test::Client;

use strict;
use warnings;

our @ISA = ('CostCap::Test::RESP');
our $ERROR = '';

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use IO::Select;
use IO::Socket::INET;
use Time::HiRes ();

sub new {
    my ($class, %o) = @_;
    my $host = $o{host} // '127.0.0.1';
    my $cto = $o{connect_timeout} // 2;
    my $sock;
    $ERROR = '';
    if (my $t = $o{tls}) {
        require IO::Socket::SSL;
        my $name = $t->{name} // $host;
        my $verify = $t->{verify} // 1;
        $sock = IO::Socket::SSL->new(
            PeerHost => $host, PeerPort => $o{port}, Timeout => $cto,
            SSL_verify_mode => $verify
                ? IO::Socket::SSL::SSL_VERIFY_PEER()
                : IO::Socket::SSL::SSL_VERIFY_NONE(),
            ($t->{ca} ? (SSL_ca_file => $t->{ca}) : ()),
            ($verify ? (SSL_verifycn_scheme => 'http',
                        SSL_verifycn_name => $name) : ()),
            SSL_hostname => ($name =~ /^[\d.]+$/ ? '' : $name),
            ($t->{cert} ? (SSL_cert_file => $t->{cert},
                           SSL_key_file => $t->{key}) : ()),
        );
        unless ($sock) {
            $ERROR = $IO::Socket::SSL::SSL_ERROR || "$!";
            return undef;
        }
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => $host,
            PeerPort => $o{port}, Proto => 'tcp', Timeout => $cto);
        unless ($sock) {
            $ERROR = "$!";
            return undef;
        }
    }
    $sock->blocking(0);
    my $self = bless { sock => $sock, buf => '', tls => !!$o{tls},
                       timeout => $o{timeout} // 5 }, $class;
    if (defined $o{password}) {
        my @a = defined $o{user} ? ($o{user}, $o{password})
                                 : ($o{password});
        my ($r, $e) = eval { $self->try_cmd('AUTH', @a) };
        $e //= $@ if $@;
        if ($e) {
            $ERROR = "AUTH: $e";
            return undef;
        }
    }
    return $self;
}

sub timeout { $_[0]{timeout} = $_[1] if @_ > 1; $_[0]{timeout} }

sub local_addr {
    my $s = $_[0]{sock};
    return $s->sockhost . ':' . $s->sockport;
}

# wait until the socket is ready for what the last call wanted
sub _wait {
    my ($self, $deadline, $dir) = @_;
    my $s = $self->{sock};
    if ($self->{tls}) {
        my $e = $IO::Socket::SSL::SSL_ERROR;
        $dir = 'w' if $e && $e == IO::Socket::SSL::SSL_WANT_WRITE();
        $dir = 'r' if $e && $e == IO::Socket::SSL::SSL_WANT_READ();
    }
    my $left = $deadline - Time::HiRes::time();
    return 0 if $left <= 0;
    my $sel = IO::Select->new($s);
    return $dir eq 'w' ? $sel->can_write($left) : $sel->can_read($left);
}

sub _would_block { $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR} }

sub _fill {
    my $self = shift;
    my $deadline = Time::HiRes::time() + $self->{timeout};
    while (1) {
        my $n = sysread $self->{sock}, $self->{buf}, 65536,
                        length $self->{buf};
        return if $n;
        die "redis: connection closed\n" if defined $n;
        die "redis: read: " . ($self->{tls} && $IO::Socket::SSL::SSL_ERROR
                               || $!) . "\n"
            unless _would_block();
        $self->_wait($deadline, 'r') or die "redis: reply timeout\n";
    }
}

sub _write {
    my ($self, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $deadline = Time::HiRes::time() + $self->{timeout};
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite $self->{sock}, $data, length($data) - $off, $off;
        if (defined $n) {
            $off += $n;
            next;
        }
        die "redis: write: $!\n" unless _would_block();
        $self->_wait($deadline, 'w') or die "redis: write timeout\n";
    }
}

sub _encode {
    my @args = @_;
    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    return $req;
}

sub send_cmd {
    my ($self, @args) = @_;
    $self->_write(_encode(@args));
    return $self;
}

sub read_reply {
    my $self = shift;
    my $r = $self->_reply;
    return (undef, $$r) if ref $r eq 'CostCap::Test::RESP::Error';
    return ($r, undef);
}

sub try_cmd {
    my ($self, @args) = @_;
    $self->send_cmd(@args);
    return $self->read_reply;
}

sub pipeline {
    my ($self, @cmds) = @_;
    $self->_write(join '', map { _encode(@$_) } @cmds);
    return map { [$self->read_reply] } @cmds;
}

# no reply is pending: anything readable now is an end (or garbage)
sub is_alive {
    my $self = shift;
    my $s = $self->{sock} or return 0;
    return 0 if length $self->{buf};
    my $buf = '';
    my $n = sysread $s, $buf, 1;
    return 0 if defined $n;
    return _would_block() ? 1 : 0;
}

sub ok_ping {
    my $self = shift;
    my ($r) = eval { $self->try_cmd('PING') };
    return defined $r && $r eq 'PONG';
}

sub close {
    my $self = shift;
    if (my $s = delete $self->{sock}) {
        $self->{tls} ? $s->close(SSL_fast_shutdown => 1) : CORE::close($s);
    }
}


1;

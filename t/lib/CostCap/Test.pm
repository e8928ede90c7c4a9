package CostCap::Test;

# End-to-end harness for ngx_cost_cap_module, in the manner of Test::Nginx:
# Test::Base data blocks, a real nginx (with the module loaded) and a real
# redis-server, both on free loopback ports, in a temporary directory.
#
# Block sections (all optional unless noted):
#
#   --- main_config        top level of nginx.conf
#   --- http_config        inside http{}, before the servers
#   --- config             inside the test server{}
#   --- backend_config     inside the backend server{} (default: return 200
#                          '{"id":"gen_1","status":"queued"}')
#   --- workers: N         worker_processes (default 1)
#   --- log_level: debug   error_log level (default info)
#   --- nginx_t_fail       expect `nginx -t` to fail; each line a substring
#                          of its output (config test only)
#   --- nginx_t_ok         expect `nginx -t` to pass (config test only)
#   --- redis_args         extra redis-server arguments (restarts Redis)
#   --- redis_cmd          commands run before the request, one a line
#   --- request            "METHOD /uri"
#   --- more_headers       "Name: value" lines
#   --- request_body       raw body (trailing newlines removed)
#   --- request_body_eval  Perl code returning the body (any NAME_eval
#                          section is Perl code returning NAME's text)
#   --- requests           Perl list of requests, in order: each
#                          [CODE, BODY, HEADERS] (missing items default to
#                          the block's) or a hash with keys code, body,
#                          headers, request, json, response_headers,
#                          label (a name for its checks); the block's
#                          response_headers(_like) hold for every request
#   --- error_code         expected status
#   --- response_headers   "Name: value" (exact; "V~N": within N below V),
#                          "!Name" (absent)
#   --- response_headers_like  "Name: regex"
#   --- response_body      exact body (trailing newlines ignored)
#   --- response_body_like regex
#   --- response_json      Perl structure compared with the decoded body
#                          (types and numbers exact; matchers ANY,
#                          ANY_STR, ANY_NUM, ANY_INT, BETWEEN(lo, hi);
#                          err(CODE, PARAM, EXTRA...) builds an error body)
#   --- redis              "KEY VALUE" or "!KEY" (polled for up to 5 s:
#                          settlements land after the response)
#   --- redis_db: N        database of the redis/redis_ttl checks
#   --- redis_ttl          "KEY MIN MAX" or "KEY EXACT" (TTL seconds)
#   --- redis_keys: N      number of keys in all databases
#   --- backend_hits: N    requests that reached the backend
#   --- error_log          substrings (or qr/.../) expected in error.log
#   --- no_error_log       substrings (or qr/.../) not expected
#   --- same_window: minute  the block's requests within one minute (or
#                          hour...): with less than 10 s of it left, the
#                          next one is waited for
#   --- reuse              keep nginx running for the next block when its
#                          configuration is the same (and Redis is not
#                          restarted); for blocks that leave no work
#                          behind them: what nginx logs after the last
#                          response (a settlement) would count for the
#                          next block, since the logs of a running nginx
#                          are read without waiting (a stopped one has
#                          written all)
#
# Placeholders: $TEST_NGINX_REDIS_PORT, $TEST_NGINX_SERVER_PORT,
# $TEST_NGINX_BACKEND_PORT, $TEST_NGINX_TMP, and any add_macro() name, in
# configuration, headers, bodies and redis lines.  In redis lines and
# response_headers: {minute} {hour} {day} {week} {month} (SPEC section 6
# periods from the Redis server's clock) and {end_minute} ... {end_month}
# (seconds until that window ends).  In response_json and requests code,
# %W holds the same values.
#
# Every test file ends with done_testing(): one that stops early fails.
# Ports: free_port() (a server the harness starts), dead_port() (where a
# connection is refused, held for the whole test), listen_socket() (a
# listening socket for a server of the test's own).
#
# Environment: COST_CAP_MODULE (module .so), COST_CAP_NGINX (nginx
# binary), COST_CAP_NO_MODULE=1 (do not load the module: harness checks
# against plain nginx), COST_CAP_KEEP=1 (keep the temporary directory),
# COST_CAP_REDIS_TIMEOUT (timeout= and connect_timeout= added to a
# cost_cap_redis line that sets none; default 5s, "off": none),
# COST_CAP_START_TIMEOUT (seconds nginx may take to listen; default 10).

use strict;
use warnings;

use Test::Base -base;

use B ();
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp ();
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX qw(:sys_wait_h strftime);
use Socket qw(SOCK_STREAM);
use Time::HiRes ();
use Time::Local qw(timegm);

our @EXPORT = qw(
    run_tests add_default add_macro
    repo_root module_path nginx_bin tmp_dir free_port
    start_redis stop_redis redis redis_server redis_port
    redis_time redis_keys window_info
    start_nginx
    http_request http_send http_read header_value
    poll_until json_decode json_matches multipart
    err ANY ANY_STR ANY_NUM ANY_INT BETWEEN
    done_testing note dead_port listen_socket
);

*done_testing = \&Test::More::done_testing;
*note = \&Test::More::note;

our %W;     # window periods and ends, set before each request

my $ROOT = abs_path(dirname(__FILE__) . '/../../..');
my $MAIN_PID = $$;
my $TMP;
my %DEFAULT;
my %MACRO;
my $REDIS;
my @NGINX;          # every instance started, for END
my $SEQ = 0;
my $JSON = JSON::PP->new->canonical->allow_nonref;


sub import {
    if (!$ENV{COST_CAP_NO_MODULE} && !-f module_path()) {
        Test::More::plan(skip_all => 'module not built ('
            . module_path() . '): make -C ' . $ROOT . ' build');
    }

    # No plan: every file ends with done_testing(), so that one which
    # stops early (die, exit) fails.  Test::Base plans no fixed count at END
    # unless it saw a call to plan(); an empty call plans nothing.
    Test::Builder->new->plan();
    goto &Test::Base::import;
}


sub repo_root { $ROOT }

sub module_path {
    $ENV{COST_CAP_MODULE} || "$ROOT/build/ngx_http_cost_cap_module.so";
}

sub nginx_bin { $ENV{COST_CAP_NGINX} || '/usr/sbin/nginx' }


sub tmp_dir {
    $TMP ||= File::Temp->newdir('cost-cap-t-XXXXXX', TMPDIR => 1,
                                CLEANUP => !$ENV{COST_CAP_KEEP});
    return "$TMP";
}


# Ports are picked at random below the kernel's ephemeral range, which
# outgoing connections (to Redis, to a backend, of the tests) draw from:
# no connection of a parallel test can hold one of them.  A port handed
# out once is never handed out again by this process.
my %PORT_USED;
my ($PORT_LO, $PORT_HI) = (10000, 30000);
{
    my $r = _slurp('/proc/sys/net/ipv4/ip_local_port_range');
    my ($lo) = $r =~ /^(\d+)/;
    $PORT_HI = $lo - 1 if $lo && $lo - 1 < $PORT_HI && $lo > 12000;
}

# a port of that range not handed out yet by this process (it is then)
sub _candidate_port {
    for (1 .. 1000) {
        my $port = $PORT_LO + int rand($PORT_HI - $PORT_LO);
        next if $PORT_USED{$port}++;
        return $port;
    }
    die "no port left in [$PORT_LO, $PORT_HI]\n";
}

# a bound socket on an unused port (not listening unless Listen is given)
sub _bind_port {
    my (%o) = @_;
    for (1 .. 200) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => _candidate_port(),
                                      Proto => 'tcp', %o)
            or next;
        return $s;
    }
    die "cannot bind a free port in [$PORT_LO, $PORT_HI]: $!";
}

# a port for a server the harness starts: free when probed (a parallel
# test may still take it: nginx and Redis are then started on others)
sub free_port {
    my $s = _bind_port(Listen => 1, ReuseAddr => 1);
    my $port = $s->sockport;
    close $s;
    return $port;
}

# a port where nothing listens and nothing can: held bound (without
# SO_REUSEADDR, not listening) until the test ends, so a connection to it
# is refused at once
my @DEAD;
sub dead_port {
    my $s = _bind_port();
    push @DEAD, $s;
    return $s->sockport;
}

# a listening socket on a port of its own, for a server of the test
sub listen_socket {
    my (%o) = @_;
    return _bind_port(Listen => 128, ReuseAddr => 1, %o);
}


sub add_default { my ($k, $v) = @_; $DEFAULT{$k} = $v }

sub add_macro { my ($k, $v) = @_; $MACRO{$k} = $v }


# poll_until(sub { ... }, timeout_s): true once the sub is, false at the
# bound; polls every 10 ms
sub poll_until {
    my ($cond, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 5);
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return 0 if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.01);
    }
}


sub _slurp {
    my ($file, $offset) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    seek $fh, $offset, 0 if $offset;
    my $t = <$fh>;
    return $t // '';
}


sub _spit {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "$file: $!";
    print $fh $text;
    close $fh;
}


# -------------------------------------------------------------------------
# child processes

my %CHILD;      # pid => name
my %EXIT;       # pid => wait status, once reaped

sub _spawn {
    my ($name, $log, @cmd) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $CHILD{$pid} = $name;
    return $pid;
}


sub _alive {
    my $pid = shift;
    return 0 unless $CHILD{$pid};
    my $r = waitpid $pid, WNOHANG;
    if ($r == $pid || $r == -1) {
        $EXIT{$pid} = $?;
        delete $CHILD{$pid};
        return 0;
    }
    return 1;
}


# TERM (after CONT, the process may be stopped), then KILL after a bound;
# true if it took the KILL
sub _stop_pid {
    my ($pid, $sig, $timeout) = @_;
    return unless $pid && $CHILD{$pid};
    kill 'CONT', $pid;
    kill $sig // 'TERM', $pid;
    return 0 if poll_until(sub { !_alive($pid) }, $timeout // 5);
    kill 'KILL', $pid;
    waitpid $pid, 0;
    delete $CHILD{$pid};
    return 1;
}


# a test killed by a signal still stops its servers (END)
$SIG{$_} = sub { exit 1 } for qw(INT TERM HUP);

END {
    if ($$ == $MAIN_PID) {
        local $?;
        $_->stop for grep { $_->{pid} } @NGINX;
        $REDIS->stop if $REDIS;
        _stop_pid($_, 'TERM', 3) for keys %CHILD;
    }
}


# -------------------------------------------------------------------------
# RESP client (raw socket)

package CostCap::Test::RESP;

use strict;
use warnings;

sub new {
    my ($class, %o) = @_;
    my $sock;
    if ($o{path}) {
        $sock = IO::Socket::UNIX->new(Peer => $o{path},
                                      Type => Socket::SOCK_STREAM());
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $o{port}, Proto => 'tcp',
                                      Timeout => 2);
    }
    return undef unless $sock;
    my $self = bless { sock => $sock, buf => '',
                       timeout => $o{timeout} // 5 }, $class;
    if (defined $o{password}) {
        my @a = defined $o{user} ? ($o{user}, $o{password}) : ($o{password});
        my ($r, $e) = $self->try_cmd('AUTH', @a);
        die "redis AUTH: $e\n" if $e;
    }
    return $self;
}

sub _fill {
    my $self = shift;
    my $sel = IO::Select->new($self->{sock});
    die "redis: reply timeout\n" unless $sel->can_read($self->{timeout});
    my $n = sysread $self->{sock}, $self->{buf}, 65536, length $self->{buf};
    die "redis: connection closed\n" unless $n;
}

sub _line {
    my $self = shift;
    my $i;
    $self->_fill while ($i = index $self->{buf}, "\r\n") < 0;
    my $l = substr $self->{buf}, 0, $i + 2, '';
    return substr $l, 0, $i;
}

sub _bytes {
    my ($self, $n) = @_;
    $self->_fill while length $self->{buf} < $n + 2;
    my $s = substr $self->{buf}, 0, $n + 2, '';
    return substr $s, 0, $n;
}

# returns the reply; errors as CostCap::Test::RESP::Error
sub _reply {
    my $self = shift;
    my $l = $self->_line;
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return $v if $t eq '+';
    return 0 + $v if $t eq ':';
    return bless(\$v, 'CostCap::Test::RESP::Error') if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        return $self->_bytes($v);
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [map { $self->_reply } 1 .. $v];
    }
    die "redis: bad reply line '$l'\n";
}

sub try_cmd {
    my ($self, @args) = @_;
    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite $self->{sock}, $req, length($req) - $off, $off;
        die "redis: write: $!\n" unless defined $n;
        $off += $n;
    }
    my $r = $self->_reply;
    return (undef, $$r) if ref $r eq 'CostCap::Test::RESP::Error';
    return ($r, undef);
}

sub cmd {
    my ($self, @args) = @_;
    my ($r, $e) = $self->try_cmd(@args);
    die "redis @args: $e\n" if defined $e;
    return $r;
}

sub close { my $self = shift; close $self->{sock} if $self->{sock} }


# -------------------------------------------------------------------------
# redis-server

package CostCap::Test::Redis;

use strict;
use warnings;

sub new {
    my ($class, %o) = @_;
    my $dir = CostCap::Test::tmp_dir() . '/redis';
    mkdir $dir;
    my $self = bless {
        port => $o{port} || CostCap::Test::free_port(),
        fixed_port => $o{fixed} // $o{port},
        dir => $dir,
        args => $o{args} // '',
        password => undef,
    }, $class;
    $self->{password} = $1 if $self->{args} =~ /--requirepass\s+(\S+)/;
    return $self;
}

sub socket_path { $_[0]{dir} . '/redis.sock' }

# Up once this redis-server answers on its own unix socket (in this test's
# directory) with its own pid, and PING with PONG (not -LOADING: a restart
# with --appendonly yes answers INFO while it still loads its AOF): it
# creates that socket after binding its TCP port, and exits when the port
# is taken.  A PING on the TCP port alone could reach another test's
# server.  A port chosen here and taken meanwhile by a parallel test is
# replaced by another one.
sub start {
    my $self = shift;
    for my $attempt (0 .. 3) {
        my $out = "$self->{dir}/redis.out";
        my $off = -s $out || 0;
        return $self if $self->_start_once == 1;
        my $log = CostCap::Test::_slurp($out, $off);
        $self->stop;
        if ($log =~ /Address already in use/ && !$self->{fixed_port}
            && $attempt < 3)
        {
            $self->{port} = CostCap::Test::free_port();
            next;
        }
        die "redis-server did not start on port $self->{port}:\n$log";
    }
}

sub _start_once {
    my $self = shift;
    my @extra = grep { length } split /\s+/, $self->{args};
    delete $self->{client};
    $self->{pid} = CostCap::Test::_spawn('redis', "$self->{dir}/redis.out",
        'redis-server', '--port', $self->{port}, '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', $self->{dir},
        '--daemonize', 'no', '--unixsocket', $self->socket_path,
        '--unixsocketperm', '777', @extra);
    return CostCap::Test::poll_until(sub {
        return -1 unless CostCap::Test::_alive($self->{pid});
        my $c = CostCap::Test::RESP->new(path => $self->socket_path,
                                         timeout => 1)
            or return 0;
        my $own = eval {
            $c->try_cmd('AUTH', $self->{password})
                if defined $self->{password};
            my ($info, $err) = $c->try_cmd('INFO', 'server');
            return $err && $err =~ /NOAUTH|WRONGPASS/ if defined $err;
            my ($pid) = $info =~ /^process_id:(\d+)/m;
            return 0 unless defined $pid && $pid == $self->{pid};
            my ($pong) = $c->try_cmd('PING');
            return defined $pong && $pong eq 'PONG';
        };
        $c->close;
        return $own;
    }, 10);
}

sub stop {
    my ($self, $sig) = @_;
    delete $self->{client};
    CostCap::Test::_stop_pid($self->{pid}, $sig // 'TERM', 5)
        if $self->{pid};
    delete $self->{pid};
}

sub pause  { kill 'STOP', $_[0]{pid} }
sub resume { kill 'CONT', $_[0]{pid} }

sub client {
    my $self = shift;
    $self->{client} ||= CostCap::Test::RESP->new(port => $self->{port},
        password => $self->{password})
        or die "cannot connect to redis on port $self->{port}: $!\n";
    return $self->{client};
}

# a fresh connection for the caller (a timeout leaves one unusable)
sub connect {
    my ($self, %o) = @_;
    return CostCap::Test::RESP->new(port => $self->{port},
        password => $self->{password}, %o);
}

sub cmd {
    my ($self, @args) = @_;
    my @r = eval { $self->client->try_cmd(@args) };
    if ($@) {
        delete $self->{client};
        die $@;
    }
    die "redis @args: $r[1]\n" if defined $r[1];
    return $r[0];
}


# -------------------------------------------------------------------------
# nginx

package CostCap::Test::Nginx;

use strict;
use warnings;

my $DEFAULT_BACKEND = <<'END';
location / {
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

sub new {
    my ($class, %o) = @_;
    my $dir = CostCap::Test::tmp_dir() . '/nginx-' . ++$SEQ;
    mkdir $dir or die "$dir: $!";
    my $self = bless {
        %o,
        dir => $dir,
        port => $o{port} || CostCap::Test::free_port(),
        backend_port => $o{backend_port} || CostCap::Test::free_port(),
        fixed_ports => $o{port} || $o{backend_port},
    }, $class;
    $self->{conf} = $self->_conf;
    CostCap::Test::_spit("$dir/nginx.conf", $self->{conf});
    push @NGINX, $self;
    return $self;
}

sub port { $_[0]{port} }
sub backend_port { $_[0]{backend_port} }

# nginx said that a port is taken, in what it logged since offs
sub _port_taken {
    my ($self, $offs) = @_;
    my $log = CostCap::Test::_slurp("$self->{dir}/nginx.out", $offs->[0])
            . CostCap::Test::_slurp("$self->{dir}/error.log", $offs->[1]);
    return $log =~ /bind\(\) to \S+ failed \(98/;
}

sub dir { $_[0]{dir} }

sub expand {
    my ($self, $text) = @_;
    return $text unless defined $text;
    my %v = (
        TEST_NGINX_SERVER_PORT => $self->{port},
        TEST_NGINX_BACKEND_PORT => $self->{backend_port},
        TEST_NGINX_TMP => $self->{dir},
        TEST_NGINX_REDIS_PORT => sub { CostCap::Test::redis_port() },
        TEST_NGINX_REDIS_SOCKET => sub { CostCap::Test::redis_server()
                                             ->socket_path },
    );
    for (1 .. 5) {
        last unless $text =~ /\$TEST_NGINX_/;
        $text =~ s{\$(TEST_NGINX_[A-Z0-9_]+)}{
            my $k = $1;
            my $v = exists $MACRO{$k} ? $MACRO{$k}
                  : exists $v{$k} ? $v{$k}
                  : exists $ENV{$k} ? $ENV{$k}
                  : die "unknown placeholder \$$k\n";
            ref $v eq 'CODE' ? $v->() : $v;
        }ge;
    }
    return $text;
}

sub _conf {
    my $self = shift;
    my $d = $self->{dir};
    my $user = $> == 0 ? "user root;\n" : '';
    my $load = $ENV{COST_CAP_NO_MODULE} || $self->{no_module}
             ? '' : 'load_module ' . CostCap::Test::module_path() . ";\n";
    my $workers = $self->{workers} || 1;
    my $level = $self->{log_level} || 'info';
    my $main = $self->expand($self->{main_config} // '');
    my $http = _redis_bounds($self->expand($self->{http_config} // ''));
    my $server = $self->expand($self->{config} // '');
    my $backend = $self->expand($self->{backend_config} // $DEFAULT_BACKEND);

    return <<"END";
daemon off;
master_process on;
worker_processes $workers;
$user
error_log $d/error.log $level;
pid $d/nginx.pid;
$load
$main

events {
    worker_connections 1024;
}

http {
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    access_log $d/access.log;
    default_type text/plain;

    upstream backend {
        server 127.0.0.1:$self->{backend_port};
        keepalive 16;
    }

$http

    server {
        listen 127.0.0.1:$self->{port};
        server_name localhost;

$server
    }

    server {
        listen 127.0.0.1:$self->{backend_port};
        server_name backend;
        access_log $d/backend_access.log;
        default_type application/json;

$backend
    }
}
END
}

# cost_cap_redis lines that set no timeout= or connect_timeout= get
# generous ones (COST_CAP_REDIS_TIMEOUT, default 5s; "off": none): the
# module's 100ms defaults are a product's, and a busy machine (ASan, other
# jobs, load 20 on 2 cores) answered 503 through them in tests that are
# not about timeouts.  A test about timeouts sets its own.
sub _redis_bounds {
    my $http = shift;
    my $t = $ENV{COST_CAP_REDIS_TIMEOUT} // '5s';
    return $http if $t eq 'off';
    $http =~ s{^(\s*cost_cap_redis\s[^;]*);}{
        my $d = $1;
        $d .= " timeout=$t" unless $d =~ /\btimeout=/;
        $d .= " connect_timeout=$t" unless $d =~ /\bconnect_timeout=/;
        "$d;";
    }mge;
    return $http;
}

# nginx -t: (ok, output)
sub test_config {
    my $self = shift;
    my $out = "$self->{dir}/nginx-t.out";
    unlink $out;
    my $pid = CostCap::Test::_spawn('nginx -t', $out,
        CostCap::Test::nginx_bin(), '-t', '-p', "$self->{dir}/",
        '-c', "$self->{dir}/nginx.conf");
    CostCap::Test::poll_until(sub { !CostCap::Test::_alive($pid) }, 10)
        or CostCap::Test::_stop_pid($pid, 'KILL');
    return (($EXIT{$pid} // -1) == 0, CostCap::Test::_slurp($out));
}

# Started once nginx has written its own pid into its pid file: it does
# so after binding its ports, so that the start-up probe cannot reach
# another test's server.  The pid file is removed before nginx starts
# (it may be left by a killed one), and what nginx logs is read from
# where the logs ended before it started.  A port chosen here and taken
# meanwhile by a parallel test is replaced, and nginx started again.
sub start {
    my $self = shift;
    my $d = $self->{dir};
    for my $attempt (0 .. 3) {
        my @offs = map { -s "$d/$_" || 0 } qw(nginx.out error.log);
        my $ok = $self->_start_once(\@offs);
        return $self if $ok == 1;
        $ok = -2 if $self->_port_taken(\@offs);
        $self->stop;
        if ($ok == -2 && $attempt < 3 && !$self->{fixed_ports}) {
            $self->{port} = CostCap::Test::free_port();
            $self->{backend_port} = CostCap::Test::free_port();
            $self->{conf} = $self->_conf;
            CostCap::Test::_spit("$d/nginx.conf", $self->{conf});
            next;
        }
        die "nginx did not start:\n"
            . CostCap::Test::_slurp("$d/nginx.out", $offs[0])
            . CostCap::Test::_slurp("$d/error.log", $offs[1]);
    }
}

sub _start_once {
    my ($self, $offs) = @_;
    my $d = $self->{dir};
    # before the spawn: a busy machine may run nginx as far as writing its
    # pid file before this process is scheduled again
    unlink "$d/nginx.pid";
    -e "$d/nginx.pid" and die "$d/nginx.pid: cannot remove: $!\n";
    $self->{pid} = CostCap::Test::_spawn('nginx', "$d/nginx.out",
        CostCap::Test::nginx_bin(), '-p', "$d/", '-c', "$d/nginx.conf");
    return CostCap::Test::poll_until(sub {
        return -1 unless CostCap::Test::_alive($self->{pid});
        return -2 if $self->_port_taken($offs);
        my $p = CostCap::Test::_slurp("$d/nginx.pid");
        return 0 unless $p =~ /^(\d+)\n/ && $1 == $self->{pid};
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port},
                                      Proto => 'tcp') or return 0;
        close $s;
        return 1;
    }, $ENV{COST_CAP_START_TIMEOUT} || 10);
}

# TERM, then KILL after a bound; its workers too, then, since they would
# outlive a killed master and keep its ports
sub stop {
    my ($self, $sig) = @_;
    return unless $self->{pid};
    my %w = map { $_ => _start_time($_) } $self->worker_pids;
    if (CostCap::Test::_stop_pid($self->{pid}, $sig // 'TERM', 5)) {
        # the same processes still (their pids not reused since)
        kill 'KILL', grep { defined $w{$_} && (_start_time($_) // -1)
                                              == $w{$_} } keys %w;
    }
    delete $self->{pid};
}

# start time of an nginx process (field 22 of /proc/PID/stat), or undef
sub _start_time {
    my $t = CostCap::Test::_slurp("/proc/$_[0]/stat");
    return $t =~ /^\d+ \(nginx\) (?:\S+ ){19}(\d+)/ ? $1 : undef;
}

sub running { $_[0]{pid} && CostCap::Test::_alive($_[0]{pid}) }

sub error_log {
    my ($self, $offset) = @_;
    return CostCap::Test::_slurp("$self->{dir}/error.log", $offset);
}

sub log_size {
    my ($self, $name) = @_;
    return -s "$self->{dir}/$name" || 0;
}

sub backend_hits {
    my ($self, $offset) = @_;
    my $t = CostCap::Test::_slurp("$self->{dir}/backend_access.log", $offset);
    return scalar(() = $t =~ /\n/g);
}

# worker pids (children of the master)
sub worker_pids {
    my $self = shift;
    my @w;
    for my $st (glob '/proc/[0-9]*/stat') {
        my $t = CostCap::Test::_slurp($st);
        push @w, $1 if $t =~ /^(\d+) \(nginx\) \S+ (\d+)/
                       && $2 == $self->{pid};
    }
    return @w;
}

sub request {
    my ($self, %o) = @_;
    return CostCap::Test::http_request(port => $self->{port}, %o);
}


package CostCap::Test;

# -------------------------------------------------------------------------
# public API for scenario code

sub start_redis {
    my (%o) = @_;
    $REDIS->stop if $REDIS && $REDIS->{pid};
    $REDIS = CostCap::Test::Redis->new(%o);
    $REDIS->start;
    return $REDIS;
}

sub stop_redis { $REDIS->stop(@_) if $REDIS }

sub redis_server {
    $REDIS ||= CostCap::Test::Redis->new;
    return $REDIS;
}

sub redis_port { redis_server()->{port} }

sub redis {
    start_redis() unless $REDIS && $REDIS->{pid};
    return $REDIS;
}

# keys in every database, but the operations' markers (SPEC section 9:
# costcap:{TAG}:op:ID, kept a minute for resends)
sub redis_keys {
    my $r = redis();
    my $info = $r->cmd('INFO', 'keyspace');
    my $sum = 0;
    for my $db ($info =~ /^db(\d+):/mg) {
        $r->cmd('SELECT', $db);
        my $cursor = 0;
        do {
            my $res = $r->cmd('SCAN', $cursor, 'COUNT', 1000);
            $cursor = $res->[0];
            $sum += grep { !/:op:[0-9a-f]{24}\z/ } @{$res->[1]};
        } while ($cursor);
    }
    $r->cmd('SELECT', 0);
    return $sum;
}

sub redis_time {
    my $t = redis()->cmd('TIME');
    return $t->[0];
}

# periods and seconds-to-end of each window at Redis time t
sub window_info {
    my $t = shift // redis_time();
    my @g = gmtime $t;
    my $days = int($t / 86400);
    my $wd = ($days + 3) % 7;                   # Monday = 0
    my ($y, $m) = ($g[5] + 1900, $g[4] + 1);
    my ($ny, $nm) = $m == 12 ? ($y + 1, 1) : ($y, $m + 1);
    return (
        now => $t,
        minute => strftime('%Y%m%d%H%M', @g),
        hour => strftime('%Y%m%d%H', @g),
        day => strftime('%Y%m%d', @g),
        week => strftime('%G-W%V', @g),
        month => strftime('%Y%m', @g),
        end_minute => 60 - $t % 60,
        end_hour => 3600 - $t % 3600,
        end_day => 86400 - $t % 86400,
        end_week => ($days - $wd + 7) * 86400 - $t,
        end_month => timegm(0, 0, 0, 1, $nm - 1, $ny) - $t,
    );
}

sub start_nginx {
    my (%o) = @_;
    my $n = CostCap::Test::Nginx->new(%o);
    $n->start;
    return $n;
}


# -------------------------------------------------------------------------
# HTTP client (raw socket: aborts and slow bodies need it)

sub _headers_list {
    my $h = shift;
    return [] unless defined $h;
    return $h if ref $h eq 'ARRAY';
    return [map { [$_, $h->{$_}] } sort keys %$h] if ref $h eq 'HASH';
    my @l;
    for my $line (split /\n/, $h) {
        next unless $line =~ /\S/;
        $line =~ /^\s*([^:\s]+)\s*:\s?(.*?)\s*$/ or die "bad header '$line'\n";
        push @l, [$1, $2];
    }
    return \@l;
}

# http_send(port, method, uri, headers, body, partial => bytes of body to
# send): the connected socket, request written
sub http_send {
    my (%o) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $o{port}, Proto => 'tcp',
                                     Timeout => 5)
        or die "connect 127.0.0.1:$o{port}: $!\n";
    my $hl = _headers_list($o{headers});
    my %has = map { lc $_->[0] => 1 } @$hl;
    my $body = $o{body};
    my $req = ($o{method} || 'GET') . ' ' . ($o{uri} || '/') . " HTTP/1.1\r\n";
    $req .= "Host: localhost\r\n" unless $has{host};
    $req .= "Connection: close\r\n" unless $has{connection};
    $req .= 'Content-Length: ' . length($body) . "\r\n"
        if defined $body && !$has{'content-length'}
           && !$has{'transfer-encoding'};
    $req .= "$_->[0]: $_->[1]\r\n" for @$hl;
    $req .= "\r\n";
    if (defined $body) {
        $req .= defined $o{partial} ? substr($body, 0, $o{partial}) : $body;
    }
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite $sock, $req, length($req) - $off, $off;
        last unless defined $n;     # the server may answer early (413)
        $off += $n;
    }
    return $sock;
}

sub http_read {
    my ($sock, $timeout) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 10);
    my $sel = IO::Select->new($sock);
    my $raw = '';
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        return { error => 'timeout', raw => $raw } if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread $sock, $raw, 65536, length $raw;
        last unless $n;
    }
    close $sock;
    return _parse_response($raw);
}

sub _parse_response {
    my $raw = shift;
    my $i = index $raw, "\r\n\r\n";
    return { error => 'no complete response', raw => $raw } if $i < 0;
    my ($head, $body) = (substr($raw, 0, $i), substr($raw, $i + 4));
    my ($status_line, @lines) = split /\r\n/, $head;
    my ($status) = $status_line =~ m{^HTTP/1\.[01] (\d{3})}
        or return { error => "bad status line '$status_line'", raw => $raw };
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{$h{lc $k}}, $v;
    }
    if (($h{'transfer-encoding'}[0] // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr $body, 0, $len, '';
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    return { status => $status, headers => \%h, body => $body, raw => $raw };
}

# http_request(port, method, uri, headers, body, timeout) -> response hash
# {status, headers => {lc name => [values]}, body, elapsed} or {error}
sub http_request {
    my (%o) = @_;
    my $t0 = Time::HiRes::time();
    my $sock = eval { http_send(%o) };
    return { error => $@ } unless $sock;
    my $r = http_read($sock, $o{timeout});
    $r->{elapsed} = Time::HiRes::time() - $t0;
    return $r;
}

sub header_value {
    my ($res, $name) = @_;
    my $v = $res->{headers}{lc $name};
    return $v ? $v->[0] : undef;
}


# multipart(BOUNDARY, NAME => VALUE, ...): a multipart/form-data body; a
# VALUE {filename, type, content} is a file part
sub multipart {
    my ($b, @f) = @_;
    my $body = '';
    while (my ($k, $v) = splice @f, 0, 2) {
        $body .= "--$b\r\n";
        if (ref $v) {
            $body .= "Content-Disposition: form-data; name=\"$k\"; "
                   . "filename=\"$v->{filename}\"\r\n"
                   . 'Content-Type: '
                   . ($v->{type} || 'application/octet-stream')
                   . "\r\n\r\n$v->{content}\r\n";
        } else {
            $body .= "Content-Disposition: form-data; name=\"$k\"\r\n\r\n"
                   . "$v\r\n";
        }
    }
    return $body . "--$b--\r\n";
}


# -------------------------------------------------------------------------
# JSON comparison with matchers

sub _matcher {
    my ($name, $check) = @_;
    return bless { name => $name, check => $check }, 'CostCap::Test::Match';
}

sub _is_num {
    my $f = B::svref_2object(\$_[0])->FLAGS;
    return ($f & (B::SVp_IOK | B::SVp_NOK)) && !($f & B::SVp_POK);
}

sub ANY () { _matcher('anything', sub { 1 }) }

sub ANY_STR () {
    _matcher('any string', sub { defined $_[0] && !ref $_[0]
                                  && !_is_num($_[0]) });
}

sub ANY_NUM () {
    _matcher('any number', sub { defined $_[0] && !ref $_[0]
                                  && _is_num($_[0]) });
}

sub ANY_INT () {
    _matcher('any integer', sub { defined $_[0] && !ref $_[0]
                                   && _is_num($_[0])
                                   && $_[0] == int $_[0] });
}

sub BETWEEN {
    my ($lo, $hi) = @_;
    _matcher("number in [$lo, $hi]", sub { defined $_[0] && !ref $_[0]
                                            && _is_num($_[0])
                                            && $_[0] >= $lo
                                            && $_[0] <= $hi });
}

my %ERR_TYPE = (
    cost_cap_exceeded => 'insufficient_quota',
    cost_cap_unavailable => 'server_error',
    cost_cap_misconfigured => 'server_error',
);

# err(CODE, PARAM, EXTRA...): the SPEC section 5 error body
sub err {
    my ($code, $param, %extra) = @_;
    $extra{level} //= 'tenant' if $code eq 'cost_cap_exceeded';
    return { error => {
        type => $ERR_TYPE{$code} || 'invalid_request_error',
        code => $code,
        message => ANY_STR,
        param => $param,
        %extra,
    } };
}

# replaces matchers in exp, and what they accept in got, by their names
sub _apply_matchers {
    my ($got, $exp) = @_;
    if (ref $exp eq 'CostCap::Test::Match') {
        my $label = "<$exp->{name}>";
        return ($exp->{check}->($got) ? $label : $got, $label);
    }
    if (ref $exp eq 'HASH') {
        return ($got, _strip($exp)) unless ref $got eq 'HASH';
        my (%g, %e);
        for my $k (keys %$exp) {
            ($g{$k}, $e{$k}) = exists $got->{$k}
                ? _apply_matchers($got->{$k}, $exp->{$k})
                : (undef, _strip($exp->{$k}));
            delete $g{$k} unless exists $got->{$k};
        }
        exists $exp->{$_} or $g{$_} = $got->{$_} for keys %$got;
        return (\%g, \%e);
    }
    if (ref $exp eq 'ARRAY') {
        return ($got, _strip($exp)) unless ref $got eq 'ARRAY';
        my (@g, @e);
        for my $i (0 .. ($#$exp > $#$got ? $#$exp : $#$got)) {
            if ($i > $#$got) { push @e, _strip($exp->[$i]); next }
            if ($i > $#$exp) { push @g, $got->[$i]; next }
            my ($g, $e) = _apply_matchers($got->[$i], $exp->[$i]);
            push @g, $g;
            push @e, $e;
        }
        return (\@g, \@e);
    }
    return ($got, $exp);
}

sub _strip {
    my $e = shift;
    return "<$e->{name}>" if ref $e eq 'CostCap::Test::Match';
    return { map { $_ => _strip($e->{$_}) } keys %$e } if ref $e eq 'HASH';
    return [map { _strip($_) } @$e] if ref $e eq 'ARRAY';
    return $e;
}

sub json_decode {
    my $text = shift;
    return eval { $JSON->decode($text) };
}

# json_matches(BODY, EXPECTED, NAME): one test
sub json_matches {
    my ($body, $exp, $name) = @_;
    my $got = eval { $JSON->decode($body // '') };
    if ($@) {
        Test::More::fail($name);
        Test::More::diag("not JSON: " . ($body // '(none)'));
        return 0;
    }
    my ($g, $e) = _apply_matchers($got, $exp);
    return Test::More::is($JSON->encode($g), $JSON->encode($e), $name);
}


# -------------------------------------------------------------------------
# block runner

sub _lines {
    my $t = shift;
    return () unless defined $t;
    return grep { /\S/ } map { s/^\s+|\s+$//gr } split /\n/, $t;
}

sub _trim { my $t = shift; return undef unless defined $t; $t =~ s/\s+\z//;
            $t =~ s/\A\s+//; return $t }

# a section's raw text; NAME_eval (Perl code) stands for NAME
sub _section {
    my ($block, $name) = @_;
    my $o = $block->original_values;
    return $o->{$name} if defined $o->{$name};
    return scalar _eval_code($o->{"${name}_eval"}, "${name}_eval")
        if defined $o->{"${name}_eval"} && $name !~ /_eval$/;
    return $DEFAULT{$name};
}

sub _eval_code {
    my ($code, $what) = @_;
    my @r = eval "package CostCap::Test; no strict 'vars'; $code";
    die "bad $what: $@" if $@;
    return wantarray ? @r : $r[0];
}

sub _expand_time {
    my ($text, $w) = @_;
    $text =~ s/\{(minute|hour|day|week|month|now|end_\w+)\}/
        exists $w->{$1} ? $w->{$1} : "{$1}"/ge;
    return $text;
}

sub _redis_words {
    my $line = shift;
    my @w;
    while ($line =~ /\G\s*(?:'([^']*)'|"([^"]*)"|(\S+))/gc) {
        push @w, $1 // $2 // $3;
    }
    return @w;
}

sub _need_redis {
    my $block = shift;
    my $all = join "\n", grep { defined } map { _section($block, $_) }
        qw(http_config config main_config redis redis_cmd redis_ttl
           redis_keys redis_args);
    return $all =~ /REDIS|\bredis/i;
}

sub _redis_restarts {
    my $block = shift;
    my $args = _trim(_section($block, 'redis_args')) // '';
    return !$REDIS || !$REDIS->{pid} || $REDIS->{args} ne $args;
}

sub _prepare_redis {
    my $block = shift;
    my $args = _trim(_section($block, 'redis_args')) // '';
    if (_redis_restarts($block)) {
        my $port = $REDIS ? $REDIS->{port} : undef;
        $REDIS->stop if $REDIS;
        # the same port if it is free: no nginx of this block has it yet
        $REDIS = CostCap::Test::Redis->new(args => $args, port => $port,
                                           fixed => 0);
        $REDIS->start;
    }
    $REDIS->cmd('FLUSHALL');
    $REDIS->cmd('SCRIPT', 'FLUSH');
}

my $SHARED;     # nginx kept for the next block

# the nginx kept by the previous block when this block's configuration is
# the same and Redis stays up (a restart would break its connections),
# else undef (the kept one stopped)
sub _shared_nginx {
    my ($block, $redis_restarts, %conf) = @_;
    my $n = $SHARED or return undef;
    undef $SHARED;
    my $cand = bless { %$n, %conf }, ref $n;
    return $n if $n->running && !$redis_restarts
                 && $cand->_conf eq $n->{conf};
    $n->stop;
    return undef;
}

sub run_tests {
    for my $block (blocks()) {
        my $name = $block->name;
        my $ok = eval { _run_block($block); 1 };
        unless ($ok) {
            Test::More::fail("$name - block ran");
            Test::More::diag($@);
        }
    }
}

sub _run_block {
    my $block = shift;
    my $name = $block->name;
    my %conf = map { $_ => _section($block, $_) }
        qw(main_config http_config config backend_config);
    $conf{workers} = _trim(_section($block, 'workers'));
    $conf{log_level} = _trim(_section($block, 'log_level'));

    my $need_redis = _need_redis($block);
    my $t_only = defined _section($block, 'nginx_t_fail')
                 || defined _section($block, 'nginx_t_ok');
    my $restarts = $need_redis && _redis_restarts($block);
    my $shared = $t_only && !$restarts ? undef
               : _shared_nginx($block, $restarts, %conf);
    _prepare_redis($block) if $need_redis;

    if ($t_only) {
        my $fail = _section($block, 'nginx_t_fail');
        my $n = CostCap::Test::Nginx->new(%conf);
        my ($pass, $out) = $n->test_config;
        if (defined $fail) {
            Test::More::ok(!$pass, "$name - nginx -t fails")
                or Test::More::diag($out);
            for my $s (_lines($fail)) {
                Test::More::like($out, _pattern($n->expand($s)),
                                 "$name - nginx -t says '$s'");
            }
        } else {
            Test::More::ok($pass, "$name - nginx -t passes")
                or Test::More::diag($out);
        }
        return;
    }

    my $n = $shared || CostCap::Test::Nginx->new(%conf);
    my $log_off = $n->log_size('error.log');
    my $backend_off = $n->log_size('backend_access.log');

    _same_window(_trim(_section($block, 'same_window')));

    # before nginx starts: a worker may connect to Redis at once
    for my $line (_lines(_section($block, 'redis_cmd'))) {
        my %w = window_info();
        redis()->cmd(_redis_words(_expand_time($n->expand($line), \%w)));
    }
    $n->start unless $n->running;
    my $db = _trim(_section($block, 'redis_db')) // 0;

    my %w0 = $need_redis ? window_info() : ();
    local %W = %w0;
    my @reqs = _block_requests($block, $n);
    my $i = 0;
    for my $rq (@reqs) {
        $i++;
        local %W = $need_redis ? window_info() : ();
        my $res = $n->request(method => $rq->{method}, uri => $rq->{uri},
                              headers => $rq->{headers},
                              body => $rq->{body},
                              timeout => $rq->{timeout});
        my $label = @reqs > 1 ? "$name - request $i" : $name;
        $label .= " ($rq->{label})" if defined $rq->{label};
        _check_response($label, $res, $rq, \%W);
    }

    if (defined(my $r = _section($block, 'redis'))) {
        _check_redis($name, $n, $r, $db, \%w0);
    }
    if (defined(my $r = _section($block, 'redis_ttl'))) {
        _check_redis_ttl($name, $n, $r, $db);
    }
    if (defined(my $k = _trim(_section($block, 'redis_keys')))) {
        Test::More::is(redis_keys(), $k, "$name - redis keys");
    }

    if (defined _section($block, 'reuse')) {
        $SHARED = $n;
    } else {
        $n->stop;
    }

    if (defined(my $h = _trim(_section($block, 'backend_hits')))) {
        Test::More::is($n->backend_hits($backend_off), $h,
                       "$name - backend hits");
    }

    my $log = $n->error_log($log_off);
    for my $s (_lines(_section($block, 'error_log'))) {
        my $p = _pattern($n->expand($s));
        my $found = $log =~ $p;
        if (!$found && $n->running) {
            $found = poll_until(sub { $n->error_log($log_off) =~ $p }, 5);
        }
        Test::More::ok($found, "$name - error_log has '$s'")
            or Test::More::diag(_tail($log));
    }
    for my $s (_lines(_section($block, 'no_error_log')),
               'exited on signal', '[alert]', 'runtime error:',
               'AddressSanitizer', 'qr/exited with code [1-9]/')
    {
        Test::More::unlike($log, _pattern($n->expand($s)),
                           "$name - error_log lacks '$s'");
    }
}

# the block's requests all within one window of that kind: with less than
# 10 s of the current one left, the next one is waited for
sub _same_window {
    my $win = shift;
    return unless defined $win;
    my %w = window_info();
    die "bad same_window '$win'\n" unless defined $w{"end_$win"};
    return if $w{"end_$win"} >= 10;
    poll_until(sub { my %n = window_info(); $n{$win} ne $w{$win} },
               $w{"end_$win"} + 5)
        or die "the $win did not change\n";
}

sub _tail {
    my $t = shift;
    my @l = split /\n/, $t;
    splice @l, 0, @l - 30 if @l > 30;
    return join "\n", 'error.log (tail):', @l;
}

sub _pattern {
    my $s = shift;
    if ($s =~ m{^qr/(.*)/([a-z]*)$}) {
        my ($re, $fl) = ($1, $2);
        return $fl ? qr/(?$fl)$re/ : qr/$re/;
    }
    return qr/\Q$s\E/;
}

sub _block_requests {
    my ($block, $n) = @_;
    my $rl = _trim(_section($block, 'request')) // 'GET /';
    my $headers = _headers_list($n->expand(_section($block, 'more_headers')));
    my $body;
    if (defined(my $code = $block->original_values->{request_body_eval})) {
        $body = _eval_code($code, 'request_body_eval');
    } elsif (defined($body = _section($block, 'request_body'))) {
        $body =~ s/\n+\z//;
        $body = $n->expand($body);
    }
    my %base = (
        request => $rl,
        headers => $headers,
        body => $body,
        code => _trim(_section($block, 'error_code')),
        response_headers => _section($block, 'response_headers'),
        response_headers_like => _section($block, 'response_headers_like'),
        response_body => _section($block, 'response_body'),
        response_body_like => _section($block, 'response_body_like'),
        json => _section($block, 'response_json'),
        timeout => _trim(_section($block, 'timeout')),
    );

    my @list = (\%base);
    if (defined(my $code = _section($block, 'requests'))) {
        my @items = _eval_code($code, 'requests');
        @items = @{$items[0]} if @items == 1 && ref $items[0] eq 'ARRAY'
                                 && ref $items[0][0];
        @list = ();
        for my $it (@items) {
            # the block's header checks hold for each request; the rest
            # is per request
            my %r = (%base, map { $_ => undef }
                     qw(code response_body response_body_like json));
            if (ref $it eq 'ARRAY') {
                my ($c, $b, $h) = @$it;
                $r{code} = $c;
                $r{body} = $b if defined $b;
                $r{headers} = _merge_headers($headers, $h) if defined $h;
            } else {
                %r = (%r, %$it);
                $r{headers} = _merge_headers($headers, $it->{headers})
                    if defined $it->{headers};
                $r{request} = $it->{request} // $rl;
            }
            push @list, \%r;
        }
    }
    for my $r (@list) {
        @$r{qw(method uri)} = split ' ', $r->{request}, 2;
    }
    return @list;
}

sub _merge_headers {
    my ($base, $extra) = @_;
    my $x = _headers_list($extra);
    my %over = map { lc $_->[0] => 1 } @$x;
    return [(grep { !$over{lc $_->[0]} } @$base), @$x];
}

sub _check_response {
    my ($name, $res, $rq, $w) = @_;
    if ($res->{error}) {
        Test::More::fail("$name - response");
        Test::More::diag("no response: $res->{error}");
        return;
    }
    if (defined $rq->{code}) {
        Test::More::is($res->{status}, $rq->{code}, "$name - status")
            or Test::More::diag("body: $res->{body}");
    }
    for my $line (_lines($rq->{response_headers})) {
        if ($line =~ /^!\s*(\S+)$/) {
            Test::More::ok(!defined header_value($res, $1),
                           "$name - no header $1")
                or Test::More::diag("$1: " . header_value($res, $1));
            next;
        }
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/
            or die "bad response_headers line '$line'\n";
        $v = _expand_time($v, $w);
        my $got = header_value($res, $k);
        if ($v =~ /^(-?\d+)~(\d+)$/) {
            my ($e, $tol) = ($1, $2);
            Test::More::ok(defined $got && $got =~ /^-?\d+$/
                           && $got <= $e && $got >= $e - $tol,
                           "$name - header $k in [" . ($e - $tol) . ", $e]")
                or Test::More::diag("$k: " . ($got // '(absent)'));
            next;
        }
        Test::More::is($got, $v, "$name - header $k");
    }
    for my $line (_lines($rq->{response_headers_like})) {
        my ($k, $v) = $line =~ /^([^:]+):\s*(.*)$/
            or die "bad response_headers_like line '$line'\n";
        Test::More::like(header_value($res, $k) // '', qr/$v/,
                         "$name - header $k like");
    }
    if (defined(my $b = $rq->{response_body})) {
        $b =~ s/\n+\z//;
        (my $got = $res->{body}) =~ s/\n+\z//;
        Test::More::is($got, $b, "$name - body");
    }
    if (defined(my $b = $rq->{response_body_like})) {
        $b = _trim($b);
        Test::More::like($res->{body}, qr/$b/s, "$name - body like");
    }
    if (defined(my $j = $rq->{json})) {
        my $exp = ref $j ? $j : _eval_code($j, 'response_json');
        json_matches($res->{body}, $exp, "$name - json");
    }
}

sub _check_redis {
    my ($name, $n, $text, $db, $w0) = @_;
    my @lines = _lines($text);
    my $r = redis();
    my (@got, @exp);
    my $match = sub {
        my %w1 = window_info();
        my @cands = (\%w1, %$w0 ? ($w0) : ());
        $r->cmd('SELECT', $db) if $db;
        for my $w (@cands) {
            (@got, @exp) = ();
            for my $line (@lines) {
                my $l = _expand_time($n->expand($line), $w);
                if ($l =~ /^!\s*(\S+)$/) {
                    my $e = $r->cmd('EXISTS', $1);
                    push @got, "$1 " . ($e ? 'exists' : 'absent');
                    push @exp, "$1 absent";
                } else {
                    my ($k, $v) = split ' ', $l, 2;
                    my $g = $r->cmd('GET', $k);
                    push @got, "$k " . ($g // '(nil)');
                    push @exp, "$k $v";
                }
            }
            last if "@got" eq "@exp";
        }
        $r->cmd('SELECT', 0) if $db;
        return "@got" eq "@exp";
    };
    poll_until($match, 5);
    Test::More::is(join("\n", @got), join("\n", @exp), "$name - redis");
}

sub _check_redis_ttl {
    my ($name, $n, $text, $db) = @_;
    my $r = redis();
    my %w = window_info();
    $r->cmd('SELECT', $db) if $db;
    for my $line (_lines($text)) {
        my ($k, $lo, $hi) = split ' ', _expand_time($n->expand($line), \%w);
        $hi //= $lo;
        for ($lo, $hi) {
            die "bad redis_ttl expression '$_'\n" unless m{^[-+*/0-9() ]+$};
            $_ = eval $_;
        }
        my $ttl = $r->cmd('TTL', $k);
        Test::More::ok($ttl >= $lo && $ttl <= $hi,
                       "$name - TTL of $k in [$lo, $hi]")
            or Test::More::diag("TTL $k = $ttl");
    }
    $r->cmd('SELECT', 0) if $db;
}


1;

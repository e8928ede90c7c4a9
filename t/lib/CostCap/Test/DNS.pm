package CostCap::Test::DNS;

# A small authoritative DNS responder for the resolver tests: its own Perl
# process (CostCap::Test::_spawn, stopped by PID at the harness's END; it
# also exits when the test process is gone) answering UDP and TCP on
# 127.0.0.1 and one free port, from a table the test changes at runtime
# through a UNIX control socket (each call returns once the table has
# changed).  The wire format is written here: a header, the question, A
# records; NXDOMAIN for a name not in the table, an empty NOERROR answer
# (with an SOA, for negative caching) for other types such as AAAA.
#
# Every server of a test listens on loopback, so a name cannot move
# between two servers by port: the two are bound to 127.0.0.2 and
# 127.0.0.3 with the same port (CostCap::Test::Node->twins) and the
# answer switches between those addresses.  NGINX: `resolver
# 127.0.0.1:PORT valid=1s ipv6=off;`.
#
#   my $dns = CostCap::Test::DNS->new(ttl => 1)->start;
#   $dns->port, $dns->addr              "127.0.0.1:PORT"
#   $dns->set_answer(NAME, ADDR, ...)   A records (TTL: ttl, default 1 s);
#                                       no ADDR: NOERROR, no record
#   $dns->set_ttl(SECONDS)              for the answers set from now on
#   $dns->remove(NAME)                  NXDOMAIN from now on
#   $dns->set_rcode(NAME, 'SERVFAIL' | 'REFUSED' | 'NXDOMAIN')
#   $dns->set_silent(NAME)              queries for NAME go unanswered
#   $dns->set_delay(NAME, MS)           answers for NAME sent MS
#                                       milliseconds late (0: at once;
#                                       set_answer clears it)
#   $dns->queries(NAME, TYPE)           queries received for NAME (of
#                                       TYPE, e.g. 'A'; all types if
#                                       none); no NAME: all queries
#   $dns->reset_counts
#   $dns->stop
#
#   CostCap::Test::DNS::query(PORT, NAME, type => 'A', tcp => 0,
#                             timeout => 2)
#       a client for the tests of the responder itself:
#       { rcode => 'NOERROR' | 'NXDOMAIN' | ..., addrs => [...],
#         ttl => TTL of the first record, id_ok => 1 } or undef on timeout

use strict;
use warnings;

use File::Basename ();
use IO::Select;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM SOCK_DGRAM inet_aton inet_ntoa);
use Time::HiRes ();

my $SEQ = 0;
my $LIB = File::Basename::dirname(__FILE__) . '/../..';

my %TYPE = (A => 1, NS => 2, CNAME => 5, SOA => 6, PTR => 12, MX => 15,
            TXT => 16, AAAA => 28, SRV => 33, ANY => 255);
my %TYPE_NAME = reverse %TYPE;
my %RCODE = (NOERROR => 0, FORMERR => 1, SERVFAIL => 2, NXDOMAIN => 3,
             NOTIMP => 4, REFUSED => 5);
my %RCODE_NAME = reverse %RCODE;

sub new {
    my ($class, %o) = @_;
    my $n = ++$SEQ;
    my $dir = CostCap::Test::tmp_dir();
    return bless { ttl => $o{ttl} // 1, n => $n,
                   ctl => "$dir/dns-$n.ctl", log => "$dir/dns-$n.log" },
                 $class;
}

sub start {
    my $self = shift;
    $self->{pid} = CostCap::Test::_spawn("dns $self->{n}", $self->{log},
        $^X, "-I$LIB", '-MCostCap::Test::DNS', '-e',
        'CostCap::Test::DNS::serve(@ARGV)', $self->{ctl}, $$);
    my $port;
    CostCap::Test::poll_until(sub {
        return -1 unless CostCap::Test::_alive($self->{pid});
        $port = eval { $self->_ctl('port') };
        return $port;
    }, 10);
    die "DNS responder did not start:\n"
        . CostCap::Test::_slurp($self->{log})
        unless $port && $port =~ /^\d+$/;
    $self->{port} = $port;
    return $self;
}

sub port { $_[0]{port} }
sub addr { "127.0.0.1:$_[0]{port}" }

sub _ctl {
    my ($self, $cmd) = @_;
    my $s = IO::Socket::UNIX->new(Peer => $self->{ctl}, Type => SOCK_STREAM)
        or die "dns control: $!\n";
    print $s "$cmd\n";
    $s->flush;
    my $sel = IO::Select->new($s);
    my $line = '';
    my $deadline = Time::HiRes::time() + 5;
    while ($line !~ /\n/) {
        my $left = $deadline - Time::HiRes::time();
        die "dns control: no answer to '$cmd'\n"
            if $left <= 0 || !$sel->can_read($left);
        my $n = sysread $s, $line, 4096, length $line;
        die "dns control: closed\n" unless $n;
    }
    close $s;
    chomp $line;
    die "dns $cmd: $line\n" unless $line =~ s/^ok ?//;
    return $line;
}

sub set_answer {
    my ($self, $name, @addrs) = @_;
    $self->_ctl("set $name $self->{ttl} @addrs");
}

sub set_ttl { $_[0]{ttl} = $_[1] }
sub remove { $_[0]->_ctl("del $_[1]") }
sub set_rcode { $_[0]->_ctl("rcode $_[1] " . uc $_[2]) }
sub set_silent { $_[0]->_ctl("silent $_[1]") }
sub set_delay { $_[0]->_ctl("delay $_[1] $_[2]") }
sub reset_counts { $_[0]->_ctl('reset') }

sub queries {
    my ($self, $name, $type) = @_;
    return $self->_ctl(join ' ', 'count', grep { defined } $name, $type);
}

sub stop {
    my $self = shift;
    CostCap::Test::_stop_pid($self->{pid}, 'TERM', 5) if $self->{pid};
    delete $self->{pid};
}


# -------------------------------------------------------------------------
# wire format

# (name, offset after it) of the name at OFF; compression followed
sub _name {
    my ($pkt, $off) = @_;
    my @l;
    my $end;
    for (1 .. 128) {
        return () if $off >= length $pkt;
        my $len = ord substr $pkt, $off, 1;
        if (($len & 0xc0) == 0xc0) {
            return () if $off + 2 > length $pkt;
            $end //= $off + 2;
            $off = unpack('n', substr $pkt, $off, 2) & 0x3fff;
            next;
        }
        if ($len == 0) {
            $end //= $off + 1;
            return (join('.', @l), $end);
        }
        return () if $off + 1 + $len > length $pkt;
        push @l, substr $pkt, $off + 1, $len;
        $off += 1 + $len;
    }
    return ();
}

sub _encode_name {
    my $name = shift;
    return join('', map { chr(length) . $_ } grep { length }
                    split /\./, $name) . "\0";
}

my %ZONE;       # lc name => { ttl, addrs => [], rcode, silent, delay }
my %COUNT;      # "name type" => n
my $PORT;
my $DELAY = 0;  # seconds, of the answer _answer made last

# the answer to one query, or undef (no answer)
sub _answer {
    my $q = shift;
    return undef if length $q < 12;
    my ($id, $flags, $qd) = unpack 'n n n', $q;
    return undef if $flags & 0x8000;                    # a response
    my $opcode = ($flags >> 11) & 0xf;
    my $rd = $flags & 0x0100;
    my $hdr = sub {
        my ($rcode, $an, $ns, $question) = @_;
        return pack('n6', $id, 0x8000 | ($opcode << 11) | 0x0400 | $rd
                              | 0x0080 | $rcode,
                    defined $question ? 1 : 0, $an, $ns, 0)
             . ($question // '');
    };
    return $hdr->($RCODE{NOTIMP}, 0, 0) if $opcode != 0;
    return $hdr->($RCODE{FORMERR}, 0, 0) if $qd != 1;
    my ($name, $off) = _name($q, 12);
    return $hdr->($RCODE{FORMERR}, 0, 0)
        unless defined $name && $off + 4 <= length $q;
    my ($qtype, $qclass) = unpack 'n n', substr $q, $off, 4;
    my $question = substr $q, 12, $off + 4 - 12;
    my $lname = lc $name;
    $lname =~ s/\.\z//;
    my $tname = $TYPE_NAME{$qtype} // $qtype;
    $COUNT{"$lname $tname"}++;

    my $z = $ZONE{$lname};
    return $hdr->($RCODE{NXDOMAIN}, 0, 1, $question) . _soa(1)
        unless $z;
    $DELAY = ($z->{delay} // 0) / 1000;
    return undef if $z->{silent};
    return $hdr->($RCODE{$z->{rcode}}, 0, 0, $question) if $z->{rcode};
    my @a = $qtype == $TYPE{A} && $qclass == 1 ? @{$z->{addrs}} : ();
    return $hdr->(0, 0, 1, $question) . _soa($z->{ttl}) unless @a;
    return $hdr->(0, scalar @a, 0, $question)
         . join '', map { pack('n n n N n', 0xc00c, $TYPE{A}, 1,
                               $z->{ttl}, 4) . inet_aton($_) } @a;
}

# an SOA for the name asked (negative caching: minimum = TTL)
sub _soa {
    my $ttl = shift;
    my $rdata = "\0\0" . pack('N5', 1, 60, 60, 600, $ttl);
    return pack('n n n N n', 0xc00c, $TYPE{SOA}, 1, $ttl, length $rdata)
         . $rdata;
}

sub _command {
    my $line = shift;
    my ($cmd, @a) = split ' ', $line;
    $cmd //= '';
    return "ok $PORT" if $cmd eq 'port';
    if ($cmd eq 'set') {
        my ($name, $ttl, @addrs) = @a;
        return 'error: set NAME TTL ADDR...' unless defined $ttl;
        for (@addrs) {
            return "error: bad address $_" unless inet_aton($_)
                                                  && /^[\d.]+$/;
        }
        $ZONE{_norm($name)} = { ttl => $ttl, addrs => \@addrs };
        return 'ok';
    }
    if ($cmd eq 'del') {
        delete $ZONE{_norm($a[0] // '')};
        return 'ok';
    }
    if ($cmd eq 'rcode') {
        my ($name, $rc) = @a;
        return "error: rcode $rc" unless defined $rc && exists $RCODE{$rc};
        my $z = $ZONE{_norm($name)} //= { ttl => 1, addrs => [] };
        $z->{rcode} = $rc;
        delete $z->{silent};
        return 'ok';
    }
    if ($cmd eq 'silent') {
        my $z = $ZONE{_norm($a[0] // '')} //= { ttl => 1, addrs => [] };
        $z->{silent} = 1;
        return 'ok';
    }
    if ($cmd eq 'delay') {
        my ($name, $ms) = @a;
        return 'error: delay NAME MS' unless defined $ms && $ms =~ /^\d+$/;
        my $z = $ZONE{_norm($name)} //= { ttl => 1, addrs => [] };
        $z->{delay} = $ms;
        return 'ok';
    }
    if ($cmd eq 'count') {
        my ($name, $type) = @a;
        my $n = 0;
        for my $k (keys %COUNT) {
            my ($kn, $kt) = split ' ', $k;
            next if defined $name && $kn ne _norm($name);
            next if defined $type && $kt ne uc $type;
            $n += $COUNT{$k};
        }
        return "ok $n";
    }
    if ($cmd eq 'reset') {
        %COUNT = ();
        return 'ok';
    }
    return "error: unknown command '$cmd'";
}

sub _norm { my $n = lc shift; $n =~ s/\.\z//; $n }

sub serve {
    my ($ctl_path, $parent) = @_;
    $SIG{PIPE} = 'IGNORE';
    my ($udp, $tcp);
    for (1 .. 50) {
        $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'udp')
            or die "dns: udp socket: $!\n";
        $tcp = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => $udp->sockport, Proto => 'tcp', Listen => 16,
            ReuseAddr => 1) and last;
        close $udp;
        undef $udp;
    }
    die "dns: no port free for both UDP and TCP\n" unless $tcp;
    $PORT = $udp->sockport;
    unlink $ctl_path;
    my $ctl = IO::Socket::UNIX->new(Local => $ctl_path, Type => SOCK_STREAM,
                                    Listen => 16)
        or die "dns: control socket $ctl_path: $!\n";
    my %conn;   # fileno => [sock, input, kind ('ctl' | 'tcp')]
    my $sel = IO::Select->new($udp, $tcp, $ctl);
    my @late;   # [due, sub sending the answer], in order

    while (1) {
        exit 0 unless kill 0, $parent;
        my $wait = 0.2;
        if (@late) {
            my $d = $late[0][0] - Time::HiRes::time();
            $wait = $d < 0 ? 0 : $d < $wait ? $d : $wait;
        }
        my @ready = $sel->can_read($wait);
        while (@late && $late[0][0] <= Time::HiRes::time()) {
            (shift @late)->[1]->();
        }
        for my $s (@ready) {
            if ($s == $udp) {
                my $q;
                my $peer = $udp->recv($q, 4096) // next;
                $DELAY = 0;
                my $ans = _answer($q);
                next unless defined $ans;
                if ($DELAY) {
                    push @late, [Time::HiRes::time() + $DELAY,
                                 sub { send $udp, $ans, 0, $peer }];
                    @late = sort { $a->[0] <=> $b->[0] } @late;
                    next;
                }
                send $udp, $ans, 0, $peer;
                next;
            }
            if ($s == $tcp || $s == $ctl) {
                my $c = $s->accept or next;
                $conn{fileno $c} = [$c, '', $s == $ctl ? 'ctl' : 'tcp'];
                $sel->add($c);
                next;
            }
            my $c = $conn{fileno $s} or next;
            my $n = sysread $s, $c->[1], 65536, length $c->[1];
            unless ($n) {
                $sel->remove($s);
                delete $conn{fileno $s};
                close $s;
                next;
            }
            if ($c->[2] eq 'ctl') {
                while ($c->[1] =~ s/^(.*)\n//) {
                    syswrite $s, _command($1) . "\n";
                }
                next;
            }
            while (length $c->[1] >= 2) {
                my $len = unpack 'n', $c->[1];
                last if length $c->[1] < 2 + $len;
                my $q = substr $c->[1], 2, $len;
                substr($c->[1], 0, 2 + $len, '');
                $DELAY = 0;
                my $ans = _answer($q);
                next unless defined $ans;
                my $out = pack('n', length $ans) . $ans;
                if ($DELAY) {
                    push @late, [Time::HiRes::time() + $DELAY,
                                 sub { syswrite $s, $out }];
                    @late = sort { $a->[0] <=> $b->[0] } @late;
                    next;
                }
                syswrite $s, $out;
            }
        }
    }
}


# -------------------------------------------------------------------------
# a client, for the tests of the responder

sub query {
    my ($port, $name, %o) = @_;
    my $type = $TYPE{uc($o{type} // 'A')} // die "type $o{type}\n";
    my $id = int rand 65536;
    my $q = pack('n6', $id, 0x0100, 1, 0, 0, 0) . _encode_name($name)
          . pack('n n', $type, 1);
    my $timeout = $o{timeout} // 2;
    my $r;
    if ($o{tcp}) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'tcp', Timeout => $timeout)
            or return undef;
        syswrite $s, pack('n', length $q) . $q;
        my $buf = '';
        my $sel = IO::Select->new($s);
        my $deadline = Time::HiRes::time() + $timeout;
        while (length $buf < 2 || length $buf < 2 + unpack 'n', $buf) {
            my $left = $deadline - Time::HiRes::time();
            return undef if $left <= 0 || !$sel->can_read($left);
            my $n = sysread $s, $buf, 65536, length $buf;
            return undef unless $n;
        }
        $r = substr $buf, 2, unpack 'n', $buf;
    } else {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
            PeerPort => $port, Proto => 'udp') or return undef;
        send $s, $q, 0;
        return undef unless IO::Select->new($s)->can_read($timeout);
        recv $s, $r, 4096, 0;
    }
    return _parse($r, $id);
}

sub _parse {
    my ($r, $id) = @_;
    return undef if length $r < 12;
    my ($rid, $flags, $qd, $an) = unpack 'n4', $r;
    my %res = (id_ok => $rid == $id ? 1 : 0,
               rcode => $RCODE_NAME{$flags & 0xf} // ($flags & 0xf),
               aa => ($flags & 0x0400) ? 1 : 0, addrs => []);
    my $off = 12;
    for (1 .. $qd) {
        my ($n, $o) = _name($r, $off) or return undef;
        $off = $o + 4;
    }
    for (1 .. $an) {
        my ($n, $o) = _name($r, $off) or return undef;
        my ($type, $class, $ttl, $len) = unpack 'n n N n',
                                                substr $r, $o, 10;
        my $rdata = substr $r, $o + 10, $len;
        $off = $o + 10 + $len;
        $res{ttl} //= $ttl;
        push @{$res{addrs}}, inet_ntoa($rdata) if $type == $TYPE{A};
    }
    return \%res;
}


1;

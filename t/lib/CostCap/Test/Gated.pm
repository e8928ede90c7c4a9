package CostCap::Test::Gated;

# A backend that holds its answer, for tests of what happens while a
# request is at the backend (t/050-settle.t, t/090-faults.t).  One per
# test process, forked at start(), killed at END.
#
#   my $port = CostCap::Test::Gated::start(%o)   o{alarm}: seconds the
#                               backend lives at most (default 120)
#   gate_arrived(NAME)          true once a request with gate=NAME came
#                               (polled up to 5 s)
#   gate_open(NAME)             that request (and later ones) answer now
#
# Query of a request: gate=NAME writes arrived-NAME and answers once
# open-NAME exists (20 s at most); delay=MS sleeps; status=CODE (default
# 200); gpu=V sends X-GPU-Seconds: V.  The body is always
# {"id":"gen_1","status":"queued"}, the connection closed after it.

use strict;
use warnings;

use Exporter qw(import);
use POSIX ();
use Time::HiRes ();

require CostCap::Test;

our @EXPORT_OK = qw(gate_arrived gate_open);

my ($PID, $PORT, $GATES);
my $MAIN = $$;

sub _serve {
    my $c = shift;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        my $n = sysread $c, $buf, 65536, length $buf;
        return unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($len) = $head =~ /^content-length:\s*(\d+)/im;
    while (length $body < ($len // 0)) {
        my $n = sysread $c, $body, 65536, length $body;
        return unless $n;
    }
    my ($uri) = $head =~ m{^\S+ (\S+)};
    my %q = $uri =~ /[?&](\w+)=([^&]*)/g;
    if (defined(my $g = $q{gate})) {
        if (open my $f, '>', "$GATES/arrived-$g") { close $f }
        my $deadline = time + 20;
        Time::HiRes::sleep(0.005)
            until -e "$GATES/open-$g" || time > $deadline;
    }
    Time::HiRes::sleep($q{delay} / 1000) if $q{delay};
    my $st = $q{status} || 200;
    my $out = '{"id":"gen_1","status":"queued"}';
    my $h = "HTTP/1.1 $st X\r\nContent-Type: application/json\r\n"
          . 'Content-Length: ' . length($out) . "\r\nConnection: close\r\n";
    $h .= "X-GPU-Seconds: $q{gpu}\r\n" if defined $q{gpu};
    syswrite $c, "$h\r\n$out";
}

sub start {
    my (%o) = @_;
    return $PORT if $PID;

    # bound here, before the fork: no other test can take the port
    my $l = CostCap::Test::listen_socket();
    $PORT = $l->sockport;
    $GATES = CostCap::Test::tmp_dir() . '/gates';
    mkdir $GATES or die "$GATES: $!";

    $PID = fork;
    die "fork: $!" unless defined $PID;
    if ($PID == 0) {
        setpgrp 0, 0;
        $SIG{CHLD} = 'IGNORE';
        alarm($o{alarm} // 120);
        while (1) {
            my $c = $l->accept or next;
            my $pid = fork;
            if (defined $pid && $pid == 0) {
                close $l;
                _serve($c);
                close $c;
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $l;
    return $PORT;
}

sub gate_arrived {
    my $g = shift;
    return CostCap::Test::poll_until(sub { -e "$GATES/arrived-$g" }, 5);
}

sub gate_open {
    my $g = shift;
    open my $f, '>', "$GATES/open-$g" or die "$GATES/open-$g: $!";
    close $f;
}

END {
    if ($$ == $MAIN && $PID) {
        local $?;
        kill 'KILL', -$PID;
        waitpid $PID, 0;
    }
}

1;

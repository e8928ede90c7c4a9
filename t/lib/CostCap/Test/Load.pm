package CostCap::Test::Load;

# Load for the tests of Redis deployments: client processes (forked; the
# harness's END does not stop them, wait does, with a bound) send priced
# requests to one or more gateways while the test makes a failover, a
# migration or a switch happen, and write one line per request, so that
# the test compares what was admitted with the counters afterwards.
#
#   my $l = CostCap::Test::Load->new(%o)->start;
#     ports      gateway ports (nginx ports); request i of client c goes to
#                ports[(c + i) % @ports]
#     clients    client processes (default 16)
#     tenants    tenant of client c: tenants[c % @tenants]
#     bodies     { JSON body => expected estimate in micro-USD }; request i
#                of client c sends the (c * 7 + i)-th body, sorted
#     duration   seconds of load (default 10), or until $l->stop
#     requests   per client: stop after that many (default: no bound)
#     timeout    client timeout of one request, seconds (default 5)
#     uri        default /v1/videos
#   $l->t0                 when the clients started (epoch seconds)
#   $l->stop               the clients end after their current request
#   $l->wait(BOUND)        until every client ended (KILL at BOUND
#                          seconds): true when all ended by themselves
#   $l->rows               ({start, end, status, est (micro-USD, from
#                          X-Cost-Cap-Estimate or the 429 body), level
#                          (the 429's: tenant or parent; '-' else),
#                          tenant, body, gw, err}, ...), by start time
#   $l->status             { status => count }
#   $l->admitted(TENANT)   sum of the estimates admitted (200) for TENANT
#                          (every tenant if none)
#   $l->bad_estimates      admitted or refused rows whose estimate is not
#                          the one of bodies
#   $l->outage(STATUS)     rows answered STATUS (default 503):
#                          { count, first, last (seconds since t0: start
#                          of the first, end of the last), span }
#   $l->max_latency        the longest request, seconds
#   $l->in_flight(T)       rows whose request was in flight at time T
#   CostCap::Test::Load::micro(USD)  "0.077415" -> 77415

use strict;
use warnings;

use POSIX ();
use Time::HiRes qw(time sleep);

require CostCap::Test;

my $SEQ = 0;

sub micro {
    my $usd = shift;
    return undef unless defined $usd && $usd =~ /^(\d+)(?:\.(\d{1,6}))?$/;
    return $1 * 1_000_000 + substr(($2 // '') . '000000', 0, 6);
}

sub new {
    my ($class, %o) = @_;
    my $dir = CostCap::Test::tmp_dir() . '/load-' . ++$SEQ;
    mkdir $dir or die "$dir: $!";
    return bless {
        ports => $o{ports} || die("ports\n"),
        clients => $o{clients} // 16,
        tenants => $o{tenants} || ['acme'],
        bodies => $o{bodies} || die("bodies\n"),
        duration => $o{duration} // 10,
        requests => $o{requests},
        timeout => $o{timeout} // 5,
        uri => $o{uri} // '/v1/videos',
        dir => $dir,
        pids => [],
    }, $class;
}

sub t0 { $_[0]{t0} }

sub start {
    my $self = shift;
    my @bodies = sort keys %{$self->{bodies}};
    my @ports = @{$self->{ports}};
    my $stop = "$self->{dir}/stop";
    pipe my $go_r, my $go_w or die "pipe: $!";
    for my $c (0 .. $self->{clients} - 1) {
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            close $go_w;
            alarm $self->{duration} + 4 * $self->{timeout} + 30;
            my $buf;
            sysread $go_r, $buf, 1;
            my $end = time + $self->{duration};
            my $tenant = $self->{tenants}[$c % @{$self->{tenants}}];
            open my $out, '>', "$self->{dir}/client-$c"
                or POSIX::_exit(2);
            my $i = 0;
            while (time < $end && !-e $stop) {
                last if defined $self->{requests}
                        && $i >= $self->{requests};
                my $g = ($c + $i) % @ports;
                my $body = $bodies[($c * 7 + $i++) % @bodies];
                my $t = time;
                my $res = CostCap::Test::http_request(port => $ports[$g],
                    method => 'POST', uri => $self->{uri}, body => $body,
                    headers => "X-Tenant: $tenant\n"
                               . 'Content-Type: application/json',
                    timeout => $self->{timeout});
                my $st = $res->{status} // 'ERR';
                my $est = CostCap::Test::header_value($res,
                                                      'X-Cost-Cap-Estimate');
                my $level;
                if ($st eq '429') {
                    my $j = CostCap::Test::json_decode($res->{body});
                    $est = $j && $j->{error}{estimate};
                    $level = $j && $j->{error}{level};
                }
                (my $err = $res->{error} // '-') =~ s/\s+/ /g;
                printf $out "%.6f\t%.6f\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n",
                    $t, time, $st, $est // '-', $g, $tenant, $level // '-',
                    $err, $body;
            }
            close $out;
            POSIX::_exit(0);
        }
        push @{$self->{pids}}, $pid;
    }
    close $go_r;
    $self->{t0} = time;
    close $go_w;
    return $self;
}

sub stop {
    my $self = shift;
    open my $fh, '>', "$self->{dir}/stop" or die "stop: $!";
    close $fh;
}

sub wait {
    my ($self, $bound) = @_;
    my %left = map { $_ => 1 } @{$self->{pids}};
    CostCap::Test::poll_until(sub {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, POSIX::WNOHANG()) == $p;
        }
        return !%left;
    }, $bound // $self->{duration} + 2 * $self->{timeout} + 10);
    my $all = !%left;
    kill 'KILL', keys %left;
    waitpid $_, 0 for keys %left;
    $self->{pids} = [];
    $self->_read;
    return $all;
}

sub _read {
    my $self = shift;
    my @rows;
    for my $c (0 .. $self->{clients} - 1) {
        open my $in, '<', "$self->{dir}/client-$c" or next;
        while (<$in>) {
            chomp;
            my ($s, $e, $st, $est, $g, $t, $lv, $err, $body)
                = split /\t/, $_, 9;
            my $m = $st eq '200' ? micro($est)
                  : $st eq '429' && $est ne '-'
                  ? int($est * 1_000_000 + 0.5) : undef;
            push @rows, { start => $s, end => $e, status => $st,
                          est => $m, gw => $g, tenant => $t, level => $lv,
                          err => $err, body => $body };
        }
    }
    $self->{rows} = [sort { $a->{start} <=> $b->{start} } @rows];
}

sub rows { @{$_[0]{rows} || []} }

sub status {
    my $self = shift;
    my %s;
    $s{$_->{status}}++ for $self->rows;
    return \%s;
}

sub admitted {
    my ($self, $tenant) = @_;
    my $sum = 0;
    for ($self->rows) {
        next unless $_->{status} eq '200';
        next if defined $tenant && $_->{tenant} ne $tenant;
        $sum += $_->{est} // 0;
    }
    return $sum;
}

sub bad_estimates {
    my $self = shift;
    return scalar grep {
        ($_->{status} eq '200' || $_->{status} eq '429')
        && !(defined $_->{est} && $_->{est} == $self->{bodies}{$_->{body}})
    } $self->rows;
}

sub outage {
    my ($self, $status) = @_;
    $status //= '503';
    my @r = grep { $_->{status} eq $status } $self->rows;
    return { count => 0, first => 0, last => 0, span => 0 } unless @r;
    my ($first) = sort { $a <=> $b } map { $_->{start} } @r;
    my ($last) = sort { $b <=> $a } map { $_->{end} } @r;
    return { count => scalar @r, first => $first - $self->{t0},
             last => $last - $self->{t0}, span => $last - $first };
}

sub max_latency {
    my $self = shift;
    my ($m) = sort { $b <=> $a } map { $_->{end} - $_->{start} } $self->rows;
    return $m // 0;
}

sub in_flight {
    my ($self, $t) = @_;
    return grep { $_->{start} <= $t && $_->{end} >= $t } $self->rows;
}

1;

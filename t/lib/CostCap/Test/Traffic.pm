package CostCap::Test::Traffic;

# Load from client processes on one or more gateways (nginx instances),
# and the accounting of what they were answered: the tests of "Redis
# misbehaves" (t/092, t/093) run it while they break Redis, then compare
# every counter with the spend the answers admitted.
#
#   my $l = CostCap::Test::Traffic->new(
#       gateways => [$n1, $n2],     CostCap::Test::Nginx objects
#       clients  => 8,              processes, spread over the gateways
#       tenants  => ['a', 'b'],     X-Tenant values, in turn
#       requests => [[URI, BODY, ESTIMATE, KIND], ...], in turn; KIND
#                   'plain' (charged its estimate when admitted),
#                   'actual' (settled to ACTUAL, see below) or 'refund'
#                   (the backend fails: given back)
#       actual   => micro-USD an 'actual' request is settled to
#       timeout  => 5,              seconds a client waits for an answer
#       pause    => 0.002,          seconds between a client's requests
#   )->start;
#   $l->stop_gateway(I)         the clients of gateway I stop (before it
#                               quits), once their request in flight ends
#   $l->stop                    every client stops; the rows are read
#   $l->rows                    ({start, end, status ('ERR' when no
#                               answer), gateway, tenant, kind, est
#                               (X-Cost-Cap-Estimate, micro-USD), result
#                               (X-Var-Result: $cost_cap_result), err}, ...)
#   $l->expected(TENANT)        micro-USD the answers admitted: a 2xx that
#                               was reserved, its estimate, or ACTUAL for
#                               'actual'; a request admitted unreserved
#                               (error_open), its estimate, whatever its
#                               kind; the rest nothing
#   $l->summary                 {requests, status => {CODE => N}, longest,
#                               longest_row, unanswered, bad_estimates}
#   $l->first_after(T, CODES)   end time of the first answer with one of
#                               CODES (a regex) among requests started at
#                               T or later; undef if none
#
# The gateways must add `add_header X-Var-Result $cost_cap_result always;`
# to the locations the requests go to.

use strict;
use warnings;

use POSIX ();
use Time::HiRes ();

my $SEQ = 0;

sub new {
    my ($class, %o) = @_;
    my $dir = CostCap::Test::tmp_dir() . '/load-' . ++$SEQ;
    mkdir $dir or die "$dir: $!";
    return bless { clients => 8, timeout => 5, pause => 0.002, %o,
                   dir => $dir }, $class;
}

sub micro {
    my $usd = shift;
    return undef unless defined $usd && $usd =~ /^(\d+)(?:\.(\d{1,6}))?$/;
    return $1 * 1_000_000 + substr(($2 // '') . '000000', 0, 6);
}

sub start {
    my $self = shift;
    my @g = @{$self->{gateways}};
    my @req = @{$self->{requests}};
    my @ten = @{$self->{tenants}};
    for my $c (0 .. $self->{clients} - 1) {
        my $gi = $c % @g;
        my $port = $g[$gi]->port;
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        if ($pid == 0) {
            $SIG{ALRM} = sub { POSIX::_exit(3) };
            alarm 120;
            open my $out, '>', "$self->{dir}/rows-$c" or POSIX::_exit(2);
            my $i = 0;
            my $stop = "$self->{dir}/stop";
            my $parent = getppid;
            while (!-e $stop && !-e "$stop-$gi" && kill 0, $parent) {
                my $k = $c * 7 + $i++;
                my ($uri, $body, $est, $kind) = @{$req[$k % @req]};
                my $tenant = $ten[int($k / @req) % @ten];
                my $t0 = Time::HiRes::time();
                my $res = CostCap::Test::http_request(port => $port,
                    method => 'POST', uri => $uri, body => $body,
                    headers => "X-Tenant: $tenant\nContent-Type: "
                               . 'application/json',
                    timeout => $self->{timeout});
                my $t1 = Time::HiRes::time();
                (my $err = $res->{error} // '-') =~ s/\s+/ /g;
                print $out join("\t", $t0, $t1, $res->{status} // 'ERR',
                    $gi, $tenant, $kind, $est,
                    CostCap::Test::header_value($res, 'X-Cost-Cap-Estimate')
                        // '-',
                    CostCap::Test::header_value($res, 'X-Var-Result') // '-',
                    $err), "\n";
                Time::HiRes::sleep($self->{pause}) if $self->{pause};
            }
            close $out;
            POSIX::_exit(0);
        }
        push @{$self->{pids}}, $pid;
        $self->{gw}{$pid} = $gi;
    }
    $self->{t0} = Time::HiRes::time();
    return $self;
}

sub _wait {
    my ($self, @pids) = @_;
    my %left = map { $_ => 1 } @pids;
    CostCap::Test::poll_until(sub {
        for my $p (keys %left) {
            delete $left{$p} if waitpid($p, POSIX::WNOHANG()) == $p;
        }
        return !%left;
    }, $self->{timeout} + 10);
    kill 'KILL', keys %left;
    waitpid $_, 0 for keys %left;
    return !%left;
}

sub stop_gateway {
    my ($self, $gi) = @_;
    open my $f, '>', "$self->{dir}/stop-$gi" or die "stop-$gi: $!";
    close $f;
    my @p = grep { $self->{gw}{$_} == $gi } @{$self->{pids}};
    $self->{done}{$_} = 1 for @p;
    return $self->_wait(@p);
}

sub stop {
    my $self = shift;
    open my $f, '>', "$self->{dir}/stop" or die "stop: $!";
    close $f;
    my $ok = $self->_wait(grep { !$self->{done}{$_} } @{$self->{pids}});
    $self->{rows} = [];
    for my $c (0 .. $self->{clients} - 1) {
        open my $in, '<', "$self->{dir}/rows-$c" or next;
        while (<$in>) {
            chomp;
            my %r;
            @r{qw(start end status gateway tenant kind want est result
                  err)} = split /\t/;
            $r{est} = micro($r{est});
            push @{$self->{rows}}, \%r;
        }
    }
    return $ok;
}

sub rows { @{$_[0]{rows}} }

sub charge {
    my ($self, $r) = @_;
    return 0 unless $r->{status} =~ /^2\d\d$/ || $r->{result} eq 'error_open';
    return $r->{want} if $r->{result} eq 'error_open';
    return 0 unless $r->{result} eq 'admitted';
    return $self->{actual} if $r->{kind} eq 'actual';
    return 0 if $r->{kind} eq 'refund';
    return $r->{want};
}

sub expected {
    my ($self, $tenant) = @_;
    my $sum = 0;
    $sum += $self->charge($_) for grep { $_->{tenant} eq $tenant }
                                   $self->rows;
    return $sum;
}

sub summary {
    my $self = shift;
    my %s = (requests => 0, status => {}, longest => 0, unanswered => 0,
             bad_estimates => 0);
    for my $r ($self->rows) {
        $s{requests}++;
        $s{status}{$r->{status}}++;
        $s{unanswered}++ if $r->{status} eq 'ERR';
        my $t = $r->{end} - $r->{start};
        if ($t > $s{longest}) {
            $s{longest} = $t;
            $s{longest_row} = $r;
        }
        $s{bad_estimates}++ if $r->{status} =~ /^2/
            && !(defined $r->{est} && $r->{est} == $r->{want});
    }
    return \%s;
}

sub first_after {
    my ($self, $t, $codes) = @_;
    my ($first) = sort { $a <=> $b } map { $_->{end} }
        grep { $_->{status} =~ $codes && $_->{start} >= $t } $self->rows;
    return $first;
}


1;

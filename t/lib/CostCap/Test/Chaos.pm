package CostCap::Test::Chaos;

# The setting of the chaos tests of "Redis misbehaves" (t/092, t/093):
# two gateways (nginx, 2 workers each) in front of one Redis (or a relay
# to it), under load from CostCap::Test::Traffic, and the accounting that
# ends each scenario: every counter equal to the spend the answers
# admitted, to the micro-dollar.
#
#   my $s = CostCap::Test::Chaos->new(name => NAME, redis => ADDR,
#       timeout => '200ms', on_error => 'closed', kinds => [KIND...],
#       clients => 6);
#     ADDR: "host:port" the gateways connect to (Redis, or a relay);
#     redis_opts => '...' more parameters of cost_cap_redis (user=...);
#     cap => USD, the capped tenant's (default 150)
#     KIND: which requests the load sends: plain (default), refund,
#     actual (see CostCap::Test::Traffic); refund and actual go through a
#     relay that holds the backend's answers 250 ms, so that their
#     settlements are in flight while a fault is
#   $s->gateways              the two CostCap::Test::Nginx
#   $s->start_load            the load (a CostCap::Test::Traffic) begins
#   $s->at(SECONDS)           sleeps until SECONDS after the load began
#   $s->mark(EVENT)           the time of EVENT, for the report
#   $s->finish(%o)            stops the load and checks: every client
#       done, every request answered with one of o{statuses} (default
#       200 429 502 503), the longest answer under o{longest} (default
#       3 s), estimates as computed, every counter (total and month of
#       each tenant) equal to the admitted spend within o{settle}
#       (default 10) seconds; prints (diag) requests, answers by status,
#       the longest answer, the counters against the admitted spend
#   $s->load, $s->tenants, $s->counters(TENANT)
#
# Tenants: "capped-..." (cap 150 USD total, reached in the run) and
# "free-..." (never capped), new for each scenario.

use strict;
use warnings;

use Test::More;
use Time::HiRes ();

use CostCap::Test::Traffic;
use CostCap::Test::Relay;

our $ACTUAL = 97223;        # 100 GPU-seconds at 3.50 USD/h, rounded up

# body => estimate in micro-USD (see t/040-concurrency.t)
my %BODY = (
    '{"model":"sora-2","seconds":1}' => 19354,
    '{"model":"sora-2"}' => 77415,
    '{"model":"sora-2","seconds":"2.51"}' => 48578,
    '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
    '{"model":"sora-2","size":"1920x1080","seconds":12}' => 522548,
    '{"model":"sora-2","size":"720x1280","n":2}' => 154829,
);

my %URI = (plain => '/v1/videos', refund => '/refund/videos',
           actual => '/actual/videos');

my $SEQ = 0;

sub new {
    my ($class, %o) = @_;
    my $self = bless { timeout => '200ms', on_error => 'closed',
                       kinds => ['plain'], clients => 6, cap => 150,
                       %o }, $class;
    my $tag = $$ . '-' . ++$SEQ;
    $self->{tenants} = ["capped-$tag", "free-$tag"];

    my $back_port = CostCap::Test::free_port();
    $self->{back_relay} = CostCap::Test::Relay->new(
        to => "127.0.0.1:$back_port")->start;
    $self->{back_relay}->delay(250);

    # a handshake may take more than the default 100 ms on a busy machine
    my $opts = "timeout=$self->{timeout} connect_timeout=1s "
             . ($o{redis_opts} // '');
    my $http = <<"END";
cost_cap_redis $o{redis} $opts;
map \$http_x_tenant \$cap {
    ~^capped $self->{cap};
    default  100000;
}
upstream slowback {
    server @{[$self->{back_relay}->addr]};
    keepalive 16;
}
END
    my $conf = <<"END";
cost_cap_tenant \$http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_limit \$cap per=total;
cost_cap_limit 100000 per=month;
cost_cap_on_error $self->{on_error};
add_header X-Var-Result \$cost_cap_result always;

location /v1/ {
    cost_cap on;
    proxy_pass http://backend;
}
location /refund/ {
    cost_cap on;
    proxy_pass http://slowback;
}
location /actual/ {
    cost_cap on;
    cost_cap_actual \$upstream_http_x_gpu_seconds;
    proxy_pass http://slowback;
}
END
    my $backend = <<'END';
location /refund/ {
    return 502 '{"error":"backend"}';
}
location /actual/ {
    add_header X-GPU-Seconds 100;
    return 200 '{"id":"gen_1","status":"completed"}';
}
location / {
    return 200 '{"id":"gen_1","status":"queued"}';
}
END
    # the first gateway's backend answers both (behind the relay)
    $self->{gateways} = [
        CostCap::Test::start_nginx(http_config => $http, config => $conf,
            backend_config => $backend, workers => 2, log_level => 'warn',
            backend_port => $back_port),
        CostCap::Test::start_nginx(http_config => $http, config => $conf,
            backend_config => $backend, workers => 2, log_level => 'warn'),
    ];

    my @req;
    for my $kind (@{$self->{kinds}}) {
        my @b = sort keys %BODY;
        @b = @b[0, 3] unless $kind eq 'plain';
        push @req, [$URI{$kind}, $_, $BODY{$_}, $kind] for @b;
    }
    $self->{requests} = \@req;
    return $self;
}

sub gateways { @{$_[0]{gateways}} }
sub tenants { @{$_[0]{tenants}} }
sub load { $_[0]{load} }

sub start_load {
    my $self = shift;
    $self->{load} = CostCap::Test::Traffic->new(
        gateways => $self->{gateways}, clients => $self->{clients},
        tenants => $self->{tenants}, requests => $self->{requests},
        actual => $ACTUAL)->start;
    $self->{t0} = $self->{load}{t0};
    $self->{t_begin} = Time::HiRes::time();
    return $self->{load};
}

sub at {
    my ($self, $t) = @_;
    my $left = $self->{t0} + $t - Time::HiRes::time();
    Time::HiRes::sleep($left) if $left > 0;
}

sub mark {
    my ($self, $ev) = @_;
    $self->{ev}{$ev} = Time::HiRes::time();
    return $self->{ev}{$ev};
}

sub keys_of {
    my ($self, $t) = @_;
    my %w = CostCap::Test::window_info();
    return ("costcap:{$t}:total:all", "costcap:{$t}:month:$w{month}");
}

sub counters {
    my ($self, $t) = @_;
    my $r = CostCap::Test::redis();
    return map { $r->cmd('GET', $_) // 0 } $self->keys_of($t);
}

sub finish {
    my ($self, %o) = @_;
    my $name = $self->{name};
    my $l = $self->{load};
    ok($l->stop, "$name: every client finished");
    my $s = $l->summary;
    my $statuses = $o{statuses} // [200, 429, 502, 503];
    my %ok = map { $_ => 1 } @$statuses;
    ok($s->{requests} > 100, "$name: $s->{requests} requests");
    is($s->{unanswered}, 0, "$name: every request answered")
        or diag(join "\n", map { "$_->{start} $_->{err}" }
                           grep { $_->{status} eq 'ERR' } $l->rows);
    is_deeply([sort grep { !$ok{$_} } keys %{$s->{status}}], [],
              "$name: answers " . join(' ', @$statuses) . ' only');
    my $bound = $o{longest} // 3;
    ok($s->{longest} < $bound,
       sprintf "$name: longest answer %.3f s < %s s", $s->{longest}, $bound)
        or diag(Test::More::explain($s->{longest_row}));
    is($s->{bad_estimates}, 0, "$name: every estimate as computed");

    my %want = map { $_ => $l->expected($_) } $self->tenants;
    my %got;
    CostCap::Test::poll_until(sub {
        for my $t ($self->tenants) {
            $got{$t} = [$self->counters($t)];
        }
        return !grep { my $t = $_; grep { $_ != $want{$t} } @{$got{$t}} }
                     $self->tenants;
    }, $o{settle} // 10);
    for my $t ($self->tenants) {
        my @k = $self->keys_of($t);
        for my $i (0 .. $#k) {
            is($got{$t}[$i], $want{$t},
               "$name: $k[$i] = admitted spend $want{$t}");
        }
    }

    my $t0 = $self->{t0};
    diag(sprintf "%s: %d requests; answers %s; longest %.3f s; events %s",
         $name, $s->{requests},
         join(' ', map { "$_:$s->{status}{$_}" } sort keys %{$s->{status}}),
         $s->{longest},
         join(' ', map { sprintf '%s@%.2f', $_, $self->{ev}{$_} - $t0 }
                   sort { $self->{ev}{$a} <=> $self->{ev}{$b} }
                   keys %{$self->{ev} // {}}));
    for my $t ($self->tenants) {
        my @rows = grep { $_->{tenant} eq $t } $l->rows;
        my %by;
        $by{$_->{result}}++ for grep { $_->{status} =~ /^2/ } @rows;
        diag(sprintf "%s: %s: %d requests, 2xx by result %s; counters "
             . "total %s month %s, admitted spend %d", $name, $t,
             scalar @rows,
             join(' ', map { "$_:$by{$_}" } sort keys %by) || '-',
             @{$got{$t}}, $want{$t});
    }
    return $s;
}

sub no_crash {
    my $self = shift;
    for my $n ($self->gateways) {
        my $log = $n->error_log;
        unlike($log, qr/exited on signal/, "$self->{name}: no worker crash");
        unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/,
               "$self->{name}: no alert")
            or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ }
                               split /\n/, $log);
        unlike($log, qr/ (?:dropped|unconfirmed)/,
               "$self->{name}: nothing owed dropped")
            or diag(join "\n", grep { /dropped|unconfirmed/ }
                               split /\n/, $log);
    }
}

sub stop {
    my $self = shift;
    $_->stop for $self->gateways;
    $self->{back_relay}->stop;
}


1;

# SPEC sections 4, 6 and 10 on a Redis Cluster: every script of a job
# declares every key it touches, so each runs on the node of its slot.
# Holds live in their tenant's slot, the pointers costcap:job:ID and the
# expiry index costcap:jobs:expiry in slots of their own (on other nodes):
# a create call, a status call, a callback and an expiry each cross nodes.
# Three masters, one tenant on each; after the jobs end, every counter
# equals the cost of the succeeded jobs, and nothing is left.
#
# sora-2 at its defaults costs 77415 micro-USD; 30 GPU-seconds at 3.50 USD
# an hour cost 29167.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Cluster;
use Test::More;

my $c = CostCap::Test::Cluster->new(masters => 3, replicas => 0)->start;
my @tenants = $c->tags_per_master('t');
my $seeds = $c->seeds;

my %on = map { $_ => $c->master_of_key("{$_}") } @tenants;
isnt($c->master_of_key('costcap:jobs:expiry'), undef, 'the expiry index has a node');
is(scalar(keys %{{ map { $_ => 1 } values %on }}), 3,
   'one tenant on each master: ' . join(' ', @tenants));

my $n = start_nginx(workers => 2, http_config => <<"HTTP", config => <<'LOC',
cost_cap_redis $seeds mode=cluster timeout=2s connect_timeout=2s;
HTTP
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
cost_cap_limit 100 per=day;
cost_cap_limit 1000 per=month;
cost_cap_idempotency $http_idempotency_key;
location = /metrics {
    cost_cap_metrics;
}
location = /v1/videos {
    cost_cap on;
    cost_cap_job create id=id;
    proxy_pass http://backend;
}
location = /v1/short {
    cost_cap on;
    cost_cap_job create id=id ttl=2s on_expiry=refund;
    proxy_pass http://backend/v1/videos;
}
location ~ ^/v1/videos/(?<video>[^/]+)$ {
    cost_cap_job poll id=$video status=status failed=failed succeeded=completed;
    proxy_pass http://backend;
}
location = /hooks/job {
    cost_cap_job webhook id=id status=status failed=failed succeeded=succeeded actual=metrics.predict_time;
}
LOC
    backend_config => <<'BACKEND');
location = /v1/videos {
    return 200 '{"id":"video_${arg_fate}_$request_id","status":"queued"}';
}
location ~ ^/v1/videos/(?<v>video_failed_[^/]*)$ {
    return 200 '{"id":"$v","status":"failed"}';
}
location ~ ^/v1/videos/(?<v>video_ok_[^/]*)$ {
    return 200 '{"id":"$v","status":"completed"}';
}
BACKEND

sub metric {
    my $name = shift;
    my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    my ($v) = ($res->{body} // '') =~ /^\Q$name\E (\S+)$/m;
    return $v // 0;
}

sub day {
    my %w = window_info(time);
    return $c->get("costcap:{$_[0]}:day:$w{day}") // 0;
}

sub headers {
    my ($t, $key) = @_;
    return "X-Tenant: $t\nContent-Type: application/json"
           . ($key ? "\nIdempotency-Key: $key" : '');
}

# -------------------------------------------------------------------------
# 12 jobs per tenant: a third fail (status call), a third succeed (status
# call), a third succeed after 30 GPU-seconds (callback)

my (@jobs, %owed);
for my $t (@tenants) {
    for my $i (0 .. 11) {
        my $fate = $i % 3 == 0 ? 'failed' : 'ok';
        my $r = $n->request(method => 'POST', uri => "/v1/videos?fate=$fate",
                            headers => headers($t, "$t-$i"),
                            body => '{"model":"sora-2"}', timeout => 10);
        my $id = (json_decode($r->{body} // '') // {})->{id};
        push @jobs, { tenant => $t, id => $id, fate => $fate,
                      hook => $i % 3 == 2, status => $r->{status} };
    }
}
is(scalar(grep { $_->{status} == 200 && $_->{id} } @jobs), 36,
   '36 jobs created');
ok(poll_until(sub { metric('cost_cap_jobs_opened_total') == 36 }, 10),
   '36 holds made');
for my $t (@tenants) {
    is(day($t), 12 * 77415, "$t: charged on its master (port $on{$t})");
}
is($c->cmd('ZCARD', 'costcap:jobs:expiry'), 36,
   'the expiry index, on its own node');
my $j = $jobs[0];
is($c->get("costcap:job:$j->{id}"), "costcap:{$j->{tenant}}:",
   'a pointer, on its own node');

for my $j (@jobs) {
    if ($j->{hook}) {
        $n->request(method => 'POST', uri => '/hooks/job',
                    headers => 'Content-Type: application/json',
                    body => qq({"id":"$j->{id}","status":"succeeded",)
                          . qq("metrics":{"predict_time":30}}));
        $owed{$j->{tenant}} += 29167;
    } else {
        $n->request(method => 'GET', uri => "/v1/videos/$j->{id}",
                    headers => headers($j->{tenant}));
        $owed{$j->{tenant}} += 77415 if $j->{fate} eq 'ok';
    }
}

ok(poll_until(sub {
       metric('cost_cap_jobs_settled_total{outcome="failed"}') == 12
       && metric('cost_cap_jobs_settled_total{outcome="succeeded"}') == 24
   }, 10), '12 failed, 24 succeeded');
for my $t (@tenants) {
    is(day($t), $owed{$t}, "$t: the succeeded jobs' cost, $owed{$t}");
}
ok(poll_until(sub { $c->cmd('ZCARD', 'costcap:jobs:expiry') == 0 }, 5),
   'the expiry index empty');
is_deeply([grep { /:job:/ && !/^costcap:job:/ } keys %{ $c->keys('costcap:*') }],
          [], 'no hold left');
ok(poll_until(sub { !grep { /^costcap:job:/ } keys %{ $c->keys('costcap:*') } },
              5), 'no pointer left');
my @idem = grep { /:idem:/ } keys %{ $c->keys('costcap:*') };
is(scalar(grep { /-(0|3|6|9)$/ } @idem), 0,
   'the failed jobs\' idempotency keys freed');
is(scalar @idem, 24, 'the others kept');


# -------------------------------------------------------------------------
# expiry: claimed on the index's node, refunded on the tenant's

my $t = $tenants[1];
my $before = day($t);
is($n->request(method => 'POST', uri => '/v1/short?fate=ok',
               headers => headers($t), body => '{"model":"sora-2"}',
               timeout => 10)->{status}, 200, 'a job with ttl=2s');
ok(poll_until(sub { day($t) == $before + 77415 }, 5), '... charged');
ok(poll_until(sub { metric('cost_cap_jobs_expired_total{policy="refund"}')
                    == 1 }, 10), '... expired');
is(day($t), $before, '... and refunded');

is(metric('cost_cap_settlement_drops_total'), 0, 'nothing dropped');
is(metric('cost_cap_jobs_held_usd'), 0, 'nothing held');

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[emerg\]|exited on signal/,
       'no crash, no alert');
unlike($n->error_log, qr/CROSSSLOT|cost_cap: .*(dropped|malformed)/,
       'no script touched a key of another slot');

done_testing();

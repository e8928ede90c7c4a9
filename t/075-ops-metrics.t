# Issue 16: every metric the Grafana dashboard (ops/grafana/*.json) and the
# Prometheus rules (ops/prometheus/*.yml) read is one a real scrape of
# cost_cap_metrics exposes, with the labels and label values they match
# on.  The scrape follows an admitted, a rejected and an invalid request, a
# refund and an actual-cost adjustment, so that every per-model series has
# samples.  Generic: new metrics and panels are checked as they come.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Ops;

my $ROOT = repo_root();
my @DASHBOARDS = glob "$ROOT/ops/grafana/*.json";
my @RULES = glob "$ROOT/ops/prometheus/*.yml";

my $CONF = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~^flux base=0.5 per_mpx_frame=1.2 default_size=1024x1024;
location = /metrics {
    cost_cap_metrics;
}
location /v1/ {
    cost_cap on;
    cost_cap_limit 0.2 per=day;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://backend;
}
END

my $BACKEND = <<'END';
location /v1/502 { return 502; }
location / {
    add_header X-GPU-Seconds $arg_gpu;
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

sub post {
    my ($n, $uri, $tenant, $body) = @_;
    return $n->request(method => 'POST', uri => $uri, timeout => 5,
                       headers => "X-Tenant: $tenant\n"
                                  . 'Content-Type: application/json',
                       body => $body)->{status};
}


# -------------------------------------------------------------------------
# the files are there and hold queries

ok(@DASHBOARDS >= 1, 'a dashboard in ops/grafana/');
ok(@RULES >= 1, 'a rules file in ops/prometheus/');

my (@queries, %per_file);
for my $f (@DASHBOARDS) {
    my @q = CostCap::Ops::dashboard_queries($f);
    $per_file{$f} = [map { $_->[1] } @q];
    push @queries, map { [($f =~ s{.*/}{}r) . ": $_->[0]", $_->[1]] } @q;
}
for my $f (@RULES) {
    my @q = CostCap::Ops::rule_queries($f);
    $per_file{$f} = [map { $_->[1] } @q];
    push @queries, map { [($f =~ s{.*/}{}r) . ": $_->[0]", $_->[1]] } @q;
}
for my $f (sort keys %per_file) {
    my %n = map { $_ => 1 } map { CostCap::Ops::metric_names($_) }
            @{ $per_file{$f} };
    ok(keys %n >= 5, sprintf('%s reads %d metrics', $f =~ s{.*/}{}r,
                             scalar keys %n));
}


# -------------------------------------------------------------------------
# a real scrape after each kind of request

start_redis();
my $n = start_nginx(http_config => "cost_cap_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT;",
                    config => $CONF, backend_config => $BACKEND);

is(post($n, '/v1/videos', 'acme', '{"model":"sora-2"}'), 200, 'admitted');
is(post($n, '/v1/videos?gpu=100', 'acme', '{"model":"sora-2"}'), 200,
   'admitted, actual cost above the estimate');
is(post($n, '/v1/videos?gpu=0.5', 'acme', '{"model":"flux"}'), 200,
   'admitted, actual cost below the estimate');
is(post($n, '/v1/videos', 'acme', '{"model":"sora-2"}'), 429, 'rejected');
is(post($n, '/v1/videos', 'acme', '{"model":"nope"}'), 400, 'invalid');
is(post($n, '/v1/502', 'globex', '{"model":"flux"}'), 502, 'refunded');

my $res = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
is($res->{status}, 200, 'scrape');
my $scrape = CostCap::Ops::parse_scrape($res->{body} // '');
is_deeply($scrape->{bad}, [], 'every line of the scrape understood');

# the requests above left their mark (so the label checks below see
# populated series, not only zeros)
like($res->{body}, qr/^cost_cap_refunded_usd_total\{model="~\^flux"\} 0\.0017/m,
     'the refund is in the scrape');
like($res->{body},
     qr/^cost_cap_calibration_actual_gpu_seconds_total\{model="sora-2"\} 100$/m,
     'the actual GPU-seconds are in the scrape');
like($res->{body}, qr/^cost_cap_requests_total\{result="rejected"\} 1$/m,
     'the rejection is in the scrape');


# -------------------------------------------------------------------------
# every query against the scrape

for my $q (@queries) {
    my ($where, $expr) = @$q;
    my @p = CostCap::Ops::check_expr($scrape, $expr);
    is_deeply(\@p, [], "$where: names, labels and values exposed")
        or diag("expr: $expr");
}

# what the scrape has that nothing reads yet (a note, not a failure)
my %read = map { $_ => 1 }
           map { CostCap::Ops::metric_names($_->[1]) } @queries;
my @unread = grep { !$read{$_} }
             sort keys %{ CostCap::Ops::exposed_names($scrape) };
Test::More::note('exposed but read by no panel or rule: ' . (join(', ', @unread) || 'none'));


# -------------------------------------------------------------------------
# the check finds what is wrong (it is not vacuous)

my %bad = (
    'rate(cost_cap_nope_total[5m])' => qr/cost_cap_nope_total is not exposed/,
    'rate(cost_cap_redis_latency_seconds[5m])'
        => qr/is a histogram: cost_cap_redis_latency_seconds_bucket/,
    'rate(cost_cap_settlement_drops_count[5m])'
        => qr/cost_cap_settlement_drops_count is not exposed/,
    'rate(cost_cap_requests_total{result="refunded"}[5m])'
        => qr/\{result="refunded"\} has no sample/,
    'rate(cost_cap_requests_total{result=~"admitted|nope"}[5m])'
        => qr/\{result="nope"\} has no sample/,
    'rate(cost_cap_requests_total{tenant="acme"}[5m])'
        => qr/has no label tenant/,
    'sum by (tenant) (rate(cost_cap_admitted_usd_total[5m]))'
        => qr/grouping by tenant/,
    'histogram_quantile(0.9, sum by (le) (rate(cost_cap_redis_latency_seconds_sum[5m])))'
        => qr/grouping by le/,
    'up{job="nginx"}' => qr/reads no cost_cap_ metric/,
);
for my $e (sort keys %bad) {
    my @p = CostCap::Ops::check_expr($scrape, $e);
    ok((grep { $_ =~ $bad{$e} } @p), "caught: $e")
        or diag(Test::More::explain(\@p));
}

my @good = (
    'histogram_quantile(0.99, sum by (job, le) (rate(cost_cap_redis_latency_seconds_bucket{instance=~"$instance"}[5m])))',
    'sum(rate(cost_cap_requests_total{result=~"rejected|dry_run_rejected", job="x"}[5m]))',
    'sum by (model) (rate(cost_cap_admitted_usd_total{model="~^flux"}[5m]))',
    'label_values(cost_cap_admitted_usd_total{job=~"$job"}, model)',
);
for my $e (@good) {
    is_deeply([CostCap::Ops::check_expr($scrape, $e)], [], "passes: $e");
}

$n->stop;
unlike($n->error_log, qr/\[alert\]|\[emerg\]|exited on signal/,
       'no crash, no alert');

done_testing();

# make test-ops: the Prometheus rules and the Grafana dashboard of ops/.
#
#   - promtool check rules accepts every rules file;
#   - promtool check metrics accepts a scrape of the module;
#   - promtool test rules passes t/ops/alerts-test.yml (each alert fires on
#     its cause, after its `for`, and not beside it);
#   - the dashboard is importable Grafana JSON: a current schemaVersion,
#     a templated Prometheus data source used by every panel, unique ids,
#     panels on the 24-column grid without overlaps, the rows of issue 16;
#   - every dashboard query, its Grafana variables replaced, is PromQL
#     that promtool parses, and, evaluated by a real Prometheus scraping a
#     real nginx with the module (every 1 s, on loopback), returns data.
#
# PROMTOOL and PROMETHEUS name the binaries (the Makefile unpacks Debian's
# prometheus package into build/prometheus/ without installing it: its
# postinst would start a Prometheus on every address).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";
use CostCap::Test;
use CostCap::Ops;
use JSON::PP ();
use Time::HiRes ();

my $ROOT = repo_root();
my $PROMTOOL = $ENV{PROMTOOL} || 'promtool';
my $PROMETHEUS = $ENV{PROMETHEUS} || 'prometheus';
my @RULES = glob "$ROOT/ops/prometheus/*.yml";
my @DASHBOARDS = glob "$ROOT/ops/grafana/*.json";

sub sh_run {
    my (@cmd) = @_;
    my $sh = join ' ', map { $_ eq '&&' ? $_ : "'$_'" } @cmd;
    my $out = qx{$sh 2>&1};
    return ($? == 0, $out);
}

sub slurp { CostCap::Test::_slurp(@_) }


# -------------------------------------------------------------------------
# promtool

ok(@RULES, 'rules files: ' . join(' ', map { s{.*/}{}r } @RULES));
{
    my ($ok, $out) = sh_run($PROMTOOL, 'check', 'rules', @RULES);
    ok($ok, 'promtool check rules');
    Test::More::note($out);
    diag($out) unless $ok;
}
{
    my ($ok, $out) = sh_run('cd', "$ROOT/t/ops", '&&', $PROMTOOL, 'test',
                         'rules', 'alerts-test.yml');
    ok($ok, 'promtool test rules t/ops/alerts-test.yml');
    Test::More::note($out);
    diag($out) unless $ok;
}


# -------------------------------------------------------------------------
# the dashboard's shape

my @ROWS = ('Spend', 'Decisions', 'Refunds and adjustments',
            'Calibration: estimated vs actual GPU-seconds', 'Redis',
            'Settlements', 'Async jobs');

ok(@DASHBOARDS, 'dashboards: ' . join(' ', map { s{.*/}{}r } @DASHBOARDS));

my %QUERIES;        # expr => where

for my $file (@DASHBOARDS) {
    my $name = $file =~ s{.*/}{}r;
    my $d = eval { JSON::PP->new->decode(slurp($file)) };
    ok($d, "$name: JSON") or next;

    ok(($d->{schemaVersion} // 0) >= 36,
       "$name: schemaVersion $d->{schemaVersion} (36 and up)");
    like($d->{uid} // '', qr/^[a-zA-Z0-9_-]{1,40}$/, "$name: uid");
    ok(length($d->{title} // ''), "$name: title");
    ok(!defined $d->{id}, "$name: no id of a Grafana instance");

    my @vars = @{ $d->{templating}{list} // [] };
    my ($ds) = grep { ($_->{type} // '') eq 'datasource' } @vars;
    ok($ds && $ds->{query} eq 'prometheus',
       "$name: a templated Prometheus data source");
    my $dsref = $ds ? "\${$ds->{name}}" : '?';

    my (@panels, %ids, @rows, @bad_ds, @bad_grid, @no_targets);
    my $walk;
    $walk = sub { for (@_) { push @panels, $_; $walk->(@{ $_->{panels} // [] }) } };
    $walk->(@{ $d->{panels} // [] });

    for my $p (@panels) {
        $ids{ $p->{id} // 'none' }++;
        my $g = $p->{gridPos} // {};
        push @bad_grid, $p->{title}
            unless defined $g->{x} && defined $g->{y} && $g->{w} && $g->{h}
                   && $g->{x} >= 0 && $g->{x} + $g->{w} <= 24;
        if ($p->{type} eq 'row') {
            push @rows, $p->{title};
            next;
        }
        for my $ref ($p->{datasource}, map { $_->{datasource} }
                                           @{ $p->{targets} // [] }) {
            push @bad_ds, $p->{title}
                unless ref $ref && ($ref->{uid} // '') eq $dsref
                       && ($ref->{type} // '') eq 'prometheus';
        }
        my @t = @{ $p->{targets} // [] };
        my %refs = map { ($_->{refId} // '') => 1 } @t;
        push @no_targets, $p->{title}
            unless @t && keys %refs == @t
                   && !grep { !length($_->{expr} // '') } @t;
        $QUERIES{ $_->{expr} } //= "$name: \"$p->{title}\" $_->{refId}"
            for @t;
    }
    for my $v (grep { ($_->{type} // '') eq 'query' } @vars) {
        push @bad_ds, "variable $v->{name}"
            unless ($v->{datasource}{uid} // '') eq $dsref;
    }

    is_deeply([grep { $ids{$_} > 1 } sort keys %ids], [],
              "$name: panel ids unique");
    is_deeply(\@bad_ds, [], "$name: every panel, target and variable uses "
              . "the data source variable $dsref");
    is_deeply(\@bad_grid, [], "$name: every panel on the 24-column grid");
    is_deeply(\@no_targets, [],
              "$name: every panel has queries, with distinct refIds");

    # no two panels share a grid cell
    my (%cell, @overlap);
    for my $p (@panels) {
        my $g = $p->{gridPos};
        for my $x ($g->{x} .. $g->{x} + $g->{w} - 1) {
            for my $y ($g->{y} .. $g->{y} + $g->{h} - 1) {
                push @overlap, "$p->{title} / $cell{$x,$y}"
                    if $cell{$x,$y};
                $cell{$x,$y} //= $p->{title};
            }
        }
    }
    is_deeply([sort keys %{{ map { $_ => 1 } @overlap }}], [],
              "$name: no panels overlap");
    is_deeply(\@rows, \@ROWS, "$name: rows @{[ scalar @ROWS ]}, in order");
    ok(keys %QUERIES >= 20, "$name: " . keys(%QUERIES) . ' queries');
}


# -------------------------------------------------------------------------
# every query is PromQL (Grafana's variables replaced as Grafana would)

my %GRAFANA = ('$__rate_interval' => '1m', '$__range' => '2m',
               '$__interval' => '15s');

sub promql {
    my $e = shift;
    $e =~ s/(\$__[a-z_]+)/$GRAFANA{$1} \/\/ die "no value for $1\n"/ge;
    $e =~ s/\$(job|instance|model)\b/.*/g;
    die "unreplaced variable in $e\n" if $e =~ /\$/;
    return $e;
}

my $tmp = tmp_dir();
{
    my $i = 0;
    my $y = "groups:\n  - name: dashboard\n    rules:\n";
    for my $e (sort keys %QUERIES) {
        my $json = JSON::PP->new->allow_nonref->encode(promql($e));
        $y .= "      - record: dashboard:query_" . ++$i . "\n"
            . "        expr: $json\n";
    }
    CostCap::Test::_spit("$tmp/dashboard-rules.yml", $y);
    my ($ok, $out) = sh_run($PROMTOOL, 'check', 'rules',
                         "$tmp/dashboard-rules.yml");
    ok($ok, "promtool parses the dashboard's $i queries");
    diag($out) unless $ok;
}


# -------------------------------------------------------------------------
# a real Prometheus scraping a real nginx: every query returns data

my $CONF = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~^flux base=0.5 per_mpx_frame=1.2 default_size=1024x1024;
location = /metrics {
    cost_cap_metrics;
}
location /v1/ {
    cost_cap on;
    cost_cap_limit 1000 per=day;
    cost_cap_actual $upstream_http_x_gpu_seconds;
    proxy_pass http://backend;
}
location /small/ {
    cost_cap on;
    cost_cap_limit 0.01 per=day;
    proxy_pass http://backend/v1/;
}
END

my $BACKEND = <<'END';
location /v1/502 { return 502; }
location / {
    add_header X-GPU-Seconds $arg_gpu;
    return 200 '{"id":"gen_1","status":"queued"}';
}
END

start_redis();
my $n = start_nginx(http_config => 'cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;',
                    config => $CONF, backend_config => $BACKEND);

my @TRAFFIC = (
    ['/v1/videos?gpu=90', '{"model":"sora-2"}', 200],
    ['/v1/videos?gpu=1', '{"model":"flux"}', 200],
    ['/small/videos', '{"model":"sora-2"}', 429],
    ['/v1/videos', '{"model":"nope"}', 400],
    ['/v1/502', '{"model":"flux"}', 502],
);

sub traffic {
    my $ok = 1;
    for my $t (@TRAFFIC) {
        my $r = $n->request(method => 'POST', uri => $t->[0], timeout => 5,
                            headers => "X-Tenant: acme\n"
                                       . 'Content-Type: application/json',
                            body => $t->[1]);
        $ok &&= ($r->{status} // 0) == $t->[2];
    }
    return $ok;
}

ok(traffic(), 'traffic: admitted, actual costs, rejected, invalid, refunded');

# the exposition itself passes promtool's lint (names, HELP, TYPE, units)
{
    my $m = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
    CostCap::Test::_spit("$tmp/scrape.txt", $m->{body} // '');
    my $out = qx{'$PROMTOOL' check metrics < '$tmp/scrape.txt' 2>&1};
    my $ok = $? == 0;
    ok($ok && length($m->{body} // ''),
       'promtool check metrics accepts the scrape')
        or diag($out);
}

my $pport = free_port();
my $pdir = "$tmp/prometheus";
mkdir $pdir;
CostCap::Test::_spit("$pdir/prometheus.yml", <<"END");
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nginx
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:@{[ $n->port ]}']
END

my $ppid = CostCap::Test::_spawn('prometheus', "$pdir/prometheus.out",
    $PROMETHEUS, "--config.file=$pdir/prometheus.yml",
    "--storage.tsdb.path=$pdir/data", "--web.listen-address=127.0.0.1:$pport",
    '--log.level=warn');

sub query {
    my $q = shift;
    my $uri = '/api/v1/query?query=' . join('', map {
        /[A-Za-z0-9_.~-]/ ? $_ : sprintf('%%%02X', ord) } split //, $q);
    my $r = http_request(port => $pport, method => 'GET', uri => $uri,
                         timeout => 5);
    return eval { JSON::PP->new->decode($r->{body}) } // { status => 'none',
        error => $r->{body} // 'no answer' };
}

# at least 4 scrapes of the target (rate() needs 2 in its window), with
# traffic in between
my $started = poll_until(sub {
    my $r = query('count_over_time(cost_cap_requests_total{result="admitted"}[1m])');
    traffic();
    return $r->{status} eq 'success' && @{ $r->{data}{result} }
           && $r->{data}{result}[0]{value}[1] >= 4;
}, 30);
ok($started, 'Prometheus scraped nginx 4 times')
    or diag(slurp("$pdir/prometheus.out"));

my (@empty, @failed);
for my $e (sort { $QUERIES{$a} cmp $QUERIES{$b} } keys %QUERIES) {
    my $r = query(promql($e));
    if ($r->{status} ne 'success') {
        push @failed, "$QUERIES{$e}: " . ($r->{error} // '?');
    } elsif (!@{ $r->{data}{result} }) {
        push @empty, $QUERIES{$e};
    }
}
ok(!@failed, 'every dashboard query evaluates') or diag(join "\n", @failed);
ok(!@empty, 'every dashboard query returns data') or diag(join "\n", @empty);

# a few values that must be there
my $value = sub {
    my ($q, $label, $want) = @_;
    my $r = query(promql($q));
    for my $s (@{ $r->{data}{result} // [] }) {
        return $s->{value}[1] if !defined $label
                                 || ($s->{metric}{$label} // '') eq $want;
    }
    return undef;
};
my ($spend) = grep { $QUERIES{$_} =~ /"Reserved spend per model"/ } keys %QUERIES;
ok(($value->($spend, model => 'sora-2') // 0) > 0,
   'reserved spend of sora-2 above 0 USD/h');
my ($decisions) = grep { $QUERIES{$_} =~ /"Decisions per second by result"/ }
                  keys %QUERIES;
my %res = map { $_->{metric}{result} => $_->{value}[1] }
          @{ query(promql($decisions))->{data}{result} // [] };
is_deeply([sort keys %res],
          [qw(admitted dry_run_rejected error error_open invalid quote
               rejected)],
          'decisions: a series per result');
ok(($res{admitted} // 0) > 0 && ($res{rejected} // 0) > 0,
   'decisions: admitted and rejected above 0 per second');
my ($calib) = grep { $QUERIES{$_} =~ /"Actual \/ estimated GPU-seconds per model"/ }
              keys %QUERIES;
# sora-2 default: 79.62624 estimated GPU-seconds, 90 actual
my $ratio = $value->($calib, model => 'sora-2') // 0;
ok(abs($ratio - 90 / 79.62624) < 0.001,
   "calibration ratio of sora-2 is 90 / 79.62624 ($ratio)");

# the alert expressions evaluate too (whether they fire is
# t/ops/alerts-test.yml's business)
my @rfail;
for my $q (map { CostCap::Ops::rule_queries($_) } @RULES) {
    my $r = query($q->[1]);
    push @rfail, "$q->[0]: " . ($r->{error} // '?')
        unless $r->{status} eq 'success';
}
is_deeply(\@rfail, [], 'every rule expression evaluates');

CostCap::Test::_stop_pid($ppid, 'TERM', 10);
$n->stop;

done_testing();

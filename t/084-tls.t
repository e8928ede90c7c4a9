# SPEC section 9 (TLS): cost_cap_redis_ssl* against TLS-only
# redis-servers (CostCap::Test::Node tls => ..., certificates made with
# openssl at test time by CostCap::Test::TLS).  Verification with the
# right CA (the address checked against the certificate's IP names, or a
# name given by cost_cap_redis_ssl_name) admits and counts; a wrong CA or
# a wrong name is 503 with one clear error line, not one per request;
# verification off trusts any certificate, as proxy_ssl_verify off does;
# client certificates for tls_auth_clients yes (none: 503); TLS with a
# Cluster (mutual TLS, a password) and with Sentinel.  Configuration
# errors fail nginx -t naming the directive.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More import => [qw(subtest done_testing)];
use CostCap::Test::Cluster;
use CostCap::Test::Load;
use CostCap::Test::Node;
use CostCap::Test::Sentinel;
use CostCap::Test::TLS;
use Time::HiRes qw(time);

my $T0 = time;
my $TLS = CostCap::Test::TLS->shared;
my ($CA, $OTHER_CA) = ($TLS->ca, $TLS->other_ca);
my ($CRT, $KEY) = ($TLS->file('client.crt'), $TLS->file('client.key'));

my $SORA = 'cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 '
         . 'default_size=1280x720 default_seconds=4 max_seconds=12;';

my $CONF = <<"END";
location /v1/ {
    cost_cap on;
    cost_cap_on_error closed;
    cost_cap_tenant \$http_x_tenant;
    cost_cap_limit 0.15483 per=day;
    $SORA
    proxy_pass http://backend;
}
END

my @REQ = (method => 'POST', uri => '/v1/videos',
           body => '{"model":"sora-2"}');

sub req {
    my ($n, $tenant) = @_;
    return $n->request(@REQ, timeout => 5,
                       headers => "X-Tenant: $tenant\n"
                                  . 'Content-Type: application/json');
}

sub day_key { 'costcap:{' . $_[0] . '}:day:' . {window_info()}->{day} }

# $allow: lines NGINX's own SSL layer logs at crit (a TLS alert NGINX
# 1.22 does not know, as for proxy_pass to such a server)
sub no_crash {
    my ($n, $name, $allow) = @_;
    my $log = $n->error_log;
    $log =~ s/^.*$allow.*\n//mg if $allow;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/, "$name: no alert")
        or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ }
                           split /\n/, $log);
}

sub count { my ($log, $re) = @_; return scalar(() = $log =~ /$re/g) }

# one worker: "once per reconnect cycle" is per worker.  Timeouts of 2 s:
# the defaults (100 ms) leave a TLS handshake and Redis's on a loaded
# machine no margin (a 503 of a connect timed out, then of the backoff)
sub gateway {
    my ($redis, $ssl) = @_;
    return start_nginx(http_config => "cost_cap_redis $redis timeout=2s "
                                      . "connect_timeout=2s;\n$ssl",
                       config => $CONF, workers => 1);
}

sub ssl {
    my (%o) = @_;
    my $t = "cost_cap_redis_ssl on;\n";
    $t .= "cost_cap_redis_ssl_$_ $o{$_};\n" for sort keys %o;
    return $t;
}

# the three requests of a tenant with a cap of two: 200 200 429, counted
sub capped {
    my ($n, $tenant, $node, $name) = @_;
    my @st = map { req($n, $tenant)->{status} } 1 .. 3;
    is("@st", '200 200 429', "$name: 200 200 429");
    is($node->cmd('GET', day_key($tenant)), 154830,
       "$name: counted on " . ($node->can('addr') ? $node->addr : 'it'));
}

# ten requests refused, and the log's lines
sub refused {
    my ($n, $name, $allow) = @_;
    my @st = map { req($n, 'refused')->{status} } 1 .. 10;
    is_deeply([grep { $_ != 503 } @st], [], "$name: 503 every time");
    $n->stop;
    no_crash($n, $name, $allow);
    return $n->error_log;
}


subtest 'nginx -t: cost_cap_redis_ssl* errors' => sub {
    my @bad = (
        [ssl(verify => 'on'), 'no "cost_cap_redis_ssl_trusted_certificate" '
                              . 'for "cost_cap_redis_ssl_verify"'],
        [ssl(certificate => $CRT), 'no "cost_cap_redis_ssl_certificate_key" '
                                   . "is defined for certificate \"$CRT\""],
        [ssl(verify => 'on', trusted_certificate => '/nonexistent/ca.crt'),
         '/nonexistent/ca.crt'],
        # NGINX's own bitmask parser names the value and the line
        [ssl(protocols => 'TLSv9'), 'invalid value "TLSv9" in '],
        [ssl(verify => 'maybe'), 'invalid value "maybe" in '
                                 . '"cost_cap_redis_ssl_verify"'],
    );
    for my $b (@bad) {
        my ($conf, $want) = @$b;
        my ($ok, $out) = CostCap::Test::Nginx->new(
            http_config => "cost_cap_redis 127.0.0.1:6379;\n$conf",
            config => $CONF)->test_config;
        (my $name = $conf) =~ s/\n/ /g;
        ok(!$ok, "$name: nginx -t fails");
        like($out, qr/\Q$want\E/, "... $want");
    }
    my ($ok, $out) = CostCap::Test::Nginx->new(
        http_config => "cost_cap_redis 127.0.0.1:6379;\n",
        config => $CONF . "cost_cap_redis_ssl on;\n")->test_config;
    ok(!$ok && $out =~ /"cost_cap_redis_ssl" directive is not allowed here/,
       'cost_cap_redis_ssl in a server block: not allowed here');
    ($ok, $out) = CostCap::Test::Nginx->new(
        http_config => "cost_cap_redis 127.0.0.1:6379;\n"
            . ssl(verify => 'on', trusted_certificate => $CA,
                  verify_depth => 2, name => 'redis.test',
                  certificate => $CRT, certificate_key => $KEY,
                  protocols => 'TLSv1.2 TLSv1.3'),
        config => $CONF)->test_config;
    ok($ok, 'every cost_cap_redis_ssl directive: nginx -t passes')
        or diag($out);
};


subtest 'one TLS node: the right CA, a wrong CA, names' => sub {
    my $s = CostCap::Test::Node->new(name => 'tls', tls => $TLS)->start;
    my $a = $s->addr;

    my $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA));
    capped($n, 'ip', $s, 'verified, 127.0.0.1 in the IP names');
    $n->stop;
    no_crash($n, 'right CA');
    unlike($n->error_log, qr/\[error\]/, 'right CA: no error logged');

    $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA,
                         name => 'redis.test'));
    capped($n, 'named', $s,
           'verified as redis.test (cost_cap_redis_ssl_name)');
    $n->stop;
    no_crash($n, 'ssl_name');

    $n = gateway("localhost:" . $s->port,
                 ssl(verify => 'on', trusted_certificate => $CA));
    capped($n, 'host', $s, 'localhost:PORT verified as localhost');
    $n->stop;

    $n = gateway($a, ssl(verify => 'on', trusted_certificate => $OTHER_CA));
    my $log = refused($n, 'wrong CA');
    is(count($log, qr/cost_cap: redis \Q$a\E: SSL certificate verify error: /),
       1, 'wrong CA: one "SSL certificate verify error" line for 10 requests')
        or diag($log);
    like($log, qr/SSL certificate verify error: \(\d+:[^)]+\)/,
         '... with OpenSSL\'s reason');
    ok(count($log, qr/\[error\]/) <= 3,
       count($log, qr/\[error\]/) . ' [error] lines in all');

    $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA,
                         name => 'other.example'));
    $log = refused($n, 'a name the certificate lacks');
    is(count($log, qr/SSL certificate does not match "other\.example"/), 1,
       'one "SSL certificate does not match" line for 10 requests')
        or diag($log);

    $n = gateway($a, '');
    $log = refused($n, 'plain TCP to a TLS port');
    ok(count($log, qr/\[error\]/) <= 3,
       'plain TCP: ' . count($log, qr/\[error\]/) . ' [error] lines');
    is($s->cmd('GET', day_key('refused')), undef, 'nothing counted meanwhile');
};


subtest 'a server certificate of another name' => sub {
    my $w = CostCap::Test::Node->new(name => 'tls-wrong', tls => $TLS,
                                     tls_cert => 'wrong_name')->start;
    my $a = $w->addr;
    my $reader = $w->connect(tls => { name => 'wrong.example' });
    my $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA));
    my $log = refused($n, 'wrong name');
    is(count($log, qr/cost_cap: redis \Q$a\E: SSL certificate does not /
                    . qr/match "127\.0\.0\.1"/), 1,
       'wrong name: one clear line for 10 requests') or diag($log);

    $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA,
                         name => 'wrong.example'));
    capped($n, 'wrongname', $reader, 'cost_cap_redis_ssl_name wrong.example');
    $n->stop;
    no_crash($n, 'ssl_name wrong.example');

    # as proxy_ssl_verify off: encrypted, not authenticated
    $n = gateway($a, ssl());
    capped($n, 'noverify', $reader, 'verification off: any certificate');
    $n->stop;
    no_crash($n, 'verify off');
};


subtest 'client certificates (tls_auth_clients yes)' => sub {
    my $m = CostCap::Test::Node->new(name => 'mtls', tls => $TLS,
                                     tls_auth_clients => 'yes')->start;
    my $a = $m->addr;
    my $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA,
                            certificate => $CRT, certificate_key => $KEY));
    capped($n, 'mtls', $m, 'with the client certificate');
    $n->stop;
    no_crash($n, 'client certificate');

    $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA));
    my $ssl_crit =
        qr/\[crit\] \d+#\d+: SSL_(read|write|do_handshake)\(\) failed \(SSL:/;
    my $log = refused($n, 'no client certificate', $ssl_crit);
    like($log, qr/cost_cap: redis \Q$a\E: /, 'no client certificate: logged');
    ok(count($log, qr/\[error\]/) <= 4,
       count($log, qr/\[error\]/) . ' [error] lines for 10 requests');

    $n = gateway($a, ssl(verify => 'on', trusted_certificate => $CA,
                         certificate => $TLS->file('other_client.crt'),
                         certificate_key => $TLS->file('other_client.key')));
    refused($n, 'a client certificate of another CA', $ssl_crit);
    is($m->cmd('GET', day_key('refused')), undef, 'nothing counted meanwhile');
};


subtest 'TLS under load: 2 workers, 32 clients, counters exact' => sub {
    my $s = CostCap::Test::Node->new(name => 'tls-load', tls => $TLS,
                                     tls_auth_clients => 'yes')->start;
    my %body = ('{"model":"sora-2","seconds":1}' => 19354,
                '{"model":"sora-2"}' => 77415,
                '{"model":"sora-2","size":"1920x1080","seconds":8}' => 348365,
                '{"model":"sora-2","size":"720x1280","n":2}' => 154829);
    my $n = start_nginx(
        http_config => 'cost_cap_redis ' . $s->addr
            . " timeout=3s connect_timeout=2s;\n"
            . ssl(verify => 'on', trusted_certificate => $CA,
                  certificate => $CRT, certificate_key => $KEY)
            . "map \$http_x_tenant \$cap { load 20; default 1000000; }\n",
        config => $CONF =~ s/0\.15483 per=day/\$cap per=day/r,
        workers => 2, log_level => 'warn');
    my $l = CostCap::Test::Load->new(ports => [$n->port], clients => 32,
        requests => 24, duration => 60, timeout => 20,
        tenants => ['load', 'free'], bodies => \%body)->start;
    ok($l->wait(70), 'every client finished in time');
    my $st = $l->status;
    is(scalar $l->rows, 32 * 24, 'every request answered');
    is_deeply([sort grep { !/^(200|429)$/ } keys %$st], [],
              'every response is 200 or 429')
        or diag(Test::More::explain($st));
    is($l->bad_estimates, 0, 'every estimate as computed');
    my %sum = map { $_ => $l->admitted($_) } 'load', 'free';
    ok($sum{load} <= 20e6 && $sum{load} >= 20e6 - 348365,
       "load: admitted $sum{load}, at the cap of 20 USD within the largest "
       . 'estimate');
    is($s->cmd('GET', day_key($_)) // 0, $sum{$_},
       "$_: counter = admitted spend") for sort keys %sum;
    diag(sprintf 'TLS load: %d requests (%d 200, %d 429), admitted %s, '
         . 'max latency %.3f s', scalar $l->rows, $st->{200} // 0,
         $st->{429} // 0, join('/', map { $sum{$_} } sort keys %sum),
         $l->max_latency);
    $n->stop;
    no_crash($n, 'TLS load');
};


subtest 'TLS Cluster (mutual TLS, a password)' => sub {
    my $t = time;
    my $cl = CostCap::Test::Cluster->new(tls => $TLS, password => 'c-pw',
                                         tls_auth_clients => 'yes')->start;
    diag(sprintf 'TLS cluster started: %.2f s', time - $t);
    my @m = $cl->masters;
    my @tags = $cl->tags_per_master('tls');
    my $n = start_nginx(
        http_config => "cost_cap_redis 127.0.0.1:$m[0] mode=cluster "
            . "password=c-pw timeout=2s connect_timeout=2s;\n"
            . ssl(verify => 'on', trusted_certificate => $CA,
                  certificate => $CRT, certificate_key => $KEY),
        config => $CONF, workers => 2);
    capped($n, $tags[$_], $cl->node($m[$_]), "tenant $tags[$_] on master $_")
        for 0 .. 2;
    my $slot = $cl->slot_of("{$tags[0]}");
    $cl->migrate_slot($slot, $m[1])->run;
    is(req($n, $tags[0])->{status}, 429, 'after a migration over TLS: '
                                         . 'still capped (MOVED followed)');
    is($cl->node($m[1])->cmd('GET', day_key($tags[0])), 154830,
       'the counter moved with its slot');
    $n->stop;
    no_crash($n, 'TLS cluster');
    unlike($n->error_log, qr/SSL|certificate/, 'no TLS error logged');
    $cl->stop;
};


subtest 'TLS Sentinel' => sub {
    my $t = time;
    my $ts = CostCap::Test::Sentinel->new(name => 'tls', tls => $TLS)
                                     ->start;
    diag(sprintf 'TLS Sentinel group started: %.2f s', time - $t);
    my $n = start_nginx(
        http_config => 'cost_cap_redis ' . $ts->sentinel_addrs
            . " mode=sentinel master=tls timeout=2s connect_timeout=2s;\n"
            . ssl(verify => 'on', trusted_certificate => $CA,
                  certificate => $CRT, certificate_key => $KEY),
        config => $CONF, workers => 1);
    capped($n, 'tsen', $ts->master, 'through Sentinels over TLS');
    my $old = $ts->master_addr;
    my $new = $ts->failover(old_replica => 'convert');
    ok(poll_until(sub { req($n, 'tsen2')->{status} == 200 }, 10),
       "after a failover over TLS: admitted by $new");
    is($ts->node_at($new)->cmd('GET', day_key('tsen2')), 77415,
       'counted on the new master');
    like($n->error_log, qr/\+switch-master tls \S+ \d+ \S+ \d+/,
         'the switch came through the TLS subscription');
    $n->stop;
    no_crash($n, 'TLS Sentinel');
    $ts->stop;
};

diag(sprintf 'total %.1f s', time - $T0);

done_testing();

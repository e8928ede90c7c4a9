# SPEC section 5 (last line) and section 6: no input makes the module
# read or write another tenant's keys; keys only ever have the shape
# costcap:{TENANT}:WINDOW:PERIOD.  Redis credentials never appear in logs,
# responses or `nginx -t` output.
#
# sora-2 at its defaults costs 77415 micro-USD (0.077415 USD).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

my $LIMITS = <<'END';
cost_cap_limit 0.2 per=day;
cost_cap_limit 1 per=month;
cost_cap_limit 5 per=total;
END

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
END

my $CONF = <<"END";
cost_cap_tenant \$http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;

location /v1/ {
    cost_cap on;
$LIMITS
    proxy_pass http://backend;
}
location /all/ {
    cost_cap on;
    cost_cap_limit 100 per=minute;
    cost_cap_limit 100 per=hour;
    cost_cap_limit 100 per=day;
    cost_cap_limit 100 per=week;
    cost_cap_limit 100 per=month;
    cost_cap_limit 100 per=total;
    proxy_pass http://backend;
}
END

add_default(http_config => $HTTP);
add_default(config => $CONF);
add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(request_body => '{"model":"sora-2"}');

# tenant B (globex) has a spend no request of A can produce (123457 is
# not a multiple of 77415): its keys are set in each block's redis_cmd

run_tests();


# -------------------------------------------------------------------------
# a mixed run, then every key in Redis matched against the schema

my %PERIOD = (
    minute => qr/^\d{12}$/, hour => qr/^\d{10}$/, day => qr/^\d{8}$/,
    week => qr/^\d{4}-W\d{2}$/, month => qr/^\d{6}$/, total => qr/^all$/,
);

{
    my $name = 'mixed run: every key has the schema and a sent tenant';
    start_redis();
    my $n = start_nginx(http_config => $HTTP, config => $CONF);
    my @valid = ('acme', 'a', 'a:day', 'a:day:x', 'A', 'acme:', ':acme',
                 'a._~:@+=/-b', 'costcap', 'x' x 128,
                 'globex', '0', '-', 'all', 'total:all');
    my @invalid = ('acme}:day:x', 'acme}', '{acme}', 'a}:total:all',
                   'a{b}', 'a*', 'a b', "a\tb", 'x' x 129, 'a?', 'a,b',
                   "\xc3\xa9", 'a%7d', 'costcap:{a}');
    my %sent_ok;
    for my $i (1 .. 3) {
        for my $t (@valid, @invalid) {
            for my $uri ('/v1/videos', '/all/videos') {
                my $res = $n->request(method => 'POST', uri => $uri,
                    headers => "X-Tenant: $t\n"
                               . "Content-Type: application/json",
                    body => '{"model":"sora-2"}');
                $sent_ok{$t}++ if ($res->{status} // 0) == 200;
            }
        }
    }
    my %valid = map { $_ => 1 } @valid;
    is_deeply([sort grep { !$valid{$_} } keys %sent_ok], [],
              "$name: no invalid tenant admitted");
    is(scalar(keys %sent_ok), scalar(@valid),
       "$name: every valid tenant admitted");

    # Redis keys, all databases
    my (@keys, @bad);
    my $info = redis()->cmd('INFO', 'keyspace');
    my @dbs = $info =~ /^db(\d+):/mg;
    for my $db (@dbs) {
        redis()->cmd('SELECT', $db);
        my $cursor = 0;
        do {
            my $r = redis()->cmd('SCAN', $cursor, 'COUNT', 1000);
            $cursor = $r->[0];
            push @keys, map { [$db, $_] } @{$r->[1]};
        } while ($cursor ne '0');
    }
    redis()->cmd('SELECT', 0);
    my (%seen, %sum);
    for my $k (@keys) {
        my ($db, $key) = @$k;
        # a reservation's marker (SPEC section 9), for resends
        next if $db == 0 && $key =~ /^costcap:\{([^}]*)\}:op:[0-9a-f]{24}$/
                && $valid{$1};
        my ($t, $w, $p) = $key =~ /^costcap:\{([^}]*)\}:([a-z]+):([^:]*)$/;
        if ($db != 0 || !defined $t || !$valid{$t} || !$PERIOD{$w}
            || $p !~ $PERIOD{$w})
        {
            push @bad, "db$db $key";
            next;
        }
        $seen{$t}{$w} = 1;
        $sum{$t}{$w} += redis()->cmd('GET', $key);
    }
    ok(@keys > 0, "$name: " . @keys . ' keys');
    is_deeply(\@bad, [], "$name: every key matches the schema");
    # /v1/: day, month, total; /all/: every window
    my @wrong;
    for my $t (@valid) {
        my @w = sort keys %{$seen{$t} || {}};
        push @wrong, "$t: windows @w" unless "@w" eq join ' ', sort keys %PERIOD;
        # every admitted request (77415 each) in day and total, and only
        # those: the day cap of /v1/ rejects some
        my $exp = 77415 * $sent_ok{$t};
        push @wrong, "$t: day $sum{$t}{day} total $sum{$t}{total}, "
                     . "expected $exp"
            unless $sum{$t}{day} == $exp && $sum{$t}{total} == $exp;
    }
    is_deeply(\@wrong, [], "$name: each tenant has its keys and is charged "
                           . "for its own requests only");
    $n->stop;
    unlike($n->error_log, qr/exited on signal|\[alert\]|\[crit\]/,
           "$name: no crash, no alert");
}


{
    my $name = 'pipelined requests of several tenants on one connection';
    start_redis();
    my $n = start_nginx(http_config => $HTTP, config => $CONF);
    my $req = sub {
        my ($t, $b, $close) = @_;
        return "POST /v1/videos HTTP/1.1\r\nHost: localhost\r\n"
             . "X-Tenant: $t\r\nContent-Type: application/json\r\n"
             . 'Content-Length: ' . length($b) . "\r\n"
             . ($close ? "Connection: close\r\n" : '') . "\r\n$b";
    };
    # one write: acme, a bad body for globex, initech, a bad tenant, acme
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $n->port, Proto => 'tcp')
        or die "connect: $!";
    syswrite $sock, $req->('acme', '{"model":"sora-2"}')
                  . $req->('globex', '{"model":')
                  . $req->('initech', '{"model":"sora-2","seconds":1}')
                  . $req->('acme}:day:x', '{"model":"sora-2"}')
                  . $req->('acme', '{"model":"sora-2"}', 1);
    my $raw = http_read($sock, 5)->{raw} // '';
    my @st = $raw =~ m{HTTP/1\.1 (\d{3})}g;
    is("@st", '200 400 200 400 200', "$name: statuses in order");
    my @est = $raw =~ /^X-Cost-Cap-Estimate: (\S+)\r$/mg;
    is("@est", '0.077415 0.019354 0.077415', "$name: estimates in order");
    my %w = window_info();
    my $keys = [grep { !/:op:/ } @{redis()->cmd('KEYS', '*')}];
    is_deeply({ map { $_ => redis()->cmd('GET', $_) } @$keys },
              { "costcap:{acme}:day:$w{day}" => 154830,
                "costcap:{acme}:month:$w{month}" => 154830,
                "costcap:{acme}:total:all" => 154830,
                "costcap:{initech}:day:$w{day}" => 19354,
                "costcap:{initech}:month:$w{month}" => 19354,
                "costcap:{initech}:total:all" => 19354 },
              "$name: each request charged to its own tenant");
    $n->stop;
    unlike($n->error_log, qr/exited on signal|\[alert\]|\[crit\]/,
           "$name: no crash, no alert");
}


# -------------------------------------------------------------------------
# credentials: never in logs, responses or nginx -t output

my $SECRET = 'SeCrEt123';

sub secret_free {
    my ($text, $what) = @_;
    unlike($text // '', qr/\Q$SECRET\E/, "$what: no password");
}

for my $case (
    [ 'AUTH fails (Redis wants another password)',
      "--requirepass 0therPass", "password=$SECRET", 503 ],
    [ 'AUTH fails (ACL user, wrong password)',
      "--requirepass 0therPass", "user=gw password=$SECRET", 503 ],
    [ 'AUTH succeeds', "--requirepass $SECRET", "password=$SECRET", 200 ],
    [ 'AUTH not needed but sent', '', "password=$SECRET", 0 ],
)
{
    my ($name, $rargs, $params, $status) = @$case;
    start_redis(args => $rargs);
    my $n = start_nginx(
        http_config => "cost_cap_redis 127.0.0.1:\$TEST_NGINX_REDIS_PORT "
                       . "$params timeout=300ms;\n",
        config => $CONF . <<'END',
location = /metrics {
    cost_cap_metrics;
}
END
        log_level => 'debug');
    my @res;
    for my $i (1 .. 3) {
        push @res, $n->request(method => 'POST', uri => '/all/videos',
            headers => "X-Tenant: acme\nContent-Type: application/json",
            body => '{"model":"sora-2"}');
    }
    # a request that fails before Redis, and one with the secret as tenant
    push @res, $n->request(method => 'POST', uri => '/v1/videos',
        headers => "X-Tenant: acme\nContent-Type: application/json",
        body => '{"model":');
    push @res, $n->request(method => 'GET', uri => '/metrics');
    my @st = map { $_->{status} // 0 } @res[0 .. 2];
    if ($status) {
        is("@st", "$status $status $status", "$name: status");
    } else {
        # Redis 7 without requirepass answers AUTH with an error
        ok((grep { $_ == 200 || $_ == 503 } @st) == 3, "$name: answered")
            or diag("@st");
        Test::More::note("$name: statuses @st");
    }
    secret_free(join("\n", map { $_->{raw} // $_->{error} } @res),
                "$name: responses (headers and bodies)");
    $n->stop;
    secret_free($n->error_log, "$name: error.log at debug level");
    secret_free(CostCap::Test::_slurp($n->dir . '/nginx.out'),
                "$name: nginx stderr");
    secret_free(CostCap::Test::_slurp($n->dir . '/access.log'),
                "$name: access.log");
    like($n->error_log, qr/\[debug\]/, "$name: debug log on")
        if $status;
    like($n->error_log, qr/\[error\]/, "$name: AUTH failure logged")
        if $status == 503;
}

done_testing();

__DATA__

=== TEST 1: tenant A at its cap: 429 with A's numbers; B's keys untouched
--- redis_cmd
SET costcap:{acme}:day:{day} 200000
SET costcap:{globex}:day:{day} 123457
SET costcap:{globex}:month:{month} 123457
SET costcap:{globex}:total:all 123457
--- requests
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'day', limit => 0.2, spent => 0.2, estimate => 0.077415,
    reset_in => ANY_INT) },
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'acme',
    window => 'day', limit => 0.2, spent => 0.2, estimate => 0.077415,
    reset_in => ANY_INT) },
--- redis
costcap:{acme}:day:{day} 200000
!costcap:{acme}:month:{month}
!costcap:{acme}:total:all
costcap:{globex}:day:{day} 123457
costcap:{globex}:month:{month} 123457
costcap:{globex}:total:all 123457
--- redis_keys: 4
--- backend_hits: 0


=== TEST 2: B is admitted against its own spend, A's keys untouched
# globex: 50000 + 77415 = 127415 of 0.2: 0.072585 left; once more crosses
--- redis_cmd
SET costcap:{acme}:day:{day} 200000
SET costcap:{globex}:day:{day} 50000
--- more_headers
X-Tenant: globex
Content-Type: application/json
--- requests
{ code => 200, response_headers => "X-Cost-Cap-Remaining: 0.072585" },
[429, undef, 'X-Tenant: acme'],
{ code => 429, json => err('cost_cap_exceeded', undef, tenant => 'globex',
    window => 'day', limit => 0.2, spent => 0.127415, estimate => 0.077415,
    reset_in => ANY_INT) },
--- redis
costcap:{acme}:day:{day} 200000
!costcap:{acme}:month:{month}
costcap:{globex}:day:{day} 127415
costcap:{globex}:month:{month} 77415
costcap:{globex}:total:all 77415
--- redis_keys: 4
--- backend_hits: 1


=== TEST 3: crafted tenant names that would reach another key: tenant_invalid
--- redis_cmd
SET costcap:{acme}:day:{day} 1
SET costcap:{globex}:day:{day} 123457
--- requests
map { { code => 400, headers => "X-Tenant: $_", label => $_,
        json => err('tenant_invalid', 'tenant') } }
    'acme}:day:x', 'acme}', '{acme}', 'globex}:day:' . $W{day},
    'x}:total:all', '}', '{', '{}', 'acme}:day:{x', 'a{globex}',
    'globex}:day:' . $W{day} . ':x{', 'acme*', 'acme?', 'acme[a]'
--- redis
costcap:{acme}:day:{day} 1
costcap:{globex}:day:{day} 123457
--- redis_keys: 2
--- backend_hits: 0


=== TEST 4: 'a' at its cap; 'a:day', 'a:', ':a', 'A' are other tenants
--- redis_cmd
SET costcap:{a}:day:{day} 200000
SET costcap:{globex}:day:{day} 123457
SET costcap:{globex}:month:{month} 123457
SET costcap:{globex}:total:all 123457
--- requests
{ code => 429, headers => 'X-Tenant: a', label => 'a at its cap',
  json => err('cost_cap_exceeded', undef, tenant => 'a', window => 'day',
    limit => 0.2, spent => 0.2, estimate => 0.077415, reset_in => ANY_INT) },
map({ { code => 200, headers => "X-Tenant: $_", label => $_,
        response_headers => 'X-Cost-Cap-Remaining: 0.122585' } }
    'a:day', 'a:', ':a', 'A', 'a:day:' . $W{day}, 'a:total:all', 'a/day',
    'a-'),
{ code => 429, headers => 'X-Tenant: a', label => 'a still at its cap',
  json => err('cost_cap_exceeded', undef, tenant => 'a', window => 'day',
    limit => 0.2, spent => 0.2, estimate => 0.077415, reset_in => ANY_INT) },
--- redis
costcap:{a}:day:{day} 200000
!costcap:{a}:month:{month}
!costcap:{a}:total:all
costcap:{a:day}:day:{day} 77415
costcap:{a:}:day:{day} 77415
costcap:{:a}:day:{day} 77415
costcap:{A}:day:{day} 77415
costcap:{a:day:{day}}:day:{day} 77415
costcap:{a:total:all}:total:all 77415
costcap:{a/day}:month:{month} 77415
costcap:{a-}:total:all 77415
costcap:{globex}:day:{day} 123457
--- redis_keys: 28
--- backend_hits: 8


=== TEST 5: the same tenant in another letter case is another tenant
--- redis_cmd
SET costcap:{acme}:day:{day} 200000
SET costcap:{globex}:day:{day} 123457
SET costcap:{globex}:month:{month} 123457
SET costcap:{globex}:total:all 123457
--- requests
[429, undef, 'X-Tenant: acme'],
[200, undef, 'X-Tenant: ACME'],
[200, undef, 'X-Tenant: Acme'],
[429, undef, 'X-Tenant: acme'],
--- redis
costcap:{acme}:day:{day} 200000
costcap:{ACME}:day:{day} 77415
costcap:{Acme}:day:{day} 77415
costcap:{globex}:day:{day} 123457


=== TEST 6: a password typo in nginx -t output: never echoed (another bad parameter)
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=SeCrEt123 timeout=bogus;
--- nginx_t_fail
invalid parameter "timeout=bogus"
qr/\A(?!.*SeCrEt123)/s


=== TEST 7: nginx -t: db= invalid next to a password
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=x password=SeCrEt123;
--- nginx_t_fail
invalid parameter "db=x"
qr/\A(?!.*SeCrEt123)/s


=== TEST 8: nginx -t: an empty password=
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password= user=gw;
--- nginx_t_fail
cost_cap_redis
qr/\A(?!.*SeCrEt123)/s


=== TEST 9: nginx -t: Password= (letter case) is not echoed
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT Password=SeCrEt123;
--- nginx_t_fail
cost_cap_redis
qr/\A(?!.*SeCrEt123)/s


=== TEST 10: nginx -t: a duplicate cost_cap_redis with a password
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=SeCrEt123;
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=SeCrEt123;
--- nginx_t_fail
is duplicate
qr/\A(?!.*SeCrEt123)/s


=== TEST 11: nginx -t: cost_cap_redis with a password at server level
--- http_config
--- config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=SeCrEt123;
--- nginx_t_fail
is not allowed here
qr/\A(?!.*SeCrEt123)/s


=== TEST 12: nginx -t: an unresolvable host next to a password
--- http_config
cost_cap_redis no-such-host.invalid:6379 password=SeCrEt123;
--- nginx_t_fail
cost_cap_redis
qr/\A(?!.*SeCrEt123)/s


=== TEST 13: nginx -t: a bad port next to a password
--- http_config
cost_cap_redis 127.0.0.1:99999 password=SeCrEt123;
--- nginx_t_fail
cost_cap_redis
qr/\A(?!.*SeCrEt123)/s


=== TEST 14: nginx -t: a misspelt password parameter (passwd=)
--- http_config
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT user=gw passwd=SeCrEt123;
--- nginx_t_fail
cost_cap_redis
qr/\A(?!.*SeCrEt123)/s

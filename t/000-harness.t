# The harness itself, against plain nginx (no module loaded).

use strict;
use warnings;

BEGIN { $ENV{COST_CAP_NO_MODULE} = 1 }

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;

run_tests();

# -------------------------------------------------------------------------
# the harness's own races

{
    # a pid file left by a killed nginx is not taken for the new one's
    my $n = CostCap::Test::Nginx->new(config => 'location /t { return 204; }');
    open my $f, '>', $n->dir . '/nginx.pid' or die $!;
    print $f "1\n";
    close $f;
    $n->start;
    my $pid = CostCap::Test::_slurp($n->dir . '/nginx.pid');
    is($pid, "$n->{pid}\n", 'stale pid file: the new one has our pid');
    is($n->request(uri => '/t')->{status}, 204, 'stale pid file: serves');
    $n->stop;
    ok(!$n->running, 'stopped');
}

{
    # a port taken between its choice and nginx's bind: other ports
    my $n = CostCap::Test::Nginx->new(config => 'location /t { return 204; }');
    my $taken = $n->port;
    my $thief = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => $taken, Listen => 1,
                                      ReuseAddr => 1, Proto => 'tcp')
        or die "bind $taken: $!";
    $n->start;
    isnt($n->port, $taken, 'port taken: nginx moved to another one');
    is($n->request(uri => '/t')->{status}, 204, 'port taken: serves');
    $n->stop;
    close $thief;
}

{
    # a Redis port already served by another redis-server: the new one
    # fails, and is not taken for up because the other answers PING
    my $a = start_redis();
    my $b = CostCap::Test::Redis->new(port => $a->{port});
    my $ok = eval { $b->start; 1 };
    ok(!$ok, 'redis on a taken port: start fails');
    like($@ // '', qr/Address already in use/, 'redis: says why');
    ok(!$b->{pid}, 'redis: the failed one is reaped');
    is($a->cmd('PING'), 'PONG', 'redis: the first one still serves');
    stop_redis();
}

{
    # a restart that loads its data is up once it serves, not while it
    # still answers -LOADING (INFO works then, PING does not): 1000 keys
    # loaded 0.5 ms apiece, clients answered meanwhile
    my $r = start_redis();
    $r->cmd('EVAL', "for i = 1, 1000 do redis.call('SET', 'k' .. i, i) end",
            0);
    $r->cmd('SAVE');
    $r->stop('KILL');
    $r = start_redis(port => $r->{port}, args => '--key-load-delay 500 '
                     . '--loading-process-events-interval-bytes 1024');
    my ($pong, $err) = $r->client->try_cmd('PING');
    is($pong // $err, 'PONG', 'redis restarted with data: serves at once');
    is($r->cmd('DBSIZE'), 1000, 'redis: every key loaded');
    $r->cmd('FLUSHALL');
    stop_redis();
    unlink $r->{dir} . '/dump.rdb';
}

{
    # the same for a CostCap::Test::Node (Cluster, Sentinel, TLS nodes)
    require CostCap::Test::Node;
    my $a = CostCap::Test::Node->new(name => 'a')->start;
    my $b = CostCap::Test::Node->new(name => 'b', port => $a->port);
    my $ok = eval { $b->start; 1 };
    ok(!$ok, 'node on a taken port: start fails');
    like($@ // '', qr/Address already in use/, 'node: says why');
    is($a->cmd('PING'), 'PONG', 'node: the first one still serves');
    $a->stop;
}

{
    # a dead port refuses at once, and no server can take it
    my $p = dead_port();
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p,
                                  Proto => 'tcp', Timeout => 2);
    ok(!$c && $!{ECONNREFUSED}, "dead port $p: connection refused")
        or diag("connect: $!");
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
                                  Listen => 1, ReuseAddr => 1,
                                  Proto => 'tcp');
    ok(!$l, 'dead port: cannot be bound by a server');
}

{
    # a file that stops early fails, one that ends with done_testing
    # passes
    my $dir = tmp_dir();
    my $lib = "$FindBin::Bin/lib";
    for my $case ([exit => 'exit 0;', 1], [die => 'die "stop\n";', 1],
                  [done => '', 0])
    {
        my ($what, $code, $fails) = @$case;
        my $f = "$dir/early-$what.t";
        open my $fh, '>', $f or die "$f: $!";
        print $fh "BEGIN { \$ENV{COST_CAP_NO_MODULE} = 1 }\n"
                . "use lib '$lib';\nuse CostCap::Test;\n"
                . "ok(1, 'first');\n$code\nok(1, 'second');\n"
                . "done_testing();\n__DATA__\n\n=== TEST 1: x\n"
                . "--- config\n";
        close $fh;
        my $out = `$^X $f 2>&1`;
        my $st = $?;
        if ($fails) {
            ok($st != 0, "a file that stops early ($what) fails")
                or diag($out);
        } else {
            is($st, 0, 'a file that ends with done_testing passes')
                or diag($out);
        }
    }
}

done_testing();

__DATA__

=== TEST 1: status, headers, body
--- config
location /t {
    add_header X-A "1";
    return 201 "hello";
}
--- request
GET /t
--- error_code: 201
--- response_headers
X-A: 1
!X-B
--- response_body
hello


=== TEST 2: proxy to the default backend, body and JSON
--- config
location / {
    proxy_pass http://backend;
}
--- request
POST /v1/videos
--- more_headers
Content-Type: application/json
--- request_body
{"model":"x"}
--- error_code: 200
--- response_json
{ id => 'gen_1', status => ANY_STR }
--- backend_hits: 1


=== TEST 3: request_body_eval, content length echoed
--- config
location /t {
    return 200 "len=$content_length ct=$content_type";
}
--- request
POST /t
--- more_headers
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"a" x 5000
--- response_body
len=5000 ct=multipart/form-data; boundary=xyz


=== TEST 4: JSON numbers are typed
--- config
location /t {
    default_type application/json;
    return 200 '{"n":5,"s":"5","f":0.077415,"z":null,"t":1}';
}
--- request
GET /t
--- response_json
{ n => 5, s => '5', f => 0.077415, z => undef, t => BETWEEN(0, 2) }


=== TEST 5: redis commands, keys with periods, TTL
--- http_config
# redis port $TEST_NGINX_REDIS_PORT
--- config
location /t { return 204; }
--- redis_cmd
SET costcap:{acme}:day:{day} 42
EXPIRE costcap:{acme}:day:{day} 100
SET "costcap:{acme}:week:{week}" 7
--- request
GET /t
--- error_code: 204
--- redis
costcap:{acme}:day:{day} 42
costcap:{acme}:week:{week} 7
!costcap:{acme}:month:{month}
--- redis_ttl
costcap:{acme}:day:{day} 98 100
costcap:{acme}:week:{week} -1
--- redis_keys: 2


=== TEST 6: several requests in order
--- config
location /t {
    if ($http_x_n = "3") { return 429; }
    return 200 "n=$http_x_n";
}
--- request
GET /t
--- requests
[200, undef, "X-N: 1"],
[200, undef, "X-N: 2"],
{ code => 429, headers => "X-N: 3" },
{ code => 200, headers => "X-N: 4", response_body => "n=4" },


=== TEST 7: nginx -t failure
--- config
location /t { bogus_directive 1; }
--- nginx_t_fail
unknown directive "bogus_directive"


=== TEST 8: nginx -t success
--- config
location /t { return 200; }
--- nginx_t_ok


=== TEST 9: error log
--- config
location /t { return 200 "x"; }
--- request
GET /t/nope/../../../etc
--- error_code: 400
--- error_log
qr/client sent invalid request|invalid/
--- log_level: info


=== TEST 10: reuse: this nginx stays up for the next block
# one connection was the start-up probe, so this request is the 2nd
--- config
location /t { return 200 "$connection"; }
--- request
GET /t
--- response_body
2
--- reuse


=== TEST 11: reuse: same nginx, 3rd connection
--- config
location /t { return 200 "$connection"; }
--- request
GET /t
--- response_body
3


=== TEST 12: response_headers_like, absent header
--- config
location /t {
    add_header X-Day "$time_iso8601";
    return 200;
}
--- request
GET /t
--- response_headers_like
X-Day: ^\d{4}-\d\d-\d\dT
--- response_headers
!X-Day-None

# SPEC section 12: cost_cap_quote prices a request and checks it against
# the tenant's windows, charges nothing, is not proxied, and answers every
# error of section 5 as a real request would (503 when Redis is down even
# under cost_cap_on_error open); cost_cap_status answers a GET with the
# tenant's and its parent's windows, equal to the counters, in one round
# trip.
#
# sora-2 at its defaults costs 77415 micro-USD and 79.62624 GPU-seconds
# (see t/030-redis.t).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More import => [qw(subtest diag)];
use Time::HiRes ();

my $T0 = Time::HiRes::time();

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s connect_timeout=1s;
map $http_x_tenant $cap {
    free    "";
    bad     "1.2.3";
    default 1;
}
END

# the same pricing and caps in the real location and in the quote's
my $PRICED = <<'END';
        cost_cap on;
        cost_cap_max_body 4k;
        cost_cap_limit $cap per=day;
        cost_cap_limit 5 per=month;
        cost_cap_alert 50;
        add_header X-Var-Gpu $cost_cap_gpu_seconds always;
        add_header X-Var-Result $cost_cap_result always;
END

my $CONF = <<"END";
cost_cap_tenant \$http_x_tenant;
cost_cap_field quality quality;
cost_cap_model sora-2 when=quality:high per_mpx_frame=1.8 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model gpt-image-1 usd_per_output=0.04 default_size=1024x1024;
add_header X-Var-Result \$cost_cap_result always;

location /v1/ {
$PRICED
    proxy_pass http://backend;
}
location /quote/ {
    cost_cap_quote on;
$PRICED
}
location /open/v1/ {
    cost_cap_on_error open;
$PRICED
    proxy_pass http://backend;
}
location /open/quote/ {
    cost_cap_quote on;
    cost_cap_on_error open;
$PRICED
}
location /free/quote/ {
    cost_cap on;
    cost_cap_quote on;
    cost_cap_limit \$cap per=day;
    add_header X-Var-Result \$cost_cap_result always;
}
location /org/ {
    cost_cap on;
    cost_cap_caps_from_redis on;
    cost_cap_parent \$http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_parent_limit 10 per=day;
    cost_cap_parent_limit 100 per=total;
    proxy_pass http://backend;
}
location /org/quote/ {
    cost_cap on;
    cost_cap_quote on;
    cost_cap_caps_from_redis on;
    cost_cap_parent \$http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_parent_limit 10 per=day;
    cost_cap_parent_limit 100 per=total;
}
location = /status {
    cost_cap_status on;
    cost_cap_caps_from_redis on;
    cost_cap_parent \$http_x_org;
    cost_cap_limit 1 per=day;
    cost_cap_limit 5 per=month;
    cost_cap_parent_limit 10 per=day;
    cost_cap_parent_limit 100 per=total;
}
location = /open/status {
    cost_cap_status on;
    cost_cap_on_error open;
    cost_cap_limit 1 per=day;
}
END

my $r = start_redis();
my $n = start_nginx(http_config => $HTTP, config => $CONF, workers => 2);

sub req {
    my (%o) = @_;
    my $h = '';
    $h .= "X-Tenant: $o{tenant}\n" if defined $o{tenant};
    $h .= "X-Org: $o{org}\n" if defined $o{org};
    $h .= 'Content-Type: ' . ($o{type} // 'application/json') . "\n"
        if defined $o{body};
    return $n->request(method => $o{method} // 'POST', uri => $o{uri},
                       headers => $h, body => $o{body});
}

sub hv { header_value(@_) // '(absent)' }

# the keys, but the operations' markers
sub keys_now {
    return [sort grep { !/:op:[0-9a-f]{24}$/ }
            @{$r->cmd('KEYS', '*')}];
}

# the commands clients sent (not those of scripts) that MONITOR saw until
# now: a marker ECHOed by the test ends them
sub monitored {
    my $mon = shift;
    my $mark = 'end-' . rand();
    $r->cmd('ECHO', $mark);
    my @l;
    while (defined(my $line = eval { $mon->_line })) {
        last if $line =~ /"ECHO" "\Q$mark\E"/;
        next if $line =~ /^\+?[\d.]+ \[\d+ lua\]/;
        push @l, $1 if $line =~ /^\+?[\d.]+ \[\d+ [^\]]+\] (.*)/;
    }
    $mon->close;
    return @l;
}

my %w = window_info();
my $DAY = "costcap:{acme}:day:$w{day}";
my $MONTH = "costcap:{acme}:month:$w{month}";

my @BODIES = (
    ['{"model":"sora-2"}', 77415, '79.62624'],
    ['{"model":"sora-2","seconds":1}', 19354, '19.90656'],
    ['{"model":"sora-2","size":"1920x1080","seconds":12}', 522548,
     '537.47712'],
    ['{"model":"sora-2","size":"720x1280","n":2}', 154829, '159.25248'],
    ['{"model":"sora-2","quality":"high"}', 154829, '159.25248'],
    ['{"model":"gpt-image-1","n":3}', 120000, '0'],
);


subtest 'a quote charges nothing and agrees with a real request' => sub {
    $r->cmd('FLUSHALL');
    my $hits = $n->log_size('backend_access.log');
    for my $b (@BODIES) {
        my ($body, $micro, $gpu) = @$b;
        my $q = req(uri => '/quote/x', tenant => 'acme', body => $body);
        is($q->{status}, 200, "quote $body: 200");
        is(hv($q, 'Content-Type'), 'application/json', '... JSON');
        is(hv($q, 'X-Var-Result'), 'quote', '... $cost_cap_result quote');
        my $j = json_decode($q->{body});
        is($j && $j->{estimate} * 1e6, $micro, "... estimate $micro");
        is($j && $j->{gpu_seconds}, $gpu, "... gpu_seconds $gpu");
        is($j && $j->{model}, ($body =~ /"model":"([^"]+)"/)[0],
           '... the model');
        ok($j && $j->{admit}, '... admit true');
        is_deeply(keys_now(), [], '... no key written');
        my $real = req(uri => '/v1/x', tenant => 'acme', body => $body);
        is($real->{status}, 200, '... the real request admitted');
        is(hv($real, 'X-Cost-Cap-Estimate') + 0, $j && $j->{estimate},
           '... its estimate is the quote\'s');
        is(hv($real, 'X-Var-Gpu'), $gpu, '... its GPU-seconds too');
        # past 50% of the day's 1 USD: the real request's event, before
        # the counters go
        if ($micro >= 500000) {
            ok(poll_until(sub { $r->cmd('XLEN', 'costcap:events') == 1 },
                          2), '... the real request emitted its event');
        }
        $r->cmd('FLUSHALL');
    }
    is($n->backend_hits($hits), scalar @BODIES,
       'only the real requests reached the backend');

    # multipart is priced as JSON is
    my $mp = multipart('b0undary', model => 'sora-2', seconds => '1');
    my $q = req(uri => '/quote/x', tenant => 'acme', body => $mp,
                type => 'multipart/form-data; boundary=b0undary');
    my $j = json_decode($q->{body});
    is($j && $j->{estimate}, 0.019354, 'multipart quote: 0.019354');
};


subtest 'a quote checks the windows: spent, remaining, admit' => sub {
    $r->cmd('FLUSHALL');
    $r->cmd('SET', $DAY, 950000);
    $r->cmd('SET', $MONTH, 4_000_000);
    my $q = req(uri => '/quote/x', tenant => 'acme',
                body => '{"model":"sora-2"}');
    json_matches($q->{body}, {
        estimate => 0.077415, gpu_seconds => 79.62624, model => 'sora-2',
        admit => JSON::PP::false(),
        windows => [
            { level => 'tenant', window => 'day', limit => 1,
              spent => 0.95, remaining => 0.05,
              reset_in => BETWEEN($w{end_day} - 5, $w{end_day}) },
            { level => 'tenant', window => 'month', limit => 5,
              spent => 4, remaining => 1,
              reset_in => BETWEEN($w{end_month} - 5, $w{end_month}) },
        ] }, 'a quote past the day cap: admit false, both windows');
    my $small = req(uri => '/quote/x', tenant => 'acme',
                    body => '{"model":"sora-2","seconds":1}');
    my $j = json_decode($small->{body});
    ok($j && $j->{admit}, 'a smaller one fits: admit true');
    my $real = req(uri => '/v1/x', tenant => 'acme',
                   body => '{"model":"sora-2"}');
    is($real->{status}, 429, 'the real request of the first is refused');
    is($r->cmd('GET', $DAY), 950000, 'day counter unchanged by quotes');
    is($r->cmd('GET', $MONTH), 4_000_000, 'month counter unchanged');

    # a quote that would cross the alert threshold emits nothing
    $r->cmd('SET', $DAY, 400000);
    $q = req(uri => '/quote/x', tenant => 'acme',
             body => '{"model":"sora-2","size":"1920x1080","seconds":12}');
    ok(json_decode($q->{body})->{admit}, 'a quote across 50%: admitted');
    is($r->cmd('EXISTS', 'costcap:events'), 0, '... and no event');
    is($r->cmd('EXISTS', 'costcap:{acme}:alerts'), 0, '... nor alert');

    # a cap left empty by its variable: no window, nothing asked of Redis
    $q = req(uri => '/quote/x', tenant => 'free',
             body => '{"model":"sora-2"}');
    json_matches($q->{body}, {
        estimate => 0.077415, gpu_seconds => 79.62624, model => 'sora-2',
        admit => JSON::PP::true(),
        windows => [
            { level => 'tenant', window => 'month', limit => 5, spent => 0,
              remaining => 5, reset_in => ANY_INT } ] },
        'free: only the month window');
    my $mon = $r->connect;
    $mon->cmd('MONITOR');
    $q = req(uri => '/free/quote/x', tenant => 'free',
             body => '{"model":"sora-2"}');
    is_deeply([monitored($mon)], [], 'no window at all: Redis not asked');
    json_matches($q->{body}, {
        estimate => 0.077415, gpu_seconds => 79.62624, model => 'sora-2',
        admit => JSON::PP::true(), windows => [] },
        '... admit true, no windows');
    is(hv($q, 'X-Var-Result'), 'quote', '... $cost_cap_result quote');

    # the parent's windows too, caps from Redis
    $r->cmd('FLUSHALL');
    $r->cmd('SET', "costcap:{org1}:day:$w{day}", 9_990_000);
    $r->cmd('SET', "costcap:{org1}:u1:day:$w{day}", 500_000);
    $r->cmd('HSET', 'costcap:{org1}:caps', 'total', 'off');
    $r->cmd('HSET', 'costcap:{org1}:u1:caps', 'hour', 2_000_000);
    $q = req(uri => '/org/quote/x', tenant => 'u1', org => 'org1',
             body => '{"model":"sora-2"}');
    json_matches($q->{body}, {
        estimate => 0.077415, gpu_seconds => 79.62624, model => 'sora-2',
        admit => JSON::PP::false(),
        windows => [
            { level => 'tenant', window => 'hour', limit => 2, spent => 0,
              remaining => 2, reset_in => ANY_INT },
            { level => 'tenant', window => 'day', limit => 1, spent => 0.5,
              remaining => 0.5, reset_in => ANY_INT },
            { level => 'parent', window => 'day', limit => 10,
              spent => 9.99, remaining => 0.01, reset_in => ANY_INT } ] },
        'under a parent: both levels, the hashes applied, admit false');
    my $res = req(uri => '/org/x', tenant => 'u1', org => 'org1',
                  body => '{"model":"sora-2"}');
    is($res->{status}, 429, 'the real request: 429');
    is(json_decode($res->{body})->{error}{level}, 'parent',
       '... level parent');
};


# the errors of SPEC section 5: a quote answers each as a real request
my $BIG = '{"model":"sora-2","prompt":"' . ('x' x 5000) . '"}';
my @ERRORS = (
    ['invalid_json', 400, tenant => 'acme', body => '{"model":'],
    ['invalid_json: trailing comma', 400, tenant => 'acme',
     body => '{"model":"sora-2",}'],
    ['invalid_multipart', 400, tenant => 'acme',
     body => "--x\r\nContent-Disposition: form-data; name=\"model\"\r\n",
     type => 'multipart/form-data; boundary=x'],
    ['invalid_parameter: seconds', 400, tenant => 'acme',
     body => '{"model":"sora-2","seconds":-1}'],
    ['invalid_parameter: max_seconds', 400, tenant => 'acme',
     body => '{"model":"sora-2","seconds":13}'],
    ['invalid_parameter: twice', 400, tenant => 'acme',
     body => '{"model":"sora-2","seconds":1,"seconds":2}'],
    ['invalid_parameter: no model', 400, tenant => 'acme',
     body => '{"seconds":1}'],
    ['unknown_model', 400, tenant => 'acme', body => '{"model":"dall-e"}'],
    ['tenant_invalid', 400, tenant => 'a b', body => '{"model":"sora-2"}'],
    ['tenant_missing', 401, body => '{"model":"sora-2"}'],
    ['body_too_large', 413, tenant => 'acme', body => $BIG],
    ['unsupported_media_type', 415, tenant => 'acme',
     body => '{"model":"sora-2"}', type => 'text/plain'],
    ['cost_cap_misconfigured', 500, tenant => 'bad',
     body => '{"model":"sora-2"}'],
);

subtest 'a quote answers every error as a real request' => sub {
    $r->cmd('FLUSHALL');
    for my $e (@ERRORS) {
        my ($name, $code, %o) = @$e;
        my $q = req(%o, uri => '/quote/x');
        my $real = req(%o, uri => '/v1/x');
        is($q->{status}, $code, "$name: quote $code");
        is($real->{status}, $code, "$name: real $code");
        is_deeply(json_decode($q->{body}), json_decode($real->{body}),
                  "$name: the same body");
        is(hv($q, 'X-Var-Result'), 'invalid', "$name: result invalid");
    }
    is_deeply(keys_now(), [], 'no key written');

    # Redis away: a quote has no answer but 503, even under open
    my $port = redis_port();
    stop_redis();
    for my $uri ('/quote/x', '/open/quote/x') {
        my $q = req(uri => $uri, tenant => 'acme',
                    body => '{"model":"sora-2"}');
        is($q->{status}, 503, "$uri: Redis down, 503");
        json_matches($q->{body}, err('cost_cap_unavailable', undef),
                     "$uri: cost_cap_unavailable");
        is(hv($q, 'Retry-After'), '1', "$uri: Retry-After 1");
        is(hv($q, 'X-Var-Result'), 'error', "$uri: result error");
    }
    my $open = req(uri => '/open/v1/x', tenant => 'acme',
                   body => '{"model":"sora-2"}');
    is($open->{status}, 200, 'a real request there is admitted open');
    is(hv($open, 'X-Var-Result'), 'error_open', '... error_open');
    for my $uri ('/status', '/open/status') {
        my $st = $n->request(uri => $uri, headers => "X-Tenant: acme");
        is($st->{status}, 503, "$uri: Redis down, 503");
        json_matches($st->{body}, err('cost_cap_unavailable', undef),
                     "$uri: cost_cap_unavailable");
    }
    $r = start_redis(port => $port);
    ok(poll_until(sub {
        req(uri => '/quote/x', tenant => 'acme',
            body => '{"model":"sora-2"}')->{status} == 200 }, 5),
       'Redis back: quotes again');
    # the request admitted open is charged once Redis is back, not quotes
    ok(poll_until(sub { ($r->cmd('GET', $DAY) // 0) == 77415 }, 5),
       'the open request charged when Redis is back, the quotes not');
    # both workers connected again (each loads every script), so that no
    # handshake comes into what the next test watches
    my $scripts = () = glob(repo_root() . '/ngx_cost_cap_module/scripts/*.lua');
    ok(poll_until(sub {
        my $st = $r->cmd('INFO', 'commandstats');
        ($st =~ /^cmdstat_script\|load:calls=(\d+)/m ? $1 : 0)
            >= 2 * $scripts }, 5), 'both workers connected again');
};


subtest 'status: the counters, in one round trip, GET only' => sub {
    $r->cmd('FLUSHALL');
    # tenant u1 under org1: day and month configured, the parent's day and
    # total; a week cap only in u1's hash; the parent's total off
    $r->cmd('SET', "costcap:{org1}:u1:day:$w{day}", 123456);
    $r->cmd('SET', "costcap:{org1}:u1:month:$w{month}", 4_500_000);
    $r->cmd('SET', "costcap:{org1}:u1:week:$w{week}", 10);
    $r->cmd('SET', "costcap:{org1}:day:$w{day}", 7_000_001);
    $r->cmd('SET', 'costcap:{org1}:total:all', 99_000_000);
    $r->cmd('HSET', 'costcap:{org1}:u1:caps', 'week', 3_000_000);
    my $before = keys_now();
    my $mon = $r->connect;
    $mon->cmd('MONITOR');
    my $st = $n->request(uri => '/status',
                         headers => "X-Tenant: u1\nX-Org: org1");
    my @sent = monitored($mon);
    %w = window_info();
    is($st->{status}, 200, 'status: 200');
    is(hv($st, 'Content-Type'), 'application/json', 'JSON');
    is(hv($st, 'X-Var-Result'), 'quote', '$cost_cap_result quote');
    json_matches($st->{body}, { windows => [
        { level => 'tenant', window => 'day', limit => 1, spent => 0.123456,
          remaining => 0.876544,
          reset_in => BETWEEN($w{end_day} - 2, $w{end_day}) },
        { level => 'tenant', window => 'week', limit => 3, spent => 0.00001,
          remaining => 2.99999,
          reset_in => BETWEEN($w{end_week} - 2, $w{end_week}) },
        { level => 'tenant', window => 'month', limit => 5, spent => 4.5,
          remaining => 0.5,
          reset_in => BETWEEN($w{end_month} - 2, $w{end_month}) },
        { level => 'parent', window => 'day', limit => 10,
          spent => 7.000001, remaining => 2.999999,
          reset_in => BETWEEN($w{end_day} - 2, $w{end_day}) },
        { level => 'parent', window => 'total', limit => 100, spent => 99,
          remaining => 1, reset_in => undef },
    ] }, 'the windows of both levels, as the counters say');
    is(scalar @sent, 1, 'one command') or diag(join "\n", @sent);
    like($sent[0] // '', qr/^"EVALSHA"/, '... an EVALSHA');
    is_deeply(keys_now(), $before, 'nothing written');

    # a cap lowered below the spend: remaining 0, not negative
    $r->cmd('HSET', 'costcap:{org1}:caps', 'day', 5_000_000, 'total',
            'off');
    my $j = json_decode($n->request(uri => '/status',
        headers => "X-Tenant: u1\nX-Org: org1")->{body});
    my ($pd) = grep { $_->{level} eq 'parent' } @{$j->{windows} || []};
    is_deeply([$pd && @$pd{qw(window limit spent remaining)}],
              ['day', 5, 7.000001, 0], 'over its cap: remaining 0');
    is(scalar(grep { $_->{window} eq 'total' } @{$j->{windows} || []}), 0,
       'a window off is not listed');

    # a tenant without spend; a tenant without a parent
    $j = json_decode($n->request(uri => '/status',
                                 headers => "X-Tenant: nobody")->{body});
    is_deeply([map { "$_->{level} $_->{window} $_->{spent} "
                     . "$_->{remaining}" } @{$j->{windows} || []}],
              ['tenant day 0 1', 'tenant month 0 5'],
              'no spend, no parent: the tenant\'s windows at 0');

    # after real requests, status and counters agree
    $r->cmd('DEL', 'costcap:{org1}:caps');
    for my $i (1 .. 3) {
        is(req(uri => '/org/x', tenant => 'u2', org => 'org1',
               body => '{"model":"sora-2"}')->{status}, 200,
           "u2 request $i admitted");
    }
    $j = json_decode($n->request(uri => '/status',
                                 headers => "X-Tenant: u2\nX-Org: org1")
                     ->{body});
    my ($td) = grep { $_->{level} eq 'tenant' && $_->{window} eq 'day' }
               @{$j->{windows} || []};
    is($td && $td->{spent} * 1e6,
       $r->cmd('GET', "costcap:{org1}:u2:day:$w{day}"),
       "u2's day spent is its counter");
    is($td && $td->{spent}, 0.232245, '... 3 x 0.077415');

    # errors as for a real request
    my $res = $n->request(uri => '/status');
    is($res->{status}, 401, 'no tenant: 401');
    json_matches($res->{body}, err('tenant_missing', 'tenant'),
                 '... tenant_missing');
    $res = $n->request(uri => '/status', headers => "X-Tenant: a{b}");
    is($res->{status}, 400, 'bad tenant: 400');
    json_matches($res->{body}, err('tenant_invalid', 'tenant'),
                 '... tenant_invalid');
    $res = $n->request(uri => '/status',
                       headers => "X-Tenant: u1\nX-Org: a b");
    json_matches($res->{body}, err('tenant_invalid', 'parent'),
                 'bad parent: tenant_invalid, param parent');
    $r->cmd('HSET', 'costcap:{org1}:u1:caps', 'day', 'lots');
    $res = $n->request(uri => '/status',
                       headers => "X-Tenant: u1\nX-Org: org1");
    is($res->{status}, 500, 'a malformed cap: 500');
    json_matches($res->{body}, err('cost_cap_misconfigured', undef),
                 '... cost_cap_misconfigured');
    $r->cmd('HDEL', 'costcap:{org1}:u1:caps', 'day');

    # GET (and HEAD) only
    $res = $n->request(method => 'HEAD', uri => '/status',
                       headers => "X-Tenant: u1");
    is($res->{status}, 200, 'HEAD: 200');
    is($res->{body}, '', '... without a body');
    for my $m ('POST', 'PUT', 'DELETE', 'PATCH') {
        my $res = $n->request(method => $m, uri => '/status',
                              headers => "X-Tenant: u1\n"
                                         . 'Content-Type: application/json',
                              body => '{"model":"sora-2"}');
        is($res->{status}, 405, "$m: 405");
    }
    is(json_decode($n->request(uri => '/status?x=1',
                               headers => "X-Tenant: u1\nX-Org: org1")
                   ->{body})
       ->{windows}[0]{spent}, 0.123456, 'a query string changes nothing');
};


$n->stop;
unlike($n->error_log, qr/exited on signal|\[alert\]|\[emerg\]|runtime error:/,
       'no crash, no alert');
ok(Time::HiRes::time() - $T0 < 60, sprintf 'bounded in time (%.1f s)',
   Time::HiRes::time() - $T0);

done_testing();

# SPEC section 5, last line: nothing a client sends can crash a worker,
# block it, or write to a key of another tenant.  A table of hostile
# inputs, each answered with its SPEC section 5 error (exact code and
# param), no Redis key written and nothing reaching the backend; then the
# scenarios that need code: 100k multipart parts, a slowloris body.
#
# Rules:
#   sora-2        per_mpx_frame=0.9 fps=24 default 1280x720, 4 s, max 12 s
#                 (defaults: 0.077415 USD)
#   ~^sora-2-pro  per_mpx_frame=2.4 ...       (defaults: 0.206439 USD)
#   ~*^flux       base=0.5 per_mpx_frame=1.2 ref_steps=28, no max_*: numbers
#                 reach the number parser, not a model limit
#   open          per_mpx_frame=0.000001 fps=1 default 1x1, no max_seconds

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Time::HiRes ();

my $HTTP = <<'END';
cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;
# the backend server proxied to reads the big bodies too
client_max_body_size 8m;

# the tenant from a query argument: $arg_t is not percent-decoded, so the
# bytes a header cannot carry (CR, LF) come from this map
map $arg_t $qt {
    default     $arg_t;
    "a%0d%0ab"  "a\r\nb";
    "a%0ab"     "a\nb";
    "a%0db"     "a\rb";
    "a%09b"     "a\tb";
    "a%7bb"     "a{b";
    "a%7db"     "a}b";
    "a%2ab"     "a*b";
    "a%20b"     "a b";
    "a%c3%a9"   "aé";
    "hdr"       $http_x_tenant;
}
END
add_default(http_config => $HTTP);

my $CONF = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_limit 100 per=day;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~^sora-2-pro per_mpx_frame=2.4 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~*^flux base=0.5 per_mpx_frame=1.2 ref_steps=28;
cost_cap_model open per_mpx_frame=0.000001 fps=1 default_size=1x1;
cost_cap_max_body 8m;
client_max_body_size 8m;
client_body_timeout 1s;

location /v1/ {
    cost_cap on;
    add_header X-Var-Result $cost_cap_result always;
    proxy_pass http://backend;
}
location /t/ {
    cost_cap on;
    cost_cap_tenant $qt;
    proxy_pass http://backend;
}
location /small/ {
    cost_cap on;
    cost_cap_max_body 1k;
    client_max_body_size 64k;
    proxy_pass http://backend;
}
location /plain {
    return 200 "plain";
}
END
add_default(config => $CONF);

add_default(request => 'POST /v1/videos');
add_default(more_headers => "X-Tenant: acme\nContent-Type: application/json");
add_default(backend_hits => 0);
add_default(redis_keys => 0);

# every error body is ASCII JSON: no byte of the input is echoed raw
add_default(response_body_like => '\A[\x20-\x7e\n]*\z');

# numbers at and past the int64 and double limits, as JSON numbers and as
# strings (JSON text)
my @HUGE = (
    '9223372036854775807', '9223372036854775808', '-9223372036854775808',
    '18446744073709551616', '1e13', '1e308', '1e309', '-1e309',
    '1.7976931348623157e308', '-1e308',
    '"9223372036854775807"', '"9223372036854775808"', '"9223372036855"',
    '"1e308"', '"1e309"', '"-1e309"', '"18446744073709551616"',
);

# zero in every spelling (zero is not a dimension); tiny values rounding to
# zero at 6 fractional digits; exponents and signs in strings
my @ZERO = (
    '0', '-0', '-0.0', '0.0', '-0e0', '0e-5', '1e-400', '-1e-400',
    '0.0000004', '"0"', '"-0"', '"0.0"', '"0.000000"', '"-0.0"',
    '"1e3"', '"1E3"', '"+4"', '"4e0"', '"Infinity"', '"NaN"', '"inf"',
);

# (field, body template with %s for the value)
my @FIELDS = (
    [width => '{"model":"flux","width":%s,"height":720}'],
    [height => '{"model":"flux","width":720,"height":%s}'],
    [seconds => '{"model":"open","seconds":%s}'],
    [num_frames => '{"model":"open","num_frames":%s}'],
    [n => '{"model":"flux","size":"64x64","n":%s}'],
    [num_inference_steps => '{"model":"flux","size":"64x64","num_inference_steps":%s}'],
);

sub main::cases {
    my ($field, @values) = @_;
    my ($tpl) = map { $_->[1] } grep { $_->[0] eq $field } @FIELDS;
    return map {
        { code => 400, body => sprintf($tpl, $_), label => "$field $_",
          json => err('invalid_parameter', $field) }
    } @values;
}

sub main::HUGE { @HUGE }
sub main::ZERO { @ZERO }

run_tests();


# -------------------------------------------------------------------------
# scenarios that need code

my @REQ = (method => 'POST', uri => '/v1/videos',
           headers => "X-Tenant: acme\nContent-Type: application/json",
           body => '{"model":"sora-2"}');


sub keys_count { redis_keys() }

sub no_crash {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/exited on signal/, "$name: no worker crash");
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]/, "$name: no alert");
}


# A scan quadratic in the parts would take minutes here; a linear one takes
# a few hundredths of a second.  Under AddressSanitizer (make test-asan,
# which turns memmem()'s interceptor off: it checks the whole rest of the
# body at every call) a slower machine gets a generous bound.
my $ASAN = ($ENV{LD_PRELOAD} // '') =~ /asan/;
my $QUICK = $ASAN ? 60 : 3;

{
    my $name = '100k multipart parts in a 5 MB body';
    redis()->cmd('FLUSHALL');
    my $n = start_nginx(http_config => $HTTP, config => $CONF);
    my $part = "--b\r\nContent-Disposition: form-data; name=p\r\n\r\n1\r\n";
    my $body = $part x 100_000
        . "--b\r\nContent-Disposition: form-data; name=model\r\n\r\n"
        . "sora-2\r\n--b--\r\n";
    my $res = $n->request(method => 'POST', uri => '/v1/videos',
        headers => "X-Tenant: acme\nContent-Type: multipart/form-data; "
                   . "boundary=b",
        body => $body, timeout => $QUICK + 5);
    # every part is well formed: the module walks them all and prices the
    # model of the last one (fields it does not know are ignored)
    is($res->{status}, 200, "$name: priced")
        or diag($res->{error} // $res->{body});
    is(header_value($res, 'X-Cost-Cap-Estimate'), '0.077415',
       "$name: at sora-2's price");
    ok($res->{elapsed} < $QUICK,
       sprintf("$name: answered in %.2f s", $res->{elapsed} // -1));
    diag(sprintf "$name: %d bytes answered in %.3f s", length $body,
         $res->{elapsed});

    # the same with one bad part at the end: invalid_multipart, nothing
    # charged
    redis()->cmd('FLUSHALL');
    (my $bad = $body) =~ s/name=model\r\n/name=model\rx\r\n/;
    $res = $n->request(method => 'POST', uri => '/v1/videos',
        headers => "X-Tenant: acme\nContent-Type: multipart/form-data; "
                   . "boundary=b",
        body => $bad, timeout => $QUICK + 5);
    is($res->{status}, 400, "$name, last part bad: 400");
    json_matches($res->{body}, err('invalid_multipart', undef),
                 "$name, last part bad: invalid_multipart");
    ok($res->{elapsed} < $QUICK,
       sprintf("$name, last part bad: answered in %.2f s",
               $res->{elapsed} // -1));
    is(keys_count(), 0, "$name, last part bad: no key");

    # 100k file parts
    my $fpart = "--b\r\nContent-Disposition: form-data; name=f; "
              . "filename=x\r\n\r\n1\r\n";
    $body = $fpart x 100_000
        . "--b\r\nContent-Disposition: form-data; name=model\r\n\r\n"
        . "sora-2\r\n--b--\r\n";
    $res = $n->request(method => 'POST', uri => '/v1/videos',
        headers => "X-Tenant: acme\nContent-Type: multipart/form-data; "
                   . "boundary=b",
        body => $body, timeout => $QUICK + 5);
    is($res->{status}, 200, "$name: 100k file parts: priced");
    ok($res->{elapsed} < $QUICK,
       sprintf("$name: 100k file parts: answered in %.2f s",
               $res->{elapsed} // -1));
    $n->stop;
    no_crash($n, $name);
}


# SPEC section 2.2: no body makes a worker hold more than about twice its
# size.  A tree parser built a node per element here (a worker went from 5
# to 736 MB on a 5 MB body); the scanner records only what it reads.
sub vm_kb {
    my ($pid, $field) = @_;
    my ($kb) = CostCap::Test::_slurp("/proc/$pid/status") =~ /^$field:\s+(\d+)/m;
    return $kb // 0;
}

{
    my $name = '20 MB body of [0,0,...] (cost_cap_max_body 25m)';
    redis()->cmd('FLUSHALL');
    my $n = start_nginx(http_config => $HTTP, config => $CONF . <<'END',
location /big/ {
    cost_cap on;
    cost_cap_max_body 25m;
    client_max_body_size 26m;
    proxy_pass http://backend;
}
END
        backend_config => <<'END');
client_max_body_size 32m;
location / {
    return 200 '{"id":"gen_1","status":"queued"}';
}
END
    my ($worker) = $n->worker_pids;
    my $body = '{"model":"sora-2","seconds":"4","pad":[' . ('0,' x 9_999_999)
             . '0]}';
    # a first small request: the worker's buffers and pools are warm
    $n->request(@REQ, uri => '/big/videos', timeout => 5);
    my $before = vm_kb($worker, 'VmRSS');
    my $res = $n->request(method => 'POST', uri => '/big/videos',
        headers => "X-Tenant: acme\nContent-Type: application/json",
        body => $body, timeout => 60);
    my $hwm = vm_kb($worker, 'VmHWM');
    is($res->{status}, 200, "$name: priced")
        or diag($res->{error} // $res->{body});
    is(header_value($res, 'X-Cost-Cap-Estimate'), '0.077415',
       "$name: at sora-2's price");
    ok($hwm - $before < 2 * 20_000,
       "$name: the worker's peak RSS grew by " . ($hwm - $before)
       . " kB (bound: twice the body)");
    ok($res->{elapsed} < ($ASAN ? 60 : 10),
       sprintf("$name: answered in %.2f s", $res->{elapsed} // -1));
    diag(sprintf "$name: %d bytes in %.3f s, worker VmRSS %d kB before, "
         . "VmHWM %d kB after", length $body, $res->{elapsed}, $before, $hwm);

    # the same body in a multipart field: mapped, not copied
    my $mp = "--b\r\nContent-Disposition: form-data; name=model\r\n\r\n"
           . "sora-2\r\n--b\r\nContent-Disposition: form-data; name=pad\r\n"
           . "\r\n" . ('0,' x 10_000_000) . "\r\n--b--\r\n";
    $res = $n->request(method => 'POST', uri => '/big/videos',
        headers => "X-Tenant: acme\nContent-Type: multipart/form-data; "
                   . "boundary=b", body => $mp, timeout => 60);
    $hwm = vm_kb($worker, 'VmHWM');
    is($res->{status}, 200, "$name, as multipart: priced");
    ok($hwm - $before < 2 * 20_000,
       "$name, as multipart: the worker's peak RSS grew by "
       . ($hwm - $before) . " kB");
    $n->stop;
    no_crash($n, $name);
}


{
    my $name = 'slowloris body (client_body_timeout 3s)';
    redis()->cmd('FLUSHALL');
    (my $conf = $CONF) =~ s/client_body_timeout 1s/client_body_timeout 3s/
        or die "no client_body_timeout in \$CONF\n";
    my $n = start_nginx(http_config => $HTTP, config => $conf);
    my $t0 = Time::HiRes::time();
    my $slow = http_send(port => $n->port, @REQ, partial => 5);

    # the worker (there is one) serves others while the slow body pends
    my $other = $n->request(@REQ, timeout => 5);
    is($other->{status}, 200, "$name: another client admitted meanwhile");
    # sooner than the slow body's own 3 s timeout, even on a busy machine
    ok($other->{elapsed} < 2.5, sprintf("$name: ... in %.3f s",
                                        $other->{elapsed}));
    my $plain = $n->request(method => 'GET', uri => '/plain', timeout => 5);
    is($plain->{status}, 200, "$name: a plain request served meanwhile");

    # a byte at 1.5 s restarts the timer (it bounds each read, not the
    # body): nginx gives up 3 s after it, not 3 s after the start
    my $left = $t0 + 1.5 - Time::HiRes::time();
    Time::HiRes::sleep($left) if $left > 0;
    syswrite $slow, '"';
    my $res = http_read($slow, 15);
    my $took = Time::HiRes::time() - $t0;
    ok(($res->{status} // 0) == 408
       || ($res->{error} // '') eq 'no complete response',
       "$name: 408 or the connection closed by nginx")
        or diag(Test::More::explain($res));
    ok($took > 3.5 && $took < 15, sprintf("$name: ended after %.2f s",
                                           $took));
    is(keys_count(), 1, "$name: only the other client's key");
    is(redis()->cmd('GET', 'costcap:{acme}:day:' . {window_info()}->{day}),
       77415, "$name: the slow request charged nothing");
    $n->stop;
    is($n->backend_hits, 1, "$name: only the other client reached the "
                            . "backend");
    no_crash($n, $name);
}

done_testing();

__DATA__

=== TEST 1: width at and past the int64 and double limits
--- requests
main::cases(width => main::HUGE())


=== TEST 2: height at and past the limits
--- requests
main::cases(height => main::HUGE())


=== TEST 3: seconds at and past the limits (video rule without max_seconds)
--- requests
main::cases(seconds => main::HUGE())


=== TEST 4: num_frames at and past the limits
--- requests
main::cases(num_frames => main::HUGE())


=== TEST 5: n at and past the limits
--- requests
main::cases(n => main::HUGE())


=== TEST 6: num_inference_steps at and past the limits
--- requests
main::cases(num_inference_steps => main::HUGE())


=== TEST 7: size at and past the limits
--- requests
map { { code => 400, body => qq({"model":"flux","size":"$_"}), label => $_,
        json => err('invalid_parameter', 'size') } }
    '9223372036854775807x1', '1x9223372036854775808', '9223372036855x1',
    '18446744073709551616x18446744073709551616', '1e3x1', '-0x1', '0x0',
    '1x-1', '+1x1', ' 1x1', '1x1 ', '1x1x1', '1X1', '0x10x1'


=== TEST 8: width and height each fit, the estimate does not: param null
--- requests
{ code => 400, body => '{"model":"flux","width":9223372036854,"height":9223372036854}',
  json => err('invalid_parameter', undef) },
{ code => 400, body => '{"model":"flux","width":"9223372036854","height":"9223372036854"}',
  json => err('invalid_parameter', undef) },
{ code => 400, body => '{"model":"flux","size":"9223372036854x9223372036854","n":9223372036854}',
  json => err('invalid_parameter', undef) },


=== TEST 9: zero, negative zero and exponents: width
--- requests
main::cases(width => main::ZERO())


=== TEST 10: zero, negative zero and exponents: seconds
--- requests
main::cases(seconds => main::ZERO())


=== TEST 11: zero, negative zero and exponents: n
--- requests
main::cases(n => main::ZERO())


=== TEST 12: zero, negative zero and exponents: num_inference_steps
--- requests
main::cases(num_inference_steps => main::ZERO())


=== TEST 13: NaN, Infinity and other non-RFC 8259 numbers are not JSON
# (leading zeros, a dot without digits: a lenient parser reads 012 as 12)
--- requests
map { { code => 400, body => qq({"model":"sora-2","seconds":$_}), label => $_,
        json => err('invalid_json', undef) } }
    'NaN', '-NaN', 'nan', 'Infinity', '-Infinity', 'inf', '+1', '0x10',
    '01', '012', '-01', '1.', '1.e3', '.5', '1e', '--1', '1e+', 'infinity'


=== TEST 14: 10k-deep nesting: invalid_json, no crash
--- requests
{ code => 400, body => '[' x 10000, label => '[ x 10k',
  json => err('invalid_json', undef) },
{ code => 400, body => ('[' x 10000) . (']' x 10000), label => '[] x 10k',
  json => err('invalid_json', undef) },
{ code => 400, body => ('{"a":' x 10000) . '1' . ('}' x 10000),
  label => '{"a": x 10k', json => err('invalid_json', undef) },
{ code => 400, body => '{"model":"sora-2","x":' . ('[' x 10000)
                       . (']' x 10000) . '}',
  label => 'deep array in a valid object', json => err('invalid_json', undef) },
{ code => 400, body => '{"model":"sora-2","x":' . ('{"a":' x 10000) . '1'
                       . ('}' x 10000) . '}',
  label => 'deep object in a valid object',
  json => err('invalid_json', undef) },
{ code => 400, body => '[' x 1_000_000, label => '[ x 1M',
  json => err('invalid_json', undef) },
{ code => 400, body => '{"a":' x 500_000, label => '{"a": x 500k',
  json => err('invalid_json', undef) },


=== TEST 15: duplicate keys: refused, whichever copy a backend takes
# Python, Node and Go take the last duplicate, some parsers the first
--- requests
map { { code => 400, body => $_->[1], label => $_->[0],
        json => err('invalid_parameter', $_->[2]) } }
    ['model twice', '{"model":"sora-2","model":"sora-2-pro"}', 'model'],
    ['seconds and model twice', '{"model":"sora-2-pro","model":"sora-2","seconds":4,"seconds":12}', 'model'],
    ['n twice', '{"model":"sora-2","n":1,"n":10}', 'n'],
    ['null then a value', '{"model":"sora-2","seconds":null,"seconds":12}', 'seconds'],
    ['an escape spells the key', '{"model":"sora-2","seco\u006eds":12,"seconds":4}', 'seconds'],
    ['after 1 MB of prompt', '{"model":"sora-2","seconds":4,"prompt":"' . ('p' x 1_000_000) . '","seconds":12}', 'seconds'],


=== TEST 16: keys in another case (Go's encoding/json matches them): refused
--- requests
map { { code => 400, body => $_->[1], label => $_->[0],
        json => err('invalid_parameter', $_->[2]) } }
    ['Seconds', '{"model":"sora-2","Seconds":12}', 'seconds'],
    ['SECONDS after seconds', '{"model":"sora-2","seconds":4,"SECONDS":12}', 'seconds'],
    ['Model', '{"Model":"sora-2-pro","model":"sora-2"}', 'model'],
    ['long s (U+017F)', qq({"model":"sora-2","\x{c5}\x{bf}econds":12}), 'seconds'],
    ['long s escaped', '{"model":"sora-2","\u017feconds":12}', 'seconds'],
    ['dotless i (U+0131)', qq({"model":"sora-2","num_\x{c4}\x{b1}nference_steps":50}), 'num_inference_steps'],


=== TEST 16b: keys nobody reads may repeat
--- request_body
{"model":"sora-2","prompt":"a","prompt":"b","Prompt":"c","x":{"seconds":1,"seconds":2}}
--- error_code: 200
--- response_headers
X-Cost-Cap-Estimate: 0.077415
--- response_body_like: queued
--- redis_keys: 1
--- backend_hits: 1


=== TEST 17: raw NUL bytes and \u0000: invalid_json
--- requests
map { { code => 400, body => $_->[1], label => $_->[0],
        json => err('invalid_json', undef) } }
    ['NUL in the model', qq({"model":"sora-2\x{00}-pro"})],
    ['NUL after the object', qq({"model":"sora-2"}\x{00})],
    ['NUL before the object', qq(\x{00}{"model":"sora-2"})],
    ['NUL in another key', qq({"model":"sora-2","prompt":"a\x{00}b"})],
    ['NUL as whitespace', qq({"model":\x{00}"sora-2"})],
    ['\u0000 in the model', '{"model":"sora-2\u0000-pro"}'],
    ['\u0000 ending the model', '{"model":"sora-2\u0000"}'],
    ['\u0000 in a key', '{"model\u0000x":"sora-2"}'],
    ['\u0000 in another value', '{"model":"sora-2","prompt":"\u0000"}'],


=== TEST 18: invalid UTF-8 in the model: unknown_model, the message still ASCII JSON
--- requests
map { { code => 400, body => qq({"model":"$_->[1]"}), label => $_->[0],
        json => err('unknown_model', 'model') } }
    ['0xff 0xfe', "\xff\xfe"],
    ['sora-2 + 0xff', "sora-2\xff"],
    ['overlong slash', "\xc0\xaf"],
    ['lone continuation', "\x80"],
    ['truncated sequence', "flu\xe2\x82"],
    ['surrogate as UTF-8', "\xed\xa0\x80"],
    ['a megabyte of junk', "\xfe" x 1_000_000],


=== TEST 18b: raw control bytes in a string are not JSON (RFC 8259)
--- requests
map { { code => 400, body => qq({"model":"$_->[1]"}), label => $_->[0],
        json => err('invalid_json', undef) } }
    ['control bytes', "\x01\x02\x1b[31m"],
    ['a tab', "sora-2\t"],
    ['a newline', "sora-2\n"],


=== TEST 19: bad \u escapes (lone surrogates, non-hex digits): invalid_json
# a \u escape with non-hex digits must not decode to a NUL that ends the
# string early: "sora-2\uZZZZ-pro" is not "sora-2"
--- requests
map { { code => 400, body => qq({"model":"$_"}), label => $_,
        json => err('invalid_json', undef) } }
    '\ud800', 'sora-2\udc00', '\ud800\u0041', '\u12', '\uZZZZ',
    'sora-2\uZZZZ-pro', 'sora-2\u00G0-pro', 'sora-2\u-001-pro',
    'sora-2\u 000-pro', 'sora-2\u+000-pro'


=== TEST 19b: a bad \u escape in a key: invalid_json
--- requests
map { { code => 400, body => $_, label => $_,
        json => err('invalid_json', undef) } }
    '{"model":"sora-2-pro","seconds\uZZZZ":4,"seconds":12}',
    '{"model\uZZZZ":"sora-2","model":"sora-2-pro"}'


=== TEST 20: multipart: missing, empty, oversized or bad boundaries
--- request_body_eval
multipart('b' x 71, model => 'sora-2')
--- requests
map { { code => 400, headers => "Content-Type: $_", label => $_,
        json => err('invalid_multipart', undef) } }
    'multipart/form-data', 'multipart/form-data;', 'multipart/form-data; boundary=',
    'multipart/form-data; boundary=""', 'multipart/form-data; boundary=' . ('b' x 71),
    'multipart/form-data; boundary="' . ('b' x 71) . '"',
    'multipart/form-data; boundary=' . ('b' x 71) . '; boundary=' . ('b' x 71),
    'multipart/form-data; boundary="' . ('b' x 70) . '\""',
    "multipart/form-data; boundary=\xff" . ('b' x 10)


=== TEST 21: multipart: a boundary of 70 characters is fine
--- more_headers_eval
"X-Tenant: acme\nContent-Type: multipart/form-data; boundary=" . ('b' x 70)
--- request_body_eval
multipart('b' x 70, model => 'sora-2')
--- error_code: 200
--- response_headers
X-Cost-Cap-Estimate: 0.077415
--- response_body_like: queued
--- redis_keys: 1
--- backend_hits: 1


=== TEST 22: multipart: parts without headers, broken delimiters
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- requests
map { { code => 400, body => $_->[1], label => $_->[0],
        json => err('invalid_multipart', undef) } }
    ['part without headers', "--xyz\r\n\r\nsora-2\r\n--xyz--\r\n"],
    ['only headerless parts', ("--xyz\r\n\r\n1\r\n" x 1000) . "--xyz--\r\n"],
    ['headerless part after a field',
     "--xyz\r\nContent-Disposition: form-data; name=model\r\n\r\nsora-2\r\n"
     . "--xyz\r\n\r\nx\r\n--xyz--\r\n"],
    ['header without colon',
     "--xyz\r\nContent-Disposition form-data; name=model\r\n\r\nsora-2\r\n--xyz--\r\n"],
    ['LF alone ends a header',
     "--xyz\r\nContent-Disposition: form-data; name=model\nX: y\r\n\r\nsora-2\r\n--xyz--\r\n"],
    ['CR alone in a header',
     "--xyz\r\nContent-Disposition: form-data; name=\"mo\rdel\"\r\n\r\nsora-2\r\n--xyz--\r\n"],
    # a backend in C may read "seconds" here (12 s) where the module
    # would price the default 4 s: a name with a control byte is malformed
    ['NUL ending a field name',
     "--xyz\r\nContent-Disposition: form-data; name=model\r\n\r\nsora-2\r\n"
     . "--xyz\r\nContent-Disposition: form-data; name=\"seconds\x{00}\"\r\n\r\n12\r\n--xyz--\r\n"],
    ['control byte in a field name',
     "--xyz\r\nContent-Disposition: form-data; name=model\r\n\r\nsora-2\r\n"
     . "--xyz\r\nContent-Disposition: form-data; name=\"seconds\x{01}\"\r\n\r\n12\r\n--xyz--\r\n"],
    ['empty body', ''],
    ['garbage, no delimiter', "\xff" x 4096],
    ['delimiter without CRLF', "--xyz"],
    ['unterminated quoted name',
     "--xyz\r\nContent-Disposition: form-data; name=\"model\r\n\r\nsora-2\r\n--xyz--\r\n"],
    ['two names',
     "--xyz\r\nContent-Disposition: form-data; name=model; name=x\r\n\r\nsora-2\r\n--xyz--\r\n"],
    ['100k empty headers',
     "--xyz\r\n" . (":\r\n" x 100_000) . "\r\nsora-2\r\n--xyz--\r\n"],
    ['100k header lines without a blank line',
     "--xyz\r\n" . ("X: y\r\n" x 100_000) . "--xyz--\r\n"],


=== TEST 23: multipart: NUL and junk in a field value are bytes, not terminators
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- requests
{ code => 400, body => multipart('xyz', model => "sora-2\x{00}"),
  label => 'model "sora-2\0"', json => err('unknown_model', 'model') },
{ code => 400, body => multipart('xyz', model => "sora-2\x{00}-pro"),
  label => 'model "sora-2\0-pro"', json => err('unknown_model', 'model') },
{ code => 400, body => multipart('xyz', model => "\xff\xfe"),
  label => 'model 0xff 0xfe', json => err('unknown_model', 'model') },
{ code => 400, body => multipart('xyz', model => 'sora-2', seconds => "4\x{00}"),
  label => 'seconds "4\0"', json => err('invalid_parameter', 'seconds') },
{ code => 400, label => 'NUL in the model part\'s name (refused, either way)',
  body => "--xyz\r\nContent-Disposition: form-data; name=model\x{00}\r\n\r\nsora-2\r\n--xyz--\r\n",
  json => { error => ANY } },
{ code => 400, body => multipart('xyz', model => 'sora-2', seconds => '-0'),
  label => 'seconds "-0"', json => err('invalid_parameter', 'seconds') },
{ code => 400, body => multipart('xyz', model => 'flux', size => '9223372036854775808x1'),
  label => 'size past int64', json => err('invalid_parameter', 'size') },


=== TEST 24: tenant from a map of the query: CR, LF, braces, '*', spaces, non-ASCII
--- requests
map { { request => "POST /t/videos?t=$_", code => 400, label => $_,
        body => '{"model":"sora-2"}',
        json => err('tenant_invalid', 'tenant') } }
    'a%0d%0ab', 'a%0ab', 'a%0db', 'a%09b', 'a%7bb', 'a%7db', 'a%2ab',
    'a%20b', 'a%c3%a9', 'a%0d%0aX-Injected:1', '{acme}', 'acme}:day:x',
    'a*', '*', 'a?b', 'a,b', 'a;b', 'a%25', 'a"b', "a'b", 'a\\b',
    'a[b]', 'a|b', 'a`b', 'a!', 'a$b', 'a(b)', 'a<b>',
    'a' x 129, 'a' x 1000, '1' x 129


=== TEST 25: tenant from the query: empty is 401
--- request
POST /t/videos?t=
--- request_body
{"model":"sora-2"}
--- error_code: 401
--- response_json
err('tenant_missing', 'tenant')


=== TEST 26: tenant of 128 bytes from the query is fine
--- request_eval
'POST /t/videos?t=' . ('z' x 128)
--- request_body
{"model":"sora-2"}
--- error_code: 200
--- response_body_like: queued
--- redis_eval
'costcap:{' . ('z' x 128) . '}:day:{day} 77415'
--- redis_keys: 1
--- backend_hits: 1


=== TEST 27: every allowed punctuation byte: the key is written exactly
--- request
POST /t/videos?t=a._~:@+=/-b
--- request_body
{"model":"sora-2"}
--- error_code: 200
--- response_body_like: queued
--- redis
costcap:{a._~:@+=/-b}:day:{day} 77415
--- redis_keys: 1
--- backend_hits: 1


=== TEST 28: tenant header with a tab, DEL or a brace (via the same map)
--- request
POST /t/videos?t=hdr
--- request_body
{"model":"sora-2"}
--- requests
map { { code => 400, headers => "X-Tenant: $_", label => $_,
        json => err('tenant_invalid', 'tenant') } }
    "a\tb", "a\x7fb", 'a}b', 'a{b}', "\xc3\xa9", 'a b', ' a{'


=== TEST 29: a chunked body over cost_cap_max_body: 413 JSON, nothing charged
--- request
POST /small/videos
--- more_headers
X-Tenant: acme
Content-Type: application/json
Transfer-Encoding: chunked
--- request_body_eval
my $j = '{"model":"sora-2","pad":"' . ('x' x 5000) . '"}';
my $b = '';
$b .= sprintf("%x\r\n%s\r\n", length $_, $_) for unpack '(a1000)*', $j;
$b . "0\r\n\r\n"
--- error_code: 413
--- response_json
err('body_too_large', undef)
--- response_headers
Content-Type: application/json


=== TEST 30: a chunked body of one byte over cost_cap_max_body: 413
--- request
POST /small/videos
--- more_headers
X-Tenant: acme
Content-Type: application/json
Transfer-Encoding: chunked
--- request_body_eval
my $j = '{"model":"sora-2","pad":"';
$j .= ('x' x (1025 - length($j) - 2)) . '"}';
my $b = '';
$b .= sprintf("%x\r\n%s\r\n", length $_, $_) for unpack '(a7)*', $j;
$b . "0\r\n\r\n"
--- error_code: 413
--- response_json
err('body_too_large', undef)


=== TEST 31: a chunked body within cost_cap_max_body, in 1-byte chunks, is priced
--- request
POST /small/videos
--- more_headers
X-Tenant: acme
Content-Type: application/json
Transfer-Encoding: chunked
--- request_body_eval
my $b = '';
$b .= "1\r\n$_\r\n" for split //, '{"model":"sora-2","seconds":"1"}';
$b . "0\r\n\r\n"
--- error_code: 200
--- response_headers
X-Cost-Cap-Estimate: 0.019354
--- response_body_like: queued
--- redis
costcap:{acme}:day:{day} 19354
--- redis_keys: 1
--- backend_hits: 1


=== TEST 32: a huge model string: unknown_model, quickly
--- request_body_eval
'{"model":"' . ('sora-2' x 1_000_000) . '"}'
--- error_code: 400
--- response_json
err('unknown_model', 'model')


=== TEST 33: 8 MB of whitespace around the object: parsed and priced
# (the backend answers before reading the 8 MB it is sent and may still be
# discarding them when nginx stops: no backend_hits check, undef below)
--- request_body_eval
(' ' x 4_000_000) . '{"model":"sora-2"}' . ("\n" x 4_000_000)
--- error_code: 200
--- response_headers
X-Cost-Cap-Estimate: 0.077415
--- redis
costcap:{acme}:day:{day} 77415
--- redis_keys: 1
--- backend_hits_eval
undef


=== TEST 34: multipart: a preamble then only the closing delimiter: an empty form
--- more_headers
X-Tenant: acme
Content-Type: multipart/form-data; boundary=xyz
--- request_body_eval
"sora-2\r\n--xyz--\r\n"
--- error_code: 400
--- response_json
err('invalid_parameter', 'model')


=== TEST 35: dry run: a counter near int64 stops growing, requests are still admitted
# 100000 x 90000 px x 1.2 / 10^6 = 1.08e4 GPU-s = 3 GPU-hours at 3e9 USD
# each: 9e9 USD = 9e15 micro-USD, under the 2^53 bound of an estimate;
# the counter already holds 8.995e18: adding to it would pass 9e18, so it
# stays where it is (SPEC section 4: dry run admits every request)
--- config
location /dry/ {
    cost_cap on;
    cost_cap_dry_run on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=total;
    cost_cap_model flux per_mpx_frame=1.2 gpu_price=3000000000;
    proxy_pass http://backend;
}
--- redis_cmd
SET costcap:{acme}:total:all 8995000000000000000
--- request
POST /dry/images
--- request_body
{"model":"flux","size":"100000x90000"}
--- requests
([200]) x 5
--- response_headers
X-Cost-Cap-Estimate: 9000000000
X-Cost-Cap-Dry-Run: rejected
--- redis
costcap:{acme}:total:all 8995000000000000000
--- redis_keys: 1
--- backend_hits: 5


=== TEST 35b: an estimate above 2^53 micro-USD is refused, param null
# 100000000 x 90000000 px x 1.2 / 10^6 = 1.08e10 GPU-s at 10^6 USD per
# GPU-hour: 3e12 USD = 3e18 micro-USD, beyond what Redis' Lua counts exactly
--- config
location /dry/ {
    cost_cap on;
    cost_cap_dry_run on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_limit 100 per=day;
    cost_cap_model flux per_mpx_frame=1.2 gpu_price=1000000;
    proxy_pass http://backend;
}
--- request
POST /dry/images
--- request_body
{"model":"flux","size":"100000000x90000000"}
--- error_code: 400
--- response_json
err('invalid_parameter', undef)
--- redis_keys: 0
--- backend_hits: 0

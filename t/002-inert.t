# SPEC section 3, "Inert when off": where cost_cap is on in no location,
# the module opens no Redis connection, logs nothing and changes no
# response.  Each configuration below has the module loaded and an
# http-level cost_cap_redis, cost_cap on nowhere; it serves the same
# requests as the same configuration without the module (its cost_cap
# lines removed, no load_module), and
#   - cost_cap_redis names a port this test listens on: no connection
#     ever arrives (not "nothing listens": a refused connect leaves no
#     trace here);
#   - error.log holds only nginx's own notice and info lines: nothing from
#     the module, nothing at warn or above; nginx's stderr stays empty;
#   - every response is byte for byte the one without the module (status
#     line, every header but Date, in order, and body).
# A last configuration with cost_cap on shows that the listener does see
# the connection a worker opens.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use IO::Select;

my $L = listen_socket();
my $RP = $L->sockport;

my $BACKEND = <<'END';
location / {
    return 200 "backend $request_method $request_uri t=$http_x_tenant ct=$http_content_type cl=$http_content_length\n";
}
END

# the locations of every configuration; LOC is replaced by the case's
# location directives
my $SERVER = <<'END';
location /v1/ {
    LOC
    proxy_pass http://backend;
}
location /plain {
    LOC
    add_header X-Plain 1;
    return 200 "plain $request_method $http_content_length\n";
}
location /off {
    cost_cap off;
    proxy_pass http://backend;
}
END

my $ALL = <<'END';
cost_cap_tenant $http_x_tenant;
cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
cost_cap_model ~*^flux base=0.5 per_mpx_frame=1.2 default_size=1024x1024;
cost_cap_limit 0.000001 per=day;
cost_cap_limit 0.000001 per=month;
cost_cap_gpu_price 2.5;
cost_cap_field seconds input.seconds;
cost_cap_max_body 1k;
cost_cap_on_error closed;
cost_cap_dry_run off;
cost_cap_headers on;
cost_cap_refund_status 429 500 502;
cost_cap_actual $upstream_http_x_gpu_seconds;
END

my @CASES = (
    {
        name => 'cost_cap_redis only',
        http => "cost_cap_redis 127.0.0.1:$RP;",
        server => '',
        loc => '',
    },
    {
        name => 'cost_cap off in the locations, every directive set',
        http => "cost_cap_redis 127.0.0.1:$RP timeout=50ms;\n$ALL",
        server => $ALL,
        loc => "cost_cap off;\n$ALL",
    },
    {
        name => 'cost_cap off at http level, directives in every level',
        http => "cost_cap_redis 127.0.0.1:$RP;\ncost_cap off;\n$ALL",
        server => "cost_cap_tenant \$http_x_tenant;\n",
        loc => "cost_cap_max_body 10;\n",
    },
    {
        # the case first seen: every worker logged connect() failed
        name => 'cost_cap_redis where connections are refused',
        http => 'cost_cap_redis 127.0.0.1:' . dead_port() . ";\n$ALL",
        server => '',
        loc => "cost_cap off;\n",
    },
    {
        name => 'cost_cap on at http level, off in every server',
        http => "cost_cap_redis 127.0.0.1:$RP;\ncost_cap on;\n$ALL",
        server => "cost_cap off;\n",
        loc => '',
        backend => "cost_cap off;\n",
    },
);

my $JSON = "Content-Type: application/json\nX-Tenant: acme";
my @REQS = (
    [POST => '/v1/videos', $JSON, '{"model":"sora-2","seconds":4}'],
    [POST => '/v1/images', $JSON, '{"model":"flux","size":"1024x1024"}'],
    [POST => '/v1/videos', $JSON, '{"model":"sora-2","seconds":400}'],
    [POST => '/v1/videos', $JSON, '{"model":'],
    [POST => '/v1/videos', $JSON, '{"model":"unknown"}'],
    [PUT => '/v1/videos', $JSON, '{"model":"sora-2"}'],
    [PATCH => '/v1/videos', "Content-Type: application/json",
     '{"model":"sora-2"}'],
    [POST => '/v1/videos', "Content-Type: text/plain\nX-Tenant: acme", 'hi'],
    [POST => '/v1/videos', $JSON, '{"model":"sora-2","pad":"'
                                  . ('x' x 4000) . '"}'],
    [POST => '/v1/images', "Content-Type: multipart/form-data; boundary=b\n"
                           . "X-Tenant: acme",
     multipart('b', model => 'flux', size => '512x512')],
    [GET => '/v1/videos/gen_1', "X-Tenant: acme"],
    [GET => '/v1/models'],
    [HEAD => '/v1/videos/gen_1', "X-Tenant: acme"],
    [POST => '/plain', $JSON, '{"model":"sora-2"}'],
    [GET => '/plain'],
    [POST => '/off', $JSON, '{"model":"sora-2"}'],
);

sub strip_cost_cap {
    my $t = shift;
    $t =~ s/^[ \t]*cost_cap\w*\s[^\n]*(?:\n|\z)//mg;
    return $t;
}

sub conf_for {
    my ($case, $module) = @_;
    (my $server = $SERVER) =~ s/^(\s*)LOC\n/
        join '', map { "$1$_\n" } split m{\n}, $case->{loc}/mge;
    my %c = (
        http_config => $case->{http},
        config => $case->{server} . $server,
        backend_config => ($case->{backend} // '') . $BACKEND,
    );
    return %c if $module;
    return (map({ $_ => strip_cost_cap($c{$_}) } keys %c), no_module => 1);
}

# the raw response without its Date line
sub raw_sans_date {
    my $res = shift;
    return "(no response: $res->{error})" if $res->{error};
    (my $raw = $res->{raw}) =~ s/^Date: [^\r\n]*\r\n//mi;
    return $raw;
}

sub run_requests {
    my $n = shift;
    my @out;
    for my $rq (@REQS) {
        my ($m, $uri, $h, $b) = @$rq;
        push @out, raw_sans_date($n->request(method => $m, uri => $uri,
                                             headers => $h, body => $b));
    }
    return @out;
}

# connections that reached the listener (taken from its queue)
sub connections {
    my $n = 0;
    while (IO::Select->new($L)->can_read(0)) {
        my $c = $L->accept or last;
        close $c;
        $n++;
    }
    return $n;
}

for my $case (@CASES) {
    my $name = $case->{name};
    my $off = start_nginx(conf_for($case, 1));
    my @got = run_requests($off);
    $off->stop;         # every worker has run (and exited): all is logged
    my $plain = start_nginx(conf_for($case, 0));
    my @exp = run_requests($plain);
    $plain->stop;

    unlike($off->{conf}, qr/^load_module/m, "$name: no load_module (static)")
        if $ENV{COST_CAP_NO_MODULE};
    like($off->{conf}, qr/^load_module/m, "$name: module loaded")
        unless $ENV{COST_CAP_NO_MODULE};
    unlike($plain->{conf}, qr/cost_cap|load_module/,
           "$name: the plain configuration has no cost_cap");

    is(connections(), 0, "$name: no connection to cost_cap_redis");

    for my $i (0 .. $#REQS) {
        my ($m, $uri) = @{$REQS[$i]};
        is($got[$i], $exp[$i], "$name: $m $uri as without the module");
    }
    like($got[0], qr{^HTTP/1\.1 200 .*\r\n\r\nbackend POST /v1/videos }s,
         "$name: the request reached the backend");

    my $log = $off->error_log;
    my @bad = grep { !/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[(notice|info)\] /
                     || /cost_cap|redis|hiredis|connect\(\)/i }
              split /\n/, $log;
    ok(!@bad, "$name: error.log has only nginx's notice and info lines")
        or diag(join "\n", 'error.log:', @bad);
    like($log, qr/\[notice\] \d+#\d+: start worker process/,
         "$name: error.log was written");
    is(CostCap::Test::_slurp($off->dir . '/nginx.out'), '',
       "$name: nothing on stderr");
}

# the control: on in one location, each worker connects at start
{
    my $name = 'control: cost_cap on';
    my $n = start_nginx(http_config => "cost_cap_redis 127.0.0.1:$RP;",
                        config => <<'END', workers => 2);
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    proxy_pass http://backend;
}
END
    ok(poll_until(sub { IO::Select->new($L)->can_read(0) }, 5),
       "$name: a worker connects to cost_cap_redis");
    $n->stop;
    ok(connections() >= 1, "$name: connections counted");
}

done_testing();

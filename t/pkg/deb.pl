# make test-deb: the Debian package, end to end, on this machine.
#
#   1. `make deb` in a clean clone of the repository (HEAD: what is not
#      committed is not tested) placed under a directory named like
#      mktemp's tmp.S4xB8G, the path NGINX's auto/make mangles;
#   2. the package's control fields and contents (the nginx ABI it was
#      built against, hiredis; the .so, the modules-available
#      snippet, every preset, example, dashboard and rules file);
#      lintian's errors and warnings, when lintian is installed;
#   3. `apt-get install ./*.deb`: the modules-enabled symlink;
#   4. /usr/sbin/nginx with a test nginx.conf (-p/-c in a temporary
#      directory, loopback ports) that includes
#      /etc/nginx/modules-enabled/*.conf: nginx -t passes (and fails
#      without the include), every packaged preset loads, one request is
#      priced against a real redis-server (headers and the counter);
#   5. `apt-get purge`: the .so, the snippet, the symlink and
#      /usr/share/nginx-cost-cap/ are gone.
#
# The system's nginx.conf and service are never touched.  Runs as root
# (or with sudo); one run at a time per machine (a lock in /tmp).

use strict;
use warnings;

BEGIN {
    # the packaged snippet loads the module, not the harness
    $ENV{COST_CAP_NO_MODULE} = 1;
    $ENV{COST_CAP_NGINX} = '/usr/sbin/nginx';
}

use FindBin;
use lib "$FindBin::Bin/../lib";
use CostCap::Test;
use Fcntl qw(:flock);
use Time::HiRes ();

my $ROOT = repo_root();
my $PKG = 'libnginx-mod-http-cost-cap';
my $SO = '/usr/lib/nginx/modules/ngx_http_cost_cap_module.so';
my $AVAILABLE = '/usr/share/nginx/modules-available/mod-http-cost-cap.conf';
my $ENABLED = '/etc/nginx/modules-enabled/50-mod-http-cost-cap.conf';
my $SHARE = '/usr/share/nginx-cost-cap';
my $SUDO = $> == 0 ? '' : 'sudo ';
my $APT = "${SUDO}env DEBIAN_FRONTEND=noninteractive apt-get -y -q "
        . '-o DPkg::Lock::Timeout=300 --no-install-recommends';

sub sh {
    my $cmd = shift;
    my $out = qx{$cmd 2>&1};
    return ($? == 0, $out);
}

sub installed {
    my $p = shift;
    my $s = qx{dpkg-query -W -f='\${Status}' $p 2>/dev/null};
    return $s =~ /ok installed/;
}

sub purge {
    my @p = grep { installed($_) || -e "/var/lib/dpkg/info/$_.list" }
            ($PKG, "$PKG-dbgsym");
    return (1, '') unless @p;
    return sh("$APT purge @p");
}

my $T0 = Time::HiRes::time();

open my $lock, '>', '/tmp/ngx-cost-cap-test-deb.lock' or die $!;
flock $lock, LOCK_EX or die "lock: $!";

Test::More::note("$PKG was installed before the test: it is purged at the end")
    if installed($PKG);


# -------------------------------------------------------------------------
# 1. a clean clone, built where auto/make would mangle the path

my $tmp = tmp_dir();
my $clone = "$tmp/tmp.S4xB8G/ngx_cost_cap_module";
{
    my ($ok, $out) = sh("git clone -q '$ROOT' '$clone'");
    ok($ok, 'a clean clone') or diag($out);
    my $dirty = qx{git -C '$ROOT' status --porcelain --untracked-files=no};
    Test::More::note("uncommitted changes are not in the clone:\n$dirty")
        if length $dirty;
}

# dh-sequence-nginx runs NGINX's configure and make in /usr/share/nginx/src:
# whatever the build generates (the config script included) belongs in
# the build directory, not there
CostCap::Test::_spit("$tmp/before-build", '');
my $t = Time::HiRes::time();
my ($built, $build_out) = sh("make -C '$clone' deb");
ok($built, sprintf('make deb in %s (%.0f s)', $clone,
                   Time::HiRes::time() - $t))
    or diag($build_out);
like($build_out, qr{building \Q$PKG\E \S+ in /tmp/cost-cap-deb-},
     'built away from the ".S" path');
is(qx{find /usr/share/nginx/src -newer '$tmp/before-build'}, '',
   'the build wrote nothing into /usr/share/nginx/src');

# built in place, in the ".S" path, debian/rules stops with the reason
{
    my ($ok, $out) = sh("cd '$clone' && dpkg-buildpackage -b -us -uc");
    ok(!$ok, 'dpkg-buildpackage in the ".S" path fails');
    like($out, qr/the source path \S+ contains "\.S", which NGINX's auto\/make/,
         '... naming the reason');
}

my @debs = sort glob "$clone/build/deb/*.deb";
my ($deb) = grep { m{/\Q$PKG\E_[^/]*\.deb$} } @debs;
ok($deb, 'the package: ' . join(' ', map { s{.*/}{}r } @debs))
    or Test::More::BAIL_OUT('no package built');


# -------------------------------------------------------------------------
# 2. control fields, contents, lintian

my %f = map { $_ => scalar qx{dpkg-deb -f '$deb' $_} } qw(Package Depends);
chomp %f;
my $abi = '';
if (open my $fh, '<', '/usr/share/nginx/src/debian/libnginx-mod.abisubstvars') {
    /^nginx:abi=(\S+)/ and $abi = $1 while <$fh>;
}
ok(length $abi, "nginx-dev's ABI: $abi");
is($f{Package}, $PKG, 'Package');
like($f{Depends}, qr/(^|, )\Q$abi\E(,|$)/, "Depends on $abi");
like($f{Depends}, qr/(^|, )libhiredis0\.14 /, 'Depends on libhiredis0.14');
unlike($f{Depends}, qr/libcjson/, 'no cJSON: the module parses JSON itself');

my @contents = map { (split ' ', $_, 6)[5] } split /\n/, qx{dpkg-deb -c '$deb'};
s{^\./}{/} for @contents;
my %has = map { $_ => 1 } @contents;
Test::More::note("dpkg -c $deb:\n" . qx{dpkg-deb -c '$deb'});
ok($has{$SO}, "ships $SO");
ok($has{$AVAILABLE}, "ships $AVAILABLE");
my @want;
for (['conf/presets', 'presets'], ['conf/examples', 'examples'],
     ['ops/grafana', 'grafana'], ['ops/prometheus', 'prometheus']) {
    my ($from, $to) = @$_;
    my @files = map { s{.*/}{}r } glob "$clone/$from/*";
    ok(@files, "$from/ has files");
    push @want, map { "$SHARE/$to/$_" } @files;
}
is_deeply([grep { !$has{$_} } @want], [],
          "every file of conf/presets, conf/examples, ops/grafana, "
          . "ops/prometheus in $SHARE/");

if (system('command -v lintian >/dev/null 2>&1') == 0) {
    my ($ok, $out) = sh("lintian --fail-on error,warning '$deb'");
    ok($ok, 'lintian: no error, no warning') or diag($out);
    Test::More::note("lintian:\n$out");
} else {
    Test::More::note('lintian is not installed: not run');
}


# -------------------------------------------------------------------------
# 3. install

{
    my $dir = "$clone/build/deb";
    my ($ok, $out) = sh("cd '$dir' && $APT install ./*.deb");
    ok($ok, 'apt-get install ./*.deb') or diag($out);
}
ok(installed($PKG), "$PKG installed");
ok(-f $SO, "$SO in place");
is(readlink($ENABLED), $AVAILABLE, "$ENABLED -> $AVAILABLE");
is(CostCap::Test::_slurp($AVAILABLE),
   "load_module modules/ngx_http_cost_cap_module.so;\n", 'the snippet');


# -------------------------------------------------------------------------
# 4. the system's nginx binary with the packaged snippet

# NAME.http.conf is the http{} part of the preset NAME.conf (a map)
my @presets = sort grep { !/\.http\.conf$/ } glob "$SHARE/presets/*.conf";
my @http_parts = sort glob "$SHARE/presets/*.http.conf";
ok(@presets, 'presets installed: ' . join(' ', map { s{.*/}{}r } @presets));
ok(@http_parts, 'their http{} parts: '
                . join(' ', map { s{.*/}{}r } @http_parts));

my $i = 0;
my $preset_locations = join '', map { ++$i; <<"END" } @presets;
location = /preset/$i {
    cost_cap on;
    cost_cap_limit 10 per=day;
    include $_;
    proxy_pass http://backend;
}
END

my %conf = (
    main_config => "include /etc/nginx/modules-enabled/*.conf;\n",
    http_config => 'cost_cap_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT;' . "\n"
                   . join('', map { "include $_;\n" } @http_parts),
    config => <<"END",
cost_cap_tenant \$http_x_tenant;
location = /metrics {
    cost_cap_metrics;
}
location /v1/ {
    cost_cap on;
    cost_cap_limit 10 per=day;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4 max_seconds=12;
    proxy_pass http://backend;
}
$preset_locations
END
);

start_redis();

# the relative load_module path resolves against the prefix (-p), as it
# does against /usr/share/nginx, where modules is the same link
sub nginx_with {
    my (%o) = @_;
    my $n = CostCap::Test::Nginx->new(%o);
    symlink '/usr/share/nginx/modules', $n->dir . '/modules'
        or die "symlink: $!";
    return $n;
}

{
    my ($ok, $out) = nginx_with(%conf, main_config => '')->test_config;
    ok(!$ok, 'nginx -t fails without the modules-enabled include');
    like($out, qr/unknown directive "cost_cap_redis"/,
         'the module comes from the snippet only');
}

my $n = nginx_with(%conf);
my ($ok, $out) = $n->test_config;
ok($ok, 'nginx -t with /etc/nginx/modules-enabled/*.conf and every '
        . 'packaged preset') or diag($out);

$n->start;
my $res = $n->request(method => 'POST', uri => '/v1/videos', timeout => 5,
                      headers => "X-Tenant: acme\nContent-Type: application/json",
                      body => '{"model":"sora-2"}');
# 1280x720 x 96 frames x 0.9 = 79.62624 GPU-s at 3.50 USD/h: 77415 micro-USD
is($res->{status}, 200, 'POST priced and admitted');
is(header_value($res, 'X-Cost-Cap-Estimate'), '0.077415', 'X-Cost-Cap-Estimate');
is(header_value($res, 'X-Cost-Cap-Limit'), '10', 'X-Cost-Cap-Limit');
is(header_value($res, 'X-Cost-Cap-Remaining'), '9.922585',
   'X-Cost-Cap-Remaining');
my %w = window_info();
is(redis()->cmd('GET', "costcap:{acme}:day:$w{day}"), 77415,
   "Redis: costcap:{acme}:day:$w{day} = 77415");

my $m = $n->request(method => 'GET', uri => '/metrics', timeout => 5);
like($m->{body} // '', qr/^cost_cap_requests_total\{result="admitted"\} 1$/m,
     'cost_cap_metrics counts it');

$n->stop;
unlike($n->error_log, qr/\[(alert|emerg|crit)\]|exited on signal/,
       'error log: no crit, alert or emerg');


# -------------------------------------------------------------------------
# 5. purge

{
    my ($ok, $out) = purge();
    ok($ok, "apt-get purge $PKG $PKG-dbgsym") or diag($out);
}
ok(!installed($PKG), "$PKG not installed");
ok(!-e "/var/lib/dpkg/info/$PKG.list", 'no dpkg record left');
ok(!-e $SO, "$SO gone");
ok(!-e $AVAILABLE, "$AVAILABLE gone");
ok(!-e $ENABLED && !-l $ENABLED, "$ENABLED gone");
ok(!-l "$ENABLED.removed", "$ENABLED.removed gone");
ok(!-e $SHARE, "$SHARE gone");
ok(!-e "/usr/share/doc/$PKG", "/usr/share/doc/$PKG gone");

my $took = Time::HiRes::time() - $T0;
ok($took < 300, sprintf('whole run bounded (%.0f s)', $took));

done_testing();

END {
    # a failed run leaves nothing installed either
    local $?;
    purge() if $lock && installed($PKG);
}

# SPEC sections 2.6, 2.8, 4 ("Redis time", "Dry run", "Late replies"),
# 9 ("Exact accounting under faults"), 10 (idempotency) and 11 (caps in
# Redis, threshold events): the Redis scripts of
# ngx_cost_cap_module/scripts/, run as they are against a real
# redis-server, without NGINX (EVAL of the file's bytes, and once with
# redis-cli --eval); and the SHA1 the module calls them by is the one
# Redis gives the file.  (Of lease.lua and reserve.lua's leases, SPEC
# section 13, only the give-backs: t/096 covers the rest.)
#
# Each script's KEYS and ARGV are documented at its top; the calls below
# follow those comments.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use CostCap::Test::Node;
use Digest::SHA qw(sha1_hex);
use Time::HiRes qw(time sleep);

my $DIR = repo_root() . '/ngx_cost_cap_module/scripts';
my %LUA;
for my $f (glob "$DIR/*.lua") {
    my ($name) = $f =~ m{/(\w+)\.lua\z};
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    $LUA{$name} = <$fh>;
}
is_deeply([sort keys %LUA],
          [qw(cancel claim event hold lease pointer release reserve settle)],
          'the scripts');

my $r = start_redis();
my $NOW = redis_time();
my $MARKER_TTL = 60000;
my $SEQ = 0;

sub R { redis()->cmd(@_) }

sub ev {
    my ($script, $keys, $args) = @_;
    return R('EVAL', $LUA{$script}, scalar @$keys, @$keys, @$args);
}

sub ev_err {
    my ($script, $keys, $args) = @_;
    my ($res, $err) = redis()->client->try_cmd('EVAL', $LUA{$script},
                                               scalar @$keys, @$keys, @$args);
    return $err;
}

sub id { sprintf '%024x', ++$SEQ }

# reserve(%o): reserve.lua, as the module calls it.  o{win}: [[name, cap
# ('' none), start, end, key], ...] (the tenant's first, o{nt} of them);
# o{caps}, o{pcaps}, o{idem}, o{alerts}: the optional keys
sub reserve {
    my (%o) = @_;
    my $tag = $o{tag} // 't';
    my $marker = "costcap:{$tag}:op:" . ($o{id} // id());
    my ($lay, @opt) = ('');
    for (['c', 'caps'], ['p', 'pcaps'], ['i', 'idem'], ['a', 'alerts']) {
        next unless defined $o{$_->[1]};
        $lay .= $_->[0];
        push @opt, $o{$_->[1]};
    }
    my @w = @{$o{win}};
    my @keys = ($marker, @opt, map { $_->[4] } @w);
    my @args = ($o{mode} // 'r', $o{est}, $lay, scalar @w, $o{nt} // scalar(@w),
                $o{marker_ttl} // $MARKER_TTL, $o{idem_ttl} // 86400,
                $o{thresholds} // '', $o{tprefix} // 'tenant', 'parent',
                map { @$_[0 .. 3] } @w);
    my $res = ev('reserve', \@keys, \@args);
    return wantarray ? ($res, $marker) : $res;
}

# periods around now: a day that contains it, one before and one after
my $DAY0 = $NOW - $NOW % 86400;
my @TODAY = ($DAY0, $DAY0 + 86400);
sub day { my ($t, $cap, @p) = @_; ['day', $cap, @p ? @p : @TODAY,
                                   "costcap:{$t}:day:P"] }
sub total { my ($t, $cap) = @_; ['total', $cap, 0, 0,
                                 "costcap:{$t}:total:all"] }

sub status { $_[0][0] }
sub nkeys { my $p = shift; scalar grep { !/:op:/ } @{R('KEYS', "*{$p}*")} }


# -------------------------------------------------------------------------
# reserve.lua: periods

{
    my $t = 'dates';
    my ($res, $m) = reserve(tag => $t, est => 100,
                            win => [day($t, 1000, $DAY0 + 86400,
                                        $DAY0 + 2 * 86400)]);
    is(status($res), -1, 'reserve: a period not begun yet: -1');
    ok(abs($res->[1] - $NOW) < 60, 'reserve: ... with the server\'s time');
    is(nkeys($t), 0, 'reserve: ... nothing written');
    is(R('EXISTS', $m), 0, 'reserve: ... not even the marker');

    $res = reserve(tag => $t, est => 100,
                   win => [day($t, 1000, $DAY0 - 86400, $DAY0)]);
    is(status($res), -1, 'reserve: a period that ended (end = its '
                         . 'successor\'s start): -1');
    $res = reserve(tag => $t, est => 100,
                   win => [total($t, 1000), day($t, 1000, 1, 2)]);
    is(status($res), -1, 'reserve: any one stale window: -1');
    is(nkeys($t), 0, 'reserve: ... nothing written, not the other window');

    $res = reserve(tag => $t, est => 100, win => [day($t, 1000)]);
    is(status($res), 1, 'reserve: the current period: admitted');
    is(R('GET', "costcap:{$t}:day:P"), 100, 'reserve: ... charged');
    my $ttl = R('TTL', "costcap:{$t}:day:P");
    my $want = $DAY0 + 2 * 86400 - $NOW;
    ok($ttl <= $want && $ttl >= $want - 5,
       "reserve: the counter lives a day past its period ($ttl s)");

    $res = reserve(tag => $t, est => 50, mode => 'f',
                   win => [day($t, 10, $DAY0 - 86400, $DAY0)]);
    is(status($res), 0, 'reserve: force, a past period, past its cap');
    is($res->[3], 1, 'reserve: ... charged all the same (mask 1)');
    is(R('GET', "costcap:{$t}:day:P"), 150,
       'reserve: ... on the key it was given');
}


# -------------------------------------------------------------------------
# reserve.lua: caps, all windows or none, replies

{
    my $t = 'caps';
    my @win = (total($t, 1000), day($t, 500));
    my $res = reserve(tag => $t, est => 300, win => \@win);
    is_deeply([@$res[0, 3 .. 7]], [1, 3, 0, 1000, 0, 500],
              'reserve: admitted, both windows charged (mask 3), spent '
              . 'before and caps');
    $res = reserve(tag => $t, est => 200, win => \@win);
    is_deeply([@$res[0, 3 .. 7]], [1, 3, 300, 1000, 300, 500],
              'reserve: spent + estimate = cap is admitted');
    $res = reserve(tag => $t, est => 1, win => \@win);
    is_deeply([@$res[0, 3 .. 7]], [0, 0, 500, 1000, 500, 500],
              'reserve: one window crossed: refused, mask 0');
    is(R('GET', $win[0][4]), 500, 'reserve: ... the other window untouched');
    is(R('GET', $win[1][4]), 500, 'reserve: ... nor the crossed one');

    # a window without a cap is not counted
    $res = reserve(tag => $t, est => 1, win => [total($t, ''),
                                                ['week', '', @TODAY,
                                                 "costcap:{$t}:week:P"]]);
    is_deeply([@$res[0, 3 .. 7]], [1, 0, 0, -1, 0, -1],
              'reserve: no cap at all: admitted, nothing counted');
    is(R('EXISTS', "costcap:{$t}:week:P"), 0, 'reserve: ... no key made');

    # the marker: a resend applies once; a cancelled one never
    my $id = id();
    ($res, my $m) = reserve(tag => 'mk', id => $id, est => 7,
                            win => [total('mk', 100)]);
    is(status($res), 1, 'reserve: admitted');
    is(R('GET', $m), 'A:1:0', 'reserve: the marker says applied, where '
                              . '(mask 1), and no lease');
    my $pttl = R('PTTL', $m);
    ok($pttl > $MARKER_TTL - 5000 && $pttl <= $MARKER_TTL,
       "reserve: the marker lives ARGV[6] ms ($pttl)");
    $res = reserve(tag => 'mk', id => $id, est => 7,
                   win => [total('mk', 100)]);
    is_deeply([@$res[0, 3]], [2, 1], 'reserve: the same id again: applied '
                                     . 'before, its mask');
    is(R('GET', 'costcap:{mk}:total:all'), 7, 'reserve: ... charged once');
    is($res->[4], 0, 'reserve: ... and the lease it took: none');
    R('SET', 'costcap:{mk}:op:' . ($id = id()), 'A:1:1200', 'PX', 60000);
    $res = reserve(tag => 'mk', id => $id, est => 7,
                   win => [total('mk', 100)]);
    is_deeply([@$res[0, 3, 4]], [2, 1, 1200],
              'reserve: applied before with a lease: its mask and the lease '
              . '(lost with the first reply: the worker gives it back)');
    is(R('GET', 'costcap:{mk}:total:all'), 7, 'reserve: ... nothing charged');
    R('SET', 'costcap:{mk}:op:' . ($id = id()), 'C');
    $res = reserve(tag => 'mk', id => $id, est => 7,
                   win => [total('mk', 100)]);
    is(status($res), 3, 'reserve: a cancelled id: 3');
    is(R('GET', 'costcap:{mk}:total:all'), 7, 'reserve: ... not charged');

    # quote: the same answer, nothing written
    ($res, $m) = reserve(tag => 'mk', est => 7, mode => 'q',
                         win => [total('mk', 100)]);
    is_deeply([@$res[0, 4, 5]], [1, 7, 100], 'reserve: quote: the answer');
    is(R('GET', 'costcap:{mk}:total:all'), 7, 'reserve: ... nothing charged');
    is(R('EXISTS', $m), 0, 'reserve: ... no marker');
}


# -------------------------------------------------------------------------
# reserve.lua: dry run

{
    my $t = 'dry';
    my @win = (total($t, 100));
    my $res = reserve(tag => $t, est => 150, mode => 'd', win => \@win);
    is_deeply([@$res[0, 3, 4]], [0, 1, 0],
              'reserve: dry run past the cap: refused, yet charged');
    $res = reserve(tag => $t, est => 150, mode => 'd', win => \@win);
    is_deeply([@$res[0, 3, 4]], [0, 1, 150], 'reserve: ... and counted on');
    is(R('GET', $win[0][4]), 300, 'reserve: dry run counts every request');

    # short of 9e18: past it, the counter stays as it is
    R('SET', $win[0][4], '8999999999999990000');
    ($res, my $m) = reserve(tag => $t, est => 77415, mode => 'd',
                            win => \@win);
    is_deeply([@$res[0, 3]], [0, 0],
              'reserve: dry run, 9e18 would be crossed: nothing charged');
    is(R('GET', $win[0][4]), '8999999999999990000',
       'reserve: ... the counter exactly as it was');
    is(R('EXISTS', $m), 0, 'reserve: ... no marker (nothing to give back)');
    R('SET', $win[0][4], '8999999999999000000');
    $res = reserve(tag => $t, est => 77415, mode => 'd', win => \@win);
    is($res->[3], 1, 'reserve: dry run below 9e18: charged');
    is(R('GET', $win[0][4]), '8999999999999077415',
       'reserve: ... exactly (integer INCRBY, not a double)');
}


# -------------------------------------------------------------------------
# reserve.lua: idempotency

{
    my $t = 'idem';
    my $key = "costcap:{$t}:idem:k1";
    my @win = (total($t, 1000));
    my ($res, $m) = reserve(tag => $t, est => 100, idem => $key,
                            idem_ttl => 3600, win => \@win);
    is(status($res), 1, 'reserve: idempotency key: first use admitted');
    is(R('GET', $key), "100:$m",
       'reserve: ... the key holds the estimate and the marker');
    my $ttl = R('TTL', $key);
    ok($ttl > 3590 && $ttl <= 3600, "reserve: ... for ARGV[7] s ($ttl)");
    $res = reserve(tag => $t, est => 100, idem => $key, win => \@win);
    is(status($res), 4, 'reserve: the same key and price: replay (4)');
    $res = reserve(tag => $t, est => 101, idem => $key, win => \@win);
    is_deeply([@$res[0, 3]], [5, 100],
              'reserve: the same key, another price: conflict (5), the '
              . 'first estimate');
    is(R('GET', $win[0][4]), 100, 'reserve: ... charged once in all');
    $res = reserve(tag => $t, est => 100, idem => $key, mode => 'f',
                   win => \@win);
    is(status($res), 1, 'reserve: force does not look at the key');
}


# -------------------------------------------------------------------------
# reserve.lua: caps hashes (SPEC section 11)

{
    my $t = 'hash';
    my $caps = "costcap:{$t}:caps";
    my @win = (total($t, 1000), day($t, ''));

    R('HSET', $caps, 'total', 50);
    my $res = reserve(tag => $t, est => 60, caps => $caps, win => \@win);
    is_deeply([@$res[0, 5]], [0, 50], 'reserve: a cap in the hash '
                                      . 'overrides the configured one');
    R('HSET', $caps, 'total', 'off');
    $res = reserve(tag => $t, est => 60, caps => $caps, win => \@win);
    is_deeply([@$res[0, 3, 5]], [1, 0, -1],
              "reserve: 'off' turns the window off: not enforced, not "
              . 'counted');
    R('HDEL', $caps, 'total');
    R('HSET', $caps, 'day', 70);
    $res = reserve(tag => $t, est => 60, caps => $caps, win => \@win);
    is_deeply([@$res[0, 3, 5, 7]], [1, 3, 1000, 70],
              'reserve: a window only in the hash is enforced and counted');
    $res = reserve(tag => $t, est => 60, caps => $caps, win => \@win);
    is_deeply([@$res[0, 6, 7]], [0, 60, 70], 'reserve: ... and refuses');

    for my $bad ('12x', '-5', '1.5', '', '12345678901234567',
                 '9007199254740992') {
        R('HSET', $caps, 'day', $bad);
        my $err;
        $res = reserve(tag => $t, est => 1, caps => $caps, win => \@win);
        is_deeply([@$res[0, 3, 4]], [-2, 2, $bad],
                  "reserve: malformed cap '$bad': -2, the window, the value");
    }
    is(R('GET', $win[0][4]), 60, 'reserve: ... nothing written by them');

    # the parent's hash holds the parent's windows (after ARGV[5])
    my $pcaps = 'costcap:{org}:caps';
    R('DEL', $caps);
    R('HSET', $pcaps, 'total', 10);
    $res = reserve(tag => 'org', est => 20, caps => $caps, pcaps => $pcaps,
                   nt => 1, win => [total('org:u1', 1000),
                                    total('org', 1000)]);
    is_deeply([@$res[0, 5, 7]], [0, 1000, 10],
              "reserve: the parent's hash caps the parent's window only");
}


# -------------------------------------------------------------------------
# reserve.lua: a counter that is not a whole number

{
    my $t = 'float';
    my @win = (total($t, 1000), day($t, 1000));
    R('SET', $win[1][4], '1.5');
    my ($res, $m) = reserve(tag => $t, est => 1, win => \@win);
    is_deeply([@$res[0, 3]], [-3, 2],
              'reserve: a counter of 1.5: -3 and the window');
    is(R('EXISTS', $win[0][4]), 0, 'reserve: ... nothing written');
    is(R('EXISTS', $m), 0, 'reserve: ... no marker');
    R('SET', $win[1][4], 'abc');
    is(status(reserve(tag => $t, est => 1, win => \@win)), -3,
       'reserve: a counter of abc: -3');
}


# -------------------------------------------------------------------------
# reserve.lua: threshold events (SPEC section 11)

{
    my $t = 'alert';
    my $alerts = "costcap:{$t}:alerts";
    my @win = (day($t, 1000));
    my %o = (tag => $t, alerts => $alerts, thresholds => '50 80 100',
             win => \@win);
    my $res = reserve(%o, est => 600);
    is_deeply([@$res[6 .. $#$res]], [1, 50],
              'reserve: 0 -> 600 of 1000: the 50 % threshold');
    $res = reserve(%o, est => 100);
    is(scalar @$res, 6, 'reserve: 600 -> 700: none');
    $res = reserve(%o, est => 300);
    is_deeply([@$res[6 .. $#$res]], [1, 80, 1, 100],
              'reserve: 700 -> 1000: 80 and 100 at once');
    $res = reserve(%o, est => 1);
    is_deeply([$res->[0], scalar @$res], [0, 6],
              'reserve: refused past the cap: none');
    # a refund, and the threshold crossed again: still once per period
    R('SET', $win[0][4], 100);
    $res = reserve(%o, est => 500);
    is(scalar @$res, 6, 'reserve: 50 % crossed again in the period: none');
    my $h = R('HGETALL', $alerts);
    my %h = @$h;
    is_deeply([sort keys %h], [map { "tenant:day:$DAY0:$_" } 100, 50, 80],
              'reserve: the alerts hash: one field per threshold and period');
    my $ttl = R('TTL', $alerts);
    ok($ttl > 3455000 && $ttl <= 3456000, "reserve: ... kept 40 days");

}


# -------------------------------------------------------------------------
# cancel.lua: a give-back by id

sub cancel {
    my ($m, $est, $keys, %o) = @_;
    my @k = ($m, defined $o{idem} ? $o{idem} : (), @$keys);
    return ev('cancel', \@k, [$est, $MARKER_TTL, defined $o{idem} ? 'i' : '',
                              map { $o{expire} // 0 } @$keys]);
}

{
    my $t = 'cancel';
    my @win = (total($t, 1000), day($t, 1000));
    my @keys = map { $_->[4] } @win;

    # never applied: a tombstone, and the reservation can never apply
    my $id = id();
    my $m = "costcap:{$t}:op:$id";
    is(cancel($m, 100, \@keys), 0, 'cancel: nothing applied: 0');
    is(R('GET', $m), 'C', 'cancel: ... a tombstone');
    my $pttl = R('PTTL', $m);
    ok($pttl > $MARKER_TTL - 5000, "cancel: ... for ARGV[2] ms ($pttl)");
    my $res = reserve(tag => $t, id => $id, est => 100, win => \@win);
    is(status($res), 3, 'cancel: the late reservation finds it: 3');
    is(nkeys($t), 0, 'cancel: ... nothing written');

    # applied on one window of two (mask 2): exactly that one refunded
    R('SET', $keys[0], 500);
    R('SET', $keys[1], 700);
    R('EXPIRE', $keys[1], 5000);
    $m = "costcap:{$t}:op:" . id();
    R('SET', $m, 'A:2', 'PX', 60000);
    is(cancel($m, 100, \@keys), 1, 'cancel: applied: given back');
    is(R('GET', $keys[0]), 500, 'cancel: ... not the window it missed');
    is(R('GET', $keys[1]), 600, 'cancel: ... exactly the estimate');
    my $ttl = R('TTL', $keys[1]);
    ok($ttl > 4990 && $ttl <= 5000, "cancel: ... its TTL kept ($ttl)");
    is(R('GET', $m), 'R', 'cancel: the marker says refunded');
    ok(R('PTTL', $m) > 50000, 'cancel: ... its TTL kept');
    is(cancel($m, 100, \@keys), 0, 'cancel: twice: nothing more');
    is(R('GET', $keys[1]), 600, 'cancel: ... once');

    # never below 0; an expiry where the key has none
    R('SET', $keys[0], 30);
    $m = "costcap:{$t}:op:" . id();
    R('SET', $m, 'A:1', 'PX', 60000);
    is(cancel($m, 100, [$keys[0]], expire => $NOW + 1000), 1,
       'cancel: more than the counter holds');
    is(R('GET', $keys[0]), 0, 'cancel: ... 0, not below');
    $ttl = R('TTL', $keys[0]);
    ok($ttl > 990 && $ttl <= 1000, "cancel: ... expiry set ($ttl)");

    # the idempotency key goes only if it names this reservation
    my $idem = "costcap:{$t}:idem:k";
    $m = "costcap:{$t}:op:" . id();
    R('SET', $m, 'A:1', 'PX', 60000);
    R('SET', $idem, "100:costcap:{$t}:op:other");
    cancel($m, 100, [$keys[0]], idem => $idem);
    is(R('EXISTS', $idem), 1, "cancel: another's idempotency key stays");
    $m = "costcap:{$t}:op:" . id();
    R('SET', $m, 'A:1', 'PX', 60000);
    R('SET', $idem, "100:$m");
    cancel($m, 100, [$keys[0]], idem => $idem);
    is(R('EXISTS', $idem), 0, 'cancel: its own is freed');

    # a reservation that took a lease: both given back, the lease gone
    my $lease = "costcap:{$t}:lease:" . id();
    R('SET', $keys[0], 5000);
    $m = "costcap:{$t}:op:" . id();
    R('SET', $m, 'A:1:1200', 'PX', 60000);
    R('SET', $lease, 'L:1:1200', 'PX', 60000);
    is(ev('cancel', [$m, $lease, $keys[0]], [100, $MARKER_TTL, 'l', 0]), 1,
       'cancel: a reservation with a lease');
    is(R('GET', $keys[0]), 5000 - 1300, 'cancel: ... its estimate and the '
                                        . 'lease given back');
    is(R('EXISTS', $lease), 0, 'cancel: ... the lease gone');

    # its lease given back already (the late reply of an open request):
    # only the estimate goes, the lease is not given back twice
    R('SET', $keys[0], 5000);
    $m = "costcap:{$t}:op:" . id();
    $lease = "costcap:{$t}:lease:" . id();
    R('SET', $m, 'A:1:1200', 'PX', 60000);
    R('SET', $lease, 'L:1:1200', 'PX', 60000);
    is(ev('lease', [$lease, $keys[0]], [1200, 0]), 1,
       'cancel: a lease given back first');
    is(R('GET', $keys[0]), 3800, 'cancel: ... by lease.lua');
    is(ev('cancel', [$m, $lease, $keys[0]], [100, $MARKER_TTL, 'l', 0]), 1,
       'cancel: ... then the reservation');
    is(R('GET', $keys[0]), 3700, 'cancel: ... only its estimate given back');
}


# -------------------------------------------------------------------------
# lease.lua: what a worker did not use of a lease, once

{
    my $t = 'lease';
    my @keys = ("costcap:{$t}:total:all", "costcap:{$t}:day:P");
    R('SET', $_, 5000) for @keys;
    my $lease = "costcap:{$t}:lease:" . id();
    R('SET', $lease, 'L:3:1000', 'PX', 60000);
    is(ev('lease', [$lease, @keys], [300, 0, 0]), 1, 'lease: given back');
    is_deeply([map { R('GET', $_) } @keys], [4700, 4700],
              'lease: ... what was not used, on every key');
    is(ev('lease', [$lease, @keys], [300, 0, 0]), 0, 'lease: once');
    is(R('GET', $keys[0]), 4700, 'lease: ... nothing more');
    R('SET', $lease, 'L:3:1000', 'PX', 60000);
    ev('lease', [$lease, @keys], [99999, 0, 0]);
    is(R('GET', $keys[0]), 3700, 'lease: never more than the lease');
    R('SET', $lease, 'L:3:1000', 'PX', 60000);
    R('SET', $keys[0], 10);
    ev('lease', [$lease, @keys], [1000, 0, 0]);
    is(R('GET', $keys[0]), 0, 'lease: never below 0');
}


# -------------------------------------------------------------------------
# settle.lua: once per id, never below 0, TTL kept or set

sub settle {
    my ($m, $amount, $keys, %o) = @_;
    my @k = ($m, defined $o{idem} ? $o{idem} : (), @$keys);
    return ev('settle', \@k, [$amount, $MARKER_TTL,
                              defined $o{idem} ? 'i' : '', $o{rsv} // '-',
                              map { $o{expire} // 0 } @$keys]);
}

{
    my $t = 'settle';
    my @keys = ("costcap:{$t}:total:all", "costcap:{$t}:day:P");
    R('SET', $keys[0], 1000);
    R('SET', $keys[1], 1000, 'EX', 7000);
    my $m = "costcap:{$t}:op:" . id();
    is(settle($m, -300, \@keys), 1, 'settle: applied');
    is_deeply([map { R('GET', $_) } @keys], [700, 700],
              'settle: ... on every key');
    is(settle($m, -300, \@keys), 0, 'settle: the same id again: 0');
    is_deeply([map { R('GET', $_) } @keys], [700, 700], 'settle: ... once');
    is(R('GET', $m), 'S', 'settle: its marker');
    my $ttl = R('TTL', $keys[1]);
    ok($ttl > 6990 && $ttl <= 7000, "settle: a TTL kept ($ttl)");
    is(R('TTL', $keys[0]), -1, 'settle: no expiry given: none');

    $m = "costcap:{$t}:op:" . id();
    is(settle($m, 250, [$keys[0]], expire => $NOW + 2000), 1,
       'settle: an actual cost above the estimate');
    is(R('GET', $keys[0]), 950, 'settle: ... added');
    $ttl = R('TTL', $keys[0]);
    ok($ttl > 1990 && $ttl <= 2000, "settle: ... expiry set ($ttl)");

    $m = "costcap:{$t}:op:" . id();
    settle($m, -5000, \@keys);
    is_deeply([map { R('GET', $_) } @keys], [0, 0],
              'settle: a refund larger than the counter: 0, not below');
    $ttl = R('TTL', $keys[1]);
    ok($ttl > 6990 && $ttl <= 7000, "settle: ... TTL kept ($ttl)");

    my $idem = "costcap:{$t}:idem:k";
    my $rsv = "costcap:{$t}:op:first";
    R('SET', $idem, "100:$rsv");
    settle("costcap:{$t}:op:" . id(), -100, [$keys[0]], idem => $idem,
           rsv => "costcap:{$t}:op:other");
    is(R('EXISTS', $idem), 1, "settle: another's idempotency key stays");
    settle("costcap:{$t}:op:" . id(), -100, [$keys[0]], idem => $idem,
           rsv => $rsv);
    is(R('EXISTS', $idem), 0, 'settle: a full refund frees its own');
}


# -------------------------------------------------------------------------
# event.lua: once

{
    my $m = '{costcap:events}:op:' . id();
    my @f = (tenant => 'acme', window => 'day', percent => 80);
    is(ev('event', ['costcap:events', $m], [$MARKER_TTL, 100, @f]), 1,
       'event: appended');
    is(ev('event', ['costcap:events', $m], [$MARKER_TTL, 100, @f]), 0,
       'event: the same id again: 0');
    is(R('XLEN', 'costcap:events'), 1, 'event: ... once');
    my $x = R('XRANGE', 'costcap:events', '-', '+');
    is_deeply($x->[0][1], \@f, 'event: its fields, in order');
    ev('event', ['costcap:events', '{costcap:events}:op:' . id()],
       [$MARKER_TTL, 3, @f]) for 1 .. 300;
    ok(R('XLEN', 'costcap:events') < 301, 'event: the stream is bounded '
       . '(MAXLEN ~): ' . R('XLEN', 'costcap:events'));
}


# -------------------------------------------------------------------------
# the files as they are, with redis-cli --eval

{
    my ($st, $out) = CostCap::Test::Node::run_cmd(10,
        tmp_dir() . '/redis-cli.log', 'redis-cli', '-p', redis_port(),
        '--eval', "$DIR/event.lua", 'costcap:events',
        '{costcap:events}:op:' . id(), ',', 60000, 100, 'tenant', 'cli');
    is($st, 0, 'redis-cli --eval event.lua runs');
    like($out, qr/^(?:\(integer\) )?1$/m, 'redis-cli --eval: appended');
}


# -------------------------------------------------------------------------
# the SHA1 the module calls each script by is Redis's for the file

{
    my %sha;
    for my $name (sort keys %LUA) {
        $sha{$name} = R('SCRIPT', 'LOAD', $LUA{$name});
        is($sha{$name}, sha1_hex($LUA{$name}),
           "$name.lua: SCRIPT LOAD answers the SHA1 of the file's bytes");
    }
    R('SCRIPT', 'FLUSH');

    # watched from before the module connects: its handshake loads them
    my $mon = redis()->connect;
    $mon->cmd('MONITOR');
    my $n = start_nginx(http_config => 'cost_cap_redis 127.0.0.1:'
                                       . redis_port() . ";\n",
                        config => <<'END');
location /v1/ {
    cost_cap on;
    cost_cap_tenant $http_x_tenant;
    cost_cap_model sora-2 per_mpx_frame=0.9 fps=24 default_size=1280x720 default_seconds=4;
    cost_cap_limit 1 per=day;
    proxy_pass http://backend;
}
END
    my $res = $n->request(method => 'POST', uri => '/v1/videos',
                          headers => "X-Tenant: shatest\n"
                                     . 'Content-Type: application/json',
                          body => '{"model":"sora-2"}', timeout => 5);
    is($res->{status}, 200, 'a request through the module');
    my ($evalsha, @loaded);
    my $deadline = time + 5;
    while (!$evalsha && time < $deadline) {
        my $line = eval { $mon->_line } // last;
        push @loaded, $line if $line =~ /"SCRIPT" "LOAD"/;
        $evalsha = $1 if $line =~ /"EVALSHA" "([0-9a-f]{40})"/;
    }
    $mon->close;
    is($evalsha, $sha{reserve}, 'the module reserves by the SHA1 of '
                                . 'reserve.lua');
    is(scalar @loaded, scalar keys %LUA, 'its handshake loaded every '
                                         . 'script');
    for my $name (sort keys %sha) {
        is(R('SCRIPT', 'EXISTS', $sha{$name})->[0], 1,
           "$name.lua: the module loaded exactly the file's bytes");
    }
    $n->stop;
}

done_testing();

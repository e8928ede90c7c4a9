# The Redis scripts of async jobs (SPEC sections 9 and 10) run as they
# are against a real redis-server, without NGINX, as the module calls
# them: hold.lua (a hold made once, an outcome that came first answered),
# release.lua (read first, then settled once on exactly the declared
# counters, only if the hold is the one read; an outcome with no hold
# kept; expiry), claim.lua (due holds leased to one sweeper), pointer.lua
# (a callback's early outcome kept through resends).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use CostCap::Test;
use Test::More;

my $DIR = repo_root() . '/ngx_cost_cap_module/scripts';
my %LUA;
for my $name (qw(hold release claim pointer)) {
    open my $fh, '<:raw', "$DIR/$name.lua" or die "$name.lua: $!";
    local $/;
    $LUA{$name} = <$fh>;
}

start_redis();
my $NOW = redis_time();
my $SEQ = 0;

sub R { redis()->cmd(@_) }
sub ev { my ($s, $k, $a) = @_; R('EVAL', $LUA{$s}, scalar @$k, @$k, @$a) }
sub id { sprintf '%024x', ++$SEQ }

my $TAG = 'costcap:{acme}:';
my @KEYS = ("${TAG}day:20261201", "${TAG}month:202612");
my @EXP = ($NOW + 86400, $NOW + 2 * 86400);

# hold(%o): hold.lua as the module calls it; the marker key back too
sub hold {
    my (%o) = @_;
    my $key = "${TAG}job:" . ($o{job} // 'j1');
    my $marker = $o{marker} // "${TAG}op:" . id();
    my $res = ev('hold', [$key, $marker],
                 [60000, ($o{x} // $NOW + 3600) + 86400,
                  reservation => $o{rid} // 'r' x 24, job => $o{job} // 'j1',
                  tenant => 'acme', amount => $o{amount} // 1000,
                  gpu_estimate => 1000000, gpu_price => 3600000,
                  model => 'm', tag => $TAG, keys => "@KEYS",
                  expiries => "@EXP", expires_at => $o{x} // $NOW + 3600,
                  on_expiry => $o{on_expiry} // 'keep',
                  ($o{idem} ? (idempotency_key => $o{idem}) : ())]);
    return wantarray ? ($res, $marker) : $res;
}

# release(%o): release.lua; o{read}: with the counters declared
sub release {
    my (%o) = @_;
    my $key = "${TAG}job:" . ($o{job} // 'j1');
    my $marker = $o{marker} // "${TAG}op:" . id();
    my @k = ($key, $marker);
    push @k, @KEYS if $o{read};
    push @k, $o{idem} if $o{idem};
    my $res = ev('release', \@k,
                 [$o{rid} // '', $o{out}, $o{delta} // 0, 60000, 300,
                  $o{idem} ? 'i' : '', $o{gpu} // '',
                  $o{read} ? @EXP : ()]);
    return wantarray ? ($res, $marker) : $res;
}

sub counters { [map { R('GET', $_) // 0 } @KEYS] }

sub fresh {
    R('FLUSHALL');
    R('SET', $_, 5000) for @KEYS;
}


# -------------------------------------------------------------------------
# hold.lua

fresh();
my ($res, $m) = hold();
is_deeply($res, [1, '', ''], 'hold: made');
is(R('HGET', "${TAG}job:j1", 'keys'), "@KEYS", 'hold: its counters');
my $ttl = R('TTL', "${TAG}job:j1");
ok($ttl > 3600 + 86400 - 5 && $ttl <= 3600 + 86400,
   "hold: its key outlives expires_at by a day ($ttl s)");
is_deeply(scalar hold(marker => $m), [0, '', ''], 'hold: resent, made before');
is_deeply(scalar hold(rid => 's' x 24), [3], 'hold: another reservation, same job: not made');
is(R('HGET', "${TAG}job:j1", 'reservation'), 'r' x 24,
   '... the first hold stays');
is_deeply(counters(), [5000, 5000], 'hold: counters untouched');


# -------------------------------------------------------------------------
# release.lua: read, then settle

fresh();
hold();
$res = release(out => 'f');
is($res->[0], 3, 'release: a first call answers the hold');
my %h = @{$res}[1 .. $#$res];
is($h{reservation}, 'r' x 24, '... its reservation');
is_deeply(counters(), [5000, 5000], '... and changes nothing');

is_deeply(scalar release(out => 'f', rid => 'q' x 24, read => 1, delta => -1000),
          [3, @{$res}[1 .. $#$res]], 'release: another reservation read: not applied, the hold again');
is_deeply(counters(), [5000, 5000], '... nothing changed');

($res, $m) = release(out => 'f', rid => 'r' x 24, read => 1, delta => -1000);
is_deeply($res, [1], 'release: a refund, with the counters declared');
is_deeply(counters(), [4000, 4000], '... on every counter');
ok(!R('EXISTS', "${TAG}job:j1"), '... the hold deleted');
is_deeply(scalar release(out => 'f', rid => 'r' x 24, read => 1, delta => -1000,
                  marker => $m), [0], 'release: resent: applied before');
is_deeply(counters(), [4000, 4000], '... once');
is_deeply(scalar release(out => 'f', rid => 'r' x 24, read => 1, delta => -1000),
          [2], 'release: another settlement of it: no hold');
is_deeply(counters(), [4000, 4000], '... nothing more');

# a counter lowered meanwhile: never below 0; an expired counter key keeps
# its expiry when recreated
fresh();
hold(amount => 9000, x => $NOW - 1);
R('SET', $KEYS[0], 100);
R('DEL', $KEYS[1]);
release(out => 'e', rid => 'r' x 24, read => 1, delta => -9000);
is(R('GET', $KEYS[0]), 0, 'release: never below 0');
ok(R('TTL', $KEYS[1]) > 0, 'release: a counter made again expires');

# an actual cost: the delta as given
fresh();
hold();
R('HSET', "${TAG}job:j1", 'expires_at', $NOW + 3600);
is_deeply(scalar release(out => 's', rid => 'r' x 24, read => 1, delta => 250),
          [1], 'release: succeeded, adjusted');
is_deeply(counters(), [5250, 5250], '... by the delta');

# expiry: not before its time; an outcome after it: not applied
fresh();
hold(x => $NOW + 3600);
is(release(out => 'e', rid => 'r' x 24, read => 1, delta => -1000)->[0], 4,
   'release: expiry before expires_at: not yet');
R('HSET', "${TAG}job:j1", 'expires_at', $NOW - 1);
is(release(out => 'f', rid => 'r' x 24, read => 1, delta => -1000)->[0], 4,
   'release: a failure after expires_at: the expiry settles it');
is_deeply(counters(), [5000, 5000], '... nothing changed');
is(release(out => 'x')->[0], 3, 'release: x (sweeper) reads the hold first');
is_deeply(scalar release(out => 'k', rid => 'r' x 24, read => 1), [1],
          'release: expired, kept');
is_deeply(counters(), [5000, 5000], '... the charge stays');

# idempotency key: freed by a refund when it still names the reservation
for my $case (['names it', 'r' x 24, 0], ['names another', 'z' x 24, 1]) {
    fresh();
    my $idem = "${TAG}idem:k1";
    R('SET', $idem, "1000:${TAG}op:" . $case->[1]);
    hold(idem => $idem);
    release(out => 'f', rid => 'r' x 24, read => 1, delta => -1000,
            idem => $idem);
    is(R('EXISTS', $idem), $case->[2], "release: idempotency key that "
       . "$case->[0]: " . ($case->[2] ? 'kept' : 'freed'));
}


# -------------------------------------------------------------------------
# an outcome before its hold

fresh();
is_deeply(scalar release(out => 'f', job => 'early'), [2],
          'early: a failure, no hold');
is_deeply(R('HGETALL', "${TAG}job:early"), ['outcome', 'f', 'gpu', ''],
          '... kept in the hold\'s key');
$ttl = R('TTL', "${TAG}job:early");
ok($ttl > 290 && $ttl <= 300, "... for 300 s ($ttl)");
is_deeply(scalar release(out => 's', job => 'early', gpu => 7), [2],
          'early: another outcome: the first one stays');
is(R('HGET', "${TAG}job:early", 'outcome'), 'f', '... f');
is_deeply(scalar release(out => 'x', job => 'none'), [2], 'early: x keeps nothing');
ok(!R('EXISTS', "${TAG}job:none"), '... no key');
($res, $m) = hold(job => 'early');
is_deeply($res, [1, 'f', ''], 'early: the hold is made, answering it');
is_deeply(scalar hold(job => 'early', marker => $m), [0, 'f', ''],
          '... resent: the same answer');
ok(!R('HEXISTS', "${TAG}job:early", 'outcome'), '... the outcome gone');


# -------------------------------------------------------------------------
# claim.lua

R('FLUSHALL');
my $IX = 'costcap:jobs:expiry';
R('ZADD', $IX, $NOW - 10, "h$_") for 1 .. 5;
R('ZADD', $IX, $NOW + 3600, 'later');
my $c = ev('claim', [$IX], [3, 60]);
is(scalar @$c, 3, 'claim: a batch of the due ones');
my $c2 = ev('claim', [$IX], [3, 60]);
is(scalar @$c2, 2, 'claim: the next takes the others');
is_deeply([sort @$c, @$c2], [map { "h$_" } 1 .. 5],
          '... each once, never "later"');
is_deeply(ev('claim', [$IX], [3, 60]), [], 'claim: leased: none now');
my $score = R('ZSCORE', $IX, 'h1');
ok($score >= $NOW + 55 && $score <= $NOW + 62, "claim: leased 60 s ($score)");


# -------------------------------------------------------------------------
# pointer.lua

R('FLUSHALL');
my $P = 'costcap:job:j9';
is(ev('pointer', [$P], [$TAG, $NOW + 100]), '', 'pointer: set');
is(R('GET', $P), $TAG, '... to the prefix');
R('SET', $P, '~s:30000000');
is(ev('pointer', [$P], [$TAG, $NOW + 100]), '~s:30000000',
   'pointer: a callback came first: its outcome answered');
is(R('GET', $P), "$TAG ~s:30000000", '... and kept after the prefix');
is(ev('pointer', [$P], [$TAG, $NOW + 100]), '~s:30000000',
   'pointer: resent: the same answer');
ok(R('TTL', $P) > 90, 'pointer: expires');
R('SET', $P, 'costcap:{a~b}:');
is(ev('pointer', [$P], ['costcap:{a~b}:', $NOW + 100]), '',
   'pointer: a tenant with "~" is no outcome');

done_testing();

-- Turns a reservation into a hold, costcap:{TAG}:[TENANT:]job:ID: the
-- job's id, the amount, the counters it was charged to (their periods
-- fixed now), when it expires.  SPEC section 10.
--
-- KEYS[1]    the hold
-- KEYS[2]    this operation's marker, costcap:{TAG}:op:ID: a resend after
--            a lost reply applies at most once, and answers as the first
-- ARGV[1]    marker lifetime, ms
-- ARGV[2]    when the hold's key expires (Unix seconds)
-- ARGV[3..]  the hold's fields and values
--
-- A poll or a callback that came before the hold (the job ended at once)
-- left its outcome in the hold's key: it is answered, for the gateway to
-- settle the hold now.
--
-- Reply: {1, outcome, gpu} made (outcome f or s and gpu as a poll or a
-- callback left them, else ""), {0, outcome, gpu} made before by this
-- operation, {3} not made: another reservation holds this job id.

local m = redis.call('GET', KEYS[2])
if m then
  if m == 'C' then return {3} end
  local s, g = m:match('^T:(%a):(%d*)$')
  return {0, s or '', g or ''}
end

local h = redis.call('HMGET', KEYS[1], 'reservation', 'outcome', 'gpu')
if h[1] then
  redis.call('SET', KEYS[2], 'C', 'PX', ARGV[1])
  return {3}
end

local s, g = h[2] or '', h[3] or ''

redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], s ~= '' and ('T:' .. s .. ':' .. g) or 'H',
           'PX', ARGV[1])

return {1, s, g}

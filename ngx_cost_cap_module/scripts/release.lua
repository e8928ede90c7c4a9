-- Settles a hold, once and atomically: a failed job is refunded, a
-- succeeded one adjusted to its actual cost, an expired one refunded or
-- kept; on exactly the counters the hold lists (its periods, not today's),
-- and the hold is deleted.  SPEC sections 9 and 10.
--
-- The counters are only known from the hold: a first call declares none
-- and answers the hold as it is; the gateway calls again with its
-- counters declared, and the reservation id it read, which must still be
-- the hold's.
--
-- KEYS[1]    the hold, costcap:{TAG}:[TENANT:]job:ID
-- KEYS[2]    this settlement's marker, costcap:{TAG}:op:ID
-- KEYS[3..]  the counters of the hold's field keys, in order; then its
--            idempotency key when ARGV[6] is "i" (a refund frees it)
-- ARGV[1]    the hold's reservation id as read; "" not read yet
-- ARGV[2]    f failed, s succeeded (a poll or a callback said so), e
--            expired and refunded, k expired and kept, x expired (read
--            it first)
-- ARGV[3]    the amount to add to every counter, micro-USD, signed
-- ARGV[4]    marker lifetime, ms
-- ARGV[5]    how long an outcome that finds no hold is kept for it, s
-- ARGV[6]    "i" or ""
-- ARGV[7]    actual GPU-seconds, micro (kept with such an outcome), or ""
-- ARGV[8..]  per counter: when it expires (0: never)
--
-- Reply: {1} settled; {0} settled before by this operation; {2} no hold
-- (f and s leave their outcome for a hold still to come); {3, field,
-- value, ...} the hold as it is (read, or another one than ARGV[1]); {4,
-- expires} not now: expired already (f, s: the expiry settles it), or not
-- yet (e, k).

if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0}
end

local out = ARGV[2]
local l = redis.call('HGETALL', KEYS[1])
local h = {}
for j = 1, #l, 2 do h[l[j]] = l[j + 1] end

if not h.reservation then
  if (out == 'f' or out == 's') and not h.outcome then
    redis.call('HSET', KEYS[1], 'outcome', out, 'gpu', ARGV[7])
    redis.call('EXPIRE', KEYS[1], ARGV[5])
  end
  return {2}
end

if h.reservation ~= ARGV[1] or out == 'x' then
  local r = {3}
  for j = 1, #l do r[j + 1] = l[j] end
  return r
end

local now, x = tonumber(redis.call('TIME')[1]), tonumber(h.expires_at)
if (out == 'f' or out == 's') == (now >= x) then
  return {4, x}
end

local d, n = tonumber(ARGV[3]), #KEYS
if ARGV[6] == 'i' then n = n - 1 end

if d ~= 0 then
  for i = 3, n do
    local key = KEYS[i]
    if redis.call('INCRBY', key, d) < 0 then
      redis.call('SET', key, 0, 'KEEPTTL')
    end
    local e = tonumber(ARGV[8 + i - 3])
    if e > 0 and redis.call('TTL', key) == -1 then
      redis.call('EXPIREAT', key, e)
    end
  end
end

if ARGV[6] == 'i' then
  local v, r = redis.call('GET', KEYS[#KEYS]), h.tag .. 'op:' .. h.reservation
  if v and v:sub(-#r) == r then
    redis.call('DEL', KEYS[#KEYS])
  end
end

redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], 'S', 'PX', ARGV[4])

return {1}

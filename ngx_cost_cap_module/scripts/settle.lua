-- Adds a signed amount (a refund, or an actual cost minus the estimate)
-- to the counters a reservation charged, once: a resend after a lost
-- reply is recognised by this settlement's own marker.  A counter never
-- goes below 0.  SPEC section 2.8.
--
-- KEYS[1]    this settlement's marker, costcap:{TAG}:op:ID
-- KEYS[2]    the reservation's idempotency key, when ARGV[3] is "i": a
--            refund frees it if it still names ARGV[4]
-- KEYS[..]   the counters
-- ARGV[1]    amount, micro-USD, signed
-- ARGV[2]    marker lifetime, ms
-- ARGV[3]    "i" or ""
-- ARGV[4]    the reservation's marker (for the idempotency key)
-- ARGV[5..]  per counter: when it expires (0: never)
--
-- Reply: 1 applied, 0 applied before.

if not redis.call('SET', KEYS[1], 'S', 'NX', 'PX', ARGV[2]) then
  return 0
end

local k = 2
if ARGV[3] == 'i' then
  local v = redis.call('GET', KEYS[2])
  if v and v:sub(-#ARGV[4]) == ARGV[4] then
    redis.call('DEL', KEYS[2])
  end
  k = 3
end

for i = k, #KEYS do
  local key = KEYS[i]
  if redis.call('INCRBY', key, ARGV[1]) < 0 then
    redis.call('SET', key, 0, 'KEEPTTL')
  end
  local e = tonumber(ARGV[5 + i - k])
  if e > 0 and redis.call('TTL', key) == -1 then
    redis.call('EXPIREAT', key, e)
  end
end

return 1

-- Gives back a reservation whose reply was lost, or came after its
-- request was answered: exactly what it charged, once, and nothing if it
-- never ran; then it never will (the marker stays, as a tombstone).
-- SPEC sections 4 ("Late replies") and 9 ("Exact accounting").
--
-- KEYS[1]    the reservation's marker, costcap:{TAG}:op:ID
-- KEYS[2]    its idempotency key, when ARGV[3] has "i" (freed by a refund)
-- KEYS[..]   its lease, when ARGV[3] has "l"; then its window counters,
--            in the reservation's order
-- ARGV[1]    the reservation's estimate, micro-USD
-- ARGV[2]    marker lifetime, ms
-- ARGV[3]    "", "i", "l" or "il"
-- ARGV[4..]  per counter: when it expires (0: never)
--
-- Reply: 1 given back, 0 nothing to give back.

local op = redis.call('GET', KEYS[1])
if not op then
  redis.call('SET', KEYS[1], 'C', 'PX', ARGV[2])
  return 0
end
if op:sub(1, 1) ~= 'A' then
  return 0
end

-- "A:mask:lease": the reservation's windows, and a lease it took
local mask, lease = op:match('^A:(%d+):?(%d*)')
local k = 2
mask, lease = tonumber(mask), tonumber(lease) or 0
if ARGV[3]:find('i', 1, true) then
  local v = redis.call('GET', KEYS[k])
  if v and v:sub(-#KEYS[1]) == KEYS[1] then
    redis.call('DEL', KEYS[k])
  end
  k = k + 1
end
if ARGV[3]:find('l', 1, true) then
  -- a lease given back already (lease.lua deleted it) is not given again
  if redis.call('DEL', KEYS[k]) == 0 then
    lease = 0
  end
  k = k + 1
end
local back = tonumber(ARGV[1]) + lease

for i = 0, #KEYS - k do
  if math.floor(mask / 2 ^ i) % 2 == 1 then
    local key = KEYS[k + i]
    if redis.call('INCRBY', key, -back) < 0 then
      redis.call('SET', key, 0, 'KEEPTTL')
    end
    local e = tonumber(ARGV[4 + i])
    if e > 0 and redis.call('TTL', key) == -1 then
      redis.call('EXPIREAT', key, e)
    end
  end
end

redis.call('SET', KEYS[1], 'R', 'KEEPTTL')
return 1

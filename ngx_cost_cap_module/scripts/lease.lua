-- Gives back what a worker did not use of a lease (SPEC 13), once: the
-- lease's key is its marker, and goes with it.  A counter never goes
-- below 0.
--
-- KEYS[1]    the lease, costcap:{TAG}:lease:ID ("L:mask:amount")
-- KEYS[..]   the counters it was charged to
-- ARGV[1]    what was not used, micro-USD
-- ARGV[2..]  per counter: when it expires (0: never)
--
-- Reply: 1 given back, 0 given back before (or the lease expired).

local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
redis.call('DEL', KEYS[1])

local back = math.min(tonumber(ARGV[1]), tonumber(v:match(':(%d+)$')))
if back <= 0 then
  return 1
end

for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('INCRBY', key, -back) < 0 then
    redis.call('SET', key, 0, 'KEEPTTL')
  end
  local e = tonumber(ARGV[i])
  if e > 0 and redis.call('TTL', key) == -1 then
    redis.call('EXPIREAT', key, e)
  end
end

return 1

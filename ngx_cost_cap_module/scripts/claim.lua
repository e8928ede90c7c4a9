-- The holds whose time is up, for one gateway's worker to settle: each is
-- leased (its score moved ahead) so that the others take other ones; a
-- hold whose settlement is lost with its worker comes back after the
-- lease.  SPEC section 10 (on_expiry).
--
-- KEYS[1]    costcap:jobs:expiry, a sorted set: hold key by expiry time
-- ARGV[1]    how many at most
-- ARGV[2]    the lease, seconds
--
-- Reply: the hold keys.

local now = tonumber(redis.call('TIME')[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,
                       'LIMIT', 0, ARGV[1])

for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), m)
end

return due

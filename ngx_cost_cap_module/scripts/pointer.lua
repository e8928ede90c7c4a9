-- Points a job id at its hold's prefix, for the backend's callback, which
-- names no tenant: costcap:job:ID -> costcap:{TAG}:[TENANT:].  A callback
-- that came before (the job ended at once) left its outcome there: it is
-- kept after the prefix and answered, for the gateway to settle the hold.
-- SPEC section 10.
--
-- KEYS[1]    costcap:job:ID
-- ARGV[1]    the prefix
-- ARGV[2]    when the pointer expires (Unix seconds)
--
-- Reply: the outcome a callback left ("~f:", "~s:GPU"), or "".

local old = redis.call('GET', KEYS[1]) or ''
local t = old:match('^(~%S*)$') or old:match(' (~%S*)$') or ''

redis.call('SET', KEYS[1], t ~= '' and (ARGV[1] .. ' ' .. t) or ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])

return t

-- Appends one threshold event to the stream, once: a resend after a lost
-- reply is recognised by its marker, which lives in the stream's slot.
-- SPEC section 11.
--
-- KEYS[1]    costcap:events
-- KEYS[2]    {costcap:events}:op:ID, this event's marker
-- ARGV[1]    marker lifetime, ms
-- ARGV[2]    the stream's approximate length bound (MAXLEN ~)
-- ARGV[3..]  field, value, ...
--
-- Reply: 1 appended, 0 appended before.

if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return 0
end

redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
           unpack(ARGV, 3))
return 1

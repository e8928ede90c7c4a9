-- Reserves an estimate on every window of a tenant (and of its parent),
-- atomically: every window or none.  SPEC sections 2.6, 4, 6, 10, 11.
--
-- The gateway names each window's key for the period of its estimate of
-- this server's clock; where a declared period is not the current one,
-- nothing changes and the gateway sends again with the right periods.
--
-- KEYS[1]    costcap:{TAG}:op:ID, this reservation's marker: a resend
--            after a lost reply applies at most once
-- KEYS[2..]  as ARGV[3] lists them: c the tenant's caps hash, p the
--            parent's, i the idempotency key, a the alerts hash, l this
--            reservation's lease (costcap:{TAG}:lease:ID); then one
--            counter per window
-- ARGV[1]    r reserve, d dry run (charge even past a cap), f force (a
--            request served while Redis was away: charge, periods as
--            given), q quote (check only, write nothing)
-- ARGV[2]    estimate, micro-USD
-- ARGV[3]    the optional keys present, in order ("", "c", "cpia", ...)
-- ARGV[4]    windows; ARGV[5] the tenant's among them (the parent's follow)
-- ARGV[6]    marker lifetime, ms; ARGV[7] idempotency lifetime, s
-- ARGV[8]    alert thresholds, percent ("50 80 100")
-- ARGV[9]    alert field prefix of the tenant; ARGV[10] of the parent
-- ARGV[11..] per window: name, configured cap ("" none), period start,
--            period end (0: total)
-- then, with a lease asked for (l): the lease's largest amount, the
--            leases that must still fit after it in every window, the
--            lease key's lifetime in ms: the worker admits requests from
--            it without Redis, and gives back what it did not use
--
-- Reply: {status, seconds, microseconds, charged mask, spent_1, cap_1,
-- ..., spent_n, cap_n (-1 not enforced), then window, percent for each
-- threshold crossed, then (status 6) the lease granted}.  status: 1
-- admitted, 6 admitted with a lease, 0 refused, 2 applied before (a
-- resend; the mask and the lease it took, 0 if none, follow: that lease
-- went with the lost reply, the worker gives it back), 3 cancelled, 4
-- idempotent replay, 5 idempotency key reused (its estimate follows), -1
-- periods not current, -2 a malformed cap in a caps hash (window, value
-- follow), -3 a counter that is not a whole number (window follows).
-- Nothing is written unless the status is 1, or 0 in dry run.

local mode, est = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now, us = tonumber(t[1]), tonumber(t[2])
local n, nt = tonumber(ARGV[4]), tonumber(ARGV[5])

if mode ~= 'f' then
  for i = 1, n do
    local e = tonumber(ARGV[10 + 4 * i])
    if e > 0 and (now < tonumber(ARGV[9 + 4 * i]) or now >= e) then
      return {-1, now, us}
    end
  end
end

if mode ~= 'q' then
  local op = redis.call('GET', KEYS[1])
  if op then
    if op:sub(1, 1) == 'A' then
      local mask, lease = op:match('^A:(%d+):?(%d*)')
      return {2, now, us, tonumber(mask), tonumber(lease) or 0}
    end
    return {3, now, us}
  end
end

local lay, k = ARGV[3], 2
local caps = {{}, {}}
local idem, alerts, lease

local function hash(key)
  local h, l = {}, redis.call('HGETALL', key)
  for j = 1, #l, 2 do h[l[j]] = l[j + 1] end
  return h
end

if lay:find('c', 1, true) then caps[1] = hash(KEYS[k]); k = k + 1 end
if lay:find('p', 1, true) then caps[2] = hash(KEYS[k]); k = k + 1 end
if lay:find('i', 1, true) then idem = KEYS[k]; k = k + 1 end
if lay:find('a', 1, true) then alerts = KEYS[k]; k = k + 1 end
if lay:find('l', 1, true) then lease = KEYS[k]; k = k + 1 end

if idem and mode ~= 'q' and mode ~= 'f' then
  local v = redis.call('GET', idem)
  if v then
    local e = tonumber(v:match('^%d+'))
    if e == est then return {4, now, us} end
    return {5, now, us, e or 0}
  end
end

local res = {1, now, us, 0}
local cap, keys, idx = {}, {}, {}

for i = 1, n do
  local a = 7 + 4 * i
  local w, c = ARGV[a], ARGV[a + 1]
  local v = caps[i <= nt and 1 or 2][w]
  if v then
    if v == 'off' then
      c = nil
    elseif v:match('^%d+$') and #v < 17 and tonumber(v) < 2 ^ 53 then
      c = tonumber(v)
    else
      return {-2, now, us, i, v}
    end
  elseif c == '' then
    c = nil
  else
    c = tonumber(c)
  end
  cap[i] = c
  res[3 + 2 * i] = 0
  res[4 + 2 * i] = c or -1
  if c then
    keys[#keys + 1] = KEYS[k + i - 1]
    idx[#idx + 1] = i
  end
end

local ok, spent = true, {}
if #keys > 0 then
  spent = redis.call('MGET', unpack(keys))
end

for j = 1, #idx do
  local i, s = idx[j], spent[j]
  if s then
    if not s:match('^%d+$') then return {-3, now, us, i} end
    s = tonumber(s)
    res[3 + 2 * i] = s
  else
    s = 0
  end
  if s + est > cap[i] then ok = false end
end

if not ok then res[1] = 0 end

if mode == 'q' or (not ok and mode == 'r') then
  return res
end

-- a lease, while every window keeps room for more of them after it
local granted = 0
if lease and ok and mode == 'r' then
  local a = 11 + 4 * n
  granted = tonumber(ARGV[a])
  local more = tonumber(ARGV[a + 1]) + 1
  for j = 1, #idx do
    local i = idx[j]
    granted = math.min(granted,
                       math.floor((cap[i] - res[3 + 2 * i] - est) / more))
  end
  if granted < 2 * est or granted <= 0 then granted = 0 end
end
local charge = est + granted

local mask = 0
for j = 1, #idx do
  local i = idx[j]
  if res[3 + 2 * i] + est < 9e18 then
    redis.call('INCRBY', keys[j], charge)
    local e = tonumber(ARGV[10 + 4 * i])
    if not spent[j] and e > 0 then
      redis.call('EXPIREAT', keys[j], e + 86400)
    end
    mask = mask + 2 ^ (i - 1)
  end
end
res[4] = mask

if mask > 0 then
  redis.call('SET', KEYS[1], 'A:' .. mask .. ':' .. granted, 'PX', ARGV[6])
end

if granted > 0 then
  redis.call('SET', lease, 'L:' .. mask .. ':' .. granted, 'PX',
             ARGV[13 + 4 * n])
end

if idem then
  redis.call('SET', idem, ARGV[2] .. ':' .. KEYS[1], 'EX', ARGV[7])
end

if alerts and mask > 0 then
  local pre, set = {ARGV[9], ARGV[10]}, false
  for j = 1, #idx do
    local i = idx[j]
    local c, s = cap[i], res[3 + 2 * i]
    for p in ARGV[8]:gmatch('%d+') do
      p = tonumber(p)
      local th = math.floor(c / 100) * p + math.ceil(c % 100 * p / 100)
      if c > 0 and s < th and s + charge >= th
         and redis.call('HSETNX', alerts, pre[i <= nt and 1 or 2] .. ':'
                        .. ARGV[7 + 4 * i] .. ':' .. ARGV[9 + 4 * i] .. ':'
                        .. p, now) == 1
      then
        res[#res + 1] = i
        res[#res + 1] = p
        set = true
      end
    end
  end
  if set then redis.call('EXPIRE', alerts, 3456000) end
end

if granted > 0 then
  res[1] = 6
  res[#res + 1] = granted
end

return res

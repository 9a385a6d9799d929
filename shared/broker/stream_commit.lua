-- Commit a telemetry consumer's progress on one partition, atomically, only while it owns it.
-- KEYS[1] the partition's stream, KEYS[2] its checkpoint hash, KEYS[3] its owner (lease) key,
-- KEYS[4] its set of active sensors, KEYS[5] its stream of judged readings: one hash tag, so
-- one Redis Cluster slot.
-- ARGV[1] group, ARGV[2] owner, ARGV[3] lease ms, ARGV[4] trim MINID ("" to keep all),
-- ARGV[5] number of ids n, then the n entry ids,
-- then the judged readings ("" for none) and how many entries that stream keeps,
-- then the number of checkpoint fields m, then m field, value pairs,
-- then the oldest score kept in the active set, then score, member pairs.
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
  return 0
end
local n = tonumber(ARGV[5])
local at = 6
if n > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, at, at + n - 1))
end
at = at + n
if ARGV[at] ~= '' then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[at + 1], '*', 'r', ARGV[at])
end
at = at + 2
local m = tonumber(ARGV[at])
at = at + 1
if m > 0 then
  redis.call('HSET', KEYS[2], unpack(ARGV, at, at + 2 * m - 1))
end
at = at + 2 * m
local oldest = ARGV[at]
at = at + 1
if #ARGV >= at then
  redis.call('ZADD', KEYS[4], unpack(ARGV, at, #ARGV))
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. oldest)
end
if ARGV[4] ~= '' then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[4])
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1

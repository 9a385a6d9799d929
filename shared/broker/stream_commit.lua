-- Commit a telemetry consumer's progress on one partition, atomically, only while it owns it.
-- KEYS[1] the partition's stream, KEYS[2] its checkpoint hash, KEYS[3] its owner (lease) key:
-- one hash tag, so one Redis Cluster slot.
-- ARGV[1] group, ARGV[2] owner, ARGV[3] lease ms, ARGV[4] trim MINID ("" to keep all),
-- ARGV[5] number of ids n, ARGV[6 .. 5+n] entry ids, then field, value pairs for the checkpoint.
if redis.call('GET', KEYS[3]) ~= ARGV[2] then
  return 0
end
local n = tonumber(ARGV[5])
if n > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 6, 5 + n))
end
if #ARGV > 5 + n then
  redis.call('HSET', KEYS[2], unpack(ARGV, 6 + n, #ARGV))
end
if ARGV[4] ~= '' then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[4])
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1

-- Publish one event atomically: retain it, update the drone snapshot, publish the envelope.
-- Running as one script makes the stream id order and the pub/sub order the same order.
-- KEYS[1] event stream, KEYS[2] published marker (idempotency), KEYS[3] snapshot key,
-- KEYS[4] epoch (the id of the first event this Redis has seen: it changes when Redis loses its data)
-- ARGV[1] channel, ARGV[2] serial or "", ARGV[3] envelope JSON after its "id" member,
-- ARGV[4] max retained events, ARGV[5] retention in ms, ARGV[6] "set" | "del" | "",
-- ARGV[7] snapshot state JSON.
-- On a Redis Cluster (all keys and channels in one hash slot; absent on one Redis):
-- ARGV[8] "SPUBLISH", ARGV[9] the sharded channel for direct subscribers or "",
-- ARGV[10] the partition's fleet channel, which gets ARGV[1] .. "\n" .. envelope.
local prior = redis.call('GET', KEYS[2])
if prior then
  return {prior, ''}
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*',
  'c', ARGV[1], 's', ARGV[2], 'b', ARGV[3])
redis.call('SET', KEYS[4], id, 'NX')
local now = redis.call('TIME')
local oldest_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[5])
if oldest_ms > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', '~', string.format('%d-0', oldest_ms))
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[5])
if ARGV[6] == 'set' then
  redis.call('SET', KEYS[3], '{"eventId":"' .. id .. '","state":' .. ARGV[7] .. '}')
elseif ARGV[6] == 'del' then
  redis.call('DEL', KEYS[3])
end
local envelope = '{"id":"' .. id .. '",' .. ARGV[3]
if ARGV[8] == 'SPUBLISH' then
  if ARGV[9] ~= '' then
    redis.call('SPUBLISH', ARGV[9], envelope)
  end
  redis.call('SPUBLISH', ARGV[10], ARGV[1] .. '\n' .. envelope)
else
  redis.call('PUBLISH', ARGV[1], envelope)
end
return {id, envelope}

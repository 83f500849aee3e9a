/**
 * The Lua behind RedisStore's records (with revisions) and bucket counters. One script per call,
 * atomic in Redis; the keys of a call share the `{scope}` hash tag (redis-keys.ts).
 *
 * Records: KEYS[1] the record's JSON, KEYS[2] its revision, KEYS[3] the scope's revision sequence.
 * Every write takes its revision from the sequence (INCR), so revisions only grow and are never
 * reused, even across a delete and re-create. The sequence is the only key that outlives a record,
 * and it names the scope, not the record. A record and its revision always expire together.
 */

/**
 * `revision()`: the record's revision, 0 when it is absent. A record without one (written by a
 * replica that predates revisions) is given one now, expiring with it, so a compare-and-set can
 * never take an existing record for absent.
 */
const REVISION_LUA = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function revision()
  if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  local current = redis.call('GET', KEYS[2])
  if current then return tonumber(current) end
  local adopted = redis.call('INCR', KEYS[3])
  -- The record's own expiry instant (Redis 7: PEXPIRETIME; before it, now + PTTL).
  local ok, at = pcall(redis.call, 'PEXPIRETIME', KEYS[1])
  if not ok then
    local ttl = redis.call('PTTL', KEYS[1])
    at = ttl > 0 and nowMs() + ttl or -1
  end
  if at > 0 then
    redis.call('SET', KEYS[2], adopted, 'PXAT', at)
  else
    redis.call('SET', KEYS[2], adopted)
  end
  return adopted
end
`;

/** Returns {json, revision}, or {} when the record is absent. */
export const READ_RECORD_LUA = `${REVISION_LUA}
local r = revision()
if r == 0 then return {} end
return { redis.call('GET', KEYS[1]), r }
`;

/**
 * Set, delete and compare-and-set. ARGV[1]: the expected revision, -1 for none (unconditional);
 * ARGV[2]: the value's JSON, '' to delete (JSON text is never empty); ARGV[3]: ttlMs, 0 for none.
 * Returns {ok (1|0), revision}: the new revision (0 after a delete), or the current one on a mismatch.
 */
export const WRITE_RECORD_LUA = `${REVISION_LUA}
local expected = tonumber(ARGV[1])
if expected >= 0 then
  local current = revision()
  if current ~= expected then return { 0, current } end
end
if ARGV[2] == '' then
  local existed = redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[2])
  -- A delete is a write too: the sequence moves, as it does in MemoryStore.
  if existed == 1 then redis.call('INCR', KEYS[3]) end
  return { 1, 0 }
end
local r = redis.call('INCR', KEYS[3])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  -- One instant for both: two relative expiries set a millisecond apart would part them.
  local at = nowMs() + ttl
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', at)
  redis.call('SET', KEYS[2], r, 'PXAT', at)
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], r)
end
return { 1, r }
`;

/**
 * KEYS[1]: a bucket counter (a hash, bucket → count). ARGV[1]: ttlMs; then bucket, amount pairs.
 * The key expires ttlMs after its last add, as a whole: a window that replicas keep adding to.
 */
export const ADD_BUCKETS_LUA = `
local totals = {}
for i = 2, #ARGV, 2 do totals[#totals + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return totals
`;

/** KEYS: bucket counters. Returns {bucket, total, …} summed over the keys; a missing key adds nothing. */
export const SUM_BUCKETS_LUA = `
local totals = {}
local names = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    local name = flat[j]
    if totals[name] == nil then
      names[#names + 1] = name
      totals[name] = 0
    end
    totals[name] = totals[name] + tonumber(flat[j + 1])
  end
end
local out = {}
for _, name in ipairs(names) do
  out[#out + 1] = name
  out[#out + 1] = totals[name]
end
return out
`;

/**
 * The Lua behind RedisStore. Each script runs atomically in Redis, so a check and the write it
 * guards cannot interleave with another replica's. Keys of one call share a `{scope}` hash tag, so
 * a script stays legal on Redis Cluster.
 *
 * MemoryStore implements the same rules in TypeScript; the shared contract suite keeps them equal.
 */

/**
 * KEYS[1..n]: counters. ARGV[1]: cost; ARGV[1+i]: limit of counter i; ARGV[1+n+i]: its windowMs.
 * Returns {allowed (1|0), count_1, resetMs_1, …, count_n, resetMs_n}.
 *
 * All or nothing: every counter is read before any is written. A window starts at the first charge
 * (the key's PEXPIRE is set only when the key is new), so windows are fixed, not sliding.
 */
export const CHARGE_LUA = `
local n = #KEYS
local cost = tonumber(ARGV[1])
local counts = {}
local ttls = {}
local allowed = 1
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = current
  ttls[i] = redis.call('PTTL', KEYS[i])
  if current + cost > tonumber(ARGV[1 + i]) then allowed = 0 end
end
local out = { allowed }
for i = 1, n do
  local window = tonumber(ARGV[1 + n + i])
  if allowed == 1 then
    counts[i] = redis.call('INCRBY', KEYS[i], cost)
    if ttls[i] < 0 then
      redis.call('PEXPIRE', KEYS[i], window)
      ttls[i] = window
    end
  elseif ttls[i] == -1 then
    -- A counter without expiry would never reset: heal it (cannot happen through this script).
    redis.call('PEXPIRE', KEYS[i], window)
    ttls[i] = window
  end
  local reset = ttls[i]
  -- -2: no window yet (refused before it started); 0: expiring this very millisecond.
  if reset < 1 then reset = window end
  out[2 * i] = counts[i]
  out[2 * i + 1] = reset
end
return out
`;

/**
 * KEYS[1]: the lease set (a sorted set, score = expiry in ms by the Redis clock).
 * ARGV[1]: lease id; ARGV[2]: limit; ARGV[3]: ttlMs. Returns {granted (1|0), held}.
 *
 * Redis's own clock (TIME), not the caller's: replicas' clocks disagree, Redis's is the only one
 * every replica sees. Acquiring an id already held renews it rather than taking a second slot.
 */
export const ACQUIRE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local renewing = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not renewing then
  if held >= tonumber(ARGV[2]) then return { 0, held } end
  held = held + 1
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
-- The set lives as long as its longest lease.
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return { 1, held }
`;

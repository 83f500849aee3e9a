/**
 * The Lua behind RedisStore, and the commands it becomes on a connection. Each script runs
 * atomically in Redis, so a check and the write it guards cannot interleave with another replica's.
 * Keys of one call share a `{scope}` hash tag, so a script stays legal on Redis Cluster.
 *
 * Here: counters and leases. Records and buckets: redis-record-scripts.ts; logs:
 * redis-log-scripts.ts (with SHA-256 in Lua, redis-sha256.ts). MemoryStore implements the same
 * rules in TypeScript; the shared contract suite keeps them equal.
 */
import type { Redis } from 'ioredis';
import { APPEND_LUA, READ_LOG_LUA } from './redis-log-scripts.js';
import { ADD_BUCKETS_LUA, READ_RECORD_LUA, SUM_BUCKETS_LUA, WRITE_RECORD_LUA } from './redis-record-scripts.js';
import { StoreUnavailableError } from './store.js';

/** The commands `withScripts` adds (EVALSHA, falling back to EVAL on NOSCRIPT). */
export interface ScriptedRedis extends Redis {
  bwCharge(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<unknown>;
  bwAcquire(key: string, id: string, limit: number, ttlMs: number): Promise<unknown>;
  bwReserve(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<unknown>;
  bwReadRecord(record: string, revision: string, sequence: string): Promise<unknown>;
  bwWriteRecord(record: string, revision: string, sequence: string, expected: number, json: string, ttlMs: number): Promise<unknown>;
  bwAppend(entries: string, head: string, json: string): Promise<unknown>;
  bwReadLog(entries: string, head: string, fromSeq: number, limit: number): Promise<unknown>;
  bwAddBuckets(key: string, ttlMs: number, ...bucketsThenAmounts: (string | number)[]): Promise<unknown>;
  bwSumBuckets(numKeys: number, ...keys: string[]): Promise<unknown>;
}

/** Defines every script on the commands connection (scripts are loaded lazily, once per server). */
export function withScripts(redis: Redis): ScriptedRedis {
  redis.defineCommand('bwCharge', { lua: CHARGE_LUA });
  redis.defineCommand('bwAcquire', { lua: ACQUIRE_LUA, numberOfKeys: 1 });
  redis.defineCommand('bwReserve', { lua: RESERVE_LUA });
  redis.defineCommand('bwReadRecord', { lua: READ_RECORD_LUA, numberOfKeys: 3 });
  redis.defineCommand('bwWriteRecord', { lua: WRITE_RECORD_LUA, numberOfKeys: 3 });
  redis.defineCommand('bwAppend', { lua: APPEND_LUA, numberOfKeys: 2 });
  redis.defineCommand('bwReadLog', { lua: READ_LOG_LUA, numberOfKeys: 2 });
  redis.defineCommand('bwAddBuckets', { lua: ADD_BUCKETS_LUA, numberOfKeys: 1 });
  redis.defineCommand('bwSumBuckets', { lua: SUM_BUCKETS_LUA });
  return redis as ScriptedRedis;
}

/** A script's reply as `length` integers, or StoreUnavailableError (a server that is not ours, a script that broke). */
export function integers(reply: unknown, length: number, what: string): number[] {
  if (Array.isArray(reply) && reply.length === length && reply.every((x) => typeof x === 'number')) return reply as number[];
  throw new StoreUnavailableError(`redis ${what} returned an unexpected reply`);
}

/**
 * A batch of charges (the requests of one event-loop turn, all of one scope), each all or nothing,
 * applied in order. KEYS: every counter of every charge, in order. ARGV[1]: m, the number of
 * charges; then per charge: n, cost, the n limits, the n windowMs. Returns, per charge,
 * {allowed (1|0), count_1, resetMs_1, …, count_n, resetMs_n}, concatenated.
 *
 * Every counter of a charge is read before any is written. A window starts at the first charge
 * (the key's PEXPIRE is set only when the key is new), so windows are fixed, not sliding. One script
 * per turn instead of one per request: the round trip to Redis is most of what a check costs.
 */
export const CHARGE_LUA = `
local out = {}
local m = tonumber(ARGV[1])
local a = 2
local k = 1
for j = 1, m do
  local n = tonumber(ARGV[a])
  local cost = tonumber(ARGV[a + 1])
  local counts = {}
  local ttls = {}
  local allowed = 1
  for i = 1, n do
    local key = KEYS[k + i - 1]
    local current = tonumber(redis.call('GET', key) or '0')
    counts[i] = current
    ttls[i] = redis.call('PTTL', key)
    if current + cost > tonumber(ARGV[a + 1 + i]) then allowed = 0 end
  end
  out[#out + 1] = allowed
  for i = 1, n do
    local key = KEYS[k + i - 1]
    local window = tonumber(ARGV[a + 1 + n + i])
    if allowed == 1 then
      counts[i] = redis.call('INCRBY', key, cost)
      if ttls[i] < 0 then
        redis.call('PEXPIRE', key, window)
        ttls[i] = window
      end
    elseif ttls[i] == -1 then
      -- A counter without expiry would never reset: heal it (cannot happen through this script).
      redis.call('PEXPIRE', key, window)
      ttls[i] = window
    end
    local reset = ttls[i]
    -- -2: no window yet (refused before it started); 0: expiring this very millisecond.
    if reset < 1 then reset = window end
    out[#out + 1] = counts[i]
    out[#out + 1] = reset
  end
  a = a + 2 + 2 * n
  k = k + n
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

/**
 * Reserves quota for a replica to hand out locally. KEYS[1..n]: counters. ARGV[4i-3..4i]: counter
 * i's limit, windowMs, need (what the current request still lacks from it) and want (what to take
 * if there is room, ≥ need). All or nothing on the needs: if any counter lacks room for its need,
 * nothing is taken. Returns {allowed, granted_1, count_1, resetMs_1, …}.
 *
 * A counter never passes its limit: a grant is at most the room left, so however the replicas'
 * reservations interleave, they never hand out more than the limit between them.
 */
export const RESERVE_LUA = `
local n = #KEYS
local counts = {}
local ttls = {}
local allowed = 1
for i = 1, n do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  counts[i] = current
  ttls[i] = redis.call('PTTL', KEYS[i])
  if current + tonumber(ARGV[4 * i - 1]) > tonumber(ARGV[4 * i - 3]) then allowed = 0 end
end
local out = { allowed }
for i = 1, n do
  local limit = tonumber(ARGV[4 * i - 3])
  local window = tonumber(ARGV[4 * i - 2])
  local granted = 0
  if allowed == 1 then
    granted = math.min(tonumber(ARGV[4 * i]), limit - counts[i])
    if granted > 0 then counts[i] = redis.call('INCRBY', KEYS[i], granted) end
    if ttls[i] < 0 then
      redis.call('PEXPIRE', KEYS[i], window)
      ttls[i] = window
    end
  end
  local reset = ttls[i]
  if reset < 1 then reset = window end
  out[#out + 1] = granted
  out[#out + 1] = counts[i]
  out[#out + 1] = reset
end
return out
`;

/**
 * The Lua behind RedisStore's append-only logs. KEYS[1]: the entries, a hash seq → entry JSON (so
 * a read of any page costs O(limit), wherever it starts); KEYS[2]: the head, a hash {seq, hash}.
 *
 * The append assigns the sequence number and computes the chain's hash in one script, so two
 * replicas appending at once can neither share a seq nor chain onto the same head. The formula is
 * log-chain.ts's: sha256(`${prev}\n${seq}\n${at}\n${entryJson}`), with `at` from Redis's clock.
 */
import { GENESIS } from './log-chain.js';
import { SHA256_LUA } from './redis-sha256.js';

/**
 * ARGV[1]: the entry's JSON. Stores `{"seq":…,"at":…,"prev":…,"hash":…,"entry":<ARGV[1]>}` (the
 * entry's text kept byte for byte, so the hash can be checked) and returns {seq, hash}.
 */
export const APPEND_LUA = `${SHA256_LUA}
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash')
local seq = string.format('%d', tonumber(head[1] or '0') + 1)
local prev = head[2] or '${GENESIS}'
local t = redis.call('TIME')
local at = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local hash = sha256(prev .. '\\n' .. seq .. '\\n' .. at .. '\\n' .. ARGV[1])
redis.call('HSET', KEYS[1], seq, '{"seq":' .. seq .. ',"at":' .. at .. ',"prev":"' .. prev .. '","hash":"' .. hash .. '","entry":' .. ARGV[1] .. '}')
redis.call('HSET', KEYS[2], 'seq', seq, 'hash', hash)
return { tonumber(seq), hash }
`;

/** ARGV[1]: fromSeq; ARGV[2]: limit (≥ 1). Returns the entries' JSON (nil for one missing), ascending. */
export const READ_LOG_LUA = `
local last = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local from = math.max(tonumber(ARGV[1]), 1)
local to = math.min(last, from + tonumber(ARGV[2]) - 1)
if to < from then return {} end
local fields = {}
for s = from, to do fields[#fields + 1] = string.format('%d', s) end
return redis.call('HMGET', KEYS[1], unpack(fields))
`;

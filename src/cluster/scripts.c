/* redis_scripts.c - the engine's Lua scripts; see redis_scripts.h. */
#include "cluster/scripts.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* A new epoch for the symbol (KEYS[6] / KEYS[1] of RECOVER): the node's
 * tag and Redis's clock to the microsecond, so a numbering that restarts
 * never reuses one. */
#define NEW_EPOCH(tag) "(" tag " .. '-' .. t[1] .. string.format('%06d', tonumber(t[2])))"

/* The epoch next to the seq (PROTOCOL.md section 13): kept while the seq
 * counter lives; a missing counter (Redis lost it) or a missing epoch
 * starts a new one, and the stream of the old numbering goes. Then INCR
 * the seq, fix the session's first price, keep the last tick, append it
 * to the history stream under the id <seq>-0 (recovery reads "every tick
 * after seq N" as XRANGE from N+1), publish it: one atomic step, so every
 * node sees one order. A tick past its deadline (Redis's clock) is
 * refused with -1: its sender gave up on this link and delivered it
 * itself, so running it now (a Redis that was stopped and resumed) would
 * deliver it twice. ARGV[8] names the publish: PUBLISH, or SPUBLISH on a
 * cluster (the channel is in the keys' slot). Returns the published message, which the sender keeps
 * until it hears its own tick back on the pub/sub link. */
static const char PUBLISH_LUA[] =
    "local t = redis.call('TIME') "
    "if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[6]) then return -1 end "
    "local ep = redis.call('GET', KEYS[6]) "
    "if not ep or redis.call('EXISTS', KEYS[1]) == 0 then "
    "  ep = " NEW_EPOCH("ARGV[7]") " "
    "  redis.call('SET', KEYS[6], ep) redis.call('DEL', KEYS[5]) end "
    "local seq = redis.call('INCR', KEYS[1]) "
    "redis.call('SET', KEYS[2], ARGV[2], 'NX') "
    "local first = redis.call('GET', KEYS[2]) "
    "local vol = ARGV[4] "
    "if vol == '' then "          /* no volume given: the last tick's stays */
    "  local prev = redis.call('GET', KEYS[3]) "
    "  vol = prev and string.match(prev, '^[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)') or '0' end "
    "local msg = ARGV[1] .. '|' .. vol .. '|' .. ARGV[5] .. '|' .. seq .. '|' .. first .. '|' .. ep "
    "redis.call('SET', KEYS[3], msg) "
    /* An id not above the stream's top (a counter set back by hand) would
     * fail the XADD after the INCR: that stream cannot serve a recovery. */
    "if type(redis.pcall('XADD', KEYS[5], 'MAXLEN', ARGV[3], seq .. '-0', 't', msg)) == 'table' then "
    "  redis.call('DEL', KEYS[5]) redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[3], seq .. '-0', 't', msg) end "
    "redis.call(ARGV[8], KEYS[4], msg) "
    "return msg";

/* Recovery's question to the cluster (PROTOCOL.md section 13): the
 * symbol's epoch (made now, with the counter at 0 when missing, so every
 * node reports the same one before the first tick), its seq and, when
 * ARGV[1] is not empty, the retained ticks from seq ARGV[1] on (at most
 * ARGV[2]). Returns {epoch, seq, entries}. */
static const char RECOVER_LUA[] =
    "local ep = redis.call('GET', KEYS[1]) "
    "if not ep then "
    "  local t = redis.call('TIME') "
    "  ep = " NEW_EPOCH("ARGV[3]") " "
    "  redis.call('SET', KEYS[1], ep) redis.call('SET', KEYS[3], 0, 'NX') redis.call('DEL', KEYS[2]) end "
    "local seq = redis.call('GET', KEYS[3]) or '0' "
    "if ARGV[1] == '' then return {ep, seq, {}} end "
    "return {ep, seq, redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])}";
/* After a reconnect: Redis's seq must never fall behind what this node
 * handed out alone. */
static const char WRITEBACK_LUA[] =
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end "
    "redis.call('SET', KEYS[2], ARGV[2], 'NX') return 1";

/* The registry scripts (admission, a node's clean-up, the cleanup of
 * dead nodes) declare KEYS[1] = the registry's nodes set: on a cluster
 * it routes them to the registry's slot, where every key they touch is. */

/* Per-user admission across every live node. */
static const char ADMIT_LUA[] =
    "local p, me, user, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]) "
    "local total = 0 "
    "for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do "
    "  if n == me or redis.call('EXISTS', p .. 'node:' .. n) == 1 then "
    "    total = total + tonumber(redis.call('HGET', p .. 'node:' .. n .. ':users', user) or '0') end end "
    "if total >= limit then return 0 end "
    "redis.call('HINCRBY', p .. 'node:' .. me .. ':users', user, 1) return 1";

static const char RELEASE_LUA[] =
    "local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1) "
    "if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end return n";

/* Removes one node's clients from the shared hashes, and its bookkeeping. */
static const char CLEAN_NODE_LUA[] =
    "local p, n = ARGV[1], ARGV[2] "
    "for _, c in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':clients')) do "
    "  redis.call('HDEL', p .. 'connections', c) redis.call('HDEL', p .. 'subscriptions', c) end "
    "redis.call('DEL', p .. 'node:' .. n .. ':clients', p .. 'node:' .. n .. ':users') return 1";

/* Any node removes the entries of nodes whose liveness key has expired,
 * and the blocks whose time is over (0 = no end). */
static const char CLEANUP_LUA[] =
    "local p, now = ARGV[1], tonumber(ARGV[2]) local removed = 0 "
    "for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do "
    "  if redis.call('EXISTS', p .. 'node:' .. n) == 0 then "
    "    for _, c in ipairs(redis.call('SMEMBERS', p .. 'node:' .. n .. ':clients')) do "
    "      redis.call('HDEL', p .. 'connections', c) redis.call('HDEL', p .. 'subscriptions', c) end "
    "    redis.call('DEL', p .. 'node:' .. n .. ':clients', p .. 'node:' .. n .. ':users') "
    "    redis.call('SREM', p .. 'nodes', n) removed = removed + 1 end end "
    "local b = redis.call('HGETALL', p .. 'blocked') "
    "for i = 1, #b, 2 do "
    "  local u = tonumber(b[i + 1]) "
    "  if u == nil or (u > 0 and u <= now) then redis.call('HDEL', p .. 'blocked', b[i]) end end "
    "return removed";

const char *const redis_script_text[RS_COUNT] = {
    [RS_PUBLISH] = PUBLISH_LUA,     [RS_WRITEBACK] = WRITEBACK_LUA,   [RS_ADMIT] = ADMIT_LUA,
    [RS_RELEASE] = RELEASE_LUA,     [RS_CLEAN_NODE] = CLEAN_NODE_LUA, [RS_CLEANUP] = CLEANUP_LUA,
    [RS_RECOVER] = RECOVER_LUA,
};

int redis_scripts_sha(char sha[RS_COUNT][41]) {
    for (int i = 0; i < RS_COUNT; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (EVP_Digest(redis_script_text[i], strlen(redis_script_text[i]), md, &len, EVP_sha1(), NULL) != 1 ||
            len != 20)
            return -1;
        for (unsigned j = 0; j < len; j++)
            snprintf(sha[i] + 2 * j, 3, "%02x", md[j]);
    }
    return 0;
}

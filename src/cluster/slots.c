/* slots.c - hash slots and the slot map; see slots.h. */
#include "cluster/slots.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

/* CRC16-CCITT (XMODEM: poly 0x1021, init 0), as Redis Cluster uses. */
static uint16_t crc16(const char *p, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (uint16_t)(crc << 1 ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t slot_of(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open + 1 - key);
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (SLOT_COUNT - 1);
    }
    return crc16(key, len) & (SLOT_COUNT - 1);
}

/* The primary at host:port in m, added when new; -1 when m is full. */
static int primary_index(struct slot_map *m, const char *host, size_t hl, int port) {
    for (int i = 0; i < m->n; i++)
        if (m->at[i].port == port && strlen(m->at[i].host) == hl && memcmp(m->at[i].host, host, hl) == 0)
            return i;
    if (m->n == SHARDS_MAX || hl >= sizeof(m->at[0].host))
        return -1;
    memcpy(m->at[m->n].host, host, hl);
    m->at[m->n].host[hl] = '\0';
    m->at[m->n].port = port;
    return m->n++;
}

int slot_map_parse(const redisReply *r, const char *seed_host, struct slot_map *m, const char **why) {
    memset(m, 0, sizeof(*m));
    memset(m->owner, SLOT_UNSERVED, sizeof(m->owner));
    *why = "CLUSTER SLOTS: not a slot map";
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i], *p;
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 || range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER || (p = range->element[2])->type != REDIS_REPLY_ARRAY ||
            p->elements < 2 || p->element[0]->type != REDIS_REPLY_STRING || p->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long lo = range->element[0]->integer, hi = range->element[1]->integer, port = p->element[1]->integer;
        if (lo < 0 || hi >= SLOT_COUNT || lo > hi || port < 1 || port > 65535)
            return -1;
        const char *host = p->element[0]->str;
        size_t hl = p->element[0]->len;
        if (hl == 0 || strcmp(host, "?") == 0) {
            host = seed_host;
            hl = strlen(seed_host);
        }
        int s = primary_index(m, host, hl, (int)port);
        if (s < 0) {
            *why = "CLUSTER SLOTS: more primaries than tickgate serves (64)";
            return -1;
        }
        memset(m->owner + lo, s, (size_t)(hi - lo + 1));
    }
    for (int s = 0; s < SLOT_COUNT; s++)
        if (m->owner[s] == SLOT_UNSERVED) {
            *why = "cluster: a slot no primary serves";
            return -1;
        }
    return 0;
}

int slot_tag_for(const struct slot_map *m, int s, char *out, size_t len) {
    for (unsigned k = 0; k < 1000000; k++) {
        int n = snprintf(out, len, "s%u", k);
        if (n < 0 || (size_t)n >= len)
            return -1;
        if (m->owner[slot_of(out, (size_t)n)] == s)
            return 0;
    }
    return -1;
}

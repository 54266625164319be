/* slots.h - Redis Cluster's key space: the hash slot of a key (CRC16 of
 * the key, or of its hash tag: the text between the first '{' and the
 * next '}', when not empty) and the slot map read from CLUSTER SLOTS.
 * Pure functions, no I/O (shards.c is their user). */
#ifndef TG_CLUSTER_SLOTS_H
#define TG_CLUSTER_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define SLOT_COUNT 16384
#define SHARDS_MAX 64          /* primaries a node talks to; more: the map is refused */
#define SLOT_UNSERVED 0xFF

struct redisReply;

struct slot_map {
    int n;                                  /* primaries */
    struct { char host[64]; int port; } at[SHARDS_MAX];
    uint8_t owner[SLOT_COUNT];              /* primary index, or SLOT_UNSERVED */
};

uint16_t slot_of(const char *key, size_t len);

/* Fills m from a CLUSTER SLOTS reply; a primary announced without an
 * address ("" or "?") is at seed_host. 0, or -1 with why (static text):
 * not a map, a slot no primary serves, too many primaries. */
int slot_map_parse(const struct redisReply *r, const char *seed_host, struct slot_map *m, const char **why);

/* A hash tag (at most 15 characters) whose slot shard s owns, into out:
 * a channel named with it lands on that shard. 0, or -1. */
int slot_tag_for(const struct slot_map *m, int s, char *out, size_t len);

#endif

/* test_slots.c - unit tests for Redis Cluster's key slots and slot map
 * (src/cluster/slots.c): slots agree with Redis's CLUSTER KEYSLOT, hash
 * tags put a symbol's keys in one slot, and a CLUSTER SLOTS reply that
 * leaves a slot unserved or is malformed is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster/slots.h"

static uint16_t s(const char *k) { return slot_of(k, strlen(k)); }

static void matches_redis(void **state) {
    /* Values from redis-cli CLUSTER KEYSLOT on Redis 7.0. */
    assert_int_equal(s("foo"), 12182);
    assert_int_equal(s("bar"), 5061);
    assert_int_equal(s("123456789"), 12739);
    assert_int_equal(s("{user1000}.following"), s("{user1000}.followers"));
    assert_int_equal(s("websocket:seq:{AAPL}"), s("AAPL"));
    assert_int_equal(s("websocket:tick:{AAPL}"), s("websocket:history:{AAPL}"));
    assert_int_equal(s("{}x"), s("{}x"));          /* empty tag: the whole key */
    assert_int_not_equal(s("{}foo"), s("foo"));
    assert_int_equal(s("a{b"), s("a{b"));           /* no closing brace: the whole key */
    assert_int_equal(s("x{b}{c}"), s("b"));         /* the first tag only */
}

/* A reply built by hand: ranges of {lo, hi, host, port}. */
static redisReply *str(const char *v) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->str = strdup(v);
    r->len = strlen(v);
    return r;
}

static redisReply *num(long long v) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *arr(size_t n) {
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(redisReply *));
    return r;
}

static redisReply *map(int n, const long long *lo, const long long *hi, const char **host, const int *port) {
    redisReply *r = arr((size_t)n);
    for (int i = 0; i < n; i++) {
        redisReply *range = arr(3), *p = arr(3);
        p->element[0] = str(host[i]);
        p->element[1] = num(port[i]);
        p->element[2] = str("id");
        range->element[0] = num(lo[i]);
        range->element[1] = num(hi[i]);
        range->element[2] = p;
        r->element[i] = range;
    }
    return r;
}

static void parses_and_refuses(void **state) {
    struct slot_map *m = malloc(sizeof(*m));
    const char *why;
    long long lo[] = {0, 5461, 10923}, hi[] = {5460, 10922, 16383};
    const char *host[] = {"127.0.0.1", "", "127.0.0.1"};
    int port[] = {7000, 7001, 7000};
    redisReply *r = map(3, lo, hi, host, port);
    assert_int_equal(slot_map_parse(r, "seed", m, &why), 0);
    assert_int_equal(m->n, 2); /* 7000 owns two ranges */
    assert_string_equal(m->at[1].host, "seed");
    assert_int_equal(m->owner[0], 0);
    assert_int_equal(m->owner[5461], 1);
    assert_int_equal(m->owner[16383], 0);
    char tag[16];
    assert_int_equal(slot_tag_for(m, 1, tag, sizeof(tag)), 0);
    assert_int_equal(m->owner[slot_of(tag, strlen(tag))], 1);
    freeReplyObject(r);

    long long hi2[] = {5460, 10922, 16382}; /* slot 16383 unserved */
    r = map(3, lo, hi2, host, port);
    assert_int_equal(slot_map_parse(r, "seed", m, &why), -1);
    assert_non_null(strstr(why, "no primary"));
    freeReplyObject(r);

    long long bad[] = {0, 5461, 20000};
    r = map(3, lo, bad, host, port);
    assert_int_equal(slot_map_parse(r, "seed", m, &why), -1);
    freeReplyObject(r);
    assert_int_equal(slot_map_parse(NULL, "seed", m, &why), -1);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_redis),
        cmocka_unit_test(parses_and_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

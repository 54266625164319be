/* guard.c - per-IP and per-user admission and escalation; see guard.h. */
#include "auth/guard.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/config.h"

struct guard_ip {
    struct guard_ip *next;
    struct ip16 ip;
    uint32_t conns;
    int64_t blocked_until;      /* wall s; 0 = not blocked; INT64_MAX = until unblocked */
    bool saved;                 /* the block is an admin's: kept in security.blocks_file */
    uint32_t nviol;             /* entries used in viol */
    uint32_t vhead;             /* next slot in the ring */
    int64_t viol[];             /* ring of the last `critical` violation times */
};

struct guard_user {
    struct guard_user *next;
    uint32_t conns;
    char id[];
};

static uint32_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h % GUARD_BUCKETS;
}

struct ip16 guard_key(const struct guard *g, const struct ip16 *ip) { return ip16_client_key(ip, g->v6_prefix); }

static struct guard_ip *ip_find(struct guard *g, const struct ip16 *addr, bool create) {
    struct ip16 k = guard_key(g, addr);
    uint32_t h = hash_bytes(k.b, 16);
    for (struct guard_ip *e = g->ips[h]; e; e = e->next)
        if (memcmp(e->ip.b, k.b, 16) == 0)
            return e;
    if (!create)
        return NULL;
    struct guard_ip *e = calloc(1, sizeof(*e) + sizeof(int64_t) * (size_t)g->critical);
    if (!e)
        return NULL;
    e->ip = k;
    e->next = g->ips[h];
    g->ips[h] = e;
    return e;
}

static struct guard_user *user_find(struct guard *g, const char *id, bool create) {
    size_t l = strlen(id);
    uint32_t h = hash_bytes(id, l);
    for (struct guard_user *e = g->users[h]; e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    if (!create)
        return NULL;
    struct guard_user *e = calloc(1, sizeof(*e) + l + 1);
    if (!e)
        return NULL;
    memcpy(e->id, id, l + 1);
    e->next = g->users[h];
    g->users[h] = e;
    return e;
}

static bool is_blocked(const struct guard_ip *e, int64_t now) { return e && e->blocked_until > now; }

int guard_init(struct guard *g, const struct config *cfg, FILE *err) {
    memset(g, 0, sizeof(*g));
    uv_mutex_init(&g->lock);
    g->per_ip = cfg->limits.max_connections_per_ip;
    g->per_user = cfg->limits.max_connections_per_user;
    g->critical = cfg->security.critical_violations;
    g->window_s = cfg->security.critical_window_s;
    g->block_s = cfg->security.auto_block_s;
    g->v6_prefix = cfg->limits.ipv6_prefix_len;
    struct cidr_list l;
    if (cidr_list_parse(&l, cfg->security.blocked_ips, "security.blocked_ips", err) < 0) {
        guard_free(g);
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        /* An address, or an IPv6 prefix of exactly the identity length
         * (which is what an IPv6 address blocks anyway). */
        if (l.v[i].bits != 128 && (ip16_is_v4(&l.v[i].net) || l.v[i].bits != g->v6_prefix)) {
            fprintf(err, "tickgate: security.blocked_ips: give single addresses, not ranges (an IPv6 address "
                         "blocks its /%d, limits.ipv6_prefix_len)\n", g->v6_prefix);
            cidr_list_free(&l);
            guard_free(g);
            return -1;
        }
        guard_block(g, &l.v[i].net, 0);
    }
    cidr_list_free(&l);
    return 0;
}

void guard_free(struct guard *g) {
    for (int i = 0; i < GUARD_BUCKETS; i++) {
        for (struct guard_ip *e = g->ips[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
        for (struct guard_user *e = g->users[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
        g->ips[i] = NULL;
        g->users[i] = NULL;
    }
    uv_mutex_destroy(&g->lock);
}

enum guard_verdict guard_admit(struct guard *g, const struct ip16 *ip, const char *user, const char **which) {
    int64_t now = (int64_t)time(NULL);
    enum guard_verdict v = GUARD_OK;
    uv_mutex_lock(&g->lock);
    struct guard_ip *e = ip_find(g, ip, true);
    struct guard_user *u = user ? user_find(g, user, true) : NULL;
    if (!e || (user && !u)) {
        v = GUARD_LIMIT; /* out of memory: refuse rather than count wrong */
        *which = "memory";
    } else if (is_blocked(e, now)) {
        v = GUARD_BLOCKED;
    } else if (e->conns >= (uint32_t)g->per_ip) {
        v = GUARD_LIMIT;
        *which = "ip";
    } else if (u && u->conns >= (uint32_t)g->per_user) {
        v = GUARD_LIMIT;
        *which = "user";
    } else {
        e->conns++;
        if (u)
            u->conns++;
    }
    uv_mutex_unlock(&g->lock);
    return v;
}

void guard_release(struct guard *g, const struct ip16 *ip, const char *user) {
    uv_mutex_lock(&g->lock);
    struct guard_ip *e = ip_find(g, ip, false);
    if (e && e->conns)
        e->conns--;
    struct guard_user *u = user ? user_find(g, user, false) : NULL;
    if (u && u->conns)
        u->conns--;
    uv_mutex_unlock(&g->lock);
}

bool guard_switch_user(struct guard *g, const char *old, const char *user) {
    if (old && strcmp(old, user) == 0)
        return true;
    bool ok = false;
    uv_mutex_lock(&g->lock);
    struct guard_user *u = user_find(g, user, true);
    if (u && u->conns < (uint32_t)g->per_user) {
        u->conns++;
        struct guard_user *o = old ? user_find(g, old, false) : NULL;
        if (o && o->conns)
            o->conns--;
        ok = true;
    }
    uv_mutex_unlock(&g->lock);
    return ok;
}

bool guard_is_blocked(struct guard *g, const struct ip16 *ip) {
    int64_t now = (int64_t)time(NULL);
    uv_mutex_lock(&g->lock);
    bool b = is_blocked(ip_find(g, ip, false), now);
    uv_mutex_unlock(&g->lock);
    return b;
}

/* blocked counts entries with blocked_until set, expired or not, until
 * the sweep clears them: one increment and one decrement per block. */
static void set_block(struct guard *g, struct guard_ip *e, int64_t until, int64_t now) {
    (void)now;
    if (!e->blocked_until)
        atomic_fetch_add(&g->blocked, 1);
    e->blocked_until = until;
}

bool guard_violation(struct guard *g, const struct ip16 *ip, int64_t now) {
    bool critical = false;
    uv_mutex_lock(&g->lock);
    struct guard_ip *e = ip_find(g, ip, true);
    if (e && !is_blocked(e, now)) {
        uint32_t n = (uint32_t)g->critical;
        e->viol[e->vhead] = now;
        e->vhead = (e->vhead + 1) % n;
        if (e->nviol < n)
            e->nviol++;
        /* Ring full: its oldest entry is the critical-th most recent. */
        if (e->nviol == n) {
            if (e->viol[e->vhead] > now - g->window_s) {
                set_block(g, e, now + g->block_s, now);
                e->nviol = 0;
                critical = true;
            }
        }
    }
    uv_mutex_unlock(&g->lock);
    return critical;
}

static void block(struct guard *g, const struct ip16 *ip, int64_t duration_s, bool saved) {
    int64_t now = (int64_t)time(NULL);
    uv_mutex_lock(&g->lock);
    struct guard_ip *e = ip_find(g, ip, true);
    if (e) {
        set_block(g, e, duration_s > 0 && duration_s < GUARD_FOREVER_S ? now + duration_s : INT64_MAX, now);
        if (saved || e->saved)
            atomic_store(&g->saved_dirty, true);
        e->saved |= saved;
    }
    uv_mutex_unlock(&g->lock);
}

void guard_block(struct guard *g, const struct ip16 *ip, int64_t duration_s) { block(g, ip, duration_s, false); }

void guard_block_saved(struct guard *g, const struct ip16 *ip, int64_t duration_s) { block(g, ip, duration_s, true); }

/* Blocks in force (all, or the admin's kept ones) into out; their count. */
static size_t list_blocks(struct guard *g, struct guard_saved *out, size_t max, bool saved_only) {
    int64_t now = (int64_t)time(NULL);
    size_t n = 0;
    uv_mutex_lock(&g->lock);
    if (saved_only)
        atomic_store(&g->saved_dirty, false);
    for (int i = 0; i < GUARD_BUCKETS; i++)
        for (struct guard_ip *e = g->ips[i]; e; e = e->next) {
            if ((saved_only && !e->saved) || !is_blocked(e, now))
                continue;
            if (n < max)
                out[n] = (struct guard_saved){e->ip, e->blocked_until == INT64_MAX ? 0 : e->blocked_until, e->saved};
            n++;
        }
    uv_mutex_unlock(&g->lock);
    return n;
}

size_t guard_saved_blocks(struct guard *g, struct guard_saved *out, size_t max) {
    return list_blocks(g, out, max, true);
}

size_t guard_blocks(struct guard *g, struct guard_saved *out, size_t max) { return list_blocks(g, out, max, false); }

bool guard_unblock(struct guard *g, const struct ip16 *ip) {
    int64_t now = (int64_t)time(NULL);
    uv_mutex_lock(&g->lock);
    struct guard_ip *e = ip_find(g, ip, false);
    bool was = is_blocked(e, now);
    if (e && e->blocked_until) {
        e->blocked_until = 0;
        atomic_fetch_sub(&g->blocked, 1);
    }
    if (e && e->saved) {
        e->saved = false;
        atomic_store(&g->saved_dirty, true);
    }
    if (e)
        e->nviol = 0;
    uv_mutex_unlock(&g->lock);
    return was;
}

void guard_sweep(struct guard *g, int64_t now) {
    uv_mutex_lock(&g->lock);
    for (int i = 0; i < GUARD_BUCKETS; i++) {
        for (struct guard_ip **pp = &g->ips[i]; *pp;) {
            struct guard_ip *e = *pp;
            if (e->blocked_until && e->blocked_until <= now) {
                e->blocked_until = 0; /* expired */
                atomic_fetch_sub(&g->blocked, 1);
                if (e->saved)
                    atomic_store(&g->saved_dirty, true);
                e->saved = false;
            }
            uint32_t n = (uint32_t)g->critical;
            int64_t last = e->nviol ? e->viol[(e->vhead + n - 1) % n] : 0;
            if (!e->conns && !e->blocked_until && last <= now - g->window_s) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
        for (struct guard_user **pp = &g->users[i]; *pp;) {
            struct guard_user *e = *pp;
            if (!e->conns) {
                *pp = e->next;
                free(e);
            } else {
                pp = &e->next;
            }
        }
    }
    uv_mutex_unlock(&g->lock);
}

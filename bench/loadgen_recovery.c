/* loadgen_recovery.c - --recover-storm K (what it does: loadgen.h, struct
 * rstorm): the group's drop and reconnection, their recovering subscribes'
 * replies, and the check that each member gets every tick across the join
 * (gaps, duplicates) until it is live. */
#include <string.h>

#include "loadgen.h"

struct rstorm RS;

void rs_init(void) {
    RS.state = RS_BASE;
    RS.seq = xcalloc((size_t)O.rstorm * (size_t)O.per, sizeof(*RS.seq));
    RS.n_drop = xcalloc((size_t)O.nsyms, sizeof(*RS.n_drop));
    RS.n_live = xcalloc((size_t)O.nsyms, sizeof(*RS.n_live));
    RS.pending = xcalloc((size_t)O.rstorm, 1);
    RS.epoch = xcalloc((size_t)O.nsyms, sizeof(*RS.epoch));
}

/* A member's tick after the drop: checked for gaps and duplicates across
 * the join, and the member turns live once it has caught up. */
void rs_tick(struct conn *c, int j, uint32_t sym, uint64_t n) {
    uint32_t *cl = &clast[(size_t)c->id * (size_t)O.per];
    RS.rx++;
    if (n <= cl[j]) {
        RS.dups++;
        return;
    }
    if (n > (uint64_t)cl[j] + 1)
        RS.gaps += n - cl[j] - 1;
    uint32_t was = cl[j];
    cl[j] = (uint32_t)n;
    if (RS.state == RS_STORM && RS.pending[c->id] && was < RS.n_live[sym] && n >= RS.n_live[sym] &&
        --RS.pending[c->id] == 0) {
        RS.live++;
        h_add(&RS.ttl, g_now - RS.t0);
        if (RS.live == O.rstorm) {
            RS.t_all = g_now;
            RS.state = RS_DONE;
        }
    }
}

/* Step 1 begins: the members close their sockets (as a dropped network
 * would: no close frame). */
void rs_drop(void) {
    for (uint32_t s = 0; s < (uint32_t)O.nsyms; s++)
        RS.n_drop[s] = pub_n[s];
    for (int i = 0; i < O.rstorm; i++) {
        struct conn *c = &conns[i];
        const uint32_t *cs = &csym[(size_t)i * (size_t)O.per];
        if (c->state != ST_ACTIVE)
            continue;
        for (int j = 0; j < O.per; j++)
            if (cs[j] != NO_SYM)
                subcount[cs[j]]--; /* no longer expected: their ticks are counted apart */
        c->state = ST_CLOSING; /* closed on purpose: not a disconnect */
        conn_close(c);
    }
    RS.state = RS_AWAY;
}

/* Step 2 begins: the storm. Every member that was subscribed reconnects. */
void rs_start(int64_t t) {
    for (uint32_t s = 0; s < (uint32_t)O.nsyms; s++)
        RS.n_live[s] = pub_n[s];
    for (int i = 0; i < O.rstorm; i++) {
        const uint32_t *cs = &csym[(size_t)i * (size_t)O.per], *cl = &clast[(size_t)i * (size_t)O.per];
        uint8_t k = 0;
        for (int j = 0; j < O.per; j++)
            k += cs[j] != NO_SYM && cl[j] < RS.n_live[cs[j]];
        RS.pending[i] = k;
        RS.live += !k;
    }
    RS.t0 = t;
    RS.state = RS_STORM;
}

/* Reconnects members, --concurrency handshakes in flight. */
void rs_pump(int64_t now) {
    while (RS.state >= RS_STORM && RS.next < O.rstorm && S.inflight < O.concurrency) {
        struct conn *c = &conns[RS.next++];
        if (c->state != ST_DONE)
            continue;
        c->again = 1;
        g_now = now;
        conn_start(c);
    }
    if (RS.state == RS_STORM)
        setup_scan(now);
}

/* --recover-storm, a member's confirmation: the epochs (kept per symbol),
 * and on its recovering subscribe how many symbols were recovered. */
void rs_confirmed(struct conn *c, const char *p, size_t n) {
    const char *end = p + n, *ep = json_val(p, n, "\"epochs\"", 8);
    const uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per];
    for (int j = 0; ep && *ep == '{' && j < O.per; j++) {
        if (cs[j] == NO_SYM || RS.epoch[cs[j]][0])
            continue;
        char key[MAX_SYMLEN + 4];
        int kl = snprintf(key, sizeof(key), "\"%s\"", sym_name[cs[j]]);
        const char *close = memchr(ep, '}', (size_t)(end - ep)), *v;
        size_t vl;
        if (close && json_str(ep, (size_t)(close - ep + 1), key, (size_t)kl, &v, &vl) && vl < sizeof(RS.epoch[0])) {
            memcpy(RS.epoch[cs[j]], v, vl);
            RS.epoch[cs[j]][vl] = 0;
        }
    }
    const char *rv = c->again ? json_val(p, n, "\"recovered\"", 11) : NULL;
    for (const char *q = rv; q && q < end && *q != '}'; q++) {
        if (end - q >= 4 && memcmp(q, "true", 4) == 0)
            RS.recovered++;
        else if (end - q >= 5 && memcmp(q, "false", 5) == 0)
            RS.missed++;
    }
}

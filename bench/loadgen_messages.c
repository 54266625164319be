/* loadgen_messages.c - text messages in: price_update / price_batch ticks
 * (their n recovered from the price, latency from the tick's scheduled
 * time, gaps and duplicates per subscribed symbol), the subscribe replies,
 * errors; and the tiny JSON scanning they need (no allocation, no full
 * parse: this runs per delivered message). */
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

const char *json_val(const char *p, size_t n, const char *qkey, size_t klen) {
    const char *end = p + n;
    while (p < end) {
        const char *k = memmem(p, (size_t)(end - p), qkey, klen);
        if (!k)
            return NULL;
        const char *v = k + klen;
        while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
            v++;
        if (v < end && *v == ':') {
            v++;
            while (v < end && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
                v++;
            return v < end ? v : NULL;
        }
        p = k + 1;
    }
    return NULL;
}
bool json_str(const char *p, size_t n, const char *qkey, size_t klen, const char **out, size_t *olen) {
    const char *v = json_val(p, n, qkey, klen), *end = p + n;
    if (!v || *v != '"')
        return false;
    v++;
    const char *q = memchr(v, '"', (size_t)(end - v));
    if (!q)
        return false;
    *out = v;
    *olen = (size_t)(q - v);
    return true;
}
/* Parses a non-negative decimal at v into thousandths (rounded); false if none. */
static bool parse_thou(const char *v, const char *end, uint64_t *out) {
    uint64_t ip = 0;
    int nd = 0;
    while (v < end && *v >= '0' && *v <= '9' && nd < 15) {
        ip = ip * 10 + (uint64_t)(*v++ - '0');
        nd++;
    }
    if (!nd)
        return false;
    uint64_t fr = 0;
    int fd = 0, round_up = 0;
    if (v < end && *v == '.') {
        v++;
        while (v < end && *v >= '0' && *v <= '9') {
            if (fd < 3)
                fr = fr * 10 + (uint64_t)(*v - '0');
            else if (fd == 3)
                round_up = *v >= '5';
            fd++;
            v++;
        }
    }
    for (; fd < 3; fd++)
        fr *= 10;
    *out = ip * 1000 + fr + (uint64_t)round_up;
    return true;
}

/* A tick received; delayed (tickgate's delayed data: sent feed.delay_s
 * after it happened) counts as delivered in the step it was published in,
 * with no latency sample. */
static void on_tick(struct conn *c, uint32_t sym, uint64_t thou, bool delayed, uint32_t seq) {
    if (sym == NO_SYM || thou <= 1000) {
        S.unmatched++;
        return;
    }
    uint64_t n = thou - 1000;
    if (n > pub_n[sym]) {
        S.unmatched++; /* not ours (a simulator, another publisher) */
        return;
    }
    uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per], *cl = &clast[(size_t)c->id * (size_t)O.per];
    int j = 0;
    while (j < O.per && cs[j] != sym)
        j++;
    if (j == O.per) {
        S.unexpected++;
        return;
    }
    if (O.rstorm && c->id < (uint32_t)O.rstorm && seq)
        RS.seq[(size_t)c->id * (size_t)O.per + (size_t)j] = seq;
    if (rs_member(c)) {
        rs_tick(c, j, sym, n);
        return;
    }
    if (n <= cl[j]) {
        S.dups++;
        return;
    }
    if (n > (uint64_t)cl[j] + 1)
        S.gaps += n - cl[j] - 1;
    cl[j] = (uint32_t)n;
    if (pub_n[sym] - n > ring_mask) {
        S.stale++; /* its send time was overwritten: ring too small */
        return;
    }
    int64_t ts = ring_ts[((size_t)sym << ring_shift) + (n & ring_mask)];
    if (ts < ramp_start) {
        S.warm_rx++;
        return;
    }
    int64_t k = (ts - ramp_start) / step_ns;
    if (k >= MAX_STEPS)
        return;
    steps[k].delivered++;
    if (delayed)
        S.delayed_rx++;
    else if (!O.rstorm || c->id >= (uint32_t)O.rstorm) {
        h_add(&steps[k].h, g_now - ts);
        if (k == 0 && !O.ramp)
            h_add(&S.by_pos[(uint64_t)c->id * 10 / (uint64_t)O.conns], g_now - ts);
        if (RS.state == RS_STORM)
            h_add(&RS.steady_storm, g_now - ts);
    }
}

/* Sets hit[j] for each of the subscriber's symbol slots cs[0..per) that
 * the JSON array of strings at v (just past its '[') names; stops at the
 * first element that is not a string. */
static void named_slots(const uint32_t *cs, const char *v, const char *end, uint8_t *hit) {
    for (;;) {
        while (v < end && (*v == ' ' || *v == ','))
            v++;
        if (v >= end || *v != '"')
            return;
        const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
        if (!q)
            return;
        uint32_t idx = sym_find(v + 1, (size_t)(q - v - 1));
        for (int j = 0; j < O.per; j++)
            if (idx != NO_SYM && cs[j] == idx)
                hit[j] = 1;
        v = q + 1;
    }
}

/* Symbols of a subscription_confirmed: the accepted ones get counted. */
static void on_confirmed(struct conn *c, const char *p, size_t n, bool truncated) {
    uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per];
    uint8_t acc[MAX_PER] = {0};
    const char *v = truncated ? NULL : json_val(p, n, "\"symbols\"", 9);
    bool parsed = v && *v == '[';
    if (parsed)
        named_slots(cs, v + 1, p + n, acc);
    if (O.rstorm && c->id < (uint32_t)O.rstorm && !truncated)
        rs_confirmed(c, p, n);
    if (c->again) {
        became_active(c);
        return;
    }
    int ok = 0;
    for (int j = 0; j < O.per; j++) {
        if (cs[j] == NO_SYM)
            continue;
        if (!parsed || acc[j]) {
            subcount[cs[j]]++;
            ok++;
        } else {
            cs[j] = NO_SYM;
            S.sub_rejected_syms++;
        }
    }
    if (ok)
        S.sub_ok++;
    else
        S.sub_empty++;
    became_active(c);
}

/* subscription_failed before the confirmation: drop the named symbols; when
 * nothing is left, no confirmation will come. */
static void on_sub_failed(struct conn *c, const char *p, size_t n) {
    S.sub_failed_msgs++;
    note_error(false, "", p, n);
    if (c->state != ST_SUB_SENT)
        return; /* after the confirmation, which listed only accepted ones */
    uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per];
    uint8_t failed[MAX_PER] = {0};
    const char *v = json_val(p, n, "\"symbols\"", 9);
    if (v && *v == '[')
        named_slots(cs, v + 1, p + n, failed);
    for (int j = 0; j < O.per; j++)
        if (failed[j]) {
            cs[j] = NO_SYM;
            S.sub_rejected_syms++;
        }
    for (int j = 0; j < O.per; j++)
        if (cs[j] != NO_SYM)
            return;
    S.sub_empty++;
    became_active(c);
}

static const char PU_PREFIX[] = "{\"type\":\"price_update\",\"symbol\":\"";
static const char DL_SUFFIX[] = ",\"delayed\":true}"; /* tickgate appends it last */
#define DL_LEN (sizeof(DL_SUFFIX) - 1)
#define PU_PLEN (sizeof(PU_PREFIX) - 1)

/* tickgate's layout ends a live price_update with "seq":N}: N, else 0. */
static uint32_t tail_seq(const char *p, size_t n) {
    const char *e = p + n - 1, *d = e;
    while (d > p && d[-1] >= '0' && d[-1] <= '9')
        d--;
    if (d == e || d - p < 6 || memcmp(d - 6, "\"seq\":", 6) != 0)
        return 0;
    return (uint32_t)strtoul(d, NULL, 10);
}

static void price_update(struct conn *c, const char *p, size_t n) {
    const char *end = p + n, *sym, *pr;
    size_t sl;
    /* tickgate's fixed layout first, then any key order */
    if (n > PU_PLEN + 12 && memcmp(p, PU_PREFIX, PU_PLEN) == 0) {
        sym = p + PU_PLEN;
        const char *q = memchr(sym, '"', (size_t)(end - sym));
        if (!q)
            goto generic;
        sl = (size_t)(q - sym);
        if (end - q > 10 && memcmp(q, "\",\"price\":", 10) == 0)
            pr = q + 10;
        else if (!(pr = json_val(q, (size_t)(end - q), "\"price\"", 7)))
            goto generic;
        /* tickgate appends "snapshot":true last, after "seq":N */
        if (n > 17 && memcmp(end - 17, ",\"snapshot\":true}", 17) == 0) {
            S.snapshots++;
            return;
        }
        if (end[-1] == '}' && end[-2] >= '0' && end[-2] <= '9')
            goto parsed; /* ends with a number: tickgate's layout, no snapshot */
    } else {
    generic:
        if (!json_str(p, n, "\"symbol\"", 8, &sym, &sl) || !(pr = json_val(p, n, "\"price\"", 7))) {
            S.unmatched++;
            return;
        }
    }
    const char *snap = memmem(p, n, "\"snapshot\"", 10);
    if (snap) {
        const char *v = json_val(snap, (size_t)(end - snap), "\"snapshot\"", 10);
        if (v && end - v >= 4 && memcmp(v, "true", 4) == 0) {
            S.snapshots++;
            return;
        }
    }
parsed:;
    uint64_t thou;
    if (!parse_thou(pr, end, &thou)) {
        S.unmatched++;
        return;
    }
    on_tick(c, sym_find(sym, sl), thou, n > DL_LEN && memcmp(end - DL_LEN, DL_SUFFIX, DL_LEN) == 0,
            O.rstorm ? tail_seq(p, n) : 0);
}

/* price_batch: {"type":"price_batch","updates":[{price_update}, ...]} */
static void price_batch(struct conn *c, const char *p, size_t n) {
    const char *end = p + n, *cur = p;
    for (;;) {
        const char *s = memmem(cur, (size_t)(end - cur), "\"symbol\"", 8);
        if (!s)
            return;
        const char *next = memmem(s + 8, (size_t)(end - s - 8), "\"symbol\"", 8);
        size_t len = (size_t)((next ? next : end) - s);
        const char *sym, *pr;
        size_t sl;
        if (json_str(s, len, "\"symbol\"", 8, &sym, &sl) && (pr = json_val(s, len, "\"price\"", 7))) {
            uint64_t thou;
            if (parse_thou(pr, s + len, &thou))
                on_tick(c, sym_find(sym, sl), thou, false, 0);
        }
        if (!next)
            return;
        cur = next;
    }
}

static bool type_is(const char *t, size_t tl, const char *lit) {
    size_t l = strlen(lit);
    return tl == l && memcmp(t, lit, l) == 0;
}

void on_text(struct conn *c, const char *p, size_t n, bool truncated) {
    if (c->kind == K_SUB && n > PU_PLEN && memcmp(p, PU_PREFIX, PU_PLEN) == 0 && c->state == ST_ACTIVE) {
        price_update(c, p, n);
        return;
    }
    const char *t = "";
    size_t tl = 0;
    json_str(p, n, "\"type\"", 6, &t, &tl);
    if (c->state == ST_WAIT_READY) { /* any text frame before subscribing = ready */
        if (c->kind == K_PUB)
            became_active(c);
        else
            send_subscribe(c);
        return;
    }
    if (type_is(t, tl, "price_update"))
        price_update(c, p, n);
    else if (type_is(t, tl, "price_batch"))
        price_batch(c, p, n);
    else if (type_is(t, tl, "published"))
        S.pub_acks++;
    else if (type_is(t, tl, "subscription_confirmed") && c->kind == K_SUB && c->state == ST_SUB_SENT)
        on_confirmed(c, p, n, truncated);
    else if (type_is(t, tl, "subscription_failed") && c->kind == K_SUB)
        on_sub_failed(c, p, n);
    else if (type_is(t, tl, "error")) {
        if (c->kind == K_PUB)
            S.pub_errors++;
        else
            S.server_errors++;
        note_error(c->kind == K_PUB, "", p, n);
    } else
        S.other_rx++;
}

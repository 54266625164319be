/* loadgen_main.c - single-threaded, open-loop WebSocket load generator for tickgate
 * (and the reference servers that speak the same JSON subset).
 *
 * One process, one thread, one epoll set, non-blocking sockets, no allocation
 * per message: a shared 64 KiB receive buffer plus a small per-connection
 * leftover for a frame cut by a read boundary. Modes:
 *   default           N subscribers + 1 publisher; ticks are scheduled by the
 *                     clock (open loop) and their latency measured end to end
 *   --ramp            the same, rate x1.25 per step until delivery falls behind
 *   --idle            N subscribers held open without publishing (server RSS)
 *   --handshake-only  a storm of N handshakes, C in flight
 *   --deflate         offer permessage-deflate; compressed frames (RSV1) are
 *                     counted and inflated (zlib, fresh state per message:
 *                     the server answers server_no_context_takeover; a
 *                     payload seen before is taken from a cache) so
 *                     delivery and latency are accounted as usual
 * --tls runs every connection over TLS (loadgen_tls.c); --tls-resume makes
 * the storm's handshakes resume one session ticket fetched beforehand.
 * Latency: each tick's price encodes its per-symbol counter n as 1 + n/1000;
 * the scheduled send time of tick n sits in a per-symbol ring; a subscriber
 * recovers n from the price it receives. Latency is measured from the tick's
 * scheduled time (not from when it was written), so a lagging generator
 * shows up as latency instead of hiding it (no coordinated omission).
 *
 * This file: main, the run's setup (addresses, symbols, descriptors, the
 * connection table, requests, epoll, TLS, steps) and teardown; the other
 * files and what they own are listed in loadgen.h.
 *
 * Build: make build/loadgen (every bench/loadgen_NAME.c in one link, with
 *        -lssl -lcrypto -lm -lz)
 * Run:   build/loadgen --help
 */
#include <arpa/inet.h>
#include <math.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen.h"

uint64_t rng_s; /* xorshift64* state, owned by the loop */

char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) {
        perror("strdup");
        exit(1);
    }
    return d;
}
void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        perror("calloc");
        exit(1);
    }
    return p;
}

/* Keeps the first error text of the publisher (pub) or of any subscriber. */
void note_error(bool pub, const char *who, const char *p, size_t n) {
    char *dst = pub ? S.first_pub_error : S.first_error;
    if (dst[0])
        return;
    size_t k = strlen(who), cap = sizeof(S.first_error);
    memcpy(dst, who, k);
    if (n > cap - k - 1)
        n = cap - k - 1;
    memcpy(dst + k, p, n);
    dst[k + n] = 0;
}

static void on_signal(int sig) {
    (void)sig;
    got_signal = 1;
}

int main(int argc, char **argv) {
    int rc = args_parse(argc, argv);
    if (rc >= 0)
        return rc;
    rng_s = O.seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (!rng_s)
        rng_s = 1;

    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(O.host, NULL, &hints, &ai) != 0) {
        fprintf(stderr, "loadgen: cannot resolve %s\n", O.host);
        return 1;
    }
    memcpy(&srv_addr, ai->ai_addr, sizeof(srv_addr));
    srv_addr.sin_port = htons((uint16_t)O.port);
    if (O.nports == 0)
        O.ports[O.nports++] = O.port;
    for (int i = 0; i < O.nports; i++) {
        sub_addrs[i] = srv_addr;
        sub_addrs[i].sin_port = htons((uint16_t)O.ports[i]);
    }
    pub_addr = srv_addr;
    pub_addr.sin_port = htons((uint16_t)(O.pub_port ? O.pub_port : O.port));
    freeaddrinfo(ai);
    if (O.sources) {
        nsrc = 1;
        for (char *p = O.sources; *p; p++)
            nsrc += *p == ',';
        src_addrs = xcalloc((size_t)nsrc, sizeof(*src_addrs));
        char *save = NULL;
        int i = 0;
        for (char *t = strtok_r(O.sources, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (inet_pton(AF_INET, t, &src_addrs[i]) == 1)
                i++;
            else {
                fprintf(stderr, "loadgen: bad source address '%s'\n", t);
                return 1;
            }
        nsrc = i;
    }
    if (symbols_init() < 0)
        return 1;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)O.conns + 32 > rl.rlim_cur) {
            fprintf(stderr, "loadgen: --conns %d needs more descriptors than RLIMIT_NOFILE %llu allows\n", O.conns,
                    (unsigned long long)rl.rlim_cur);
            return 1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    prctl(PR_SET_TIMERSLACK, 1000UL); /* 1 us: tick pacing below the default 50 us */

    conns = xcalloc((size_t)O.conns, sizeof(*conns));
    lefts = xcalloc((size_t)O.conns + 1, LEFT_CAP);
    pub_out = xcalloc(1, PUB_OUT_CAP);
    for (int i = 0; i < O.conns; i++) {
        conns[i].fd = -1;
        conns[i].id = (uint32_t)i;
        conns[i].kind = K_SUB;
    }
    pubc.fd = -1;
    pubc.id = (uint32_t)O.conns;
    pubc.kind = K_PUB;
    pubc.state = ST_IDLE;
    {
        char *toks = xstrdup(O.sub_token ? O.sub_token : ""), *save = NULL, *tk;
        ntok = 0;
        for (tk = strtok_r(toks, ",", &save); tk && ntok < MAX_TOKENS; tk = strtok_r(NULL, ",", &save))
            hs_req_sub[ntok] = build_request(tk, &hs_len_sub[ntok], &hs_keyoff_sub[ntok]), ntok++;
        if (!ntok)
            hs_req_sub[ntok] = build_request(NULL, &hs_len_sub[ntok], &hs_keyoff_sub[ntok]), ntok++;
        free(toks);
    }
    hs_req_pub = build_request(O.pub_token, &hs_len_pub, &hs_keyoff_pub);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 1;
    }
    /* thousands of idle or short-lived connections: no record buffers kept */
    if (O.tls && lt_init(O.tls_resume, O.idle || O.storm, O.tls12) < 0)
        return 1;
    if (O.tls_resume)
        lt_prime(&srv_addr, hs_req_sub[0], hs_len_sub[0]); /* on failure (said), the handshakes are full ones */
    step_ns = (int64_t)((O.ramp ? O.step_s : O.rstorm ? O.duration / 3 : O.duration) * 1e9);
    nsteps_max = O.ramp ? (int)floor(O.duration / O.step_s + 1e-9) : O.rstorm ? 3 : 1;
    if (O.rstorm) /* steps: 0 all connected, 1 the group away, 2 the storm */
        rs_init();
    if (nsteps_max < 1)
        nsteps_max = 1;
    if (nsteps_max > MAX_STEPS)
        nsteps_max = MAX_STEPS;

    run();
    S.rss_end = srv_mem(false);
    S.hwm_end = srv_mem(true); /* VmHWM is updated lazily: take the largest RSS seen too */
    if (S.hwm_end >= 0) {
        int64_t seen[] = {S.rss_setup, S.rss_end, steps[0].srv_rss_kb};
        for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
            if (seen[i] > S.hwm_end)
                S.hwm_end = seen[i];
        for (int k = 0; k < nsteps_run; k++)
            if (steps[k].srv_rss_kb > S.hwm_end)
                S.hwm_end = steps[k].srv_rss_kb;
    }
    if (O.ramp)
        while (eval_next < nsteps_run && steps[eval_next].t_end && failed_step < 0)
            eval_step(eval_next++);
    report();
    for (int i = 0; i < O.conns; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd), free(conns[i].wpend), lt_free(conns[i].ssl);
    if (pubc.fd >= 0)
        close(pubc.fd), lt_free(pubc.ssl);
    close(epfd);
    lt_shutdown();
    free(conns);
    free(lefts);
    free(pub_out);
    symbols_free();
    free(src_addrs);
    for (int t = 0; t < ntok; t++)
        free(hs_req_sub[t]);
    free(hs_req_pub);
    free(O.list);
    free(O.sources);
    if (S.hs_ok == 0 && O.conns > 0)
        return 1;
    return incomplete ? 2 : 0;
}

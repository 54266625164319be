/* loadgen.c - single-threaded, open-loop WebSocket load generator for tickgate
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
 * Build: cc -O2 -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE bench/loadgen.c bench/loadgen_tls.c \
 *          -o build/loadgen -lssl -lcrypto -lm -lz
 * Run:   build/loadgen --help
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <zlib.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen_tls.h"

#define RBUF_DATA    65536          /* bytes read per recv() */
#define LEFT_CAP     2048           /* per-connection leftover: a frame cut by a read */
#define PUB_OUT_CAP  (4u << 20)     /* publisher's send queue */
#define MAX_PER      100            /* symbols per subscribe (server limit) */
#define MAX_SYMLEN   32
#define MAX_STEPS    64
#define NO_SYM       UINT32_MAX
#define SEC          1000000000LL
#define MS           1000000LL

/* ---------------------------------------------------------------- options */

static struct opts {
    const char *host;
    int port;
    const char *path;
    int conns;               /* subscribers (or handshakes in storm mode) */
    int nsyms;
    const char *prefix;
    char *list;              /* --symbol-list (owned copy) */
    int per;
    bool zipf;
    double rate;             /* ticks/s */
    double duration, warmup; /* s */
    bool duration_set;
    bool ramp;
    double step_s;
    const char *pub_token, *sub_token;
    char *sources;           /* owned copy */
    int batch;
    int server_pid;
    bool storm, idle, json, spin;
    bool deflate;            /* offer permessage-deflate, inflate RSV1 frames */
    bool tls, tls_resume;    /* --tls, --tls-resume */
    int concurrency;
    double timeout;          /* s; <= 0: derived */
    double drain_s;
    uint64_t seed;
    uint32_t ring;           /* 0: derived */
    int rstorm, rgap;        /* --recover-storm K, --recover-gap M */
    int pids[8], npids;      /* --server-pid A,B: the processes measured together (several nodes) */
    int ports[8], nports;    /* --port A,B: subscriber i connects to ports[i mod n] */
    int pub_port;            /* --pub-port (default: the first port) */
    double hs_rate;          /* --hs-rate: handshakes started per second (0: as concurrency allows) */
} O = {
    .host = "127.0.0.1", .port = 8080, .path = "/ws", .conns = 100, .nsyms = 1, .prefix = "S", .per = 1,
    .rate = 1000, .duration = 10, .warmup = 2, .step_s = 5, .batch = 1, .concurrency = 256, .drain_s = 2,
    .seed = 1, .rgap = 50,
};

/* ---------------------------------------------------------------- clock, rng */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static uint64_t rng_s; /* xorshift64* state, owned by the loop */
static inline uint64_t rng64(void) {
    rng_s ^= rng_s >> 12;
    rng_s ^= rng_s << 25;
    rng_s ^= rng_s >> 27;
    return rng_s * 2685821657736338717ULL;
}
static inline double rng_unit(void) { return (double)(rng64() >> 11) * (1.0 / 9007199254740992.0); }

/* ---------------------------------------------------------------- histogram */

/* Log-linear: exact below 128, then 64 sub-buckets per power of two (~1.6%). */
#define H_N (128 + 57 * 64)
struct hist {
    uint64_t n, sum, max;
    uint64_t c[H_N];
};

static inline unsigned h_idx(uint64_t v) {
    if (v < 128)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v), shift = msb - 6;
    return 128 + (shift - 1) * 64 + (unsigned)((v >> shift) - 64);
}
static inline uint64_t h_mid(unsigned i) {
    if (i < 128)
        return i;
    unsigned shift = (i - 128) / 64 + 1;
    uint64_t mant = (i - 128) % 64 + 64;
    return (mant << shift) + ((1ULL << shift) >> 1);
}
static inline void h_add(struct hist *h, int64_t v) {
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    h->n++;
    h->sum += u;
    if (u > h->max)
        h->max = u;
    h->c[h_idx(u)]++;
}
static uint64_t h_pct(const struct hist *h, double q) {
    if (!h->n)
        return 0;
    uint64_t target = (uint64_t)ceil(q * (double)h->n), acc = 0;
    if (target < 1)
        target = 1;
    for (unsigned i = 0; i < H_N; i++) {
        acc += h->c[i];
        if (acc >= target) {
            uint64_t v = h_mid(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---------------------------------------------------------------- symbols */

static char **sym_name;        /* [nsyms], names (owned by symbols_init) */
static uint8_t *sym_len;       /* [nsyms] */
static uint32_t *sym_hash;     /* open addressing: index+1, 0 = empty */
static uint32_t sym_hmask;
static double *zipf_cdf;       /* [nsyms], when --dist zipf */
static uint32_t *subcount;     /* [nsyms] confirmed subscribers of each symbol */
static uint32_t *pub_n;        /* [nsyms] ticks published so far (n of the last) */
static int64_t *ring_ts;       /* [nsyms * ring] scheduled time of tick n */
static uint32_t ring_mask, ring_shift; /* ring size - 1, log2(ring size) */

static inline uint32_t fnv(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}
static uint32_t sym_find(const char *s, size_t n) {
    if (n == 0 || n > MAX_SYMLEN)
        return NO_SYM;
    for (uint32_t i = fnv(s, n) & sym_hmask;; i = (i + 1) & sym_hmask) {
        uint32_t v = sym_hash[i];
        if (!v)
            return NO_SYM;
        if (sym_len[v - 1] == n && memcmp(sym_name[v - 1], s, n) == 0)
            return v - 1;
    }
}
static uint32_t zipf_pick(void) {
    double u = rng_unit();
    uint32_t lo = 0, hi = (uint32_t)O.nsyms - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (zipf_cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* ---------------------------------------------------------------- connections */

enum kind { K_SUB, K_PUB };
enum state { ST_IDLE, ST_CONNECTING, ST_HS_SENT, ST_WAIT_READY, ST_SUB_SENT, ST_ACTIVE, ST_CLOSING, ST_DONE };

struct conn {
    int fd;          /* -1 once closed */
    uint8_t kind;    /* enum kind */
    uint8_t state;   /* enum state */
    uint8_t epout;   /* EPOLLOUT is registered */
    uint8_t aborted; /* closed by us before it became active (run ending) */
    uint8_t again;   /* --recover-storm: reconnected, subscribing with recover */
    uint16_t nleft;  /* bytes in left[] */
    uint32_t id;     /* index; selects left[] and the symbol slots */
    uint64_t skip;   /* payload bytes of an oversized frame still to discard */
    int64_t t0;      /* start of the current setup step (ns) */
    char *wpend;     /* unsent bytes of a short write (subscribers; rare; owned) */
    uint32_t wlen, woff;
    struct ssl_st *ssl; /* --tls: the connection's TLS session (owned) */
};

static struct conn *conns;    /* [O.conns] subscribers */
static struct conn pubc;      /* the publisher */
static uint8_t *lefts;        /* [O.conns + 1][LEFT_CAP], touched only when used */
static uint32_t *csym;        /* [O.conns * per] subscriber's symbols (NO_SYM = rejected) */
static uint32_t *clast;       /* [O.conns * per] last n received per subscribed symbol */
static int epfd = -1;
static uint8_t rbuf[RBUF_DATA + LEFT_CAP]; /* shared receive buffer, owned by the loop */
static struct sockaddr_in srv_addr;      /* the first port's: TLS priming */
static struct sockaddr_in sub_addrs[8], pub_addr;
static struct in_addr *src_addrs;
static int nsrc;
#define MAX_TOKENS   8              /* --sub-token A,B,C: subscriber i uses token i mod n */
static char *hs_req_sub[MAX_TOKENS], *hs_req_pub; /* handshake requests, {KEY} patched per connection */
static size_t hs_len_sub[MAX_TOKENS], hs_len_pub, hs_keyoff_sub[MAX_TOKENS], hs_keyoff_pub;
static int ntok = 1;

/* publisher send queue, owned by pubc */
static uint8_t *pub_out;
static size_t pub_off, pub_len;

/* ---------------------------------------------------------------- stats */

struct step {
    double rate;           /* target ticks/s */
    int64_t t_start, t_end;
    uint64_t scheduled, published, skipped;
    uint64_t expected, delivered;
    double self_cpu_s, srv_cpu_s; /* over the step */
    int64_t srv_rss_kb;
    struct hist h;
    bool evaluated, pass;
    char why[64];
};

static struct {
    int64_t t_begin, t_first_connect, t_last_hs, t_setup_done;
    uint64_t hs_ok, hs_fail, setup_fail, sub_ok, sub_empty, sub_rejected_syms, sub_failed_msgs;
    uint64_t connect_err, http_err, hs_timeout, ready_fallback;
    uint64_t closes_rx, disconnects, eof_rx, proto_err, server_errors, pub_errors;
    uint64_t pub_msgs, pub_acks, snapshots, unmatched, stale, dups, gaps, unexpected, warm_rx, other_rx;
    uint64_t pings, short_writes, aborted;
    uint64_t compressed_rx;    /* RSV1 frames inflated (--deflate) */
    uint64_t delayed_rx;       /* "delayed":true ticks counted (no latency sample) */
    uint64_t tls_fail, tls_resumed; /* TLS handshakes failed; completed by resuming a session */
    int inflight, setup_pending, next_conn, open_fds;
    struct hist hs_lat;
    struct hist by_pos[10]; /* latency by subscriber decile (connection order = subscription order) */
    struct hist send_lag; /* enqueue time - scheduled time of a message's first tick */
    char first_error[200];     /* a subscriber's first error (or the handshake's) */
    char first_pub_error[200]; /* the publisher's first error */
    int64_t rss_before, rss_setup, rss_end, hwm_end;
    double cpu0_self, cpu0_srv;        /* at the start of the run */
    int64_t max_turn, max_oversleep;   /* longest loop turn; longest wake-up past the timeout (ns) */
    double conn_self_pct, conn_srv_pct; /* over the connect phase */
} S;

/* --recover-storm K: subscribers 0..K-1 (the group) drop their connections
 * at the start of step 1, stay away while every symbol gets at least
 * --recover-gap ticks, and reconnect at the start of step 2 (concurrency
 * --concurrency) subscribing with "recover" from the seq and epoch they saw
 * last. A group member is live once it has every tick up to what was
 * published when the storm began. The others (steady) are the latency
 * population: their p99 before the storm (step 0) against during it. */
enum { RS_OFF, RS_BASE, RS_AWAY, RS_STORM, RS_DONE };
static struct {
    int state, next, live;
    int64_t t0, t_all;               /* storm start, last member live */
    uint32_t *seq;                   /* [K * per] last seq seen */
    uint32_t *n_drop, *n_live;       /* [nsyms] pub_n at the drop, at the storm start */
    uint8_t *pending;                /* [K] symbols not yet caught up (0 = live) */
    char (*epoch)[48];               /* [nsyms] the symbol's epoch ("" unknown) */
    uint64_t rx, gaps, dups, recovered, missed, failed;
    struct hist ttl, steady_storm;   /* time to live per member; steady latency in the storm */
} RS;
static inline bool rs_member(const struct conn *c) { return RS.state >= RS_AWAY && c->id < (uint32_t)O.rstorm; }

static struct step steps[MAX_STEPS];
static int nsteps_max;      /* steps that may run */
static int cur_step = -1;   /* -1: warmup */
static int nsteps_run;      /* steps started */
static int64_t ramp_start, step_ns, pub_start, pub_stop_t;
static bool publishing, pub_needed;
static int eval_next, best_step = -1, failed_step = -1;
static bool incomplete, saturated;
static volatile sig_atomic_t got_signal;

/* Keeps the first error text of the publisher (pub) or of any subscriber. */
static void note_error(bool pub, const char *who, const char *p, size_t n) {
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

/* ---------------------------------------------------------------- process stats */

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}
/* Server CPU seconds (utime + stime) from /proc/PID/stat, or -1. */
static double srv_cpu1(int pid);
/* CPU seconds of the measured processes together, or -1. */
static double srv_cpu(void) {
    if (O.npids == 0)
        return -1;
    double sum = 0;
    for (int i = 0; i < O.npids; i++) {
        double v = srv_cpu1(O.pids[i]);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}
static double srv_cpu1(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* fields 3.. after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
/* VmRSS (or VmHWM with hwm) of the server in KiB, or -1. */
static int64_t srv_mem1(int pid, bool hwm);
static int64_t srv_mem(bool hwm) {
    if (O.npids == 0)
        return -1;
    int64_t sum = 0;
    for (int i = 0; i < O.npids; i++) {
        int64_t v = srv_mem1(O.pids[i], hwm);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}
static int64_t srv_mem1(int pid, bool hwm) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long kb = -1;
    const char *key = hwm ? "VmHWM:" : "VmRSS:";
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, 6) == 0) {
            kb = atoll(line + 6);
            break;
        }
    fclose(f);
    return kb;
}

/* ---------------------------------------------------------------- tiny JSON scanning */

/* Finds "key" (quoted, given with its quotes) followed by optional blanks and ':'
 * in p[0..n); returns the first non-blank byte of the value or NULL. */
static const char *json_val(const char *p, size_t n, const char *qkey, size_t klen) {
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
/* String value of qkey in *out, *olen; escapes not handled (not needed here). */
static bool json_str(const char *p, size_t n, const char *qkey, size_t klen, const char **out, size_t *olen) {
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

/* ---------------------------------------------------------------- frames out */

/* Writes a masked client frame of payload p[0..n) at out (room: n + 14). */
static size_t ws_frame(uint8_t *out, int op, const void *payload, size_t n) {
    const uint8_t *p = payload;
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (n < 126)
        out[h++] = (uint8_t)(0x80 | n);
    else if (n < 65536) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)(n >> (8 * i));
    }
    uint64_t r = rng64();
    uint8_t m[4] = {(uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)(r >> 24)};
    memcpy(out + h, m, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = p[i] ^ m[i & 3];
    return h + n;
}

/* ---------------------------------------------------------------- connection plumbing */

static void ep_mod(struct conn *c, uint32_t ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static int64_t g_now; /* loop time, refreshed after each epoll wait and each recv */

/* Closes c. failed: it ended before becoming active (a setup failure). */
static void conn_close(struct conn *c) {
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    S.open_fds--;
    lt_free(c->ssl);
    c->ssl = NULL;
    free(c->wpend);
    c->wpend = NULL;
    c->wlen = c->woff = 0;
    c->nleft = 0;
    uint8_t st = c->state;
    c->state = ST_DONE;
    if (c->kind == K_PUB) {
        if (st != ST_CLOSING && publishing) {
            fprintf(stderr, "loadgen: publisher connection lost\n");
            incomplete = true;
        }
        return;
    }
    if (st == ST_CONNECTING || st == ST_HS_SENT) {
        if (c->aborted)
            S.aborted++;
        else
            S.hs_fail++;
        S.inflight--;
        S.setup_pending--;
    } else if (st == ST_WAIT_READY || st == ST_SUB_SENT) {
        if (c->aborted)
            S.aborted++;
        else
            S.setup_fail++;
        S.setup_pending--;
    } else if (st == ST_ACTIVE) {
        S.disconnects++;
    }
}

static void pub_flush(void);

/* send()/recv() on c, through its TLS session when it has one. */
static ssize_t io_send(struct conn *c, const void *p, size_t n) {
    return c->ssl ? lt_send(c->ssl, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
}
static ssize_t io_recv(struct conn *c, void *p, size_t n) {
    return c->ssl ? lt_recv(c->ssl, p, n) : recv(c->fd, p, n, 0);
}

/* Sends a frame's bytes on c, keeping what the socket refuses (rare for
 * subscribers: one small malloc'd remainder; the publisher has its queue). */
static void conn_send(struct conn *c, const uint8_t *buf, size_t len) {
    if (c->fd < 0)
        return;
    if (c->kind == K_PUB) {
        if (pub_off + pub_len + len > PUB_OUT_CAP) {
            memmove(pub_out, pub_out + pub_off, pub_len);
            pub_off = 0;
        }
        if (pub_len + len > PUB_OUT_CAP)
            return; /* control frame on a full queue: dropped */
        memcpy(pub_out + pub_off + pub_len, buf, len);
        pub_len += len;
        pub_flush();
        return;
    }
    if (c->wpend) {
        char *n = realloc(c->wpend, c->wlen + len);
        if (!n) {
            conn_close(c);
            return;
        }
        memcpy(n + c->wlen, buf, len);
        c->wpend = n;
        c->wlen += (uint32_t)len;
        return;
    }
    ssize_t w = io_send(c, buf, len);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_close(c);
            return;
        }
        w = 0;
    }
    if ((size_t)w < len) {
        S.short_writes++;
        c->wpend = malloc(len - (size_t)w);
        if (!c->wpend) {
            conn_close(c);
            return;
        }
        memcpy(c->wpend, buf + w, len - (size_t)w);
        c->wlen = (uint32_t)(len - (size_t)w);
        c->woff = 0;
        c->epout = 1;
        ep_mod(c, EPOLLIN | EPOLLOUT);
    }
}

static void conn_send_frame(struct conn *c, int op, const void *p, size_t n) {
    uint8_t f[256 + 14];
    if (n > 256)
        n = 256;
    conn_send(c, f, ws_frame(f, op, p, n));
}

static void pub_flush(void) {
    struct conn *c = &pubc;
    while (pub_len && c->fd >= 0) {
        ssize_t w = io_send(c, pub_out + pub_off, pub_len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->epout) {
                    c->epout = 1;
                    ep_mod(c, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            conn_close(c);
            return;
        }
        pub_off += (size_t)w;
        pub_len -= (size_t)w;
    }
    if (!pub_len) {
        pub_off = 0;
        if (c->epout && c->fd >= 0) {
            c->epout = 0;
            ep_mod(c, EPOLLIN);
        }
    }
}

static void on_writable(struct conn *c) {
    if (c->kind == K_PUB) {
        pub_flush();
        return;
    }
    while (c->wpend) {
        ssize_t w = io_send(c, c->wpend + c->woff, c->wlen - c->woff);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            conn_close(c);
            return;
        }
        c->woff += (uint32_t)w;
        if (c->woff == c->wlen) {
            free(c->wpend);
            c->wpend = NULL;
            c->wlen = c->woff = 0;
        }
    }
    c->epout = 0;
    ep_mod(c, EPOLLIN);
}

static void send_close(struct conn *c, uint16_t code) {
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    conn_send_frame(c, 8, p, 2);
}

/* ---------------------------------------------------------------- setup */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool send_request_now(struct conn *c);
static void tls_step(struct conn *c, bool first);

static void conn_start(struct conn *c) {
    c->state = ST_CONNECTING;
    c->t0 = g_now;
    if (c->kind == K_SUB) {
        S.setup_pending++;
        S.inflight++;
        if (!S.t_first_connect)
            S.t_first_connect = g_now;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        S.connect_err++;
        c->state = ST_DONE;
        if (c->kind == K_SUB) {
            S.hs_fail++;
            S.inflight--;
            S.setup_pending--;
        }
        return;
    }
    c->fd = fd;
    S.open_fds++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nsrc) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr = src_addrs[c->id % (uint32_t)nsrc]};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            S.connect_err++;
            conn_close(c);
            return;
        }
    }
    const struct sockaddr_in *to = c->kind == K_PUB ? &pub_addr : &sub_addrs[c->id % (uint32_t)O.nports];
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
        S.connect_err++;
        conn_close(c);
        return;
    }
    if (O.tls) {
        if (!(c->ssl = lt_new(fd))) {
            S.tls_fail++;
            conn_close(c);
            return;
        }
        tls_step(c, true);
        return;
    }
    if (send_request_now(c))
        return;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        S.connect_err++;
        conn_close(c);
    }
}

/* The upgrade request with a fresh Sec-WebSocket-Key (16 random bytes in
 * base64: 22 chars + "=="). */
static char *next_request(struct conn *c, size_t *len) {
    int t = (int)(c->id % (uint32_t)ntok);
    char *req = c->kind == K_PUB ? hs_req_pub : hs_req_sub[t];
    size_t ko = c->kind == K_PUB ? hs_keyoff_pub : hs_keyoff_sub[t];
    *len = c->kind == K_PUB ? hs_len_pub : hs_len_sub[t];
    uint64_t a = rng64(), b = rng64();
    for (int i = 0; i < 22; i++) {
        uint64_t src = i < 11 ? a >> (6 * i) : b >> (6 * (i - 11));
        req[ko + (size_t)i] = B64[src & 63];
    }
    req[ko + 21] = B64[(b >> 60) & 0x30]; /* last char carries 2 bits: keep it canonical */
    return req;
}

static void send_upgrade(struct conn *c) {
    size_t len;
    char *req = next_request(c, &len);
    c->state = ST_HS_SENT;
    ep_mod(c, EPOLLIN);
    conn_send(c, (const uint8_t *)req, len);
}

static void on_connected(struct conn *c) {
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
        S.connect_err++;
        conn_close(c);
        return;
    }
    send_upgrade(c);
}

/* --tls: the TLS handshake runs in state ST_CONNECTING (setup timeouts and
 * failure counts see it as connecting); the upgrade request goes out when
 * it is done. first: c is not in the epoll set yet. */
static void tls_step(struct conn *c, bool first) {
    bool want_write = false;
    int r = lt_handshake(c->ssl, &want_write);
    struct epoll_event e = {.events = r == 0 && want_write ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (r < 0 || epoll_ctl(epfd, first ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e) < 0) {
        S.tls_fail++;
        conn_close(c);
        return;
    }
    if (r == 0)
        return;
    if (lt_resumed(c->ssl))
        S.tls_resumed++;
    send_upgrade(c);
}

/* On loopback the three-way handshake is over by the time a non-blocking
 * connect returns: send the upgrade request at once and register for input
 * only (one epoll_ctl, no writability wake-up, no SO_ERROR check). The
 * load generator's own cost per handshake bounds the storm scenario, so
 * this matters. Returns false when the socket is not writable yet (the
 * caller then waits for EPOLLOUT as usual). */
static bool send_request_now(struct conn *c) {
    size_t len;
    char *req = next_request(c, &len);
    ssize_t w = send(c->fd, req, len, MSG_NOSIGNAL);
    if (w < 0)
        return false; /* not connected yet (EAGAIN/ENOTCONN) or failed: the EPOLLOUT path reports it */
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        S.connect_err++;
        conn_close(c);
        return true;
    }
    c->state = ST_HS_SENT;
    if ((size_t)w < len)
        conn_send(c, (const uint8_t *)req + w, len - (size_t)w);
    return true;
}

static void send_subscribe(struct conn *c) {
    char buf[96 + MAX_PER * (2 * MAX_SYMLEN + 96)];
    size_t n = 0;
    memcpy(buf, "{\"type\":\"subscribe\",\"symbols\":[", 31);
    n = 31;
    const uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per];
    for (int j = 0; j < O.per; j++) {
        if (j)
            buf[n++] = ',';
        buf[n++] = '"';
        memcpy(buf + n, sym_name[cs[j]], sym_len[cs[j]]);
        n += sym_len[cs[j]];
        buf[n++] = '"';
    }
    buf[n++] = ']';
    if (c->again) { /* "recover":{"S":{"seq":N,"epoch":"E"},...} */
        const uint32_t *sq = &RS.seq[(size_t)c->id * (size_t)O.per];
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"recover\":{");
        for (int j = 0, k = 0; j < O.per; j++) {
            if (cs[j] == NO_SYM || !RS.epoch[cs[j]][0] || !sq[j])
                continue;
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s\":{\"seq\":%u,\"epoch\":\"%s\"}", k++ ? "," : "",
                                  sym_name[cs[j]], sq[j], RS.epoch[cs[j]]);
        }
        buf[n++] = '}';
    }
    buf[n++] = '}';
    uint8_t f[sizeof(buf) + 14];
    c->state = ST_SUB_SENT;
    c->t0 = g_now;
    conn_send(c, f, ws_frame(f, 1, buf, n));
}

static void became_active(struct conn *c) {
    c->state = ST_ACTIVE;
    if (c->kind == K_SUB)
        S.setup_pending--;
}

/* ---------------------------------------------------------------- frames in */

/* A tick received; delayed (tickgate's delayed data: sent feed.delay_s
 * after it happened) counts as delivered in the step it was published in,
 * with no latency sample. */
static void rs_tick(struct conn *c, int j, uint32_t sym, uint64_t n);

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

/* --recover-storm, a member's confirmation: the epochs (kept per symbol),
 * and on its recovering subscribe how many symbols were recovered. */
static void rs_confirmed(struct conn *c, const char *p, size_t n) {
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

/* Symbols of a subscription_confirmed: the accepted ones get counted. */
static void on_confirmed(struct conn *c, const char *p, size_t n, bool truncated) {
    uint32_t *cs = &csym[(size_t)c->id * (size_t)O.per];
    uint8_t acc[MAX_PER] = {0};
    const char *v = truncated ? NULL : json_val(p, n, "\"symbols\"", 9), *end = p + n;
    bool parsed = v && *v == '[';
    if (parsed) {
        v++;
        for (;;) {
            while (v < end && (*v == ' ' || *v == ','))
                v++;
            if (v >= end || *v != '"')
                break;
            const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
            if (!q)
                break;
            uint32_t idx = sym_find(v + 1, (size_t)(q - v - 1));
            for (int j = 0; j < O.per; j++)
                if (cs[j] == idx)
                    acc[j] = 1;
            v = q + 1;
        }
    }
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
    const char *v = json_val(p, n, "\"symbols\"", 9), *end = p + n;
    if (v && *v == '[') {
        v++;
        for (;;) {
            while (v < end && (*v == ' ' || *v == ','))
                v++;
            if (v >= end || *v != '"')
                break;
            const char *q = memchr(v + 1, '"', (size_t)(end - v - 1));
            if (!q)
                break;
            uint32_t idx = sym_find(v + 1, (size_t)(q - v - 1));
            for (int j = 0; j < O.per; j++)
                if (idx != NO_SYM && cs[j] == idx) {
                    cs[j] = NO_SYM;
                    S.sub_rejected_syms++;
                }
            v = q + 1;
        }
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

/* One text message (or, if truncated, the first bytes of an oversized one). */
static void on_text(struct conn *c, const char *p, size_t n, bool truncated) {
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

/* Inflated payloads by their compressed bytes: a shared compressed frame
 * (one deflate run for every subscriber, as tickgate and uWS's
 * SHARED_COMPRESSOR send it) is inflated once here too, so the load
 * generator's cost per compressed message stays near a plain one's. */
#define ZC_SLOTS 1024
#define ZC_IN 256
#define ZC_OUT 1024
static struct zc_entry {
    uint32_t len, olen;
    uint8_t in[ZC_IN];
    char out[ZC_OUT];
} zcache[ZC_SLOTS];

/* Inflates one permessage-deflate payload (the 00 00 ff ff the sender
 * removed appended): a static or cached buffer, NULL when it does not
 * inflate. */
static const char *inflate_msg(const uint8_t *p, size_t n, size_t *out_len) {
    static z_stream z;
    static bool ready;
    static uint8_t in[LEFT_CAP + 4], out[1 << 20];
    struct zc_entry *e = NULL;
    if (n <= ZC_IN) {
        uint64_t h = n, w;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) { /* a word at a time: this runs per message */
            memcpy(&w, p + i, 8);
            h = (h ^ w) * 0x9E3779B97F4A7C15ull;
        }
        for (; i < n; i++)
            h = (h ^ p[i]) * 0x100000001B3ull;
        h ^= h >> 29;
        e = &zcache[h & (ZC_SLOTS - 1)];
        if (e->len == n && memcmp(e->in, p, n) == 0) {
            *out_len = e->olen;
            return e->out;
        }
    }
    if (!ready) {
        if (inflateInit2(&z, -15) != Z_OK)
            return NULL;
        ready = true;
    } else if (inflateReset(&z) != Z_OK) {
        return NULL;
    }
    if (n > LEFT_CAP)
        return NULL;
    memcpy(in, p, n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    z.next_in = in;
    z.avail_in = (uInt)(n + 4);
    z.next_out = out;
    z.avail_out = sizeof(out);
    int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        return NULL;
    *out_len = sizeof(out) - z.avail_out;
    if (e && *out_len <= ZC_OUT) {
        e->len = (uint32_t)n;
        memcpy(e->in, p, n);
        e->olen = (uint32_t)*out_len;
        memcpy(e->out, out, *out_len);
    }
    return (const char *)out;
}

static void on_frame(struct conn *c, int b0, const uint8_t *p, size_t n, bool truncated) {
    int op = b0 & 0x0f;
    if (!(b0 & 0x80) || op == 0) {
        S.proto_err++; /* fragments are not expected */
        return;
    }
    if (b0 & 0x40) { /* RSV1: a compressed message */
        size_t ml;
        const char *m = O.deflate && op == 1 && !truncated ? inflate_msg(p, n, &ml) : NULL;
        if (!m) {
            S.proto_err++;
            return;
        }
        S.compressed_rx++;
        on_text(c, m, ml, false);
        return;
    }
    switch (op) {
    case 1:
        on_text(c, (const char *)p, n, truncated);
        break;
    case 9:
        S.pings++;
        conn_send_frame(c, 10, p, n);
        break;
    case 10:
        break;
    case 8:
        if (c->state != ST_CLOSING) {
            S.closes_rx++; /* the server started it */
            uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1000;
            if (code < 1000 || code == 1005 || code == 1006 || code == 1015)
                code = 1000;
            send_close(c, code);
            note_error(c->kind == K_PUB, "closed by server: ", n > 2 ? (const char *)p + 2 : "", n > 2 ? n - 2 : 0);
        }
        conn_close(c);
        break;
    default:
        S.proto_err++;
    }
}

/* Consumes complete frames of buf[0..len); returns bytes consumed (the rest
 * is a frame cut by the read, at most LEFT_CAP bytes). */
static size_t parse_frames(struct conn *c, uint8_t *buf, size_t len) {
    size_t off = 0;
    if (c->skip) {
        size_t k = c->skip < len ? (size_t)c->skip : len;
        c->skip -= k;
        off = k;
    }
    while (c->fd >= 0 && len - off >= 2) {
        uint8_t *f = buf + off;
        size_t avail = len - off, hl = 2;
        uint64_t pl = f[1] & 0x7f;
        if (f[1] & 0x80) {
            S.proto_err++; /* servers must not mask */
            conn_close(c);
            return len;
        }
        if (pl == 126) {
            if (avail < 4)
                break;
            pl = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (pl == 127) {
            if (avail < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = pl << 8 | f[2 + i];
            hl = 10;
        }
        if (avail - hl < pl) {
            if (hl + pl <= LEFT_CAP)
                break; /* wait for the rest */
            /* too big to keep: classify by what we have, discard the rest */
            on_frame(c, f[0], f + hl, avail - hl, true);
            c->skip = pl - (avail - hl);
            return len;
        }
        on_frame(c, f[0], f + hl, (size_t)pl, false);
        off += hl + (size_t)pl;
    }
    return off;
}

/* Consumes the HTTP response; returns bytes consumed or (size_t)-1 on failure. */
static size_t parse_http(struct conn *c, uint8_t *buf, size_t len) {
    if (len >= 12 && memcmp(buf, "HTTP/1.1 101", 12) != 0) {
        if (c->kind == K_SUB)
            S.http_err++;
        const uint8_t *eol = memchr(buf, '\r', len);
        size_t el = eol ? (size_t)(eol - buf) : (len < 40 ? len : 40);
        note_error(c->kind == K_PUB, "handshake: ", (const char *)buf, el);
        return (size_t)-1;
    }
    uint8_t *e = memmem(buf, len, "\r\n\r\n", 4);
    if (!e)
        return len >= LEFT_CAP ? (size_t)-1 : 0;
    if (c->kind == K_SUB) {
        S.hs_ok++;
        S.inflight--;
        h_add(&S.hs_lat, g_now - c->t0);
        S.t_last_hs = g_now;
    }
    c->t0 = g_now;
    if (O.storm && c->kind == K_SUB)
        became_active(c);
    else
        c->state = ST_WAIT_READY;
    return (size_t)(e + 4 - buf);
}

/* One read; true when it filled the buffer on a TLS connection: OpenSSL
 * may hold more that epoll will not announce, so read again. */
static bool read_once(struct conn *c) {
    uint8_t *left = lefts + (size_t)c->id * LEFT_CAP;
    size_t have = c->nleft;
    if (have)
        memcpy(rbuf, left, have);
    ssize_t r = io_recv(c, rbuf + have, RBUF_DATA);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return false;
        if (r == 0 && c->state != ST_CLOSING)
            S.eof_rx++;
        if (c->kind == K_PUB && c->state != ST_CLOSING)
            note_error(true, "", "connection ended by server", 26);
        conn_close(c);
        return false;
    }
    g_now = now_ns();
    size_t len = have + (size_t)r, off = 0;
    c->nleft = 0;
    if (c->state == ST_HS_SENT) {
        off = parse_http(c, rbuf, len);
        if (off == (size_t)-1) {
            conn_close(c);
            return false;
        }
        if (c->state == ST_HS_SENT) { /* headers incomplete */
            memcpy(left, rbuf, len);
            c->nleft = (uint16_t)len;
            return false;
        }
    }
    off += parse_frames(c, rbuf + off, len - off);
    if (c->fd >= 0 && off < len) {
        memcpy(left, rbuf + off, len - off);
        c->nleft = (uint16_t)(len - off);
    }
    return c->ssl && c->fd >= 0 && (size_t)r == RBUF_DATA;
}

static void on_readable(struct conn *c) {
    while (read_once(c))
        ;
}

/* ---------------------------------------------------------------- publisher */

static uint32_t rr_sym;
static int64_t ep_t0, ep_end;   /* current rate epoch: start, end */
static double ep_rate;
static uint64_t ep_sent;        /* ticks scheduled in this epoch */
static uint8_t pbuf[64 + 1000 * (MAX_SYMLEN + 48)]; /* publish payload scratch (batch <= 1000) */

static inline int64_t ep_ts(uint64_t i) { return ep_t0 + (int64_t)((double)i * 1e9 / ep_rate); }

static size_t put_u(char *o, uint64_t v) {
    char t[24];
    size_t n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while (v /= 10);
    for (size_t i = 0; i < n; i++)
        o[i] = t[n - 1 - i];
    return n;
}

/* Queues up to cnt ticks of this epoch starting at index ep_sent in one publish message. */
static void pub_message(uint64_t cnt) {
    char *p = (char *)pbuf;
    size_t n = 0;
    static const char head[] = "{\"type\":\"publish\",\"updates\":[";
    memcpy(p, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    struct step *st = cur_step >= 0 ? &steps[cur_step] : NULL;
    /* the server is not draining the publisher's socket: these ticks are skipped */
    if (pub_len + 14 + 64 + cnt * (MAX_SYMLEN + 48) > PUB_OUT_CAP || pubc.fd < 0) {
        if (st)
            st->skipped += cnt, st->scheduled += cnt;
        ep_sent += cnt;
        return;
    }
    if (st)
        h_add(&S.send_lag, g_now - ep_ts(ep_sent));
    for (uint64_t k = 0; k < cnt; k++) {
        int64_t ts = ep_ts(ep_sent++);
        uint32_t s = O.zipf ? zipf_pick() : rr_sym;
        if (!O.zipf)
            rr_sym = rr_sym + 1 == (uint32_t)O.nsyms ? 0 : rr_sym + 1;
        uint32_t tn = ++pub_n[s];
        ring_ts[((size_t)s << ring_shift) + (tn & ring_mask)] = ts;
        if (k)
            p[n++] = ',';
        memcpy(p + n, "{\"symbol\":\"", 11);
        n += 11;
        memcpy(p + n, sym_name[s], sym_len[s]);
        n += sym_len[s];
        memcpy(p + n, "\",\"price\":", 10);
        n += 10;
        uint64_t v = (uint64_t)tn + 1000;
        n += put_u(p + n, v / 1000);
        p[n++] = '.';
        p[n++] = (char)('0' + v / 100 % 10);
        p[n++] = (char)('0' + v / 10 % 10);
        p[n++] = (char)('0' + v % 10);
        p[n++] = '}';
        if (st) {
            st->scheduled++;
            st->published++;
            st->expected += subcount[s];
        }
    }
    p[n++] = ']';
    p[n++] = '}';
    if (pub_off + pub_len + n + 14 > PUB_OUT_CAP) {
        memmove(pub_out, pub_out + pub_off, pub_len);
        pub_off = 0;
    }
    pub_len += ws_frame(pub_out + pub_off + pub_len, 1, p, n);
    S.pub_msgs++;
}

static void sample_step_start(struct step *st, int64_t t) {
    st->t_start = t;
    st->self_cpu_s = -self_cpu();
    double sc = srv_cpu();
    st->srv_cpu_s = sc < 0 ? NAN : -sc;
}
static void sample_step_end(struct step *st, int64_t t) {
    st->t_end = t;
    st->self_cpu_s += self_cpu();
    double sc = srv_cpu();
    st->srv_cpu_s = sc < 0 ? NAN : st->srv_cpu_s + sc;
    st->srv_rss_kb = srv_mem(false);
}

/* ---------------------------------------------------------------- recovery storm */

/* A member's tick after the drop: checked for gaps and duplicates across
 * the join, and the member turns live once it has caught up. */
static void rs_tick(struct conn *c, int j, uint32_t sym, uint64_t n) {
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
static void rs_drop(void) {
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
static void rs_start(int64_t t) {
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

static void setup_scan(int64_t now);

/* Reconnects members, --concurrency handshakes in flight. */
static void rs_pump(int64_t now) {
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

static void begin_step(int k, int64_t t) {
    cur_step = k;
    nsteps_run = k + 1;
    steps[k].rate = O.rate * (O.ramp ? pow(1.25, k) : 1.0);
    if (O.rstorm && k == 1) { /* away: every symbol gets --recover-gap ticks in this step */
        steps[k].rate = ceil((double)O.rgap * O.nsyms / ((double)step_ns / 1e9)) + O.nsyms;
        rs_drop();
    } else if (O.rstorm && k == 2)
        rs_start(t);
    ep_t0 = t;
    ep_end = t + step_ns;
    ep_rate = steps[k].rate;
    ep_sent = 0;
    sample_step_start(&steps[k], t);
}

static void pub_stop(int64_t t) {
    if (!publishing)
        return;
    publishing = false;
    pub_stop_t = t;
    if (cur_step >= 0 && !steps[cur_step].t_end)
        sample_step_end(&steps[cur_step], t);
}

static int64_t pub_next = INT64_MAX; /* when pub_pump wants to run again */

/* Sends every tick due by now (open loop); returns the time of the next tick
 * that will be due (or INT64_MAX). */
static int64_t pub_pump_(int64_t now);
static int64_t pub_pump(int64_t now) { return pub_next = pub_pump_(now); }
static int64_t pub_pump_(int64_t now) {
    uint64_t budget = 8192; /* ticks per loop turn, so receiving is not starved */
    while (publishing) {
        int64_t until = now < ep_end ? now : ep_end - 1;
        uint64_t due_i = (uint64_t)floor((double)(until - ep_t0) * ep_rate / 1e9) + 1; /* ticks 0..due_i-1 due */
        uint64_t due = due_i > ep_sent ? due_i - ep_sent : 0;
        if (due > budget)
            due = budget;
        if (due && (O.batch <= 1 || due >= (uint64_t)O.batch || now - ep_ts(ep_sent) >= MS || now >= ep_end)) {
            budget -= due;
            while (due) {
                uint64_t m = due < (uint64_t)O.batch ? due : (uint64_t)O.batch;
                pub_message(m);
                due -= m;
            }
            pub_flush();
            if (!budget)
                return now;
            continue;
        }
        if (now >= ep_end) { /* epoch over: next step or stop */
            if (cur_step >= 0)
                sample_step_end(&steps[cur_step], ep_end);
            int next = cur_step + 1;
            if (next >= nsteps_max) {
                pub_stop(ep_end);
                break;
            }
            begin_step(next, ep_end);
            continue;
        }
        int64_t nx = ep_ts(ep_sent);
        if (O.batch > 1) {
            int64_t full = ep_ts(ep_sent + (uint64_t)O.batch - 1);
            nx = full < nx + MS ? full : nx + MS;
        }
        return nx < ep_end ? nx : ep_end;
    }
    return INT64_MAX;
}

/* ---------------------------------------------------------------- ramp */

static void eval_step(int k) {
    struct step *st = &steps[k];
    st->evaluated = true;
    double ratio = st->expected ? (double)st->delivered / (double)st->expected : 1.0;
    uint64_t p99 = h_pct(&st->h, 0.99);
    st->pass = true;
    if (st->scheduled && (double)st->skipped > 0.05 * (double)st->scheduled) {
        st->pass = false;
        snprintf(st->why, sizeof(st->why), "publisher backlog: %.1f%% ticks skipped",
                 100.0 * (double)st->skipped / (double)st->scheduled);
    } else if (ratio < 0.95) {
        st->pass = false;
        snprintf(st->why, sizeof(st->why), "delivered %.1f%% of expected", 100 * ratio);
    } else if (p99 > 100 * (uint64_t)MS) {
        st->pass = false;
        snprintf(st->why, sizeof(st->why), "p99 %.1f ms > 100 ms", (double)p99 / 1e6);
    }
    if (st->pass)
        best_step = k;
    else if (failed_step < 0)
        failed_step = k;
    double secs = (double)(st->t_end - st->t_start) / 1e9;
    fprintf(stderr, "loadgen: step %d rate %.0f/s: published %.0f/s, delivered %.0f/s (%.1f%%), p99 %.2f ms, "
                    "loadgen cpu %.0f%% -> %s%s%s\n",
            k, st->rate, (double)st->published / secs, (double)st->delivered / secs, 100 * ratio,
            (double)p99 / 1e6, 100 * st->self_cpu_s / secs, st->pass ? "ok" : "FAIL", st->pass ? "" : ": ",
            st->why);
}

/* ---------------------------------------------------------------- loop */

enum phase { P_CONNECT, P_PUBLISH, P_IDLE, P_DRAIN, P_CLOSE, P_END };
static enum phase phase = P_CONNECT;
static int64_t phase_end;

static void begin_close(int64_t now) {
    phase = P_CLOSE;
    phase_end = now + SEC;
    for (int i = 0; i < O.conns; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if (c->state == ST_ACTIVE) {
            send_close(c, 1000);
            c->state = ST_CLOSING;
        } else {
            c->aborted = 1;
            conn_close(c);
        }
    }
    if (pubc.fd >= 0) {
        if (pubc.state == ST_ACTIVE) {
            send_close(&pubc, 1000);
            pubc.state = ST_CLOSING;
        } else
            conn_close(&pubc);
    }
}

static uint64_t total_expected(void) {
    uint64_t e = 0;
    for (int k = 0; k < nsteps_run; k++)
        e += steps[k].expected;
    return e;
}
static uint64_t total_delivered(void) {
    uint64_t d = 0;
    for (int k = 0; k < nsteps_run; k++)
        d += steps[k].delivered;
    return d;
}

static int64_t last_scan;

/* Setup timeouts and the ready fallback, every 50 ms while connecting. */
static void setup_scan(int64_t now) {
    if (now - last_scan < 50 * MS)
        return;
    last_scan = now;
    for (int i = 0; i < S.next_conn; i++) {
        struct conn *c = &conns[i];
        if (c->fd < 0)
            continue;
        if ((c->state == ST_CONNECTING || c->state == ST_HS_SENT) && now - c->t0 > 10 * SEC) {
            S.hs_timeout++;
            conn_close(c);
        } else if (c->state == ST_WAIT_READY && now - c->t0 > 2 * SEC) {
            S.ready_fallback++; /* server sent no first frame: subscribe anyway */
            send_subscribe(c);
        } else if (c->state == ST_SUB_SENT && now - c->t0 > 10 * SEC) {
            conn_close(c);
        }
    }
}

/* Advances the phase machine; returns the next time it wants to run. */
static int64_t phase_step(int64_t now) {
    switch (phase) {
    case P_CONNECT: {
        int64_t paced = INT64_MAX; /* --hs-rate: when the next handshake is due */
        while (S.next_conn < O.conns && S.inflight < O.concurrency) {
            if (O.hs_rate > 0) {
                paced = S.t_begin + (int64_t)((double)S.next_conn * 1e9 / O.hs_rate);
                if (now < paced)
                    break;
                paced = INT64_MAX;
            }
            g_now = now;
            conn_start(&conns[S.next_conn++]);
        }
        setup_scan(now);
        if (pub_needed && pubc.state == ST_DONE) {
            fprintf(stderr, "loadgen: publisher connection failed%s%s\n", S.first_pub_error[0] ? ": " : "",
                    S.first_pub_error);
            incomplete = true;
            begin_close(now);
            return now;
        }
        if (pub_needed && (pubc.state == ST_CONNECTING || pubc.state == ST_HS_SENT || pubc.state == ST_WAIT_READY) &&
            now - pubc.t0 > 10 * SEC) {
            note_error(true, "", "setup timed out", 15);
            conn_close(&pubc);
            return now;
        }
        if (pub_needed && pubc.state == ST_WAIT_READY && now - pubc.t0 > 2 * SEC)
            became_active(&pubc); /* no first frame from the server: go ahead */
        if (S.next_conn < O.conns || S.setup_pending > 0 || (pub_needed && pubc.state != ST_ACTIVE))
            return paced < now + 50 * MS ? paced : now + 50 * MS;
        S.t_setup_done = now;
        S.rss_setup = srv_mem(false);
        {
            double secs = (double)(now - S.t_begin) / 1e9, sc = srv_cpu();
            S.conn_self_pct = secs > 0 ? 100 * (self_cpu() - S.cpu0_self) / secs : 0;
            S.conn_srv_pct = secs > 0 && sc >= 0 && S.cpu0_srv >= 0 ? 100 * (sc - S.cpu0_srv) / secs : NAN;
        }
        if (!O.json)
            fprintf(stderr, "loadgen: %llu/%d connections up in %.2f s\n", (unsigned long long)S.hs_ok, O.conns,
                    (double)(now - S.t_first_connect) / 1e9);
        if (O.storm) {
            begin_close(now);
            return now;
        }
        if (O.idle) {
            phase = P_IDLE;
            phase_end = now + (int64_t)(O.duration * 1e9);
            steps[0].rate = 0;
            sample_step_start(&steps[0], now);
            return now;
        }
        phase = P_PUBLISH;
        publishing = true;
        pub_start = now;
        ramp_start = now + (int64_t)(O.warmup * 1e9);
        if (O.warmup > 0) {
            cur_step = -1;
            ep_t0 = now;
            ep_end = ramp_start;
            ep_rate = O.rate;
            ep_sent = 0;
        } else
            begin_step(0, now);
        return now;
    }
    case P_PUBLISH: {
        if (pubc.fd < 0)
            pub_stop(now);
        int64_t nx = pub_pump(now);
        if (O.rstorm) {
            rs_pump(now);
            if (RS.state == RS_STORM && nx > now + 20 * MS)
                nx = now + 20 * MS;
        }
        if (O.ramp) {
            int64_t grace = step_ns / 2 < SEC ? step_ns / 2 : SEC;
            while (eval_next < nsteps_run && steps[eval_next].t_end && now >= steps[eval_next].t_end + grace) {
                eval_step(eval_next++);
                if (failed_step >= 0) {
                    pub_stop(now);
                    saturated = true;
                    break;
                }
            }
            int64_t ev = eval_next < nsteps_run && steps[eval_next].t_end ? steps[eval_next].t_end + grace
                                                                            : now + 50 * MS;
            if (ev < nx)
                nx = ev;
        }
        if (!publishing) {
            phase = P_DRAIN;
            phase_end = now + (int64_t)(O.drain_s * 1e9);
            return now;
        }
        return nx < now + 50 * MS ? nx : now + 50 * MS;
    }
    case P_IDLE:
        if (now < phase_end)
            return phase_end < now + 200 * MS ? phase_end : now + 200 * MS;
        sample_step_end(&steps[0], now);
        begin_close(now);
        return now;
    case P_DRAIN:
        pub_flush();
        if ((total_delivered() + S.stale >= total_expected() && !pub_len) || now >= phase_end) {
            begin_close(now);
            return now;
        }
        return now + 5 * MS;
    case P_CLOSE:
        if (S.open_fds > 0 && now < phase_end)
            return now + 20 * MS;
        for (int i = 0; i < O.conns; i++)
            conn_close(&conns[i]);
        conn_close(&pubc);
        phase = P_END;
        return now;
    case P_END:
        break;
    }
    return now;
}

/* ---------------------------------------------------------------- report */

struct summary {
    double secs, pub_rate, deliv_rate, self_cpu, srv_cpu;
    uint64_t published, skipped, expected, delivered, lost;
    const struct hist *h;
    double rate;
    int64_t rss;
};

static void summarize(struct summary *m, int k) {
    const struct step *st = &steps[k];
    m->secs = (double)(st->t_end - st->t_start) / 1e9;
    if (m->secs <= 0)
        m->secs = 1e-9;
    m->rate = st->rate;
    m->published = st->published;
    m->skipped = st->skipped;
    m->expected = st->expected;
    m->delivered = st->delivered;
    m->lost = st->expected > st->delivered ? st->expected - st->delivered : 0;
    m->pub_rate = (double)st->published / m->secs;
    m->deliv_rate = (double)st->delivered / m->secs;
    m->self_cpu = 100 * st->self_cpu_s / m->secs;
    m->srv_cpu = isnan(st->srv_cpu_s) ? NAN : 100 * st->srv_cpu_s / m->secs;
    m->h = &st->h;
    m->rss = st->srv_rss_kb;
}

static void json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void jnum(FILE *f, const char *k, double v, bool comma) {
    if (isnan(v) || isinf(v))
        fprintf(f, "\"%s\":null%s", k, comma ? "," : "");
    else if (v == floor(v) && fabs(v) < 1e15)
        fprintf(f, "\"%s\":%.0f%s", k, v, comma ? "," : "");
    else
        fprintf(f, "\"%s\":%.3f%s", k, v, comma ? "," : "");
}

static void report(void) {
    const char *mode = O.storm ? "handshake" : O.idle ? "idle" : O.ramp ? "ramp" : "stream";
    double hs_secs = S.t_last_hs > S.t_first_connect ? (double)(S.t_last_hs - S.t_first_connect) / 1e9 : 0;
    double hs_rate = hs_secs > 0 ? (double)S.hs_ok / hs_secs : 0;
    bool streamed = !O.storm && !O.idle && nsteps_run > 0;
    int k = O.ramp ? best_step : 0;
    struct summary m = {0};
    if (streamed && k >= 0)
        summarize(&m, k);
    /* whole run totals (all steps) for loss accounting */
    uint64_t exp_all = total_expected(), del_all = total_delivered();
    struct summary idle = {0};
    if (O.idle && steps[0].t_end)
        summarize(&idle, 0);
    FILE *f = stdout;
    if (O.json) {
        fprintf(f, "{\"mode\":\"%s\",\"complete\":%s,", mode, incomplete ? "false" : "true");
        jnum(f, "conns_requested", O.conns, true);
        jnum(f, "conns", (double)S.hs_ok, true);
        jnum(f, "handshake_failures", (double)S.hs_fail, true);
        jnum(f, "connect_errors", (double)S.connect_err, true);
        jnum(f, "http_errors", (double)S.http_err, true);
        jnum(f, "handshake_timeouts", (double)S.hs_timeout, true);
        jnum(f, "setup_failures", (double)S.setup_fail, true);
        jnum(f, "aborted", (double)S.aborted, true);
        jnum(f, "handshakes_per_s", hs_rate, true);
        jnum(f, "handshake_p50_ms", (double)h_pct(&S.hs_lat, .5) / 1e6, true);
        jnum(f, "handshake_p99_ms", (double)h_pct(&S.hs_lat, .99) / 1e6, true);
        jnum(f, "handshake_max_ms", (double)S.hs_lat.max / 1e6, true);
        if (O.tls) {
            jnum(f, "tls_failures", (double)S.tls_fail, true);
            jnum(f, "tls_resumed", (double)S.tls_resumed, true);
        }
        if (!O.storm) {
            jnum(f, "subscribed", (double)S.sub_ok, true);
            jnum(f, "subscribed_none", (double)S.sub_empty, true);
            jnum(f, "symbols_rejected", (double)S.sub_rejected_syms, true);
            jnum(f, "subscription_failed_msgs", (double)S.sub_failed_msgs, true);
            uint32_t mf = 0;
            for (int i = 0; subcount && i < O.nsyms; i++)
                mf = subcount[i] > mf ? subcount[i] : mf;
            jnum(f, "max_subscribers_per_symbol", mf, true);
        }
        if (streamed) {
            fprintf(f, "\"best_step\":%d,", k);
            if (O.ramp)
                fprintf(f, "\"saturated\":%s,", saturated ? "true" : "false");
        }
        if (streamed && k >= 0) {
            jnum(f, "target_rate", m.rate, true);
            jnum(f, "seconds", m.secs, true);
            jnum(f, "published", (double)m.published, true);
            jnum(f, "publish_rate", m.pub_rate, true);
            jnum(f, "publish_skipped", (double)m.skipped, true);
            jnum(f, "delivered", (double)m.delivered, true);
            jnum(f, "delivered_per_s", m.deliv_rate, true);
            jnum(f, "expected", (double)m.expected, true);
            jnum(f, "lost", (double)m.lost, true);
            jnum(f, "p50_us", (double)h_pct(m.h, .5) / 1e3, true);
            jnum(f, "p90_us", (double)h_pct(m.h, .9) / 1e3, true);
            jnum(f, "p99_us", (double)h_pct(m.h, .99) / 1e3, true);
            jnum(f, "p999_us", (double)h_pct(m.h, .999) / 1e3, true);
            jnum(f, "max_us", (double)m.h->max / 1e3, true);
            jnum(f, "mean_us", m.h->n ? (double)m.h->sum / (double)m.h->n / 1e3 : 0, true);
            if (!O.ramp) { /* first tenth of the subscribers .. last tenth */
                fprintf(f, "\"p99_by_decile_us\":[");
                for (int d = 0; d < 10; d++)
                    fprintf(f, "%s%.0f", d ? "," : "", (double)h_pct(&S.by_pos[d], .99) / 1e3);
                fprintf(f, "],");
            }
            jnum(f, "send_lag_p99_us", (double)h_pct(&S.send_lag, .99) / 1e3, true);
            jnum(f, "send_lag_max_us", (double)S.send_lag.max / 1e3, true);
            jnum(f, "loop_max_turn_us", (double)S.max_turn / 1e3, true);
            jnum(f, "loop_max_oversleep_us", (double)S.max_oversleep / 1e3, true);
            jnum(f, "loadgen_cpu_pct", m.self_cpu, true);
            jnum(f, "server_cpu_pct", m.srv_cpu, true);
            jnum(f, "server_rss_kb", (double)m.rss, true);
        }
        if (streamed) {
            jnum(f, "all_expected", (double)exp_all, true);
            jnum(f, "all_delivered", (double)del_all, true);
            jnum(f, "all_lost", exp_all > del_all ? (double)(exp_all - del_all) : 0, true);
            fprintf(f, "\"steps\":[");
            for (int i = 0; i < nsteps_run; i++) {
                struct summary s;
                if (!steps[i].t_end)
                    continue;
                summarize(&s, i);
                fprintf(f, "%s{", i ? "," : "");
                jnum(f, "rate", s.rate, true);
                jnum(f, "publish_rate", s.pub_rate, true);
                jnum(f, "delivered_per_s", s.deliv_rate, true);
                jnum(f, "expected", (double)s.expected, true);
                jnum(f, "lost", (double)s.lost, true);
                jnum(f, "p50_us", (double)h_pct(s.h, .5) / 1e3, true);
                jnum(f, "p99_us", (double)h_pct(s.h, .99) / 1e3, true);
                jnum(f, "max_us", (double)s.h->max / 1e3, true);
                jnum(f, "loadgen_cpu_pct", s.self_cpu, true);
                jnum(f, "server_cpu_pct", s.srv_cpu, true);
                fprintf(f, "\"pass\":%s", steps[i].evaluated ? (steps[i].pass ? "true" : "false") : "null");
                if (steps[i].evaluated && !steps[i].pass) {
                    fprintf(f, ",\"why\":");
                    json_escape(f, steps[i].why);
                }
                fprintf(f, "}");
            }
            fprintf(f, "],");
            jnum(f, "pub_messages", (double)S.pub_msgs, true);
            jnum(f, "pub_acks", (double)S.pub_acks, true);
            jnum(f, "pub_errors", (double)S.pub_errors, true);
            jnum(f, "snapshots", (double)S.snapshots, true);
            jnum(f, "gaps", (double)S.gaps, true);
            jnum(f, "dups", (double)S.dups, true);
            jnum(f, "stale", (double)S.stale, true);
            jnum(f, "unmatched", (double)S.unmatched, true);
        }
        if (O.idle) {
            jnum(f, "hold_seconds", idle.secs, true);
            jnum(f, "server_cpu_pct", idle.srv_cpu, true);
            jnum(f, "loadgen_cpu_pct", idle.self_cpu, true);
            jnum(f, "server_rss_kb", (double)idle.rss, true);
        }
        if (O.storm) {
            jnum(f, "server_cpu_pct", S.conn_srv_pct, true);
            jnum(f, "loadgen_cpu_pct", S.conn_self_pct, true);
        }
        jnum(f, "server_rss_before_kb", (double)S.rss_before, true);
        jnum(f, "server_rss_connected_kb", (double)S.rss_setup, true);
        jnum(f, "server_rss_end_kb", (double)S.rss_end, true);
        jnum(f, "server_hwm_kb", (double)S.hwm_end, true);
        if (S.rss_before > 0 && S.rss_setup > 0 && S.hs_ok)
            jnum(f, "server_bytes_per_conn", (double)(S.rss_setup - S.rss_before) * 1024.0 / (double)S.hs_ok, true);
        jnum(f, "server_closes", (double)S.closes_rx, true);
        jnum(f, "disconnects", (double)S.disconnects, true);
        jnum(f, "server_errors", (double)S.server_errors, true);
        jnum(f, "compressed_rx", (double)S.compressed_rx, true);
        jnum(f, "delayed_rx", (double)S.delayed_rx, true);
        if (O.rstorm) {
            uint32_t gap = UINT32_MAX;
            for (int i = 0; i < O.nsyms; i++)
                if (RS.n_live[i] - RS.n_drop[i] < gap)
                    gap = RS.n_live[i] - RS.n_drop[i];
            jnum(f, "recover_conns", O.rstorm, true);
            jnum(f, "recover_reconnected", (double)RS.next, true);
            jnum(f, "recover_live", RS.live, true);
            jnum(f, "recover_all_live_ms", RS.t_all ? (double)(RS.t_all - RS.t0) / 1e6 : NAN, true);
            jnum(f, "recover_live_p50_ms", (double)h_pct(&RS.ttl, .5) / 1e6, true);
            jnum(f, "recover_live_p99_ms", (double)h_pct(&RS.ttl, .99) / 1e6, true);
            jnum(f, "recover_missed_ticks_min", gap == UINT32_MAX ? 0 : gap, true);
            jnum(f, "recover_symbols_recovered", (double)RS.recovered, true);
            jnum(f, "recover_symbols_missed", (double)RS.missed, true);
            jnum(f, "recover_rx", (double)RS.rx, true);
            jnum(f, "recover_gaps", (double)RS.gaps, true);
            jnum(f, "recover_dups", (double)RS.dups, true);
            jnum(f, "steady_p99_before_us", (double)h_pct(&steps[0].h, .99) / 1e3, true);
            jnum(f, "steady_p99_storm_us", (double)h_pct(&RS.steady_storm, .99) / 1e3, true);
            jnum(f, "steady_p999_storm_us", (double)h_pct(&RS.steady_storm, .999) / 1e3, true);
        }
        jnum(f, "pings", (double)S.pings, true);
        jnum(f, "protocol_errors", (double)S.proto_err, true);
        fprintf(f, "\"first_error\":");
        json_escape(f, S.first_error);
        fprintf(f, ",\"first_pub_error\":");
        json_escape(f, S.first_pub_error);
        fprintf(f, "}\n");
        fflush(f);
        return;
    }
    fprintf(f, "mode                 %s%s\n", mode, incomplete ? "  (INCOMPLETE: deadline or failure)" : "");
    fprintf(f, "connections          %llu of %d (handshake failures %llu: connect %llu, http %llu, timeout %llu; "
               "setup failures %llu; aborted %llu)\n",
            (unsigned long long)S.hs_ok, O.conns, (unsigned long long)S.hs_fail, (unsigned long long)S.connect_err,
            (unsigned long long)S.http_err, (unsigned long long)S.hs_timeout, (unsigned long long)S.setup_fail,
            (unsigned long long)S.aborted);
    fprintf(f, "handshakes/s         %.0f  (p50 %.2f ms, p99 %.2f ms, max %.2f ms)\n", hs_rate,
            (double)h_pct(&S.hs_lat, .5) / 1e6, (double)h_pct(&S.hs_lat, .99) / 1e6, (double)S.hs_lat.max / 1e6);
    if (O.tls)
        fprintf(f, "tls                  %llu handshakes failed, %llu resumed a session\n",
                (unsigned long long)S.tls_fail, (unsigned long long)S.tls_resumed);
    if (S.t_setup_done) {
        fprintf(f, "connect phase        %.2f s, loadgen cpu %.0f%%", (double)(S.t_setup_done - S.t_begin) / 1e9,
                S.conn_self_pct);
        if (!isnan(S.conn_srv_pct))
            fprintf(f, ", server cpu %.0f%%", S.conn_srv_pct);
        fprintf(f, "\n");
    }
    uint32_t maxfan = 0, watched = 0;
    for (int i = 0; subcount && i < O.nsyms; i++) {
        watched += subcount[i] > 0;
        if (subcount[i] > maxfan)
            maxfan = subcount[i];
    }
    if (!O.storm)
        fprintf(f, "subscribed           %llu (none accepted %llu, symbols rejected %llu); %u symbols watched, "
                   "the busiest by %u\n",
                (unsigned long long)S.sub_ok, (unsigned long long)S.sub_empty,
                (unsigned long long)S.sub_rejected_syms, watched, maxfan);
    if (streamed && k < 0)
        fprintf(f, "ramp                 no step passed\n");
    if (streamed && k >= 0) {
        if (O.ramp) {
            fprintf(f, "ramp steps           %-9s %9s %11s %9s %9s %9s %7s %7s\n", "rate", "pub/s", "deliv/s", "lost",
                    "p50 us", "p99 us", "lg cpu", "srv cpu");
            for (int i = 0; i < nsteps_run; i++) {
                struct summary s;
                if (!steps[i].t_end)
                    continue;
                summarize(&s, i);
                fprintf(f, "  step %-2d            %-9.0f %9.0f %11.0f %9llu %9.0f %9.0f %6.0f%% %6.0f%%  %s%s\n", i,
                        s.rate, s.pub_rate, s.deliv_rate, (unsigned long long)s.lost, (double)h_pct(s.h, .5) / 1e3,
                        (double)h_pct(s.h, .99) / 1e3, s.self_cpu, s.srv_cpu,
                        steps[i].evaluated ? (steps[i].pass ? "ok" : "FAIL ") : "-",
                        steps[i].evaluated && !steps[i].pass ? steps[i].why : "");
            }
            fprintf(f, "best sustained step  %d%s\n", k, saturated ? "" : " (ramp ended before saturation)");
        }
        fprintf(f, "publish rate         %.0f ticks/s (target %.0f; %llu ticks in %.1f s, skipped %llu; fan-out %.0f)\n",
                m.pub_rate, m.rate, (unsigned long long)m.published, m.secs, (unsigned long long)m.skipped,
                m.published ? (double)m.expected / (double)m.published : 0.0);
        fprintf(f, "delivered            %.0f msgs/s (%llu of %llu expected, lost %llu = %.3f%%)\n", m.deliv_rate,
                (unsigned long long)m.delivered, (unsigned long long)m.expected, (unsigned long long)m.lost,
                m.expected ? 100.0 * (double)m.lost / (double)m.expected : 0.0);
        fprintf(f, "latency us           p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  (mean %.0f)\n",
                (double)h_pct(m.h, .5) / 1e3, (double)h_pct(m.h, .9) / 1e3, (double)h_pct(m.h, .99) / 1e3,
                (double)h_pct(m.h, .999) / 1e3, (double)m.h->max / 1e3,
                m.h->n ? (double)m.h->sum / (double)m.h->n / 1e3 : 0.0);
        fprintf(f, "send lag us          p50 %.0f  p99 %.0f  max %.0f  (publish time behind schedule)\n",
                (double)h_pct(&S.send_lag, .5) / 1e3, (double)h_pct(&S.send_lag, .99) / 1e3,
                (double)S.send_lag.max / 1e3);
        fprintf(f, "loop                 longest turn %.1f ms, longest oversleep %.1f ms\n", (double)S.max_turn / 1e6,
                (double)S.max_oversleep / 1e6);
        fprintf(f, "cpu                  loadgen %.0f%%", m.self_cpu);
        if (!isnan(m.srv_cpu))
            fprintf(f, ", server %.0f%%", m.srv_cpu);
        fprintf(f, "\n");
        if (O.ramp)
            fprintf(f, "whole run            expected %llu, delivered %llu, lost %llu\n", (unsigned long long)exp_all,
                    (unsigned long long)del_all, (unsigned long long)(exp_all > del_all ? exp_all - del_all : 0));
        fprintf(f, "other                pub msgs %llu, acks %llu, pub errors %llu, snapshots %llu, gaps %llu, "
                   "dups %llu, stale %llu, unmatched %llu, pings %llu\n",
                (unsigned long long)S.pub_msgs, (unsigned long long)S.pub_acks, (unsigned long long)S.pub_errors,
                (unsigned long long)S.snapshots, (unsigned long long)S.gaps, (unsigned long long)S.dups,
                (unsigned long long)S.stale, (unsigned long long)S.unmatched, (unsigned long long)S.pings);
    }
    if (O.idle && idle.secs > 0) {
        fprintf(f, "held                 %.1f s", idle.secs);
        if (!isnan(idle.srv_cpu))
            fprintf(f, ", server cpu %.1f%%", idle.srv_cpu);
        if (idle.rss > 0)
            fprintf(f, ", server rss at end of hold %lld KiB", (long long)idle.rss);
        fprintf(f, ", pings answered %llu\n", (unsigned long long)S.pings);
    }
    if (O.server_pid > 0) {
        fprintf(f, "server rss           before %lld KiB, connected %lld KiB, end %lld KiB, peak %lld KiB",
                (long long)S.rss_before, (long long)S.rss_setup, (long long)S.rss_end, (long long)S.hwm_end);
        if (S.rss_before > 0 && S.rss_setup > 0 && S.hs_ok)
            fprintf(f, " (%.0f B/conn)", (double)(S.rss_setup - S.rss_before) * 1024.0 / (double)S.hs_ok);
        fprintf(f, "\n");
    }
    fprintf(f, "closes               server-initiated %llu, unexpected disconnects %llu, server errors %llu, protocol "
               "errors %llu\n",
            (unsigned long long)S.closes_rx, (unsigned long long)S.disconnects, (unsigned long long)S.server_errors,
            (unsigned long long)S.proto_err);
    if (S.first_error[0])
        fprintf(f, "first error          %s\n", S.first_error);
    if (S.first_pub_error[0])
        fprintf(f, "publisher error      %s\n", S.first_pub_error);
    fflush(f);
}

/* ---------------------------------------------------------------- setup of the run */

static void usage(FILE *f) {
    fprintf(f,
            "usage: loadgen [options]\n"
            "  --host H (127.0.0.1) --port N[,N2,...] (8080) --path P (/ws)\n"
            "                             several ports (nodes): subscriber i connects to port i mod n\n"
            "  --pub-port N               the publisher's port (default: the first)\n"
            "  --conns N (100)            subscribers; handshakes in --handshake-only\n"
            "  --symbols S (1)            symbols named PREFIX0..PREFIX(S-1)\n"
            "  --symbol-prefix P (S)      --symbol-list A,B,C  explicit names instead\n"
            "  --per K (1)                symbols per subscriber (<= 100)\n"
            "  --dist uniform|zipf        uniform: subscriber i gets symbols i*K..i*K+K-1 mod S and ticks go\n"
            "                             round-robin; zipf (s=1): by rank for both\n"
            "  --rate R (1000)            ticks/s, open loop      --batch B (1) ticks per publish message\n"
            "  --duration D (10)          seconds measured (ramp: longest ramp, default 120)\n"
            "  --warmup W (2)             seconds published before measuring\n"
            "  --ramp --step-s T (5)      x1.25 each step until delivered < 95%% or p99 > 100 ms\n"
            "  --pub-token T              Bearer token of the publisher (role publisher)\n"
            "  --sub-token T[,T2,...]     Bearer token(s) of the subscribers: subscriber i uses token i mod n (<= 8)\n"
            "  --sources A,B,...          bind subscribers round-robin to these source IPs\n"
            "  --server-pid PID[,PID2]    report server CPU%% and RSS from /proc (several: summed)\n"
            "  --handshake-only           storm: N handshakes, --concurrency C (256) in flight, then close\n"
            "  --hs-rate R                start handshakes at R per second (open loop, still <= C in flight)\n"
            "  --idle                     connect + subscribe, hold --duration s without publishing\n"
            "  --drain-s S (2)            wait for late deliveries after publishing\n"
            "  --timeout S                global deadline (duration + warmup + 30)\n"
            "  --ring N                   send-time slots per symbol (auto)\n"
            "  --spin                     busy-poll while publishing (no wake-up delay; burns the CPU)\n"
            "  --deflate                  offer permessage-deflate; inflate RSV1 frames (zlib)\n"
            "  --tls                      every connection over TLS 1.3 (AES-128-GCM; no verification, no SNI)\n"
            "  --tls-resume               with --tls: fetch a session ticket first, resume it on every handshake\n"
            "  --recover-storm K          stream in 3 steps of duration/3: subscribers 0..K-1 drop at step 1 and\n"
            "                             reconnect at step 2 subscribing with recover (tickgate's protocol)\n"
            "  --recover-gap M (50)       ticks per symbol published while they are away\n"
            "  --seed N (1) --json\n"
            "exit: 0 done, 1 setup error, 2 incomplete (deadline, signal, publisher lost)\n");
}

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    if (!d) {
        perror("strdup");
        exit(1);
    }
    return d;
}
static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        perror("calloc");
        exit(1);
    }
    return p;
}

static bool sym_ok(const char *s, size_t n) {
    if (n == 0 || n > MAX_SYMLEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || (i && strchr(".-:/_", ch))))
            return false;
    }
    return true;
}

static char *sym_store; /* generated names, owned by symbols_init */

static int symbols_init(void) {
    if (O.list) {
        int n = 1;
        for (char *p = O.list; *p; p++)
            n += *p == ',';
        O.nsyms = n;
    }
    if (O.nsyms < 1) {
        fprintf(stderr, "loadgen: --symbols must be >= 1\n");
        return -1;
    }
    if (!O.storm && O.per > O.nsyms) {
        fprintf(stderr, "loadgen: --per %d > %d symbols\n", O.per, O.nsyms);
        return -1;
    }
    sym_name = xcalloc((size_t)O.nsyms, sizeof(*sym_name));
    sym_len = xcalloc((size_t)O.nsyms, 1);
    if (O.list) {
        int i = 0;
        for (char *p = O.list;; i++) {
            char *q = strchr(p, ',');
            if (q)
                *q = 0;
            sym_name[i] = p;
            if (!q)
                break;
            p = q + 1;
        }
    } else {
        size_t pl = strlen(O.prefix);
        sym_store = xcalloc((size_t)O.nsyms, pl + 12);
        for (int i = 0; i < O.nsyms; i++) {
            sym_name[i] = sym_store + (size_t)i * (pl + 12);
            snprintf(sym_name[i], pl + 12, "%s%d", O.prefix, i);
        }
    }
    uint32_t hs = 4;
    while (hs < 2u * (uint32_t)O.nsyms)
        hs <<= 1;
    sym_hmask = hs - 1;
    sym_hash = xcalloc(hs, sizeof(*sym_hash));
    for (int i = 0; i < O.nsyms; i++) {
        size_t l = strlen(sym_name[i]);
        if (!sym_ok(sym_name[i], l)) {
            fprintf(stderr, "loadgen: bad symbol name '%s'\n", sym_name[i]);
            return -1;
        }
        sym_len[i] = (uint8_t)l;
        if (sym_find(sym_name[i], l) != NO_SYM) {
            fprintf(stderr, "loadgen: duplicate symbol '%s'\n", sym_name[i]);
            return -1;
        }
        uint32_t h = fnv(sym_name[i], l) & sym_hmask;
        while (sym_hash[h])
            h = (h + 1) & sym_hmask;
        sym_hash[h] = (uint32_t)i + 1;
    }
    if (O.zipf) {
        zipf_cdf = xcalloc((size_t)O.nsyms, sizeof(double));
        double sum = 0;
        for (int i = 0; i < O.nsyms; i++)
            sum += 1.0 / (i + 1);
        double acc = 0;
        for (int i = 0; i < O.nsyms; i++) {
            acc += 1.0 / (i + 1) / sum;
            zipf_cdf[i] = acc;
        }
        zipf_cdf[O.nsyms - 1] = 1.0;
    }
    subcount = xcalloc((size_t)O.nsyms, sizeof(*subcount));
    pub_n = xcalloc((size_t)O.nsyms, sizeof(*pub_n));
    uint32_t ring = O.ring;
    if (!ring) {
        ring = 1u << 20;
        while (ring > 1024 && (uint64_t)ring * (uint64_t)O.nsyms > (4u << 20))
            ring >>= 1;
    }
    if (ring & (ring - 1)) {
        fprintf(stderr, "loadgen: --ring must be a power of two\n");
        return -1;
    }
    ring_mask = ring - 1;
    ring_shift = (uint32_t)__builtin_ctz(ring);
    ring_ts = xcalloc((size_t)O.nsyms * ring, sizeof(*ring_ts)); /* pages touched only when used */
    /* subscriber symbol choice */
    if (O.storm)
        return 0;
    csym = xcalloc((size_t)O.conns * (size_t)O.per, sizeof(*csym));
    clast = xcalloc((size_t)O.conns * (size_t)O.per, sizeof(*clast));
    for (int i = 0; i < O.conns; i++) {
        uint32_t *cs = &csym[(size_t)i * (size_t)O.per];
        for (int j = 0; j < O.per; j++) {
            if (!O.zipf) {
                cs[j] = (uint32_t)(((uint64_t)i * (uint64_t)O.per + (uint64_t)j) % (uint64_t)O.nsyms);
                continue;
            }
            uint32_t s = 0;
            bool dup = true;
            for (int tries = 0; dup && tries < 64 * O.per; tries++) {
                s = zipf_pick();
                dup = false;
                for (int q = 0; q < j && !dup; q++)
                    dup = cs[q] == s;
            }
            for (s = dup ? 0 : s; dup; s++) { /* fall back to the best-ranked unused one */
                dup = false;
                for (int q = 0; q < j && !dup; q++)
                    dup = cs[q] == s;
                if (!dup)
                    break;
            }
            cs[j] = s;
        }
    }
    return 0;
}

static char *build_request(const char *token, size_t *len, size_t *keyoff) {
    size_t cap = 512 + strlen(O.path) + strlen(O.host) + (token ? strlen(token) : 0);
    char *r = xcalloc(1, cap);
    int n = snprintf(r, cap,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: ",
                     O.path, O.host, O.port);
    *keyoff = (size_t)n;
    n += snprintf(r + n, cap - (size_t)n, "AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n");
    if (token && *token)
        n += snprintf(r + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", token);
    if (O.deflate)
        n += snprintf(r + n, cap - (size_t)n, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    n += snprintf(r + n, cap - (size_t)n, "\r\n");
    *len = (size_t)n;
    return r;
}

static void on_signal(int sig) {
    (void)sig;
    got_signal = 1;
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_PATH, OPT_CONNS, OPT_SYMBOLS, OPT_PREFIX, OPT_LIST, OPT_PER, OPT_DIST, OPT_RATE,
    OPT_DURATION, OPT_WARMUP, OPT_RAMP, OPT_STEP, OPT_PUBTOK, OPT_SUBTOK, OPT_SOURCES, OPT_BATCH, OPT_PID,
    OPT_STORM, OPT_IDLE, OPT_JSON, OPT_CONC, OPT_TIMEOUT, OPT_SEED, OPT_RING, OPT_DRAIN, OPT_SPIN, OPT_DEFLATE,
    OPT_TLS, OPT_TLS_RESUME, OPT_RSTORM, OPT_RGAP, OPT_PUBPORT, OPT_HSRATE, OPT_HELP
};

static double num_arg(const char *name, const char *v, double lo, double hi) {
    char *e;
    errno = 0;
    double d = strtod(v, &e);
    if (errno || e == v || *e || !(d >= lo && d <= hi)) {
        fprintf(stderr, "loadgen: --%s wants a number in [%g, %g], got '%s'\n", name, lo, hi, v);
        exit(1);
    }
    return d;
}

/* A comma list of up to 8 numbers in [1, hi] into out[]; returns how many. */
static int int_list(const char *name, const char *v, int *out, double hi) {
    int n = 0;
    for (const char *q = v, *e; *q && n < 8; q = *e ? e + 1 : e) {
        e = q + strcspn(q, ",");
        char one[24] = {0};
        memcpy(one, q, (size_t)(e - q) < sizeof(one) - 1 ? (size_t)(e - q) : sizeof(one) - 1);
        out[n++] = (int)num_arg(name, one, 1, hi);
    }
    if (!n)
        out[n++] = (int)num_arg(name, v, 1, hi); /* empty: num_arg says why */
    return n;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"host", 1, 0, OPT_HOST}, {"port", 1, 0, OPT_PORT}, {"path", 1, 0, OPT_PATH}, {"conns", 1, 0, OPT_CONNS},
        {"symbols", 1, 0, OPT_SYMBOLS}, {"symbol-prefix", 1, 0, OPT_PREFIX}, {"symbol-list", 1, 0, OPT_LIST},
        {"per", 1, 0, OPT_PER}, {"dist", 1, 0, OPT_DIST}, {"rate", 1, 0, OPT_RATE}, {"duration", 1, 0, OPT_DURATION},
        {"warmup", 1, 0, OPT_WARMUP}, {"ramp", 0, 0, OPT_RAMP}, {"step-s", 1, 0, OPT_STEP},
        {"pub-token", 1, 0, OPT_PUBTOK}, {"sub-token", 1, 0, OPT_SUBTOK}, {"sources", 1, 0, OPT_SOURCES},
        {"batch", 1, 0, OPT_BATCH}, {"server-pid", 1, 0, OPT_PID}, {"handshake-only", 0, 0, OPT_STORM},
        {"idle", 0, 0, OPT_IDLE}, {"json", 0, 0, OPT_JSON}, {"concurrency", 1, 0, OPT_CONC},
        {"timeout", 1, 0, OPT_TIMEOUT}, {"seed", 1, 0, OPT_SEED}, {"ring", 1, 0, OPT_RING},
        {"drain-s", 1, 0, OPT_DRAIN}, {"spin", 0, 0, OPT_SPIN}, {"deflate", 0, 0, OPT_DEFLATE},
        {"tls", 0, 0, OPT_TLS}, {"tls-resume", 0, 0, OPT_TLS_RESUME}, {"recover-storm", 1, 0, OPT_RSTORM},
        {"recover-gap", 1, 0, OPT_RGAP}, {"pub-port", 1, 0, OPT_PUBPORT}, {"hs-rate", 1, 0, OPT_HSRATE},
        {"help", 0, 0, OPT_HELP}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case OPT_HOST: O.host = optarg; break;
        case OPT_PORT:
            O.nports = int_list("port", optarg, O.ports, 65535);
            O.port = O.ports[0];
            break;
        case OPT_PUBPORT: O.pub_port = (int)num_arg("pub-port", optarg, 1, 65535); break;
        case OPT_HSRATE: O.hs_rate = num_arg("hs-rate", optarg, 1, 1e7); break;
        case OPT_PATH: O.path = optarg; break;
        case OPT_CONNS: O.conns = (int)num_arg("conns", optarg, 0, 1e6); break;
        case OPT_SYMBOLS: O.nsyms = (int)num_arg("symbols", optarg, 1, 1e6); break;
        case OPT_PREFIX: O.prefix = optarg; break;
        case OPT_LIST: O.list = xstrdup(optarg); break;
        case OPT_PER: O.per = (int)num_arg("per", optarg, 1, MAX_PER); break;
        case OPT_DIST:
            if (strcmp(optarg, "zipf") == 0)
                O.zipf = true;
            else if (strcmp(optarg, "uniform") == 0)
                O.zipf = false;
            else {
                fprintf(stderr, "loadgen: --dist uniform|zipf\n");
                return 1;
            }
            break;
        case OPT_RATE: O.rate = num_arg("rate", optarg, 0.001, 1e8); break;
        case OPT_DURATION: O.duration = num_arg("duration", optarg, 0.001, 1e6); O.duration_set = true; break;
        case OPT_WARMUP: O.warmup = num_arg("warmup", optarg, 0, 1e6); break;
        case OPT_RAMP: O.ramp = true; break;
        case OPT_DEFLATE: O.deflate = true; break;
        case OPT_STEP: O.step_s = num_arg("step-s", optarg, 0.1, 1e6); break;
        case OPT_PUBTOK: O.pub_token = optarg; break;
        case OPT_SUBTOK: O.sub_token = optarg; break;
        case OPT_SOURCES: O.sources = xstrdup(optarg); break;
        case OPT_BATCH: O.batch = (int)num_arg("batch", optarg, 1, 1000); break;
        case OPT_PID:
            O.npids = int_list("server-pid", optarg, O.pids, 1e9);
            O.server_pid = O.pids[0];
            break;
        case OPT_STORM: O.storm = true; break;
        case OPT_IDLE: O.idle = true; break;
        case OPT_JSON: O.json = true; break;
        case OPT_CONC: O.concurrency = (int)num_arg("concurrency", optarg, 1, 1e6); break;
        case OPT_TIMEOUT: O.timeout = num_arg("timeout", optarg, 0.1, 1e7); break;
        case OPT_SEED: O.seed = (uint64_t)num_arg("seed", optarg, 0, 1e18); break;
        case OPT_RING: O.ring = (uint32_t)num_arg("ring", optarg, 1024, 1 << 24); break;
        case OPT_DRAIN: O.drain_s = num_arg("drain-s", optarg, 0, 600); break;
        case OPT_SPIN: O.spin = true; break;
        case OPT_TLS: O.tls = true; break;
        case OPT_TLS_RESUME: O.tls_resume = true; break;
        case OPT_RSTORM: O.rstorm = (int)num_arg("recover-storm", optarg, 1, 1e6); break;
        case OPT_RGAP: O.rgap = (int)num_arg("recover-gap", optarg, 1, 1e6); break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "loadgen: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (O.storm + O.idle + O.ramp > 1) {
        fprintf(stderr, "loadgen: --handshake-only, --idle and --ramp exclude each other\n");
        return 1;
    }
    if (O.tls_resume && !O.tls) {
        fprintf(stderr, "loadgen: --tls-resume needs --tls\n");
        return 1;
    }
    if (O.rstorm && (O.storm || O.idle || O.ramp || O.rstorm >= O.conns)) {
        fprintf(stderr, "loadgen: --recover-storm K streams (no --ramp, --idle, --handshake-only) and keeps "
                        "K < --conns steady subscribers\n");
        return 1;
    }
    if (O.ramp && !O.duration_set)
        O.duration = 120;
    if (O.timeout <= 0)
        O.timeout = (O.storm ? 30 : O.duration + (O.idle ? 0 : O.warmup)) + 30;
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
    if (O.tls && lt_init(O.tls_resume, O.idle || O.storm) < 0)
        return 1;
    if (O.tls_resume)
        lt_prime(&srv_addr, hs_req_sub[0], hs_len_sub[0]); /* on failure (said), the handshakes are full ones */
    step_ns = (int64_t)((O.ramp ? O.step_s : O.rstorm ? O.duration / 3 : O.duration) * 1e9);
    nsteps_max = O.ramp ? (int)floor(O.duration / O.step_s + 1e-9) : O.rstorm ? 3 : 1;
    if (O.rstorm) { /* steps: 0 all connected, 1 the group away, 2 the storm */
        RS.state = RS_BASE;
        RS.seq = xcalloc((size_t)O.rstorm * (size_t)O.per, sizeof(*RS.seq));
        RS.n_drop = xcalloc((size_t)O.nsyms, sizeof(*RS.n_drop));
        RS.n_live = xcalloc((size_t)O.nsyms, sizeof(*RS.n_live));
        RS.pending = xcalloc((size_t)O.rstorm, 1);
        RS.epoch = xcalloc((size_t)O.nsyms, sizeof(*RS.epoch));
    }
    if (nsteps_max < 1)
        nsteps_max = 1;
    if (nsteps_max > MAX_STEPS)
        nsteps_max = MAX_STEPS;

    S.t_begin = g_now = now_ns();
    S.rss_before = srv_mem(false);
    S.cpu0_self = self_cpu();
    S.cpu0_srv = srv_cpu();
    int64_t deadline = S.t_begin + (int64_t)(O.timeout * 1e9);
    pub_needed = !O.storm && !O.idle;
    if (pub_needed) /* the publisher is not counted among the connections */
        conn_start(&pubc);

    struct epoll_event evs[1024];
    bool use_pwait2 = true;
    int64_t t_ret = now_ns(); /* when epoll last returned */
    for (;;) {
        int64_t now = g_now = now_ns();
        if (got_signal || now >= deadline) {
            fprintf(stderr, "loadgen: %s; reporting what was measured\n",
                    got_signal ? "interrupted" : "global deadline reached");
            incomplete = true;
            if (publishing)
                pub_stop(now);
            if (O.idle && steps[0].t_start && !steps[0].t_end)
                sample_step_end(&steps[0], now);
            break;
        }
        int64_t next = phase_step(now);
        if (phase == P_END)
            break;
        if (next > deadline)
            next = deadline;
        int64_t wait = next - now_ns();
        if (wait < 0 || (O.spin && phase == P_PUBLISH))
            wait = 0;
        int n;
        int64_t t_wait = now_ns();
        if (t_wait - t_ret > S.max_turn && phase == P_PUBLISH)
            S.max_turn = t_wait - t_ret; /* events handled + phase step */
        if (use_pwait2) {
            struct timespec ts = {.tv_sec = wait / SEC, .tv_nsec = wait % SEC};
            n = epoll_pwait2(epfd, evs, 1024, &ts, NULL);
            if (n < 0 && errno == ENOSYS) {
                use_pwait2 = false;
                continue;
            }
        } else
            n = epoll_wait(epfd, evs, 1024, (int)((wait + MS - 1) / MS));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            incomplete = true;
            break;
        }
        t_ret = g_now = now_ns();
        if (phase == P_PUBLISH && g_now - t_wait - wait > S.max_oversleep) /* woken late: not run */
            S.max_oversleep = g_now - t_wait - wait;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            if (c->fd < 0)
                continue;
            if (c->state == ST_CONNECTING) {
                if (c->ssl)
                    tls_step(c, false);
                else
                    on_connected(c);
                continue;
            }
            if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
            if (c->fd >= 0 && (e & EPOLLOUT))
                on_writable(c);
            if (publishing && g_now >= pub_next) /* keep the schedule while busy receiving */
                pub_pump(g_now);
        }
    }
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
    free(csym);
    free(clast);
    free(sym_name);
    free(sym_len);
    free(sym_hash);
    free(sym_store);
    free(zipf_cdf);
    free(subcount);
    free(pub_n);
    free(ring_ts);
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

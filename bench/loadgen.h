/* loadgen.h - what the load generator's files share: the options, the
 * connection table, the per-step statistics and the run's counters.
 *
 * build/loadgen is one process, one thread, one epoll set (loadgen_run.c):
 * every global here is owned by that loop and touched by no other thread,
 * so none is locked. A global is declared here only when more than one
 * file needs it; everything else stays static in the file that owns it.
 *
 * The files, by what they own:
 *   loadgen_main.c      main: the run's setup and teardown, small helpers
 *   loadgen_args.c      the options (O), --help, their parsing and checks
 *   loadgen_symbols.c   symbol names, lookup, zipf ranks, who subscribes what
 *   loadgen_conn.c      sockets: connect, TLS step, upgrade, send queues,
 *                       subscribe, close; frames out (ws_frame)
 *   loadgen_frames.c    bytes in: HTTP response, frame parsing, inflate
 *   loadgen_messages.c  text messages in: ticks and their latency, replies
 *   loadgen_publish.c   the open-loop publisher, steps, the ramp's verdicts
 *   loadgen_recovery.c  --recover-storm
 *   loadgen_run.c       the phases (connect/storm, publish, idle, drain,
 *                       close) and the event loop
 *   loadgen_report.c    /proc CPU and RSS sampling, percentiles, the report
 *   loadgen_tls.c       the TLS client (loadgen_tls.h)
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "loadgen_tls.h"

#define RBUF_DATA    65536          /* bytes read per recv() */
#define LEFT_CAP     2048           /* per-connection leftover: a frame cut by a read */
#define PUB_OUT_CAP  (4u << 20)     /* publisher's send queue */
#define MAX_PER      100            /* symbols per subscribe (server limit) */
#define MAX_SYMLEN   32
#define MAX_STEPS    64
#define MAX_TOKENS   8              /* --sub-token A,B,C: subscriber i uses token i mod n */
#define NO_SYM       UINT32_MAX
#define SEC          1000000000LL
#define MS           1000000LL

/* ---------------------------------------------------------------- options (loadgen_args.c) */

struct opts {
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
    bool tls12;              /* --tls12: offer TLS 1.2 only */
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
};
extern struct opts O; /* set once by args_parse, read-only after */

/* Parses and checks the command line into O (messages on stderr). Returns
 * -1 to go on, or the exit status (0 after --help). */
int args_parse(int argc, char **argv);

/* ---------------------------------------------------------------- clock, rng (loadgen_main.c) */

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

/* xorshift64*; seeded from --seed, so a run's masks, keys and zipf draws
 * repeat with the seed. */
extern uint64_t rng_s;
static inline uint64_t rng64(void) {
    rng_s ^= rng_s >> 12;
    rng_s ^= rng_s << 25;
    rng_s ^= rng_s >> 27;
    return rng_s * 2685821657736338717ULL;
}
static inline double rng_unit(void) { return (double)(rng64() >> 11) * (1.0 / 9007199254740992.0); }

void *xcalloc(size_t n, size_t sz); /* calloc or exit(1) */
char *xstrdup(const char *s);       /* strdup or exit(1) */
/* Keeps the first error text of the publisher (pub) or of any subscriber. */
void note_error(bool pub, const char *who, const char *p, size_t n);

/* ---------------------------------------------------------------- histogram (h_pct: loadgen_report.c) */

/* Log-linear: exact below 128, then 64 sub-buckets per power of two (~1.6%).
 * h_add runs per delivered tick: inline, no allocation. */
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
uint64_t h_pct(const struct hist *h, double q); /* the q-quantile (bucket middle, <= max) */

/* ---------------------------------------------------------------- symbols (loadgen_symbols.c) */

extern char **sym_name;        /* [nsyms] names */
extern uint8_t *sym_len;       /* [nsyms] */
extern uint32_t *subcount;     /* [nsyms] confirmed subscribers of each symbol */
extern uint32_t *pub_n;        /* [nsyms] ticks published so far (n of the last) */
extern int64_t *ring_ts;       /* [nsyms * ring] scheduled time of tick n */
extern uint32_t ring_mask, ring_shift; /* ring size - 1, log2(ring size) */
extern uint32_t *csym;         /* [O.conns * per] subscriber's symbols (NO_SYM = rejected) */
extern uint32_t *clast;        /* [O.conns * per] last n received per subscribed symbol */

int symbols_init(void);        /* names, lookup table, rings, subscriber choice; -1 said */
void symbols_free(void);
uint32_t sym_find(const char *s, size_t n); /* index or NO_SYM */
uint32_t zipf_pick(void);      /* a rank drawn with s = 1 */

/* ---------------------------------------------------------------- connections (loadgen_conn.c) */

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

extern struct conn *conns;    /* [O.conns] subscribers */
extern struct conn pubc;      /* the publisher */
extern uint8_t *lefts;        /* [O.conns + 1][LEFT_CAP], touched only when used */
extern int epfd;
extern int64_t g_now;         /* loop time, refreshed after each epoll wait and each recv */
extern struct sockaddr_in srv_addr;      /* the first port's: TLS priming */
extern struct sockaddr_in sub_addrs[8], pub_addr;
extern struct in_addr *src_addrs;        /* --sources */
extern int nsrc;
extern char *hs_req_sub[MAX_TOKENS], *hs_req_pub; /* handshake requests, {KEY} patched per connection */
extern size_t hs_len_sub[MAX_TOKENS], hs_len_pub, hs_keyoff_sub[MAX_TOKENS], hs_keyoff_pub;
extern int ntok;
extern uint8_t *pub_out;      /* publisher send queue [PUB_OUT_CAP], owned by pubc */
extern size_t pub_off, pub_len;

/* Writes a masked client frame of payload p[0..n) at out (room: n + 14). */
size_t ws_frame(uint8_t *out, int op, const void *payload, size_t n);
char *build_request(const char *token, size_t *len, size_t *keyoff); /* the upgrade request (owned) */
void conn_start(struct conn *c);
void on_connected(struct conn *c);       /* EPOLLOUT while connecting, no TLS */
void tls_step(struct conn *c, bool first);
void conn_close(struct conn *c);
void conn_send_frame(struct conn *c, int op, const void *p, size_t n); /* control frames: p <= 256 bytes */
void send_close(struct conn *c, uint16_t code);
void send_subscribe(struct conn *c);
void became_active(struct conn *c);
void pub_flush(void);
void on_writable(struct conn *c);

/* ---------------------------------------------------------------- bytes and messages in */

void on_readable(struct conn *c);        /* loadgen_frames.c */
/* loadgen_messages.c: one text message (or, if truncated, the first bytes
 * of an oversized one) */
void on_text(struct conn *c, const char *p, size_t n, bool truncated);
/* Finds "key" (quoted, given with its quotes) followed by optional blanks and ':'
 * in p[0..n); returns the first non-blank byte of the value or NULL. */
const char *json_val(const char *p, size_t n, const char *qkey, size_t klen);
/* String value of qkey in *out, *olen; escapes not handled (not needed here). */
bool json_str(const char *p, size_t n, const char *qkey, size_t klen, const char **out, size_t *olen);

/* ---------------------------------------------------------------- steps and the publisher (loadgen_publish.c) */

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

extern struct step steps[MAX_STEPS];
extern int nsteps_max;      /* steps that may run */
extern int nsteps_run;      /* steps started */
extern int64_t ramp_start, step_ns; /* the first step's start (end of warmup); a step's length */
extern bool publishing;
extern int64_t pub_next;    /* when pub_pump wants to run again */
extern int eval_next, best_step, failed_step;
extern bool saturated;

void pub_begin(int64_t now);       /* the warmup epoch (or step 0) starts */
int64_t pub_pump(int64_t now);     /* sends what is due; the next due time */
void pub_stop(int64_t t);
void sample_step_start(struct step *st, int64_t t);
void sample_step_end(struct step *st, int64_t t);
void eval_step(int k);             /* the ramp's verdict on step k */

/* ---------------------------------------------------------------- the run's counters (loadgen_report.c) */

extern struct stats {
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

double self_cpu(void);             /* this process's CPU seconds */
double srv_cpu(void);              /* --server-pid processes' CPU seconds together, or -1 */
int64_t srv_mem(bool hwm);         /* their VmRSS (VmHWM with hwm) in KiB together, or -1 */
void report(void);                 /* stdout: text, or one JSON object with --json */

/* ---------------------------------------------------------------- --recover-storm (loadgen_recovery.c) */

/* Subscribers 0..K-1 (the group) drop their connections at the start of
 * step 1, stay away while every symbol gets at least --recover-gap ticks,
 * and reconnect at the start of step 2 (concurrency --concurrency)
 * subscribing with "recover" from the seq and epoch they saw last. A group
 * member is live once it has every tick up to what was published when the
 * storm began. The others (steady) are the latency population: their p99
 * before the storm (step 0) against during it. */
enum { RS_OFF, RS_BASE, RS_AWAY, RS_STORM, RS_DONE };
extern struct rstorm {
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

void rs_init(void);                /* allocates the group's state (O.rstorm > 0) */
void rs_tick(struct conn *c, int j, uint32_t sym, uint64_t n);
void rs_confirmed(struct conn *c, const char *p, size_t n);
void rs_drop(void);                /* step 1 begins */
void rs_start(int64_t t);          /* step 2 begins */
void rs_pump(int64_t now);         /* reconnects members, --concurrency in flight */

/* ---------------------------------------------------------------- the run (loadgen_run.c) */

extern bool incomplete;            /* deadline, signal, publisher lost: exit 2 */
extern volatile sig_atomic_t got_signal;

void run(void);                    /* connects, runs the phases, returns at the end or deadline */
void setup_scan(int64_t now);      /* setup timeouts and the ready fallback */
uint64_t total_expected(void);     /* over the steps run */
uint64_t total_delivered(void);

#endif

/* loadgen_args.c - the load generator's options: their defaults (O),
 * --help, and the parsing and checks of the command line. Every bad value
 * is refused with the option's name and range; nothing is guessed. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

struct opts O = {
    .host = "127.0.0.1", .port = 8080, .path = "/ws", .conns = 100, .nsyms = 1, .prefix = "S", .per = 1,
    .rate = 1000, .duration = 10, .warmup = 2, .step_s = 5, .batch = 1, .concurrency = 256, .drain_s = 2,
    .seed = 1, .rgap = 50,
};

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
            "  --tls12                    with --tls: offer TLS 1.2 only (its abbreviated resumption has no key exchange)\n"
            "  --recover-storm K          stream in 3 steps of duration/3: subscribers 0..K-1 drop at step 1 and\n"
            "                             reconnect at step 2 subscribing with recover (tickgate's protocol)\n"
            "  --recover-gap M (50)       ticks per symbol published while they are away\n"
            "  --seed N (1) --json\n"
            "exit: 0 done, 1 setup error, 2 incomplete (deadline, signal, publisher lost)\n");
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_PATH, OPT_CONNS, OPT_SYMBOLS, OPT_PREFIX, OPT_LIST, OPT_PER, OPT_DIST, OPT_RATE,
    OPT_DURATION, OPT_WARMUP, OPT_RAMP, OPT_STEP, OPT_PUBTOK, OPT_SUBTOK, OPT_SOURCES, OPT_BATCH, OPT_PID,
    OPT_STORM, OPT_IDLE, OPT_JSON, OPT_CONC, OPT_TIMEOUT, OPT_SEED, OPT_RING, OPT_DRAIN, OPT_SPIN, OPT_DEFLATE,
    OPT_TLS, OPT_TLS_RESUME, OPT_TLS12, OPT_RSTORM, OPT_RGAP, OPT_PUBPORT, OPT_HSRATE, OPT_HELP
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

int args_parse(int argc, char **argv) {
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
        {"tls", 0, 0, OPT_TLS}, {"tls-resume", 0, 0, OPT_TLS_RESUME}, {"tls12", 0, 0, OPT_TLS12},
        {"recover-storm", 1, 0, OPT_RSTORM}, {"recover-gap", 1, 0, OPT_RGAP}, {"pub-port", 1, 0, OPT_PUBPORT},
        {"hs-rate", 1, 0, OPT_HSRATE}, {"help", 0, 0, OPT_HELP}, {0, 0, 0, 0}};
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
        case OPT_TLS12: O.tls12 = true; break;
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
    if ((O.tls_resume || O.tls12) && !O.tls) {
        fprintf(stderr, "loadgen: --tls-resume and --tls12 need --tls\n");
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
    return -1;
}

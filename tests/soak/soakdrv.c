/* soakdrv.c - churning WebSocket clients for tickgate's soak test.
 *
 * One thread, epoll, non-blocking sockets. Keeps --conns client slots
 * busy for --seconds: each slot connects (from 127.0.0.2.. --sources
 * addresses, so more than one source port range is available), upgrades
 * on /ws, subscribes to 1-3 symbols, reads ticks (answering pings), and
 * after a random lifetime leaves in one of the ways real clients do:
 *
 *   clean       close frame 1000, wait for the server's close and EOF
 *   rst         SO_LINGER 0 then close: the server sees ECONNRESET
 *   fin         close() without a close frame
 *   midframe    half a frame (header announcing 100 bytes, 10 sent), then
 *               FIN or RST
 *   halfopen    stop reading and keep the socket open (the server's
 *               output backs up; its heartbeat should end it) for 20-40 s,
 *               then RST
 *   midhandshake (chosen before the upgrade) part of the HTTP request,
 *               then up to 8 s of silence (past the server's 5 s request
 *               deadline for some), then FIN or RST
 *
 * then the slot reconnects after 0-500 ms. New connections are ramped at
 * --ramp per second. Every --report seconds and at the end it prints one
 * JSON line of counters on stdout; at the end every socket is closed (RST
 * or FIN) and the driver exits 0, or 1 when the server refused connections
 * (ECONNREFUSED: it is gone) or never upgraded anyone.
 *
 *   soakdrv --port P [--host 127.0.0.1] [--conns 1000] [--seconds 60]
 *           [--sources 8] [--seed 1] [--ramp 2000] [--report 5]
 *           [--symbols AAPL,MSFT,...] [--path /ws] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum state { S_IDLE = 0, S_CONNECTING, S_PARTIAL, S_HANDSHAKE, S_OPEN, S_CLOSING, S_HOLD };
enum fate { F_CLEAN = 0, F_RST, F_FIN, F_MIDFRAME, F_HALFOPEN, F_MIDHANDSHAKE, F_COUNT };
static const char *FATE_NAMES[F_COUNT] = {"clean", "rst", "fin", "midframe", "halfopen", "midhandshake"};

struct cx {
    int fd;
    uint8_t st, fate, src;
    bool rst_end;          /* midframe / midhandshake: end with RST (else FIN) */
    bool got_close;        /* the server's close frame arrived */
    uint64_t due;          /* ms: end of the current phase */
    uint16_t hlen;
    char hbuf[1024];       /* HTTP response head */
    /* frame parser (server frames: unmasked) */
    uint8_t fh[10], fhl, fneed, op;
    uint64_t left;
    uint8_t pre[24], prel; /* first bytes of a text payload */
    uint8_t cpl[125], cpll;
};

static struct {
    uint64_t connects, connect_errors, refused_conn, upgraded, refused[6], handshake_eof, sent_partial;
    uint64_t msgs, updates, other_msgs, bytes, pings, ends[F_COUNT];
    uint64_t server_close[8];   /* 1000 1001 1008 1011 1013 4000 other none(EOF/reset) */
    uint64_t closing_timeouts, write_errors, eof_while_open, reset_while_open;
} K;

static const unsigned CLOSE_CODES[6] = {1000, 1001, 1008, 1011, 1013, 4000};

static struct cx *cxs;
static int nconns = 1000, seconds = 60, nsources = 8, ramp = 2000, report_s = 5, epfd;
static uint64_t seed = 1;
static const char *host = "127.0.0.1", *path = "/ws";
static int port;
static char *symbols[256];
static int nsymbols;

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rnd(void) { /* xorshift64* */
    seed ^= seed >> 12;
    seed ^= seed << 25;
    seed ^= seed >> 27;
    return seed * 2685821657736338717ull;
}
static uint64_t rnd_range(uint64_t lo, uint64_t hi) { return lo + rnd() % (hi - lo + 1); }

static void sock_close(struct cx *c, bool rst) {
    if (c->fd < 0)
        return;
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

/* The slot is done: reconnect after a short pause. */
static void finish(struct cx *c, bool rst, uint64_t now) {
    sock_close(c, rst);
    c->st = S_IDLE;
    c->due = now + rnd_range(0, 500);
}

static bool send_all(struct cx *c, const void *p, size_t n) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w == (ssize_t)n)
        return true;
    K.write_errors++;
    return false;
}

static size_t client_frame(uint8_t *out, unsigned op, const void *payload, size_t len, size_t announce) {
    uint8_t key[4];
    uint32_t r = (uint32_t)rnd();
    memcpy(key, &r, 4);
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | op);
    if (announce < 126) {
        out[h++] = (uint8_t)(0x80 | announce);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(announce >> 8);
        out[h++] = (uint8_t)announce;
    }
    memcpy(out + h, key, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = p[i] ^ key[i & 3];
    return h + len;
}

static void start_connect(struct cx *c, uint64_t now) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        K.connect_errors++;
        c->due = now + 1000;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    c->src = (uint8_t)(rnd() % (uint64_t)nsources);
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = 0};
    src.sin_addr.s_addr = htonl(0x7F000002u + c->src);
    if (nsources > 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        close(fd);
        K.connect_errors++;
        c->due = now + 1000;
        return;
    }
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &dst.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&dst, sizeof(dst));
    if (rc < 0 && errno != EINPROGRESS) {
        if (errno == ECONNREFUSED)
            K.refused_conn++;
        K.connect_errors++;
        close(fd);
        c->due = now + 1000;
        return;
    }
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->st = S_CONNECTING;
    c->due = now + 10000; /* connect timeout */
    unsigned r = (unsigned)(rnd() % 100);
    c->fate = r < 5 ? F_MIDHANDSHAKE : r < 40 ? F_CLEAN : r < 60 ? F_RST : r < 75 ? F_FIN : r < 85 ? F_MIDFRAME
                                                                                                  : F_HALFOPEN;
    c->rst_end = rnd() & 1;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    K.connects++;
}

static void send_request(struct cx *c, uint64_t now) {
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, host, port);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (c->fate == F_MIDHANDSHAKE) {
        size_t cut = (size_t)rnd_range(1, (uint64_t)n - 3);
        if (!send_all(c, req, cut))
            return finish(c, true, now);
        K.sent_partial++;
        c->st = S_PARTIAL;
        c->due = now + rnd_range(0, 8000);
        return;
    }
    if (!send_all(c, req, (size_t)n))
        return finish(c, true, now);
    c->st = S_HANDSHAKE;
    c->due = now + 10000;
}

static void subscribe(struct cx *c) {
    char msg[256];
    int k = (int)rnd_range(1, 3);
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"symbols\":[");
    for (int i = 0; i < k; i++)
        n += snprintf(msg + n, sizeof(msg) - (size_t)n, "%s\"%s\"", i ? "," : "", symbols[rnd() % (uint64_t)nsymbols]);
    n += snprintf(msg + n, sizeof(msg) - (size_t)n, "]}");
    uint8_t f[300];
    size_t fl = client_frame(f, 1, msg, (size_t)n, (size_t)n);
    send_all(c, f, fl);
}

static void count_close(const uint8_t *p, size_t n) {
    unsigned code = n >= 2 ? ((unsigned)p[0] << 8 | p[1]) : 0;
    for (int i = 0; i < 6; i++)
        if (code == CLOSE_CODES[i]) {
            K.server_close[i]++;
            return;
        }
    K.server_close[6]++;
}

/* Parses server frames; returns false when the slot was finished. */
static bool on_frames(struct cx *c, const uint8_t *p, size_t n, uint64_t now) {
    while (n) {
        if (c->fhl < 2 || c->fhl < c->fneed) {
            c->fh[c->fhl++] = *p++;
            n--;
            if (c->fhl == 2) {
                uint8_t l7 = c->fh[1] & 0x7F;
                c->fneed = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0));
            }
            if (c->fhl >= 2 && c->fhl == c->fneed) {
                uint64_t len = c->fh[1] & 0x7F;
                if (len == 126)
                    len = (uint64_t)c->fh[2] << 8 | c->fh[3];
                else if (len == 127) {
                    len = 0;
                    for (int i = 0; i < 8; i++)
                        len = len << 8 | c->fh[2 + i];
                }
                c->op = c->fh[0] & 15;
                c->left = len;
                c->prel = 0;
                c->cpll = 0;
                if (len == 0)
                    goto frame_end;
            }
            continue;
        }
        {
            size_t k = n < c->left ? n : (size_t)c->left;
            if (c->op == 1 && c->prel < sizeof(c->pre)) {
                size_t t = k < sizeof(c->pre) - c->prel ? k : sizeof(c->pre) - c->prel;
                memcpy(c->pre + c->prel, p, t);
                c->prel = (uint8_t)(c->prel + t);
            }
            if (c->op >= 8 && c->cpll + k <= sizeof(c->cpl)) {
                memcpy(c->cpl + c->cpll, p, k);
                c->cpll = (uint8_t)(c->cpll + k);
            }
            p += k;
            n -= k;
            c->left -= k;
            if (c->left)
                continue;
        }
    frame_end:
        c->fhl = c->fneed = 0;
        if (c->op == 1) {
            K.msgs++;
            if (c->prel >= 22 && !memcmp(c->pre, "{\"type\":\"price_update\"", 22))
                K.updates++;
            else
                K.other_msgs++;
        } else if (c->op == 9) {
            K.pings++;
            if (c->st == S_OPEN) {
                uint8_t f[140];
                send_all(c, f, client_frame(f, 10, c->cpl, c->cpll, c->cpll));
            }
        } else if (c->op == 8) {
            count_close(c->cpl, c->cpll);
            c->got_close = true;
            if (c->st == S_OPEN) { /* server-initiated close: answer, wait for its FIN */
                uint8_t f[140];
                size_t pl = c->cpll >= 2 ? 2 : 0;
                send_all(c, f, client_frame(f, 8, c->cpl, pl, pl));
                c->st = S_CLOSING;
                c->due = now + 5000;
            }
        }
    }
    return true;
}

static void on_http(struct cx *c, const uint8_t *p, size_t n, uint64_t now) {
    size_t room = sizeof(c->hbuf) - 1 - c->hlen;
    size_t take = n < room ? n : room;
    memcpy(c->hbuf + c->hlen, p, take);
    c->hlen = (uint16_t)(c->hlen + take);
    c->hbuf[c->hlen] = '\0';
    char *end = strstr(c->hbuf, "\r\n\r\n");
    if (!end) {
        if (c->hlen >= sizeof(c->hbuf) - 1)
            finish(c, true, now);
        return;
    }
    int status = atoi(c->hbuf + 9);
    if (status != 101) {
        int i = status == 400 ? 0 : status == 403 ? 1 : status == 429 ? 2 : status == 503 ? 3 : status == 401 ? 4 : 5;
        K.refused[i]++;
        return finish(c, false, now);
    }
    K.upgraded++;
    c->st = S_OPEN;
    c->due = now + rnd_range(2000, 40000); /* lifetime */
    subscribe(c);
    size_t head = (size_t)(end + 4 - c->hbuf);
    /* bytes after the head in this read are frames */
    size_t consumed_before = c->hlen - take; /* bytes of hbuf from earlier reads */
    if (head > consumed_before && head - consumed_before < n)
        on_frames(c, p + (head - consumed_before), n - (head - consumed_before), now);
}

static void on_readable(struct cx *c, uint64_t now) {
    static uint8_t buf[256 * 1024];
    for (int rounds = 0; rounds < 4 && c->fd >= 0; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            if (c->st == S_OPEN)
                K.reset_while_open++;
            if (c->st == S_OPEN || c->st == S_CLOSING)
                K.server_close[7] += !c->got_close;
            return finish(c, false, now);
        }
        if (n == 0) {
            if (c->st == S_HANDSHAKE)
                K.handshake_eof++;
            if (c->st == S_OPEN) {
                K.eof_while_open++;
                K.server_close[7] += !c->got_close;
            }
            if (c->st == S_CLOSING && !c->got_close)
                K.server_close[7]++;
            if (c->st == S_PARTIAL)
                K.ends[F_MIDHANDSHAKE]++; /* the server's request deadline came first */
            return finish(c, c->st == S_PARTIAL ? c->rst_end : false, now);
        }
        K.bytes += (uint64_t)n;
        if (c->st == S_HANDSHAKE)
            on_http(c, buf, (size_t)n, now);
        else if (c->st == S_OPEN || c->st == S_CLOSING)
            on_frames(c, buf, (size_t)n, now);
        /* S_PARTIAL: the server answered early (timeout / error): keep reading */
    }
}

static void leave(struct cx *c, uint64_t now) {
    K.ends[c->fate]++;
    switch (c->fate) {
    case F_CLEAN: {
        uint8_t f[16];
        uint8_t code[2] = {0x03, 0xE8};
        if (!send_all(c, f, client_frame(f, 8, code, 2, 2)))
            return finish(c, true, now);
        c->st = S_CLOSING;
        c->due = now + 5000;
        return;
    }
    case F_RST:
        return finish(c, true, now);
    case F_FIN:
        return finish(c, false, now);
    case F_MIDFRAME: {
        uint8_t f[32], junk[10] = "0123456789";
        send_all(c, f, client_frame(f, 1, junk, sizeof(junk), 100));
        return finish(c, c->rst_end, now);
    }
    case F_HALFOPEN: {
        struct epoll_event ev = {.events = 0, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->st = S_HOLD;
        c->due = now + rnd_range(20000, 40000);
        return;
    }
    default:
        return finish(c, true, now);
    }
}

static void on_due(struct cx *c, uint64_t now) {
    switch (c->st) {
    case S_CONNECTING:
    case S_HANDSHAKE:
        K.connect_errors++;
        return finish(c, true, now);
    case S_PARTIAL:
        K.ends[F_MIDHANDSHAKE]++;
        return finish(c, c->rst_end, now);
    case S_OPEN:
        return leave(c, now);
    case S_CLOSING:
        K.closing_timeouts++;
        return finish(c, true, now);
    case S_HOLD:
        return finish(c, true, now);
    }
}

static void report(uint64_t t0, uint64_t now, bool final) {
    unsigned st[7] = {0};
    for (int i = 0; i < nconns; i++)
        st[cxs[i].st]++;
    printf("{\"t\":%.1f,\"final\":%s,\"idle\":%u,\"connecting\":%u,\"partial\":%u,\"handshake\":%u,\"open\":%u,"
           "\"closing\":%u,\"holding\":%u,\"connects\":%llu,\"connect_errors\":%llu,\"econnrefused\":%llu,"
           "\"upgraded\":%llu,\"refused\":{\"400\":%llu,\"403\":%llu,\"429\":%llu,\"503\":%llu,\"401\":%llu,\"other\":%llu},"
           "\"handshake_eof\":%llu,\"msgs\":%llu,\"updates\":%llu,\"other_msgs\":%llu,\"bytes\":%llu,\"pings\":%llu,"
           "\"ends\":{",
           (double)(now - t0) / 1000.0, final ? "true" : "false", st[S_IDLE], st[S_CONNECTING], st[S_PARTIAL],
           st[S_HANDSHAKE], st[S_OPEN], st[S_CLOSING], st[S_HOLD], (unsigned long long)K.connects,
           (unsigned long long)K.connect_errors, (unsigned long long)K.refused_conn, (unsigned long long)K.upgraded,
           (unsigned long long)K.refused[0], (unsigned long long)K.refused[1], (unsigned long long)K.refused[2],
           (unsigned long long)K.refused[3], (unsigned long long)K.refused[4], (unsigned long long)K.refused[5],
           (unsigned long long)K.handshake_eof, (unsigned long long)K.msgs, (unsigned long long)K.updates,
           (unsigned long long)K.other_msgs, (unsigned long long)K.bytes, (unsigned long long)K.pings);
    for (int i = 0; i < F_COUNT; i++)
        printf("%s\"%s\":%llu", i ? "," : "", FATE_NAMES[i], (unsigned long long)K.ends[i]);
    printf("},\"server_close\":{\"1000\":%llu,\"1001\":%llu,\"1008\":%llu,\"1011\":%llu,\"1013\":%llu,\"4000\":%llu,"
           "\"other\":%llu,\"none\":%llu},\"closing_timeouts\":%llu,\"write_errors\":%llu,\"eof_while_open\":%llu,"
           "\"reset_while_open\":%llu}\n",
           (unsigned long long)K.server_close[0], (unsigned long long)K.server_close[1],
           (unsigned long long)K.server_close[2], (unsigned long long)K.server_close[3],
           (unsigned long long)K.server_close[4], (unsigned long long)K.server_close[5],
           (unsigned long long)K.server_close[6], (unsigned long long)K.server_close[7],
           (unsigned long long)K.closing_timeouts, (unsigned long long)K.write_errors,
           (unsigned long long)K.eof_while_open, (unsigned long long)K.reset_while_open);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr, "usage: soakdrv --port P [--host H] [--conns N] [--seconds S] [--sources K] [--seed X] "
                    "[--ramp PER_S] [--report S] [--symbols A,B,...] [--path /ws]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *syms = "AAPL,MSFT,GOOGL,GOOG,AMZN,NVDA,META,TSLA,BRK.B,JPM,V,MA,UNH,JNJ,XOM,WMT,PG,HD,CVX,LLY,"
                       "ABBV,MRK,KO,PEP,AVGO,COST,ADBE,CRM,NFLX,AMD,INTC,CSCO,ORCL,QCOM,TXN,IBM,INTU,AMAT,MU,NOW,"
                       "BAC,WFC,GS,MS,C,AXP,BLK,SCHW,PYPL,SQ,DIS,CMCSA,T,VZ,TMUS,NKE,MCD,SBUX,BKNG,ABNB,UBER,LYFT,"
                       "BA,CAT,DE,GE,HON,LMT,RTX,UPS,FDX,PFE,TMO,ABT,DHR,BMY,AMGN,GILD,CVS,MDT,SPY,QQQ,DIA,IWM,GLD,"
                       "SLV,TLT,VTI,SHOP,SNOW,PLTR,COIN,RIVN,F,GM,SONY,TSM,BABA,ASML,SAP,BTC-USD,ETH-USD";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atoi(v);
        else if (!strcmp(a, "--sources")) nsources = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10) * 2654435761u + 1;
        else if (!strcmp(a, "--ramp")) ramp = atoi(v);
        else if (!strcmp(a, "--report")) report_s = atoi(v);
        else if (!strcmp(a, "--symbols")) syms = v;
        else if (!strcmp(a, "--path")) path = v;
        else usage();
        i++;
    }
    if (port <= 0 || nconns <= 0 || seconds <= 0)
        usage();
    char *s = strdup(syms);
    for (char *t = strtok(s, ","); t && nsymbols < 256; t = strtok(NULL, ","))
        symbols[nsymbols++] = t;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nconns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)nconns + 64) {
            fprintf(stderr, "soakdrv: RLIMIT_NOFILE %llu is too low for %d connections\n",
                    (unsigned long long)rl.rlim_cur, nconns);
            return 2;
        }
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    cxs = calloc((size_t)nconns, sizeof(*cxs));
    uint64_t t0 = now_ms(), end = t0 + (uint64_t)seconds * 1000, next_report = t0 + (uint64_t)report_s * 1000;
    for (int i = 0; i < nconns; i++) {
        cxs[i].fd = -1;
        cxs[i].st = S_IDLE;
        cxs[i].due = t0; /* ramped below */
    }
    double credit = 0;
    uint64_t last = t0, last_scan = 0;
    struct epoll_event evs[1024];
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end)
            break;
        int n = epoll_wait(epfd, evs, 1024, 10);
        now = now_ms();
        for (int i = 0; i < n; i++) {
            struct cx *c = evs[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (c->st == S_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    if (err == ECONNREFUSED)
                        K.refused_conn++;
                    K.connect_errors++;
                    finish(c, false, now);
                    c->due = now + 1000;
                    continue;
                }
                if (evs[i].events & EPOLLOUT)
                    send_request(c, now);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c, now);
        }
        credit += (double)(now - last) * ramp / 1000.0;
        if (credit > ramp)
            credit = ramp;
        last = now;
        if (now - last_scan >= 10) {
            last_scan = now;
            for (int i = 0; i < nconns; i++) {
                struct cx *c = &cxs[i];
                if (c->due > now)
                    continue;
                if (c->st == S_IDLE) {
                    if (credit < 1)
                        continue;
                    credit -= 1;
                    start_connect(c, now);
                } else {
                    on_due(c, now);
                }
            }
        }
        if (now >= next_report) {
            report(t0, now, false);
            next_report += (uint64_t)report_s * 1000;
        }
    }
    /* The end: every socket goes, half with RST. */
    uint64_t now = now_ms();
    for (int i = 0; i < nconns; i++)
        if (cxs[i].fd >= 0) {
            if (cxs[i].st == S_OPEN)
                K.ends[cxs[i].fate]++;
            sock_close(&cxs[i], i & 1);
            cxs[i].st = S_IDLE;
        }
    report(t0, now, true);
    bool bad = K.refused_conn > 0 || K.upgraded == 0;
    return bad ? 1 : 0;
}

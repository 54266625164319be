/* fuzz_message.c - client input end to end through a real worker: HTTP
 * request parsing and routing, the upgrade with credentials, the WebSocket
 * session, and the JSON protocol (protocol_on_message: parse, gate, rate
 * limit, permissions, suspicious-content scan, subscribe / unsubscribe /
 * authenticate / publish / admin_broadcast, replies, snapshots and tick
 * fan-out through the worker's mailbox).
 *
 * protocol_on_message needs a struct conn owned by a worker of a server, so
 * the harness builds the real thing: config_load + server_init, and one
 * worker started by worker_start() on a real listening socket, except that
 * its thread is not created (uv_thread_create is renamed below) and the
 * harness runs the worker's loop itself, one non-blocking turn at a time.
 * Each input is one client on a real loopback socket: everything the server
 * does is exactly what it does in production, deterministically.
 *
 * Input: [mode][options][4 chunking bytes][payload...]
 *   mode bits 0-1: 0 JSON messages to /ws   1 text messages to /echo
 *                  2 raw WebSocket bytes to /ws after the handshake
 *                  3 raw HTTP bytes (no handshake by the harness)
 *   mode bits 2-4: role of the token in the handshake: 0-1 anonymous,
 *                  2 viewer 3 trader 4 publisher 5 analyst 6 admin 7 super_admin
 *   mode bits 5-6: how the client leaves: close frame, FIN, RST, half-close
 *   mode bit 7:    modes 0/1: all frames in one write (pipelined)
 *   options bit 0: modes 0/1: fragment each message into two frames
 *   payload:       modes 0/1: messages separated by 0xFF (never in UTF-8)
 *
 * Checks, for every input:
 *   - every byte the server sends is well formed: the 101 (or an error
 *     response whose body is the JSON {"error","message"} of docs/protocol.md),
 *     then frames that are unmasked, RSV-free, minimally encoded, never
 *     fragmented; text is UTF-8 and, on /ws, a JSON object with a "type";
 *     close frames carry a valid code and a UTF-8 reason; nothing follows
 *     the server's close frame;
 *   - /echo returns exactly the messages sent, in order;
 *   - the accepted socket has TCP_NODELAY, as the server's listener gives it
 *     (settle() lets no time pass, so Nagle would hold replies back);
 *   - the connection is released (no hang), and afterwards every gauge is
 *     back to zero: connections, WebSocket slots, subscriptions, active
 *     streams, per-role counts;
 *   - ASan/UBSan/LSan on all of it. */
#define uv_thread_create fuzz_thread_create
#include "../src/net/worker.c"
#undef uv_thread_create

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "app/server.h"
#include "app/wiring.h"
#include "auth/jwt.h"
#include "fuzz_common.h"
#include "ws/utf8.h"

#define SECRET "tickgate-fuzz-secret-0123456789abcdef0123"
#define RX_MAX (4u << 20)

int fuzz_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg) {
    (void)tid;
    (void)entry;
    (void)arg;
    return 0; /* the harness drives the worker's loop itself */
}

static struct server srv;
static struct worker *W;
static int port;
static char *tokens[8];

static void die(const char *what) {
    perror(what);
    abort();
}

static void init(void) {
    static bool done;
    if (done)
        return;
    done = true;
    signal(SIGPIPE, SIG_IGN);
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "TICKGATE_", 9))
            abort(); /* the harness must run without TICKGATE_* variables */
    char *argv[] = {
        "--server.echo_path=/echo",
        "--server.workers=1",
        ("--auth.jwt_secret=" SECRET),
        "--audit.path=",
        "--security.blocks_file=", /* hermetic: no admin blocks from a file in the working directory */
        "--feed.simulator=false",
        "--limits.max_connections_per_ip=100000000",
        "--limits.max_messages_per_minute=1000",
        "--security.critical_violations=1000000",
        "--security.critical_window_s=1",
    };
    if (config_load(&srv.cfg, (int)(sizeof(argv) / sizeof(argv[0])), argv, stderr) != 0)
        abort();
    if (server_init(&srv) != 0)
        abort();
    srv.nworkers = 1;
    srv.workers = calloc(1, sizeof(struct worker));
    W = &srv.workers[0];
    wiring_hub(&srv); /* no engine, no broker: the hub's workers and the user events */
    /* The listener is the server's own (server_listen_socket), with its
     * socket options: accepted sockets inherit TCP_NODELAY from it. A plain
     * socket() here left Nagle on, so a flush that took two sends held the
     * second back until the client's delayed ACK (tens of ms), longer than
     * settle() waits: "echo returned 12 of 13 bytes" on a correct server. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    memcpy(&srv.addr, &a, sizeof(a));
    srv.addrlen = sizeof(a);
    int fd = server_listen_socket(&srv);
    if (fd < 0) {
        errno = -fd;
        die("bind");
    }
    if (getsockname(fd, (struct sockaddr *)&a, &al) < 0)
        die("getsockname");
    memcpy(&srv.addr, &a, sizeof(a)); /* the port picked, as bind_all keeps it */
    port = srv.port = ntohs(a.sin_port);
    server_wire_gateway(&srv);
    struct worker_env env;
    server_worker_env(&srv, &env);
    if (worker_start(W, &env, 0, fd) != 0)
        abort();
    static const char *ROLES[8] = {NULL, NULL, "viewer", "trader", "publisher", "analyst", "admin", "super_admin"};
    for (int i = 2; i < 8; i++) {
        char payload[160];
        snprintf(payload, sizeof(payload), "{\"sub\":\"fuzz-%s\",\"role\":\"%s\",\"exp\":4102444800}", ROLES[i],
                 ROLES[i]);
        tokens[i] = jwt_sign_hs256((const unsigned char *)SECRET, strlen(SECRET), payload);
    }
}

static void pump(int turns) {
    for (int i = 0; i < turns; i++)
        uv_run(&W->loop, UV_RUN_NOWAIT);
}

/* ---- the client's view --------------------------------------------------- */

struct client {
    int fd;
    bool json;          /* /ws (JSON endpoint) */
    bool raw_http;      /* mode 3: no expectations about a handshake */
    bool head_request;  /* mode 3 and the first request is HEAD */
    uint8_t *rx;
    size_t rx_len, rx_cap, parsed;
    bool head_done;     /* the HTTP response head was checked */
    bool upgraded;      /* it was a 101 */
    bool closed_by_server;  /* EOF or reset seen */
    bool close_frame_seen;
    bool ack_seen;      /* "connected" (JSON) */
    /* echo bookkeeping */
    uint8_t *sent_echo;
    size_t sent_len, echo_pos;
};

static void rx_drain(struct client *c) {
    for (;;) {
        if (c->rx_len == c->rx_cap) {
            if (c->rx_cap >= RX_MAX) {
                uint8_t junk[65536];
                ssize_t n = recv(c->fd, junk, sizeof(junk), 0);
                if (n <= 0) {
                    if (n == 0 || (errno != EAGAIN && errno != EINTR))
                        c->closed_by_server = true;
                    return;
                }
                continue;
            }
            c->rx_cap = c->rx_cap ? c->rx_cap * 2 : 65536;
            c->rx = realloc(c->rx, c->rx_cap);
        }
        ssize_t n = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
        if (n > 0) {
            c->rx_len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            c->closed_by_server = true;
        return;
    }
}

static const char *find_crlf2(const uint8_t *p, size_t n) {
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return (const char *)p + i;
    return NULL;
}

/* Checks an HTTP response head and (error) body at rx[parsed]. */
static void check_http(struct client *c) {
    const uint8_t *p = c->rx + c->parsed;
    size_t n = c->rx_len - c->parsed;
    const char *end = find_crlf2(p, n);
    if (!end) {
        FUZZ_CHECK(n < 16384, "response head over 16 KiB");
        return;
    }
    size_t hl = (size_t)(end - (const char *)p) + 4;
    FUZZ_CHECK(hl > 12 && !memcmp(p, "HTTP/1.1 ", 9), "bad status line: %.40s", (const char *)p);
    int status = atoi((const char *)p + 9);
    FUZZ_CHECK(status >= 100 && status < 600, "status %d", status);
    if (status == 101) {
        c->head_done = c->upgraded = true;
        c->parsed += hl;
        return;
    }
    /* Content-Length, then (for errors) the JSON body. */
    char *head = strndup((const char *)p, hl);
    char *cl = strcasestr(head, "\r\nContent-Length:");
    FUZZ_CHECK(cl != NULL, "response without Content-Length: %.200s", head);
    size_t blen = (size_t)strtoul(cl + 17, NULL, 10);
    bool json_type = strcasestr(head, "\r\nContent-Type: application/json") != NULL;
    free(head);
    if (c->head_request) {
        c->head_done = true;
        c->parsed = c->rx_len; /* HEAD: no body; stop checking */
        return;
    }
    if (n < hl + blen)
        return; /* wait for the body */
    if (status >= 400) {
        FUZZ_CHECK(json_type, "error response %d is not JSON", status);
        json_error_t je;
        json_t *o = json_loadb((const char *)p + hl, blen, 0, &je);
        FUZZ_CHECK(o && json_is_string(json_object_get(o, "error")) && json_is_string(json_object_get(o, "message")),
                   "error body of %d is not {\"error\",\"message\"}: %.*s", status, (int)(blen < 300 ? blen : 300),
                   (const char *)p + hl);
        json_decref(o);
    }
    c->head_done = true;
    c->parsed += hl + blen;
    /* keep-alive responses may follow (mode 3): only the first is checked */
    if (c->raw_http)
        c->parsed = c->rx_len;
}

static void check_frames(struct client *c) {
    for (;;) {
        const uint8_t *p = c->rx + c->parsed;
        size_t n = c->rx_len - c->parsed;
        if (n < 2)
            return;
        FUZZ_CHECK(!c->close_frame_seen, "the server sent a frame after its close frame");
        uint8_t b0 = p[0], b1 = p[1];
        unsigned op = b0 & 15;
        FUZZ_CHECK(!(b1 & 0x80), "server frame is masked");
        FUZZ_CHECK(!(b0 & 0x70), "server frame with RSV bits");
        FUZZ_CHECK(b0 & 0x80, "server fragmented a frame (op %u)", op);
        FUZZ_CHECK(op == 1 || op == 8 || op == 9 || op == 10 || (op == 2 && !c->json), "server opcode %u", op);
        size_t hl = 2;
        uint64_t len = b1 & 0x7F;
        if (len == 126) {
            if (n < 4)
                return;
            len = (uint64_t)p[2] << 8 | p[3];
            FUZZ_CHECK(len >= 126, "non-minimal 16-bit length");
            hl = 4;
        } else if (len == 127) {
            if (n < 10)
                return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            FUZZ_CHECK(len > 0xFFFF && !(len >> 63), "bad 64-bit length");
            hl = 10;
        }
        FUZZ_CHECK(op < 8 || len <= 125, "control frame of %llu bytes", (unsigned long long)len);
        if (n - hl < len)
            return;
        const uint8_t *pl = p + hl;
        if (op == 1) {
            FUZZ_CHECK(utf8_valid(pl, (size_t)len), "server text frame is not UTF-8");
            if (c->json) {
                json_t *o = json_loadb((const char *)pl, (size_t)len, 0, NULL);
                FUZZ_CHECK(json_is_object(o) && json_is_string(json_object_get(o, "type")),
                           "server message is not a JSON object with a type: %.*s", (int)(len < 300 ? len : 300),
                           (const char *)pl);
                if (!c->ack_seen)
                    FUZZ_CHECK(!strcmp(json_string_value(json_object_get(o, "type")), "connected"),
                               "first message is not 'connected'");
                c->ack_seen = true;
                json_decref(o);
            }
        }
        if ((op == 1 || op == 2) && !c->json && c->sent_echo) {
            FUZZ_CHECK(c->echo_pos + len <= c->sent_len && !memcmp(c->sent_echo + c->echo_pos, pl, (size_t)len),
                       "echo returned bytes that were not sent (at %zu, %llu bytes)", c->echo_pos,
                       (unsigned long long)len);
            c->echo_pos += (size_t)len;
        }
        if (op == 8) {
            FUZZ_CHECK(len != 1, "server close frame of 1 byte");
            if (len >= 2) {
                unsigned code = (unsigned)pl[0] << 8 | pl[1];
                FUZZ_CHECK(ws_close_code_valid(code), "server close code %u", code);
                FUZZ_CHECK(utf8_valid(pl + 2, (size_t)len - 2), "server close reason not UTF-8");
            }
            c->close_frame_seen = true;
        }
        c->parsed += hl + (size_t)len;
    }
}

static void client_check(struct client *c) {
    rx_drain(c);
    if (c->raw_http && c->head_done)
        return; /* mode 3: only the first response is checked */
    if (!c->head_done)
        check_http(c);
    if (c->head_done && c->upgraded)
        check_frames(c);
}

/* Writes everything (pumping the server when the socket is full). False
 * when the server stopped taking bytes. */
static bool client_send(struct client *c, const uint8_t *p, size_t n) {
    int stalls = 0;
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            stalls = 0;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        pump(2);
        client_check(c);
        if (++stalls > 200)
            return false;
    }
    return true;
}

static void settle(struct client *c) {
    pump(4);
    client_check(c);
}

/* A masked client frame. */
static size_t build_frame(uint8_t *out, unsigned op, bool fin, const uint8_t *p, size_t len, uint32_t seed) {
    uint8_t key[4] = {(uint8_t)(seed * 7 + 1), (uint8_t)(seed * 13 + 2), (uint8_t)(seed * 29 + 3), (uint8_t)(seed + 4)};
    size_t hl = ws_header_encode(out, op, fin, len, key);
    for (size_t i = 0; i < len; i++)
        out[hl + i] = p[i] ^ key[i & 3];
    return hl + len;
}

static bool handshake(struct client *c, const char *path, int role) {
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     path, tokens[role] ? "Authorization: Bearer " : "", tokens[role] ? tokens[role] : "",
                     tokens[role] ? "\r\n" : "");
    if (!client_send(c, (const uint8_t *)req, (size_t)n))
        return false;
    for (int i = 0; i < 50 && !c->head_done; i++)
        settle(c);
    FUZZ_CHECK(c->head_done, "no answer to the handshake");
    FUZZ_CHECK(c->upgraded, "handshake refused: %.200s", (const char *)c->rx);
    FUZZ_CHECK(memmem(c->rx, c->parsed, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n", 54) != NULL,
               "wrong Sec-WebSocket-Accept: %.200s", (const char *)c->rx);
    if (c->json)
        for (int i = 0; i < 50 && !c->ack_seen; i++)
            settle(c);
    FUZZ_CHECK(!c->json || c->ack_seen, "no 'connected' message");
    return true;
}

static void send_messages(struct client *c, const uint8_t *p, size_t n, bool coalesce, bool fragment) {
    uint8_t *wire = malloc(2 * n + 64 * (n + 1) + 64);
    size_t wl = 0;
    uint32_t seed = 0;
    if (!c->json) {
        c->sent_echo = malloc(n + 1);
        c->sent_len = 0;
    }
    size_t s = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != 0xFF)
            continue;
        const uint8_t *m = p + s;
        size_t ml = i - s;
        s = i + 1;
        if (!c->json) {
            /* only what the echo endpoint must give back: valid UTF-8 */
            if (!utf8_valid(m, ml))
                continue;
            memcpy(c->sent_echo + c->sent_len, m, ml);
            c->sent_len += ml;
        }
        if (fragment && ml >= 2) {
            size_t half = ml / 2;
            wl += build_frame(wire + wl, WS_OP_TEXT, false, m, half, seed++);
            wl += build_frame(wire + wl, WS_OP_CONT, true, m + half, ml - half, seed++);
        } else {
            wl += build_frame(wire + wl, WS_OP_TEXT, true, m, ml, seed++);
        }
        if (!coalesce) {
            if (!client_send(c, wire, wl))
                break;
            wl = 0;
            settle(c);
        }
    }
    if (wl && client_send(c, wire, wl))
        settle(c);
    free(wire);
}

static void send_raw(struct client *c, const uint8_t *p, size_t n, struct chunker *ch) {
    size_t off = 0;
    while (off < n) {
        size_t k = chunker_next(ch, n - off);
        if (!client_send(c, p + off, k))
            return;
        off += k;
        settle(c);
    }
}

static void leave(struct client *c, int how) {
    switch (how) {
    case 0: { /* close handshake */
        uint8_t f[16];
        uint8_t code[2] = {0x03, 0xE8};
        size_t fl = build_frame(f, WS_OP_CLOSE, true, code, 2, 99);
        if (client_send(c, f, fl))
            for (int i = 0; i < 20 && !c->closed_by_server; i++)
                settle(c);
        close(c->fd);
        break;
    }
    case 1:
        close(c->fd);
        break;
    case 2: {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        close(c->fd);
        break;
    }
    default:
        shutdown(c->fd, SHUT_WR);
        for (int i = 0; i < 20 && !c->closed_by_server; i++)
            settle(c);
        close(c->fd);
        break;
    }
    c->fd = -1;
}

static void wait_released(void) {
    for (int i = 0; i < 2000 && W->nconns; i++)
        pump(1);
    /* A close wait (2 s) or request deadline may be pending: let time pass. */
    for (int i = 0; i < 600 && W->nconns; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pump(1);
    }
    FUZZ_CHECK(W->nconns == 0, "connection not released after the client left (%llu left)",
               (unsigned long long)W->nconns);
    pump(4); /* mails in flight (ticks, gathers) */
    long conns = atomic_load(&srv.gw.connections);
    uint64_t open = atomic_load(&W->stats.ws_open), subs = atomic_load(&W->stats.subscriptions);
    long streams = atomic_load(&srv.hub.active_streams);
    FUZZ_CHECK(conns == 0 && open == 0 && subs == 0 && streams == 0,
               "gauges not back to zero: connections %ld ws_open %llu subscriptions %llu active_streams %ld", conns,
               (unsigned long long)open, (unsigned long long)subs, streams);
    for (int r = 0; r < ROLE_COUNT; r++)
        FUZZ_CHECK(atomic_load(&gateway_worker(W)->stats.by_role[r]) == 0, "role %d gauge %llu", r,
                   (unsigned long long)atomic_load(&gateway_worker(W)->stats.by_role[r]));
    FUZZ_CHECK(W->dirty == NULL && W->timed == NULL, "worker lists not empty");
    /* An input may block 127.0.0.1 (POST /api/admin/block_ip): undo it so
     * the next input is judged on its own. */
    struct ip16 lo;
    if (ip16_parse("127.0.0.1", 9, &lo))
        guard_unblock(&srv.guard, &lo);
    /* Every input is one client from 127.0.0.1 with the same few users:
     * their rate budgets (per identity, kept across reconnects) start full
     * for each input, as a per-connection bucket used to. Every reference
     * was put back with the connection. */
    FUZZ_CHECK(srv.budgets.nidle == (size_t)atomic_load(&srv.budgets.count),
               "rate budgets still referenced after release (%ld held, %zu unused)", atomic_load(&srv.budgets.count),
               srv.budgets.nidle);
    budgets_free(&srv.budgets);
    budgets_init(&srv.budgets, srv.cfg.limits.max_messages_per_minute, srv.cfg.limits.max_connects_per_ip_per_minute);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init();
    if (size < 2)
        return 0;
    uint8_t mode = data[0], opt = data[1];
    data += 2;
    size -= 2;
    struct chunker ch;
    chunker_init(&ch, &data, &size);
    int kind = mode & 3, role = (mode >> 2) & 7, how = (mode >> 5) & 3;
    bool coalesce = mode & 0x80, fragment = opt & 1;

    struct client c;
    memset(&c, 0, sizeof(c));
    /* Non-blocking connect: libFuzzer's SIGALRM (-timeout) would interrupt
     * a blocking one. The kernel completes a loopback handshake by itself. */
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (c.fd < 0 || (connect(c.fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS && errno != EINTR))
        die("connect");
    for (int i = 0;; i++) {
        struct pollfd pfd = {.fd = c.fd, .events = POLLOUT};
        int pr = poll(&pfd, 1, 100);
        if (pr > 0)
            break;
        if ((pr < 0 && errno != EINTR) || i > 100)
            die("connect (poll)");
    }
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
        errno = soerr;
        die("connect");
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pump(2); /* accept */
    FUZZ_CHECK(W->nconns == 1, "connection not accepted");
    uv_os_fd_t sfd;
    int nodelay = 0;
    socklen_t nl = sizeof(nodelay);
    FUZZ_CHECK(uv_fileno((uv_handle_t *)&W->conns->tcp, &sfd) == 0 &&
                   getsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &nl) == 0 && nodelay,
               "accepted socket without TCP_NODELAY (Nagle would delay replies)");

    c.json = kind == 0 || kind == 2;
    c.raw_http = kind == 3;
    if (kind == 3) {
        c.head_request = size >= 4 && !memcmp(data, "HEAD", 4);
        send_raw(&c, data, size, &ch);
    } else if (handshake(&c, kind == 1 ? "/echo" : "/ws", role)) {
        if (kind == 2)
            send_raw(&c, data, size, &ch);
        else
            send_messages(&c, data, size, coalesce, fragment);
        if (kind == 1 && !c.closed_by_server && !c.close_frame_seen) {
            for (int i = 0; i < 20 && c.echo_pos < c.sent_len; i++)
                settle(&c);
            FUZZ_CHECK(c.echo_pos == c.sent_len, "echo returned %zu of %zu bytes", c.echo_pos, c.sent_len);
        }
    }
    settle(&c);
    leave(&c, how);
    wait_released();
    if (getenv("FUZZ_MESSAGE_DEBUG")) { /* what the server answered, for humans */
        fprintf(stderr, "---- %zu bytes from the server:\n", c.rx_len);
        for (size_t i = 0; i < c.rx_len && i < 16384; i++)
            fputc(c.rx[i] == '\n' || (c.rx[i] >= 32 && c.rx[i] < 127) ? c.rx[i] : '.', stderr);
        fputc('\n', stderr);
    }
    free(c.rx);
    free(c.sent_echo);
    return 0;
}

/* server.c - process start-up, signals and orderly shutdown; see server.h. */
#include "app/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "app/ops.h"
#include "app/reload.h"
#include "app/wiring.h"
#include "base/log.h"
#include "gateway/protocol.h"
#include "gateway/hooks.h"
#include "gateway/router.h"
#include "net/conn.h"
#include "ws/deflate.h"
#include "ws/handshake.h"
#include "net/websocket.h"

/* Creates a socket bound to addr; reuseport lets every worker bind one. */
static int bind_socket(const struct sockaddr *addr, socklen_t alen, bool reuseport) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Accepted sockets inherit TCP_NODELAY from their listener: one call
     * here instead of one per connection on the handshake path. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (bind(fd, addr, alen) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int server_listen_socket(struct server *srv) {
    return bind_socket((struct sockaddr *)&srv->addr, srv->addrlen, true);
}

/* Resolves a listen address (key names it in messages) and binds n
 * SO_REUSEPORT sockets into fds. A first plain bind proves the port is not
 * taken by anyone (a second tickgate included) and picks the port when 0
 * was asked for. Sets *port and the bound address. */
static int bind_listen(const char *key, const char *host, int *port, struct sockaddr_storage *addr,
                       socklen_t *addrlen, int n, int *fds) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "tickgate: %s: cannot resolve '%s': %s\n", key, host, gai_strerror(rc));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t alen = (socklen_t)res->ai_addrlen;
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    in_port_t *pp = ss.ss_family == AF_INET6 ? &((struct sockaddr_in6 *)&ss)->sin6_port
                                             : &((struct sockaddr_in *)&ss)->sin_port;
    *pp = htons((uint16_t)*port);
    int probe = bind_socket((struct sockaddr *)&ss, alen, false);
    if (probe < 0) {
        fprintf(stderr, "tickgate: %s: cannot bind %s:%d: %s\n", key, host, *port, strerror(-probe));
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(probe, (struct sockaddr *)&bound, &bl);
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    close(probe);
    *pp = htons((uint16_t)*port);
    memcpy(addr, &ss, sizeof(ss));
    *addrlen = alen;
    for (int i = 0; i < n; i++) {
        fds[i] = bind_socket((struct sockaddr *)&ss, alen, true);
        if (fds[i] < 0) {
            fprintf(stderr, "tickgate: %s: cannot bind %s:%d: %s\n", key, host, *port, strerror(-fds[i]));
            while (i-- > 0)
                close(fds[i]);
            return -1;
        }
    }
    return 0;
}

static int bind_all(struct server *srv, int *fds) {
    return bind_listen("server.listen", srv->host, &srv->port, &srv->addr, &srv->addrlen, srv->nworkers, fds);
}

/* The TLS listener's sockets, when server.tls_listen is set. */
static int bind_tls(struct server *srv, int *fds) {
    struct sockaddr_storage ss;
    socklen_t alen;
    if (config_split_listen(srv->cfg.server.tls_listen, srv->tls_host, sizeof(srv->tls_host), &srv->tls_port) < 0)
        return -1;
    return bind_listen("server.tls_listen", srv->tls_host, &srv->tls_port, &ss, &alen, srv->nworkers, fds);
}

static void on_grace(uv_timer_t *h) {
    struct server *srv = h->data;
    log_warn("shutdown grace expired; closing remaining connections");
    for (int i = 0; i < srv->nworkers; i++)
        worker_post_force_close(&srv->workers[i]);
}

static void begin_shutdown(struct server *srv) {
    if (atomic_exchange(&srv->shutting_down, true))
        return;
    ops_draining(srv);
    for (int i = 0; i < srv->nworkers; i++)
        worker_post_shutdown(&srv->workers[i]);
    /* Force a little before the grace ends so the exit itself fits in it. */
    uint64_t grace = (uint64_t)srv->cfg.server.shutdown_grace_ms;
    uv_timer_start(&srv->grace_timer, on_grace, grace > 300 ? grace - 300 : grace / 2, 0);
}

static void on_signal(uv_signal_t *h, int signum) {
    struct server *srv = h->data;
    if (atomic_load(&srv->shutting_down) && signum == SIGINT) {
        on_grace(&srv->grace_timer); /* second Ctrl-C: don't wait */
        return;
    }
    begin_shutdown(srv);
}

static void on_sighup(uv_signal_t *h, int signum) {
    struct server *srv = h->data;
    reload_run(srv);
}

static int listen_socket_cb(void *ctx) { return server_listen_socket(ctx); }

/* On the worker's thread: its loop has ended. */
static void worker_ended(void *ctx) {
    struct server *srv = ctx;
    atomic_fetch_sub(&srv->workers_running, 1);
    uv_async_send(&srv->worker_done);
}

static void on_worker_done(uv_async_t *h) {
    struct server *srv = h->data;
    if (atomic_load(&srv->workers_running) > 0)
        return;
    sim_stop(&srv->sim);
    broker_stop(&srv->broker);
    redis_engine_stop(&srv->redis);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    uv_close((uv_handle_t *)&srv->grace_timer, NULL);
    uv_close((uv_handle_t *)&srv->guard_timer, NULL);
    uv_close((uv_handle_t *)&srv->worker_done, NULL);
}

static int cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static void on_guard_timer(uv_timer_t *h) {
    struct server *srv = h->data;
    guard_sweep(&srv->guard, (int64_t)time(NULL));
    budget_sweep(&srv->budgets, uv_now(&srv->loop) * 1000000ULL);
    blockfile_flush(&srv->blocks, &srv->guard); /* at most a second after an admin (un)block */
    ops_watchdog(srv);
}

static uint32_t random32(void) {
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&v, 1, sizeof(v), f) != sizeof(v))
        v = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
    if (f)
        fclose(f);
    return v;
}

/* Known-answer checks of the crypto every handshake relies on: the RFC 6455
 * accept key (SHA-1, base64) and an HS256 token signed, verified and, with
 * one signature byte changed, refused. A broken or misconfigured OpenSSL
 * stops the start here, not at the first client; and the first handshake no
 * longer pays for OpenSSL's lazy set-up (its configuration file, algorithm
 * tables, code pages). 0 or -1. */
static int crypto_selftest(FILE *err) {
    char accept[WS_ACCEPT_LEN];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, accept);
    bool ok = strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0;
    static unsigned char key[] = "tickgate-selftest-key";
    struct jwt_verifier v = {.algs = JWT_HS256, .secret = key, .secret_len = sizeof(key) - 1};
    char *t = ok ? jwt_sign_hs256(key, sizeof(key) - 1, "{\"sub\":\"selftest\",\"exp\":4102444800}") : NULL;
    struct jwt_claims cl;
    ok = t && jwt_verify(&v, t, strlen(t), 1700000000, &cl) == JWT_OK && strcmp(cl.sub, "selftest") == 0;
    if (ok) {
        size_t n = strlen(t);
        t[n - 2] = t[n - 2] == 'A' ? 'B' : 'A';
        ok = jwt_verify(&v, t, n, 1700000000, &cl) == JWT_BAD_SIGNATURE;
    }
    free(t);
    if (!ok)
        fprintf(err, "tickgate: crypto self-test failed (SHA-1/HMAC-SHA256 from OpenSSL give wrong answers)\n");
    return ok ? 0 : -1;
}

/* The demo page's directory must exist: a typo would otherwise turn every
 * page into a silent 404. */
static int check_static_dir(const char *dir, FILE *err) {
    struct stat st;
    if (stat(dir, &st) < 0) {
        fprintf(err, "tickgate: server.static_dir: cannot use '%s': %s\n", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(err, "tickgate: server.static_dir: '%s' is not a directory\n", dir);
        return -1;
    }
    return 0;
}

int server_init(struct server *srv) {
    ops_reserve_fds(&srv->cfg); /* before any thread exists */
    srv->instance = random32();
    log_set_level((enum log_level)srv->cfg.log.level);
    log_set_format((enum log_format)srv->cfg.log.format);
    if (crypto_selftest(stderr) < 0)
        return -1;
    if (check_static_dir(srv->cfg.server.static_dir, stderr) < 0)
        return -1;
    if (srv->cfg.server.workers > HUB_MAX_WORKERS) {
        fprintf(stderr, "tickgate: server.workers: at most %d\n", HUB_MAX_WORKERS);
        return -1;
    }
    if (auth_init(&srv->auth, &srv->cfg, stderr) < 0)
        return -1;
    if (symbols_load(&srv->syms, srv->cfg.feed.symbols_file, stderr) < 0)
        goto out_auth;
    ws_deflate_configure(srv->cfg.ws.compression == 1, (size_t)srv->cfg.ws.compression_min_bytes);
    if (hub_init(&srv->hub, &srv->syms, (uint32_t)srv->cfg.feed.history_size) < 0)
        goto out_syms;
    if (cidr_list_parse(&srv->trusted, srv->cfg.server.trusted_proxies, "server.trusted_proxies", stderr) < 0)
        goto out_hub;
    if (guard_init(&srv->guard, &srv->cfg, stderr) < 0)
        goto out_trusted;
    budgets_init(&srv->budgets, srv->cfg.limits.max_messages_per_minute,
                 srv->cfg.limits.max_connects_per_ip_per_minute);
    srv->blocks = (struct blockfile){.path = srv->cfg.security.blocks_file};
    if (blockfile_load(&srv->blocks, &srv->guard, stderr) < 0)
        goto out_budgets;
    if (srv->cfg.server.tls_listen[0] &&
        !(srv->tls = tls_ctx_new(srv->cfg.server.tls_cert, srv->cfg.server.tls_key, stderr)))
        goto out_budgets;
    if (audit_start(&srv->audit, srv->cfg.audit.path, srv->cfg.audit.queue, stderr) < 0)
        goto out_tls;
    ops_start_warnings(srv);
    return 0;
out_tls:
    tls_ctx_free(srv->tls);
    srv->tls = NULL;
out_budgets:
    budgets_free(&srv->budgets);
    guard_free(&srv->guard);
out_trusted:
    cidr_list_free(&srv->trusted);
out_hub:
    hub_free(&srv->hub);
out_syms:
    symbols_free(&srv->syms);
out_auth:
    auth_free(&srv->auth);
    return -1;
}

void server_free(struct server *srv) {
    audit_stop(&srv->audit); /* after the workers: every accepted event is written */
    tls_ctx_free(srv->tls);
    srv->tls = NULL;
    budgets_free(&srv->budgets);
    guard_free(&srv->guard);
    cidr_list_free(&srv->trusted);
    hub_free(&srv->hub);
    symbols_free(&srv->syms);
    auth_free(&srv->auth);
}

void server_wire_gateway(struct server *srv) {
    srv->gw = (struct gateway){
        .cfg = &srv->cfg,
        .auth = &srv->auth,
        .guard = &srv->guard,
        .budgets = &srv->budgets,
        .audit = &srv->audit,
        .trusted = &srv->trusted,
        .syms = &srv->syms,
        .hub = &srv->hub,
        .redis = &srv->redis,
        .broker = &srv->broker,
        .tls = srv->tls,
        .events = &srv->events,
        .workers = srv->workers,
        .nworkers = srv->nworkers,
        .instance = srv->instance,
        .started_ms = srv->started_ms,
        .shutting_down = &srv->shutting_down,
    };
}

void server_worker_env(struct server *srv, struct worker_env *env) {
    *env = (struct worker_env){
        .cfg = &srv->cfg,
        .hooks = &GATEWAY_WORKER_HOOKS,
        .shutting_down = &srv->shutting_down,
        .listen_socket = listen_socket_cb,
        .ended = worker_ended,
        .ctx = srv,
        .upper_ctx = &srv->gw,
    };
}

int server_run(struct server *srv) {
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    if (config_split_listen(srv->cfg.server.listen, srv->host, sizeof(srv->host), &srv->port) < 0)
        return 1;
    srv->nworkers = srv->cfg.server.workers ? srv->cfg.server.workers : cpu_count();
    if (srv->nworkers > HUB_MAX_WORKERS)
        srv->nworkers = HUB_MAX_WORKERS;
    srv->started_ms = (uint64_t)time(NULL) * 1000;
    int *fds = calloc((size_t)srv->nworkers * 2, sizeof(int));
    int *tls_fds = fds + srv->nworkers; /* bound only with server.tls_listen */
    srv->workers = calloc((size_t)srv->nworkers, sizeof(struct worker));
    if (!fds || !srv->workers) {
        fprintf(stderr, "tickgate: out of memory\n");
        goto out_free;
    }
    if (bind_all(srv, fds) < 0)
        goto out_free;
    if (srv->tls && bind_tls(srv, tls_fds) < 0) {
        for (int i = 0; i < srv->nworkers; i++)
            close(fds[i]);
        goto out_free;
    }
    uv_loop_init(&srv->loop);
    uv_async_init(&srv->loop, &srv->worker_done, on_worker_done);
    srv->worker_done.data = srv;
    uv_timer_init(&srv->loop, &srv->grace_timer);
    srv->grace_timer.data = srv;
    uv_timer_init(&srv->loop, &srv->guard_timer);
    srv->guard_timer.data = srv;
    uv_timer_start(&srv->guard_timer, on_guard_timer, 1000, 1000);
    uv_signal_init(&srv->loop, &srv->sigterm);
    uv_signal_init(&srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_init(&srv->loop, &srv->sighup);
    srv->sighup.data = srv;
    uv_signal_start(&srv->sighup, on_sighup, SIGHUP);
    /* The engine exists before any worker can post to it. */
    server_wire_gateway(srv);
    bool engine_ok = wiring_start(srv) == 0;
    int started = 0;
    struct worker_env env;
    server_worker_env(srv, &env);
    for (; engine_ok && started < srv->nworkers; started++) {
        atomic_fetch_add(&srv->workers_running, 1);
        if (srv->tls)
            worker_set_tls(&srv->workers[started], srv->tls, tls_fds[started]);
        int e = worker_start(&srv->workers[started], &env, started, fds[started]);
        if (e < 0) {
            atomic_fetch_sub(&srv->workers_running, 1);
            fprintf(stderr, "tickgate: cannot start worker %d: %s\n", started, strerror(-e));
            for (int j = started; j < srv->nworkers; j++)
                close(fds[j]);
            break;
        }
    }
    int tls_given = engine_ok ? started + (started < srv->nworkers) : 0;
    for (int j = tls_given; srv->tls && j < srv->nworkers; j++)
        close(tls_fds[j]); /* a worker owns its TLS socket from worker_set_tls */
    bool ok = started == srv->nworkers && engine_ok;
    if (ok && srv->cfg.feed.simulator &&
        sim_start(&srv->sim, &srv->loop, &srv->hub, srv->cfg.feed.sim_ticks_per_s, (uint64_t)srv->cfg.feed.sim_seed) < 0) {
        fprintf(stderr, "tickgate: cannot start the simulator: out of memory\n");
        ok = false;
    }
    if (ok) {
        ops_serving(srv); /* the workers listen: /ready and systemd before the line a supervisor awaits */
        const char *fmt = strchr(srv->host, ':') ? "tickgate listening on [%s]:%d\n" : "tickgate listening on %s:%d\n";
        printf(fmt, srv->host, srv->port);
        if (srv->tls)
            printf(strchr(srv->tls_host, ':') ? "tickgate listening on [%s]:%d (tls)\n"
                                              : "tickgate listening on %s:%d (tls)\n",
                   srv->tls_host, srv->tls_port);
        fflush(stdout);
        log_info("%d worker(s); ws %s%s%s", srv->nworkers, srv->cfg.server.ws_path,
                 srv->cfg.server.echo_path[0] ? ", echo " : "", srv->cfg.server.echo_path);
        rc = 0;
    } else {
        rc = 1;
        begin_shutdown(srv);
        if (atomic_load(&srv->workers_running) == 0)
            uv_async_send(&srv->worker_done);
    }
    uv_run(&srv->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < started; i++)
        worker_join(&srv->workers[i]);
    blockfile_flush(&srv->blocks, &srv->guard); /* the last second's (un)blocks */
    uv_loop_close(&srv->loop);
    sim_free(&srv->sim);
    broker_free(&srv->broker);
    redis_engine_free(&srv->redis);
    if (rc == 0)
        log_info("stopped");
out_free:
    free(fds);
    free(srv->workers);
    srv->workers = NULL;
    return rc;
}

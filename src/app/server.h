/* server.h - the process: configuration, workers, signals, shutdown.
 *
 * The main thread owns the server: it binds the listening sockets, starts
 * the workers, and runs its own loop for signals and process-wide timers.
 * Workers read the server's read-only fields freely; the few mutable
 * process-wide figures are atomics with one writer rule each. */
#ifndef TG_SERVER_H
#define TG_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "auth/auth.h"
#include "auth/blockfile.h"
#include "auth/budget.h"
#include "auth/guard.h"
#include "net/clientip.h"
#include "base/audit.h"
#include "base/config.h"
#include "net/tls.h"
#include "net/worker.h"
#include "trade/broker.h"
#include "cluster/engine.h"
#include "feed/simulator.h"
#include "gateway/gateway.h"
#include "pubsub/hub.h"
#include "pubsub/symbols.h"
#include "pubsub/userevents.h"

struct server {
    struct config cfg;             /* read-only after start */
    int nworkers;
    struct worker *workers;        /* nworkers, owned by the main thread */
    uv_loop_t loop;                /* main thread's loop */
    uv_signal_t sigterm, sigint, sighup;
    struct auth auth;              /* identity; users table reloadable */
    struct guard guard;            /* per-IP/per-user counts, blocks */
    struct budgets budgets;        /* per-identity message and handshake rates */
    struct blockfile blocks;       /* admin blocks kept across restarts; main thread */
    struct audit audit;            /* audit log writer */
    struct cidr_list trusted;      /* server.trusted_proxies, read-only */
    uv_timer_t guard_timer;        /* expires blocks, drops idle entries */
    struct symbol_table syms;      /* read-only after start */
    struct hub hub;                /* per-symbol state, fan-out */
    struct user_events events;     /* per-user messages, wired at start */
    struct simulator sim;          /* runs on the main loop */
    struct redis_engine redis;     /* optional engine, on the main loop */
    struct broker broker;          /* orders and paper fills, on the main loop */
    struct gateway gw;             /* the gateway's view of the above (server_run) */
    uv_timer_t grace_timer;
    uv_async_t worker_done;        /* a worker's loop ended */
    atomic_int workers_running;
    atomic_bool shutting_down;     /* set once by the main thread */
    char host[256];
    int port;                      /* actual port (after port 0) */
    struct sockaddr_storage addr;  /* bound address, read-only after start */
    socklen_t addrlen;
    struct tls_ctx *tls;           /* server.tls_listen's certificate; NULL = no TLS listener */
    char tls_host[256];
    int tls_port;                  /* actual TLS port (after port 0) */
    uint64_t started_ms;           /* wall clock at start */
    uint32_t instance;             /* random per process: unique client ids */
    int argc;                      /* the command line's configuration flags, */
    char **argv;                   /* read again by a reload (app/reload.h) */
};

/* Loads everything the configuration names (secrets, users, symbols).
 * 0, or -1 after a message naming the key to stderr. */
int server_init(struct server *srv);

/* Releases what server_init loaded. */
void server_free(struct server *srv);

/* Binds, starts workers, prints the listening line and runs until shutdown
 * completes. Returns the process exit code. */
int server_run(struct server *srv);

/* Fills srv->gw, the gateway's view of the server's rooms (server_run;
 * a harness that runs a worker without server_run). */
void server_wire_gateway(struct server *srv);

/* What each worker is started with. */
void server_worker_env(struct server *srv, struct worker_env *env);

/* A new SO_REUSEPORT socket bound to the listen address (a worker
 * reopening its listener). fd or -errno. Any thread. */
int server_listen_socket(struct server *srv);

#endif

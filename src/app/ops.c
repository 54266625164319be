/* ops.c - start warnings, readiness and watchdog; see ops.h. */
#include "app/ops.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/sd_notify.h"
#include "app/server.h"
#include "base/log.h"

#define WORKER_STALL_MS 2000 /* as /health's workers check */
#define FD_RESERVE_MAX (1 << 20) /* 8 MiB of file table at most */

void ops_reserve_fds(const struct config *cfg) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    uint64_t want = (uint64_t)cfg->limits.max_connections + 256; /* listeners, Redis, files */
    if (rl.rlim_cur != RLIM_INFINITY && want > (uint64_t)rl.rlim_cur)
        want = (uint64_t)rl.rlim_cur;
    if (want > FD_RESERVE_MAX)
        want = FD_RESERVE_MAX;
    if (want <= 256) /* the table's first size covers it */
        return;
    int base = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (base < 0)
        return;
    int high = fcntl(base, F_DUPFD_CLOEXEC, (int)want - 1); /* the table grows to hold it */
    if (high >= 0)
        close(high);
    close(base);
}

void ops_start_warnings(struct server *srv) {
    const struct config *cfg = &srv->cfg;
    if (!srv->auth.jwt.secret_len && !srv->auth.jwt.pub)
        log_warn("auth: no auth.jwt_secret, auth.jwt_secret_file or auth.jwt_public_key_file: every JWT will be "
                 "refused (401 invalid_token); %s",
                 cfg->auth.allow_anonymous ? "only anonymous clients and API keys can connect"
                                           : "only API keys can connect");
    char index[4096];
    struct stat st;
    snprintf(index, sizeof(index), "%s/index.html", cfg->server.static_dir);
    if (stat(index, &st) < 0)
        log_warn("server.static_dir: %s has no index.html: / answers 404", cfg->server.static_dir);
}

void ops_serving(struct server *srv) {
    atomic_store(&srv->gw.serving, true);
    char state[128];
    snprintf(state, sizeof(state), "READY=1\nMAINPID=%ld\nSTATUS=listening on port %d", (long)getpid(), srv->port);
    sd_notify_send(state);
}

void ops_draining(struct server *srv) {
    char grace[24];
    snprintf(grace, sizeof(grace), "%d", srv->cfg.server.shutdown_grace_ms);
    log_event(LOG_INFO, "draining: /ready 503, clients told to reconnect", "shutdown_grace_ms", grace, NULL);
    sd_notify_send("STOPPING=1\nSTATUS=draining");
}

void ops_watchdog(struct server *srv) {
    static uint64_t period;
    static bool asked;
    if (!asked) {
        period = sd_watchdog_ms();
        asked = true;
    }
    if (!period)
        return;
    uint64_t now = uv_hrtime() / 1000000;
    for (int i = 0; i < srv->nworkers; i++)
        if (atomic_load_explicit(&srv->workers[i].heartbeat_ms, memory_order_relaxed) + WORKER_STALL_MS < now)
            return; /* a stuck worker: let systemd's watchdog restart us */
    sd_notify_send("WATCHDOG=1");
}

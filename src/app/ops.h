/* ops.h - what the process tells its operator beyond serving: warnings at
 * start about a configuration that runs but will surprise, readiness and
 * watchdog pings to systemd (app/sd_notify.h). Main thread. */
#ifndef TG_OPS_H
#define TG_OPS_H

struct config;
struct server;

/* Grows the process's file table now to hold the connections the
 * configuration allows (max_connections + 256, at most RLIMIT_NOFILE and
 * 2^20 descriptors). The kernel grows it by doubling, and in a threaded
 * process each growth waits for an RCU grace period (10-20 ms measured):
 * the handshake that crossed fd 256, 512, 1024, ... stalled its worker.
 * Called first, while the process has one thread, it waits for nothing.
 * Costs 8 bytes per descriptor (160 KiB for 20,000). */
void ops_reserve_fds(const struct config *cfg);

/* Warns (log, warn level) about what starts but will not work as the
 * operator likely expects: no key to verify tokens with, a demo directory
 * without index.html. */
void ops_start_warnings(struct server *srv);

/* Every worker listens: /ready may answer 200 (with Redis, after its first
 * sync) and systemd hears READY=1. */
void ops_serving(struct server *srv);

/* The drain started: STOPPING=1. */
void ops_draining(struct server *srv);

/* From the main loop's one-second sweep: WATCHDOG=1 when systemd asked for
 * a watchdog and every worker's loop turned lately. */
void ops_watchdog(struct server *srv);

#endif

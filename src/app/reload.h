/* reload.h - SIGHUP: the configuration read again and its reloadable
 * parts applied on every worker at once, or not at all (PROTOCOL.md
 * section 15).
 *
 * 1. The configuration is loaded again as at start (the same file,
 *    environment and command line) and checked as a whole.
 * 2. Each part (RELOAD_PARTS in reload.c) prepares what it would install
 *    (reads the users file, builds the roles table, ...) or says why not;
 *    nothing live is touched.
 * 3. Only when every part is ready are the workers parked: each gets a
 *    mail that waits on a barrier, so each stops between two loop turns.
 *    With all parked, the main thread commits every part (a commit cannot
 *    fail) and lets them go; they re-arm timers whose period changed.
 * 4. Any failure in 1-2, a worker mailbox that refuses the mail, or a
 *    worker that does not park within RELOAD_PARK_MS (a stalled loop)
 *    discards what was staged: nothing changed, logged at error with the
 *    reason. Keys that changed but no part reloads (server.listen, ...)
 *    are logged at warn: they take effect at the next start.
 *
 * Adding a part: one struct reload_part in RELOAD_PARTS naming the keys
 * it takes (section prefixes "throttle." or whole names
 * "server.tls_cert_file"), prepare
 * (validate and build from next; may read files), commit (swap in; main
 * thread, workers parked; may leave the swapped-out state in *staged) and
 * discard (frees *staged, after commit or instead of it). */
#ifndef TG_RELOAD_H
#define TG_RELOAD_H

#include <stdio.h>

struct server;
struct config;

#define RELOAD_PARK_MS 2000

struct reload_part {
    const char *name;
    const char *keys;   /* comma list of "section." prefixes and full key names it applies */
    int (*prepare)(struct server *srv, const struct config *next, void **staged, FILE *err);
    void (*commit)(struct server *srv, struct config *next, void **staged);
    void (*discard)(void *staged);
};

/* Reloads (main thread, on SIGHUP). 0 applied, -1 nothing changed. */
int reload_run(struct server *srv);

#endif

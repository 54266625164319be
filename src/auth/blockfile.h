/* blockfile.h - admin IP blocks kept across restarts (security.blocks_file).
 *
 * Blocks an admin makes through the API (permanent or timed) are written to
 * a small text file, so they survive a restart without Redis; automatic
 * blocks (short by design), configured ones (the configuration is their
 * record) and blocks learnt from other nodes (Redis is theirs) are not.
 * One line per block, "ADDRESS UNTIL" (UNTIL: Unix seconds, 0 = until
 * unblocked), at most BLOCKFILE_MAX lines. The file is rewritten whole into
 * PATH.tmp and renamed over PATH, so a crash leaves the old or the new list,
 * never half of one. Only the main thread touches it. */
#ifndef TG_BLOCKFILE_H
#define TG_BLOCKFILE_H

#include <stdbool.h>
#include <stdio.h>

struct guard;

#define BLOCKFILE_MAX 65536

struct blockfile {
    const char *path;           /* security.blocks_file; "" = off; the config owns it */
    bool failing;               /* the last write failed (logged once per streak) */
};

/* Restores the blocks saved in bf->path into g (a missing file is an empty
 * list; expired entries are dropped). 0, or -1 after naming the key, the
 * file and the line in err: a list we cannot read is not silently empty. */
int blockfile_load(struct blockfile *bf, struct guard *g, FILE *err);

/* Rewrites the file when g's saved blocks changed since the last write. A
 * failure is logged once, and retried at every later call until it works. */
void blockfile_flush(struct blockfile *bf, struct guard *g);

#endif

/* blockfile.c - admin IP blocks kept across restarts; see blockfile.h. */
#include "auth/blockfile.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/guard.h"
#include "base/log.h"

#define LINE_MAX_LEN 128 /* an address (<= 45) and a number, with room */

/* Parses "ADDRESS UNTIL\n" into ip and until. False when malformed. */
static bool parse_line(char *line, struct ip16 *ip, int64_t *until) {
    size_t n = strcspn(line, "\r\n");
    line[n] = '\0';
    char *sp = strchr(line, ' ');
    if (!sp || !ip16_parse(line, (size_t)(sp - line), ip))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(sp + 1, &end, 10);
    if (errno || end == sp + 1 || *end || v < 0)
        return false;
    *until = v;
    return true;
}

int blockfile_load(struct blockfile *bf, struct guard *g, FILE *err) {
    if (!bf->path[0])
        return 0;
    FILE *f = fopen(bf->path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        fprintf(err, "tickgate: security.blocks_file: cannot read %s: %s\n", bf->path, strerror(errno));
        return -1;
    }
    char line[LINE_MAX_LEN];
    int64_t now = (int64_t)time(NULL);
    int rc = 0, lineno = 0, kept = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        struct ip16 ip;
        int64_t until;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(err, "tickgate: security.blocks_file: %s line %d: longer than %d bytes\n", bf->path, lineno,
                    LINE_MAX_LEN - 2);
            rc = -1;
            break;
        }
        if (line[0] == '#' || strcspn(line, "\r\n") == 0)
            continue;
        if (!parse_line(line, &ip, &until)) {
            fprintf(err, "tickgate: security.blocks_file: %s line %d: expected \"ADDRESS UNTIL\"\n", bf->path,
                    lineno);
            rc = -1;
            break;
        }
        if (kept == BLOCKFILE_MAX) {
            fprintf(err, "tickgate: security.blocks_file: %s: more than %d blocks\n", bf->path, BLOCKFILE_MAX);
            rc = -1;
            break;
        }
        if (until == 0 || until > now) {
            guard_block_saved(g, &ip, until ? until - now : 0);
            kept++;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(err, "tickgate: security.blocks_file: cannot read %s: %s\n", bf->path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    if (rc == 0 && kept)
        log_info("restored %d admin IP block(s) from %s", kept, bf->path);
    return rc;
}

/* Writes n blocks to path.tmp, then renames it over path. 0 or -1 (errno). */
static int write_atomically(const char *path, const struct guard_saved *v, size_t n) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp)
        return -1;
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto out_free;
    fprintf(f, "# tickgate admin IP blocks: ADDRESS UNTIL (Unix seconds, 0 = until unblocked)\n");
    for (size_t i = 0; i < n; i++) {
        char ip[64];
        ip16_format(&v[i].ip, ip, sizeof(ip));
        fprintf(f, "%s %lld\n", ip, (long long)v[i].until);
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        errno = e;
        goto out_unlink;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        goto out_unlink;
    free(tmp);
    return 0;
out_unlink: {
    int e = errno;
    unlink(tmp);
    errno = e;
}
out_free:
    free(tmp);
    return -1;
}

void blockfile_flush(struct blockfile *bf, struct guard *g) {
    if (!bf->path[0] || !(atomic_load(&g->saved_dirty) || bf->failing))
        return;
    /* Count, then copy what is there at the copy (a change in between is
     * in the copy, or marks the list dirty again). */
    size_t n = guard_saved_blocks(g, NULL, 0), cap = n + 16;
    struct guard_saved *v = malloc(cap * sizeof(*v));
    int rc = -1, err = ENOMEM;
    if (v) {
        n = guard_saved_blocks(g, v, cap);
        if (n > cap) /* grew meanwhile: the next call writes it all */
            atomic_store(&g->saved_dirty, true);
        size_t w = n < cap ? n : cap;
        if (w > BLOCKFILE_MAX) {
            log_error("security.blocks_file: %zu admin blocks; only %d are kept across restarts", w, BLOCKFILE_MAX);
            w = BLOCKFILE_MAX;
        }
        rc = write_atomically(bf->path, v, w);
        err = errno;
        free(v);
    }
    if (rc < 0 && !bf->failing)
        log_rl(LOG_ERROR, "security.blocks_file: cannot write %s: %s; admin blocks are not saved (retrying)", bf->path,
                  strerror(err));
    else if (rc == 0 && bf->failing)
        log_info("security.blocks_file: %s written again", bf->path);
    bf->failing = rc < 0;
}

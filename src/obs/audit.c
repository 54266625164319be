/* audit.c - audit log writer; see audit.h. */
#include "obs/audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/log.h"

#define AUDIT_FLUSH_MS 50

static void writer(void *arg) {
    struct audit *a = arg;
    char **batch = malloc(sizeof(char *) * a->cap);
    uv_mutex_lock(&a->lock);
    for (;;) {
        /* Wake every AUDIT_FLUSH_MS, or early when the queue fills up or at
         * stop: one wake-up per batch, not per event, so a busy worker
         * sharing the core is not interrupted for each line. */
        if (a->count < a->cap / 2 && !a->stopping)
            uv_cond_timedwait(&a->cond, &a->lock, AUDIT_FLUSH_MS * 1000000ull);
        if (a->count == 0 && a->stopping)
            break;
        uint32_t n = a->count;
        for (uint32_t i = 0; i < n; i++)
            batch[i] = a->ring[(a->head + i) % a->cap];
        a->head = (a->head + n) % a->cap;
        a->count = 0;
        uv_mutex_unlock(&a->lock);
        for (uint32_t i = 0; i < n; i++) {
            fputs(batch[i], a->f);
            free(batch[i]);
        }
        fflush(a->f);
        atomic_fetch_add(&a->written, n);
        uv_mutex_lock(&a->lock);
    }
    uv_mutex_unlock(&a->lock);
    free(batch);
}

int audit_start(struct audit *a, const char *path, int queue, FILE *err) {
    memset(a, 0, sizeof(*a));
    if (!path || !*path)
        return 0;
    a->f = fopen(path, "a");
    if (!a->f) {
        fprintf(err, "tickgate: audit.path: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    a->cap = (uint32_t)queue;
    a->ring = calloc(a->cap, sizeof(char *));
    if (!a->ring) {
        fclose(a->f);
        return -1;
    }
    uv_mutex_init(&a->lock);
    uv_cond_init(&a->cond);
    if (uv_thread_create(&a->thread, writer, a) != 0) {
        uv_cond_destroy(&a->cond);
        uv_mutex_destroy(&a->lock);
        free(a->ring);
        fclose(a->f);
        return -1;
    }
    a->on = true;
    return 0;
}

void audit_event(struct audit *a, const char *event, const char *client_id, const char *user_id, const char *ip,
                 json_t *details) {
    if (!a->on) {
        json_decref(details);
        return;
    }
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
    json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:o}", "ts", ts, "event", event, "client_id", client_id,
                          "user_id", user_id, "ip", ip, "details", details ? details : json_object());
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    size_t l = line ? strlen(line) : 0;
    char *nl = line ? realloc(line, l + 2) : NULL;
    if (!nl) {
        free(line);
        atomic_fetch_add(&a->dropped, 1);
        return;
    }
    nl[l] = '\n';
    nl[l + 1] = '\0';
    uv_mutex_lock(&a->lock);
    if (a->count == a->cap || a->stopping) {
        uv_mutex_unlock(&a->lock);
        free(nl);
        atomic_fetch_add(&a->dropped, 1);
        return;
    }
    a->ring[(a->head + a->count) % a->cap] = nl;
    a->count++;
    if (a->count == a->cap / 2)
        uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
}

void audit_stop(struct audit *a) {
    if (!a->on)
        return;
    uv_mutex_lock(&a->lock);
    a->stopping = true;
    uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
    uv_thread_join(&a->thread);
    fclose(a->f);
    uv_cond_destroy(&a->cond);
    uv_mutex_destroy(&a->lock);
    free(a->ring);
    a->on = false;
}

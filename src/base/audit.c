/* audit.c - audit log writer; see audit.h. */
#include "base/audit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "base/jsonw.h"
#include "base/log.h"

#define AUDIT_FLUSH_MS 50

static void writer(void *arg) {
    struct audit *a = arg;
    uv_mutex_lock(&a->lock);
    for (;;) {
        /* Wake every AUDIT_FLUSH_MS, or early when the queue fills up or at
         * stop: one wake-up per batch, not per event, so a busy worker
         * sharing the core is not interrupted for each line. */
        if (a->count < a->cap / 2 && !a->stopping)
            uv_cond_timedwait(&a->cond, &a->lock, AUDIT_FLUSH_MS * 1000000ull);
        if (a->count == 0 && a->stopping)
            break;
        /* Take the whole queue by swapping arrays; events always fill from
         * slot 0, so only as many pages are touched as a backlog needs. */
        uint32_t n = a->count;
        char **batch = a->ring;
        a->ring = a->spare;
        a->spare = batch;
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
    a->spare = calloc(a->cap, sizeof(char *));
    if (!a->ring || !a->spare) {
        free(a->ring);
        free(a->spare);
        fclose(a->f);
        return -1;
    }
    uv_mutex_init(&a->lock);
    uv_cond_init(&a->cond);
    if (uv_thread_create(&a->thread, writer, a) != 0) {
        uv_cond_destroy(&a->cond);
        uv_mutex_destroy(&a->lock);
        free(a->ring);
        free(a->spare);
        fclose(a->f);
        return -1;
    }
    a->on = true;
    return 0;
}

/* "2026-11-26T13:45:01.123Z" (24 bytes) into out[25]. */
static void format_ts(char *out) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int f[7] = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                (int)(tv.tv_usec / 1000)};
    static const char SEP[] = "--T::.";
    char *p = out;
    for (int i = 0; i < 7; i++) {
        int digits = i == 0 ? 4 : i == 6 ? 3 : 2, v = f[i];
        for (int d = digits - 1; d >= 0; d--, v /= 10)
            p[d] = (char)('0' + v % 10);
        p += digits;
        if (i < 6)
            *p++ = SEP[i];
    }
    *p++ = 'Z';
    *p = '\0';
}

/* The counter for metrics, the time for health: a drop is news for a
 * while, not for ever. */
static void count_drop(struct audit *a) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    atomic_store(&a->last_drop_ms, (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    atomic_fetch_add(&a->dropped, 1);
}

bool audit_dropping(struct audit *a, int64_t now_ms) {
    int64_t last = atomic_load(&a->last_drop_ms);
    return last && now_ms - last < AUDIT_DROP_WINDOW_MS;
}

void audit_event_text(struct audit *a, const char *event, const char *client_id, const char *user_id,
                      const char *ip, const char *details) {
    if (!a->on)
        return;
    char ts[32];
    format_ts(ts);
    if (!details)
        details = "{}";
    size_t dl = strlen(details);
    size_t cap = 80 + sizeof(ts) + jw_str_max(event) + jw_str_max(client_id) + jw_str_max(user_id) +
                 jw_str_max(ip) + dl;
    char *line = malloc(cap);
    if (!line) {
        count_drop(a);
        return;
    }
    struct jw w;
    jw_init(&w, line, cap);
    jw_lit(&w, "{\"ts\":\"");
    jw_raw(&w, ts, strlen(ts));
    jw_lit(&w, "\",\"event\":");
    jw_str(&w, event);
    jw_lit(&w, ",\"client_id\":");
    jw_str(&w, client_id);
    jw_lit(&w, ",\"user_id\":");
    jw_str(&w, user_id);
    jw_lit(&w, ",\"ip\":");
    jw_str(&w, ip);
    jw_lit(&w, ",\"details\":");
    jw_raw(&w, details, dl);
    jw_lit(&w, "}\n");
    jw_raw(&w, "", 1); /* NUL */
    if (w.full) { /* cannot happen: cap covers the worst case */
        free(line);
        count_drop(a);
        return;
    }
    uv_mutex_lock(&a->lock);
    if (a->count == a->cap || a->stopping) {
        uv_mutex_unlock(&a->lock);
        free(line);
        count_drop(a);
        return;
    }
    a->ring[a->count++] = line;
    if (a->count == a->cap / 2)
        uv_cond_signal(&a->cond);
    uv_mutex_unlock(&a->lock);
}

void audit_event(struct audit *a, const char *event, const char *client_id, const char *user_id, const char *ip,
                 json_t *details) {
    if (!a->on) {
        json_decref(details);
        return;
    }
    char *d = details ? json_dumps(details, JSON_COMPACT) : NULL;
    json_decref(details);
    if (details && !d) {
        count_drop(a);
        return;
    }
    audit_event_text(a, event, client_id, user_id, ip, d);
    free(d);
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
    free(a->spare);
    a->on = false;
}

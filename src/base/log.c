/* log.c - leveled log lines to stderr; see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/jsonw.h"

#define LINE_MAX_BYTES 2048

static atomic_int min_level = LOG_INFO;
static atomic_int format = LOG_TEXT;
static _Atomic uint64_t suppressed_total;
static const char *NAMES[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level lvl) { atomic_store(&min_level, (int)lvl); }
void log_set_format(enum log_format fmt) { atomic_store(&format, (int)fmt); }
bool log_enabled(enum log_level lvl) { return (int)lvl >= atomic_load(&min_level); }
uint64_t log_suppressed_total(void) { return atomic_load(&suppressed_total); }

static void stamp(char *out, size_t n) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* The line's start: ts, level and msg. */
static void head(struct jw *w, bool json, const char *ts, enum log_level lvl, const char *msg) {
    if (json) {
        jw_lit(w, "{\"ts\":");
        jw_str(w, ts);
        jw_lit(w, ",\"level\":");
        jw_str(w, NAMES[lvl]);
        jw_lit(w, ",\"msg\":");
        jw_str(w, msg);
    } else {
        jw_raw(w, ts, strlen(ts));
        jw_lit(w, " ");
        jw_raw(w, NAMES[lvl], strlen(NAMES[lvl]));
        jw_lit(w, " ");
        jw_raw(w, msg, strlen(msg));
    }
}

/* Writes one line: msg, then fields (key, value, ..., NULL) from ap when
 * given. One fwrite: lines from threads don't interleave. */
static void emit(enum log_level lvl, const char *msg, va_list *fields) {
    char ts[96], line[LINE_MAX_BYTES];
    stamp(ts, sizeof(ts));
    struct jw w;
    bool json = atomic_load(&format) == LOG_JSON;
    jw_init(&w, line, sizeof(line) - 2); /* room for the newline and a closing brace */
    head(&w, json, ts, lvl, msg);
    const char *k;
    while (fields && (k = va_arg(*fields, const char *)) != NULL) {
        const char *v = va_arg(*fields, const char *);
        if (json) {
            jw_lit(&w, ",");
            jw_str(&w, k);
            jw_lit(&w, ":");
            jw_str(&w, v ? v : "");
        } else {
            jw_lit(&w, " ");
            jw_raw(&w, k, strlen(k));
            jw_lit(&w, "=");
            if (v && *v && !strpbrk(v, " \"=\n"))
                jw_raw(&w, v, strlen(v));
            else
                jw_str(&w, v ? v : "");
        }
    }
    if (w.full) { /* too long for one line: its message, cut */
        char cut[256];
        snprintf(cut, sizeof(cut), "%.200s...", msg);
        jw_init(&w, line, sizeof(line) - 2);
        head(&w, json, ts, lvl, cut);
    }
    if (json)
        line[w.n++] = '}';
    line[w.n++] = '\n';
    fwrite(line, 1, w.n, stderr);
}

static void vlog(enum log_level lvl, const char *suffix, const char *fmt, va_list ap) {
    char msg[1024];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (suffix && n >= 0 && (size_t)n < sizeof(msg))
        snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", suffix);
    emit(lvl, msg, NULL);
}

void log_msg(enum log_level lvl, const char *fmt, ...) {
    if (!log_enabled(lvl))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, NULL, fmt, ap);
    va_end(ap);
}

void log_event(enum log_level lvl, const char *msg, ...) {
    if (!log_enabled(lvl))
        return;
    va_list ap;
    va_start(ap, msg);
    emit(lvl, msg, &ap);
    va_end(ap);
}

void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...) {
    if (!log_enabled(lvl))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1; /* never 0 */
    uint64_t last = atomic_load(&l->last_ms);
    if ((last && now - last < LOG_LIMIT_MS) || !atomic_compare_exchange_strong(&l->last_ms, &last, now)) {
        atomic_fetch_add(&l->suppressed, 1);
        atomic_fetch_add(&suppressed_total, 1);
        return;
    }
    uint64_t n = atomic_exchange(&l->suppressed, 0);
    char suffix[96] = "";
    if (n)
        snprintf(suffix, sizeof(suffix), " (%llu similar lines suppressed in the last %d s)", (unsigned long long)n,
                 LOG_LIMIT_MS / 1000);
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, suffix, fmt, ap);
    va_end(ap);
}

/* log.h - leveled log lines to stderr, safe from any thread.
 *
 * One line per event, text ("TS LEVEL msg k=v ...") or JSON
 * ({"ts":..,"level":..,"msg":..,k:v,...}: log.format); ts is ISO 8601 UTC
 * with milliseconds. A failure that can repeat per request or per command
 * (Redis away, accept errors) is logged through log_limited: one line per
 * LOG_LIMIT_MS per call site, the next one saying how many were
 * suppressed. The audit log is separate (base/audit.h).
 * Never pass a secret (token, API key, JWT secret) to these functions. */
#ifndef TG_LOG_H
#define TG_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_TEXT = 0, LOG_JSON };

#define LOG_LIMIT_MS 10000

void log_set_level(enum log_level lvl);
void log_set_format(enum log_format fmt);
bool log_enabled(enum log_level lvl);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A message with fields: key, value pairs of strings, ended by NULL. In
 * text the fields follow the message as key=value; in JSON they are
 * members of the line's object. */
void log_event(enum log_level lvl, const char *msg, ...) __attribute__((sentinel));

/* One call site's rate limit (static storage, zeroed). */
struct log_limit {
    _Atomic uint64_t last_ms;      /* monotonic ms of the last line written */
    _Atomic uint64_t suppressed;   /* lines dropped since */
};

void log_limited(struct log_limit *l, enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Lines log_limited dropped, process-wide (metrics). */
uint64_t log_suppressed_total(void);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* log_limited with a rate limit of its own at this call site. */
#define log_rl(lvl, ...)                                                                                             \
    do {                                                                                                             \
        static struct log_limit log_rl_site_;                                                                        \
        log_limited(&log_rl_site_, (lvl), __VA_ARGS__);                                                              \
    } while (0)

#endif

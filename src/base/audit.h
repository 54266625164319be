/* audit.h - the audit log: JSON lines written by a dedicated thread.
 *
 * Any thread formats an event into a line and enqueues it (a short lock,
 * no I/O), so no worker ever waits on the disk. The queue is bounded
 * (audit.queue); an event that finds it full is dropped and counted in
 * audit_events_dropped_total. audit_stop() writes every accepted event
 * before it returns. Callers never pass tokens, keys or secrets. */
#ifndef TG_AUDIT_H
#define TG_AUDIT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

struct audit {
    bool on;
    FILE *f;                    /* owned by the writer thread after start */
    uv_thread_t thread;
    uv_mutex_t lock;            /* guards ring, count, stopping */
    uv_cond_t cond;
    char **ring;                /* cap slots: the first count are queued, in order */
    char **spare;               /* the writer's: what it took, swapped with ring */
    uint32_t cap, count;
    bool stopping;
    _Atomic uint64_t written;
    _Atomic uint64_t dropped;
    _Atomic int64_t last_drop_ms;  /* wall ms of the newest drop; 0 = none */
};

/* How long one dropped event keeps /health's audit check "dropping". */
#define AUDIT_DROP_WINDOW_MS 60000

/* True when an event was dropped within AUDIT_DROP_WINDOW_MS of now_ms. */
bool audit_dropping(struct audit *a, int64_t now_ms);

/* Opens path (append) and starts the writer; path "" = off. 0 or -1. */
int audit_start(struct audit *a, const char *path, int queue, FILE *err);

/* Records one event. details (may be NULL) is consumed. ip/client/user may
 * be NULL. */
void audit_event(struct audit *a, const char *event, const char *client_id, const char *user_id, const char *ip,
                 json_t *details);

/* The same with details given as JSON object text (NULL = {}): no JSON
 * tree built, for events on the handshake path. */
void audit_event_text(struct audit *a, const char *event, const char *client_id, const char *user_id,
                      const char *ip, const char *details);

/* Writes everything queued, stops the thread, closes the file. */
void audit_stop(struct audit *a);

#endif

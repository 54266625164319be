/* lanes.h - throttled and delayed delivery (PROTOCOL.md section 14), per
 * worker and per symbol, beside the real-time subscriber lists (subs.h).
 *
 * A lane is one delivery decision shared by its members: every subscriber
 * of the symbol on this worker with the same mode (rate, delayed) is in the
 * same lane, so a thousand throttled viewers cost one decision per tick.
 * Real-time unthrottled subscribers are in no lane: the fan-out's hot path
 * pays one branch (is there any lane for this symbol?) and nothing more.
 *
 * Throttle: a lane of rate N releases at most one frame per 1000/N ms: a
 * frame finding the lane idle goes out at once; later ones replace the one
 * held back (one reference: the newest), which goes out when the period is
 * over (the trailing edge). Nothing stale, nothing queued.
 *
 * Delay line: the hub builds each tick's delayed frame once (the original
 * tick with "delayed":true) and posts it, with its release time (source
 * timestamp + feed.delay_s, see hub.h), to the workers with delayed
 * subscribers. Each such worker keeps one FIFO per symbol of frame
 * references, shared by all its delayed lanes. Bound: the newest frame per
 * feed.delay_resolution_ms slot of release time is kept (a later one in
 * the same slot replaces it, counted), so a line holds at most
 * delay_s * 1000 / resolution + 64 frames; at that cap the newest replaces
 * the last. Releases follow the wall clock, so every node releases a tick
 * at the same moment.
 *
 * Everything here runs on the worker's thread. */
#ifndef TG_LANES_H
#define TG_LANES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pubsub/subs.h"

struct config;
struct outbuf;
struct worker;

#define LANES_MAX 15            /* per symbol per worker: conn_sub.lane is 4 bits, 0 = no lane */
#define LANES_TIMER_MS 5        /* resolution of throttle releases */

struct worker_lanes {
    struct sym_lanes **by_sym;  /* per symbol; NULL = no lane (the common case) */
    struct lane *pending;       /* throttled lanes holding a frame back */
    struct sym_lanes *lines;    /* delay lines holding frames */
    int64_t next_release_ms;    /* earliest head release among lines (wall ms) */
    int64_t delay_ms, slot_ms;  /* feed.delay_s, feed.delay_resolution_ms */
    uint32_t line_cap;          /* frames per delay line, at most */
    _Atomic uint64_t throttled_dropped;   /* frames a throttle replaced (metrics) */
    _Atomic uint64_t delay_conflated;     /* frames a delay line replaced */
    _Atomic uint64_t delayed_subs;        /* gauge: delayed subscriptions */
    _Atomic uint64_t throttled_subs;      /* gauge: throttled subscriptions */
};

/* The worker's lanes for n symbols. 0 or -ENOMEM. */
int lanes_init(struct worker_subs *ws, const struct config *cfg, uint32_t n);
void lanes_free(struct worker_subs *ws);

/* The lane (1..LANES_MAX) of mode m for sym, made when missing; -ENOMEM. */
int lanes_lane(struct worker *w, uint32_t sym, struct sub_mode m);

/* The members of lane of sym (lane from lanes_lane or a conn_sub). */
struct sub_list *lanes_list(struct worker *w, uint32_t sym, int lane);

/* The mode of lane of sym. */
struct sub_mode lanes_mode(struct worker *w, uint32_t sym, int lane);

/* Subscribers of sym in any lane on this worker. */
uint32_t lanes_members(const struct worker *w, uint32_t sym);

/* A member joined lane (already in its list) / left it (already out). The
 * first delayed member of a symbol on this worker asks the hub for delayed
 * frames (and fills the line with the recent ticks still to be released);
 * an empty lane is freed, an empty symbol's line dropped. */
void lanes_joined(struct worker *w, uint32_t sym, int lane);
void lanes_left(struct worker *w, uint32_t sym, int lane);

/* Frees lane of sym when it has no member (a join that failed). */
void lanes_unused(struct worker *w, uint32_t sym, int lane);

/* A real-time frame of sym for the throttled lanes (b borrowed). */
void lanes_on_tick(struct worker *w, struct outbuf *b);

/* A delayed frame (one reference, consumed) due at release_ms (wall). */
void lanes_on_delayed(struct worker *w, struct outbuf *b, int64_t release_ms);

/* Releases what is due; true while anything waits (the timer must run). */
bool lanes_timer(struct worker *w);

static inline bool lanes_has(const struct worker_subs *ws, uint32_t sym) { return ws->lanes->by_sym[sym] != NULL; }

#endif

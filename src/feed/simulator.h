/* simulator.h - the built-in price feed: a seeded random walk.
 *
 * Runs on the main thread's loop. Every 10 ms it emits its share of
 * feed.sim_ticks_per_s ticks, each for a symbol picked (by the seeded
 * generator) among the symbols someone watches: nothing runs for a symbol
 * nobody watches. The same seed gives the same walk for the same picks. */
#ifndef TG_SIMULATOR_H
#define TG_SIMULATOR_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct hub;

struct simulator {
    struct hub *hub;
    uv_timer_t timer;
    bool running;
    uint64_t rng;              /* xorshift64* state */
    double *price;             /* the walk, per symbol */
    double *volume;            /* last tick's volume, per symbol */
    uint32_t *active;          /* scratch: active symbol indexes */
    double ticks_per_ms;
    double owed;               /* fractional ticks carried between timer runs */
    uint64_t last_ms;
};

int sim_start(struct simulator *s, uv_loop_t *loop, struct hub *h, int ticks_per_s, uint64_t seed);
void sim_stop(struct simulator *s);
/* Frees the arrays after the timer handle has closed. */
void sim_free(struct simulator *s);

#endif

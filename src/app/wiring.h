/* wiring.h - the calls up and sideways between the middle rooms, made by
 * the app: the hub's observers (the cluster's publish and channel
 * interest, the broker's ticks), the user events' announce, the engine's
 * and the broker's calls into the gateway and into each other. The rooms
 * themselves know only the rooms below them (docs/architecture.md). */
#ifndef TG_WIRING_H
#define TG_WIRING_H

struct server;

/* Starts the cluster engine and the broker with what each needs, then
 * wiring_hub. Main thread, once the workers array exists and before any
 * worker starts. 0, or -1 after a message to stderr. */
int wiring_start(struct server *srv);

/* The hub's workers and observers and the user events' targets, from the
 * server's workers and whatever engine and broker are started (none in a
 * harness that runs a worker without them). Main thread, before any worker
 * starts. */
void wiring_hub(struct server *srv);

#endif

/* hooks.h - how the gateway takes part in a worker's life: the callbacks
 * net calls up through (net/worker.h struct worker_hooks). */
#ifndef TG_GATEWAY_HOOKS_H
#define TG_GATEWAY_HOOKS_H

#include "net/worker.h"

extern const struct worker_hooks GATEWAY_WORKER_HOOKS;

#endif

/* router.h - maps a complete HTTP request to the handler that owns it. */
#ifndef TG_ROUTER_H
#define TG_ROUTER_H

struct conn;

struct worker;
struct redis_admit;

/* Answers the request in c->http (or upgrades the connection). */
void router_dispatch(struct conn *c);

/* The cluster-wide per-user admission answered (worker thread): finishes
 * or refuses the upgrade that waited for it; frees a. */
void router_admit_result(struct worker *w, struct redis_admit *a);

#endif

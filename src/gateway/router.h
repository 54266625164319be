/* router.h - maps a complete HTTP request to the handler that owns it. */
#ifndef TG_ROUTER_H
#define TG_ROUTER_H

struct conn;

struct worker_mail;

/* Answers the request in c->http (or upgrades the connection). */
void router_dispatch(struct conn *c);

/* Worker mail (ptr: struct redis_admit): the cluster-wide per-user
 * admission answered; finishes or refuses the upgrade that waited for it. */
extern const struct worker_mail ROUTER_ADMIT_MAIL;

#endif

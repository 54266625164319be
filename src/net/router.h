/* router.h - maps a complete HTTP request to the handler that owns it. */
#ifndef TG_ROUTER_H
#define TG_ROUTER_H

struct conn;

/* Answers the request in c->http (or upgrades the connection). */
void router_dispatch(struct conn *c);

#endif

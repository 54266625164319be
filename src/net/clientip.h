/* clientip.h - which address a request comes from (PROTOCOL.md section 7).
 *
 * Addresses are kept as 16 bytes (IPv4 as ::ffff:a.b.c.d) so one compare
 * serves both families. The client IP is the TCP peer, or, when the peer is
 * a trusted proxy, the right-most X-Forwarded-For address that is not itself
 * a trusted proxy: a client cannot dodge per-IP rules by forging the header,
 * because only the entries its own trusted proxies appended are believed. */
#ifndef TG_CLIENTIP_H
#define TG_CLIENTIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ip16 {
    uint8_t b[16];
};

struct cidr {
    struct ip16 net;
    uint8_t bits;           /* prefix length over the 16-byte form */
};

struct cidr_list {
    struct cidr *v;
    size_t n;
};

/* Parses "10.0.0.0/8, ::1, 192.168.1.7". 0, or -1 naming key in err. */
int cidr_list_parse(struct cidr_list *l, const char *text, const char *key, FILE *err);
void cidr_list_free(struct cidr_list *l);
bool cidr_list_match(const struct cidr_list *l, const struct ip16 *ip);

/* Parses an IPv4 or IPv6 text address (len bytes). True on success. */
bool ip16_parse(const char *s, size_t len, struct ip16 *out);

/* The identity an address counts as for per-IP rules (limits, budgets,
 * violations, blocks): an IPv4 address itself, an IPv6 address its first
 * v6_prefix bits (the rest zeroed), because one subscriber usually holds a
 * whole /64 (RFC 6177) and could otherwise pick a fresh address per
 * connection. */
struct ip16 ip16_client_key(const struct ip16 *ip, int v6_prefix);

/* True for an IPv4 address in its 16-byte (::ffff:a.b.c.d) form. */
bool ip16_is_v4(const struct ip16 *ip);

/* Formats (IPv4-mapped shown as IPv4). out >= 46 bytes. */
void ip16_format(const struct ip16 *ip, char *out, size_t len);

/* From a socket address family and raw bytes. */
void ip16_from_raw(struct ip16 *out, int family, const uint8_t *raw);

/* The client IP of a request from peer with X-Forwarded-For value xff
 * (may be NULL). */
struct ip16 client_ip(const struct cidr_list *trusted, const struct ip16 *peer, const char *xff, size_t xff_len);

#endif

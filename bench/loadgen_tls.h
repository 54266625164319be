/* loadgen_tls.h - the load generator's TLS client (OpenSSL over its own
 * non-blocking sockets): send/recv look-alikes, a resumable handshake, and a
 * priming connection that fetches the session ticket the storm reuses.
 *
 * The bench's certificate is self-signed and made at run time: no
 * verification, no SNI. Every connection offers TLS 1.3 with one suite,
 * TLS_AES_128_GCM_SHA256 (1.2 only as a fallback), so every server
 * encrypts with the same cipher whatever its preference order. */
#ifndef LOADGEN_TLS_H
#define LOADGEN_TLS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct ssl_st; /* OpenSSL's SSL */

/* The client context. resume: keep the first session ticket any
 * connection receives and offer it on every later handshake. lean: release
 * OpenSSL's record buffers between reads (thousands of idle connections).
 * only12: offer TLS 1.2 only. 0, or -1 with a message on stderr. */
int lt_init(bool resume, bool lean, bool only12);
void lt_shutdown(void);

/* A client SSL on the connected (or connecting) non-blocking socket fd, or
 * NULL. Offers the kept session when resuming. */
struct ssl_st *lt_new(int fd);
void lt_free(struct ssl_st *s);

/* One handshake step: 1 done, 0 wait (*want_write: for writability rather
 * than input), -1 failed. */
int lt_handshake(struct ssl_st *s, bool *want_write);

/* Whether the finished handshake resumed a session. */
bool lt_resumed(struct ssl_st *s);

/* send()/recv() on the TLS stream: bytes moved, or -1 with errno EAGAIN
 * (nothing can move now) or another errno; lt_recv returns 0 at the peer's
 * close_notify or EOF. lt_send may take less than n: the caller retries with
 * the rest at the same bytes (they may have moved in memory). */
ssize_t lt_send(struct ssl_st *s, const void *p, size_t n);
ssize_t lt_recv(struct ssl_st *s, void *p, size_t n);
/* (lt_recv reads until OpenSSL wants the socket or p is full; when full,
 * more may wait inside OpenSSL that epoll will not announce.) */

/* With resume: one blocking connection to addr that sends req (the upgrade
 * request) and reads the reply, so that the server's session ticket is kept
 * before the storm starts. 0 when a session is kept, -1 (message on stderr)
 * otherwise. */
int lt_prime(const struct sockaddr_in *addr, const char *req, size_t len);

#endif

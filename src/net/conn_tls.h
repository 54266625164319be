/* conn_tls.h - a TLS connection's socket side: net/conn.c's branch for
 * connections accepted on the TLS listener (c->tls set). Private to
 * net/conn*.c; the engine itself is net/tls.h.
 *
 * Reads: each read's ciphertext is decrypted into the worker's plaintext
 * buffer and handed to the same input path as a plain read (HTTP, then
 * WebSocket), once per read. Writes: at flush time the queued blocks are
 * encrypted into the worker's record buffer and sent with one send():
 * small frames (ticks) gathered into as few records as fit, larger ones
 * straight from their shared blocks (nothing built or allocated per
 * subscriber); what the socket refuses is copied once and finished by
 * one uv_write, and nothing more is encrypted until it is written, so the
 * output queue stays the measure of a slow client (conflation applies). */
#ifndef TG_CONN_TLS_H
#define TG_CONN_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct conn;
struct tls_ctx;

/* Plaintext encrypted per write: bounds a connection's records in flight. */
#define CONN_TLS_FLUSH_BYTES (64u << 10)

/* Frames up to this size are gathered into shared records (copied once,
 * per flush); larger ones are encrypted where they are. */
#define CONN_TLS_GATHER_MAX 2048u

/* Records produced by reads while a write is in flight (handshake
 * messages, key updates, alerts) beyond this close the connection. */
#define CONN_TLS_LATER_MAX (64u << 10)

/* Starts c's server session on t's current certificate. 0 or -ENOMEM. */
int conn_tls_open(struct conn *c, struct tls_ctx *t);

/* Frees the session and records not written (release path only). */
void conn_tls_free(struct conn *c);

/* Takes one read's ciphertext: writes any records it produced, and
 * returns the plaintext in *plain (the worker's buffer, valid until the
 * next read), *plen bytes. 0, 1 when the peer sent close_notify (take the
 * plaintext, then close), -1 when c was closed (failed handshake, bad
 * record). */
int conn_tls_read(struct conn *c, const uint8_t *data, size_t len, const uint8_t **plain, size_t *plen);

/* Encrypts and writes every queued block. 0 when all is written, 1 when a
 * write is in flight (its completion flushes again) or c was closed. */
int conn_tls_flush(struct conn *c);

/* Sends a close_notify alert (best effort: written before a FIN that
 * follows, lost by a close that follows at once). */
void conn_tls_close_notify(struct conn *c);

/* net/conn.c's one non-blocking send: bytes taken, 0 when the socket is
 * full, -1 when it failed. */
ssize_t conn_send_now(struct conn *c, uv_buf_t *iov, unsigned n);

#endif

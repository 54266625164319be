/* tls.h - TLS over memory: the server's certificate context and each
 * connection's session (OpenSSL), knowing nothing of sockets.
 *
 * The caller moves the bytes: ciphertext read from a socket goes in
 * through tls_session_input(), which hands back plaintext; records the
 * session produces (handshake, application data, alerts) are appended to
 * the thread's struct tls_io and the caller writes them to the socket.
 * Nothing is copied in between: a session reads ciphertext straight from
 * the caller's buffer and encrypts plaintext straight from the caller's
 * block (one SSL_write per block), only OpenSSL's own record buffers sit
 * between, and those are released while a session is idle
 * (SSL_MODE_RELEASE_BUFFERS).
 *
 * Threads: one tls_ctx per server, shared by every worker; sessions and a
 * tls_io belong to one thread. tls_ctx_reload() may run on any thread
 * while workers start sessions: new sessions take the new pair, sessions
 * already started keep a reference to the one they began with. */
#ifndef TG_TLS_H
#define TG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct tls_ctx;
struct ssl_st;
struct ssl_ctx_st;

/* Output records of one thread's sessions, and its plaintext buffer. */
struct tls_io {
    const uint8_t *in;    /* ciphertext not yet taken by the session being fed */
    size_t in_len;
    uint8_t *out;         /* records produced, waiting to be written; grown as needed */
    size_t out_len, out_cap;
    uint8_t *plain;       /* plaintext of one input; TLS_PLAIN_CAP(read size) bytes */
    size_t plain_cap;
};

/* Plaintext one input of n ciphertext bytes can yield: n plus a record
 * carried over from the input before (at most 2^14 + 2048 bytes). */
#define TLS_PLAIN_CAP(n) ((n) + 18432)

/* One connection's session. */
struct tls_session {
    struct ssl_st *ssl;
    uint8_t *pend;        /* records handed to an asynchronous write; owned */
    uint8_t *later;       /* records produced while pend was being written; owned */
    uint32_t pend_len, later_len;
    bool ready;           /* handshake finished */
};

enum tls_rc {
    TLS_OK = 0,           /* all input taken (plaintext, if any, returned) */
    TLS_EOF = 1,          /* the peer sent close_notify */
    TLS_ERR = -1,         /* handshake failure, bad record, out of memory: close */
};

/* Loads cert (PEM, may hold the chain) and key (PEM, unencrypted) into a
 * TLS 1.2/1.3 context with ALPN http/1.1 and session tickets. NULL after a
 * one-line message to err naming the key and file that failed. */
struct tls_ctx *tls_ctx_new(const char *cert, const char *key, FILE *err);

/* Loads the same files again for new handshakes. 0, or -1 with the old
 * pair kept, a message in why, and the failure counted. Any thread. */
int tls_ctx_reload(struct tls_ctx *t, char *why, size_t whylen);

/* The same in two steps, for a reload that must apply everything or
 * nothing (app/reload.c): prepare loads the pair (NULL with why and the
 * failure counted), install swaps it in (cannot fail), discard frees a
 * prepared pair that is not installed. Any thread. */
struct ssl_ctx_st *tls_ctx_prepare(struct tls_ctx *t, char *why, size_t whylen);
void tls_ctx_install(struct tls_ctx *t, struct ssl_ctx_st *x);
void tls_ctx_discard(struct ssl_ctx_st *x);

/* Reloads that failed since start. */
uint64_t tls_ctx_reload_failures(struct tls_ctx *t);

/* Frees the context; sessions still open keep theirs alive. */
void tls_ctx_free(struct tls_ctx *t);

/* A thread's I/O state for sessions; read_size is the most ciphertext one
 * input holds. 0 or -ENOMEM. */
int tls_io_init(struct tls_io *io, size_t read_size);
void tls_io_free(struct tls_io *io);

/* Starts a server session on t's current pair whose records go to io.
 * 0 or -ENOMEM. */
int tls_session_init(struct tls_session *s, struct tls_ctx *t, struct tls_io *io);
void tls_session_free(struct tls_session *s);

/* Takes len bytes of ciphertext (all of them; data stays the caller's):
 * advances the handshake, and decrypts application data into io->plain,
 * *plen bytes. Records to send may be left in io->out either way. */
enum tls_rc tls_session_input(struct tls_session *s, struct tls_io *io, const uint8_t *data, size_t len,
                              size_t *plen);

/* Encrypts len bytes from p (the caller's, unchanged) into records
 * appended to io->out. 0 or -1 (close). Only once ready. */
int tls_session_write(struct tls_session *s, struct tls_io *io, const void *p, size_t len);

/* A batch of tls_session_write calls: record buffers kept for the batch,
 * released when it ends (the session is then idle). */
void tls_session_batch(struct tls_session *s, bool begin);

/* Appends a close_notify alert to io->out (once). */
void tls_session_close_notify(struct tls_session *s, struct tls_io *io);

#endif

/* loadgen_tls.c - the load generator's TLS client; see loadgen_tls.h. */
#include "loadgen_tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx;         /* every connection's context, owned here */
static SSL_SESSION *kept;    /* the session offered when resuming (our reference) */
static bool resuming;

/* Called for every session a server hands us (TLS 1.3: after the
 * handshake, as a NewSessionTicket): the first one is kept. */
static int on_new_session(SSL *s, SSL_SESSION *sess) {
    (void)s;
    if (kept || !resuming)
        return 0;
    kept = sess; /* returning 1 keeps the reference OpenSSL gave us */
    return 1;
}

int lt_init(bool resume, bool lean, bool only12) {
    static const unsigned char alpn[] = "\x08http/1.1";
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    resuming = resume;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (only12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1 ||
        SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256") != 1 ||
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Short writes as send() has them; a retry may come from a new buffer
     * (the subscriber's remainder is copied, the publisher's queue moves). */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              (lean ? SSL_MODE_RELEASE_BUFFERS : 0));
    /* One recv takes several records (lt_recv reads until the socket is dry). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 65536);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    return 0;
fail:
    fprintf(stderr, "loadgen: TLS: cannot set up the client context: %s\n",
            ERR_reason_error_string(ERR_peek_error()) ? ERR_reason_error_string(ERR_peek_error()) : "?");
    SSL_CTX_free(ctx);
    ctx = NULL;
    return -1;
}

void lt_shutdown(void) {
    SSL_SESSION_free(kept);
    kept = NULL;
    SSL_CTX_free(ctx);
    ctx = NULL;
}

SSL *lt_new(int fd) {
    SSL *s = SSL_new(ctx);
    if (!s)
        goto fail;
    if (SSL_set_fd(s, fd) != 1)
        goto fail;
    if (kept) {
        /* a copy each: OpenSSL marks a TLS 1.3 client session it has
         * resumed as used up, and the next connection would offer nothing */
        SSL_SESSION *copy = SSL_SESSION_dup(kept);
        int ok = copy && SSL_set_session(s, copy) == 1;
        SSL_SESSION_free(copy); /* s holds its own reference */
        if (!ok)
            goto fail;
    }
    SSL_set_connect_state(s);
    return s;
fail:
    ERR_clear_error();
    SSL_free(s);
    return NULL;
}

/* Marked as shut down: OpenSSL would otherwise take a connection closed
 * without close_notify for a broken one and make its session unresumable
 * (the priming connection's session is the one kept). */
void lt_free(SSL *s) {
    if (!s)
        return;
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(s);
}

int lt_handshake(SSL *s, bool *want_write) {
    int r = SSL_connect(s);
    if (r == 1)
        return 1;
    int e = SSL_get_error(s, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want_write = e == SSL_ERROR_WANT_WRITE;
        return 0;
    }
    return -1;
}

bool lt_resumed(SSL *s) { return SSL_session_reused(s) == 1; }

/* errno for a failed call: EAGAIN when OpenSSL waits for the socket. */
static int fail_errno(SSL *s, int r) {
    int e = SSL_get_error(s, r), saved = errno;
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return EAGAIN;
    if (e == SSL_ERROR_SYSCALL && saved && saved != EAGAIN)
        return saved;
    return ECONNRESET;
}

ssize_t lt_send(SSL *s, const void *p, size_t n) {
    size_t tot = 0;
    while (tot < n) { /* partial-write mode: one record per call */
        size_t w = 0;
        int r = SSL_write_ex(s, (const char *)p + tot, n - tot, &w);
        if (r != 1) {
            int e = fail_errno(s, r);
            if (tot)
                return (ssize_t)tot; /* the error (or the wait) shows on the next call */
            errno = e;
            return -1;
        }
        tot += w;
    }
    return (ssize_t)tot;
}

ssize_t lt_recv(SSL *s, void *p, size_t n) {
    size_t tot = 0;
    while (tot < n) {
        size_t got = 0;
        int r = SSL_read_ex(s, (char *)p + tot, n - tot, &got);
        if (r == 1) {
            tot += got;
            continue;
        }
        int e = SSL_get_error(s, r);
        if (tot)
            break; /* hand over what came; the EOF or the error shows on the next call */
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            return 0;
        }
        errno = fail_errno(s, r);
        return -1;
    }
    ERR_clear_error();
    return (ssize_t)tot;
}

int lt_prime(const struct sockaddr_in *addr, const char *req, size_t len) {
    char buf[4096];
    size_t have = 0;
    SSL *s = NULL;
    struct timeval tv = {.tv_sec = 5};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        fprintf(stderr, "loadgen: --tls-resume: cannot connect: %s\n", strerror(errno));
        goto out;
    }
    if (!(s = lt_new(fd)) || SSL_connect(s) != 1) {
        fprintf(stderr, "loadgen: --tls-resume: the priming handshake failed\n");
        goto out;
    }
    size_t w = 0;
    while (w < len) {
        size_t k = 0;
        if (SSL_write_ex(s, req + w, len - w, &k) != 1)
            goto fail_io;
        w += k;
    }
    /* The reply's headers: a TLS 1.3 server's ticket comes before them. */
    while (!kept || !memmem(buf, have, "\r\n\r\n", 4)) {
        size_t got = 0;
        if (have == sizeof(buf) || SSL_read_ex(s, buf + have, sizeof(buf) - have, &got) != 1)
            break;
        have += got;
    }
    if (!kept)
        fprintf(stderr, "loadgen: --tls-resume: the server issued no session ticket; handshakes will be full\n");
    goto out;
fail_io:
    fprintf(stderr, "loadgen: --tls-resume: the priming connection failed\n");
out:
    ERR_clear_error();
    lt_free(s);
    if (fd >= 0)
        close(fd);
    return kept ? 0 : -1;
}

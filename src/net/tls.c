/* tls.c - TLS over memory with OpenSSL; see tls.h. */
#include "net/tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct tls_ctx {
    pthread_mutex_t lock;          /* guards cur against a reload while a session takes it */
    SSL_CTX *cur;                  /* new sessions start here; each SSL holds its own reference */
    char *cert, *key;              /* file paths, reloaded as named at start */
    _Atomic uint64_t reload_failures;
};

/* One BIO method for every session: reads from io->in, appends to io->out
 * (the BIO's data is the thread's struct tls_io). */
static BIO_METHOD *io_method;
static pthread_once_t io_method_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *buf, int len) {
    struct tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (io->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < io->in_len ? (size_t)len : io->in_len;
    memcpy(buf, io->in, n);
    io->in += n;
    io->in_len -= n;
    return (int)n;
}

static int bio_write(BIO *b, const char *buf, int len) {
    struct tls_io *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t need = io->out_len + (size_t)len;
    if (need > io->out_cap) {
        size_t cap = io->out_cap ? io->out_cap * 2 : 32768;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(io->out, cap);
        if (!p)
            return -1;
        io->out = p;
        io->out_cap = cap;
    }
    memcpy(io->out + io->out_len, buf, (size_t)len);
    io->out_len = need;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static void io_method_make(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tickgate-io");
    if (m && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) && BIO_meth_set_ctrl(m, bio_ctrl) &&
        BIO_meth_set_create(m, bio_create)) {
        io_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* ALPN: http/1.1 when the client offers it; anything else (h2 alone)
 * goes on without ALPN, and the client speaks HTTP/1.1 or leaves. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg) {
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;
    unsigned char sl;
    if (SSL_select_next_proto(&sel, &sl, ours, sizeof(ours) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    *outlen = sl;
    return SSL_TLSEXT_ERR_OK;
}

/* Encrypted keys are refused rather than prompted for on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u) { return 0; }

/* The first OpenSSL reason queued (never key material), or the file's
 * errno when it cannot be read at all. */
static void reason(const char *path, char *buf, size_t len) {
    if (access(path, R_OK) != 0) {
        snprintf(buf, len, "%s", strerror(errno));
    } else {
        unsigned long e = ERR_peek_error();
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(buf, len, "%s", r ? r : "not a usable PEM file");
    }
    ERR_clear_error();
}

/* A context for cert and key; NULL with why set. */
static SSL_CTX *ctx_build(const char *cert, const char *key, char *why, size_t whylen) {
    char r[256];
    SSL_CTX *x = SSL_CTX_new(TLS_server_method());
    if (!x) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(x, TLS1_3_VERSION);
    SSL_CTX_set_options(x, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Record buffers (about 34 KiB) exist only while a record is in
     * progress: an idle connection holds none. */
    SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption by stateless tickets (every worker and, after a reload,
     * the new pair read them); no server-side cache to share or bound. */
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(x, 1);
    SSL_CTX_set_session_id_context(x, (const unsigned char *)"tickgate", 8);
    SSL_CTX_set_alpn_select_cb(x, on_alpn, NULL);
    SSL_CTX_set_default_passwd_cb(x, no_password);
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1) {
        reason(cert, r, sizeof(r));
        snprintf(why, whylen, "server.tls_cert: cannot load a PEM certificate from '%s': %s", cert, r);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
        reason(key, r, sizeof(r));
        snprintf(why, whylen, "server.tls_key: cannot load an unencrypted PEM private key from '%s': %s", key, r);
        goto fail;
    }
    if (SSL_CTX_check_private_key(x) != 1) {
        ERR_clear_error();
        snprintf(why, whylen, "server.tls_key: the key in '%s' does not match the certificate in '%s'", key, cert);
        goto fail;
    }
    return x;
fail:
    SSL_CTX_free(x);
    return NULL;
}

struct tls_ctx *tls_ctx_new(const char *cert, const char *key, FILE *err) {
    char why[1024];
    pthread_once(&io_method_once, io_method_make);
    struct tls_ctx *t = calloc(1, sizeof(*t));
    if (!io_method || !t || !(t->cert = strdup(cert)) || !(t->key = strdup(key))) {
        fprintf(err, "tickgate: TLS: out of memory\n");
        goto fail;
    }
    if (!(t->cur = ctx_build(cert, key, why, sizeof(why)))) {
        fprintf(err, "tickgate: %s\n", why);
        goto fail;
    }
    pthread_mutex_init(&t->lock, NULL);
    return t;
fail:
    if (t) {
        free(t->cert);
        free(t->key);
    }
    free(t);
    return NULL;
}

int tls_ctx_reload(struct tls_ctx *t, char *why, size_t whylen) {
    SSL_CTX *x = tls_ctx_prepare(t, why, whylen);
    if (!x)
        return -1;
    tls_ctx_install(t, x);
    return 0;
}

SSL_CTX *tls_ctx_prepare(struct tls_ctx *t, char *why, size_t whylen) {
    SSL_CTX *x = ctx_build(t->cert, t->key, why, whylen);
    if (!x)
        atomic_fetch_add(&t->reload_failures, 1);
    return x;
}

void tls_ctx_discard(SSL_CTX *x) { SSL_CTX_free(x); }

void tls_ctx_install(struct tls_ctx *t, SSL_CTX *x) {
    pthread_mutex_lock(&t->lock);
    /* Tickets issued before the reload still resume. */
    unsigned char keys[80];
    if (SSL_CTX_get_tlsext_ticket_keys(t->cur, keys, sizeof(keys)) == 1)
        SSL_CTX_set_tlsext_ticket_keys(x, keys, sizeof(keys));
    OPENSSL_cleanse(keys, sizeof(keys));
    SSL_CTX *old = t->cur;
    t->cur = x;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* sessions begun on it hold their own reference */
}

uint64_t tls_ctx_reload_failures(struct tls_ctx *t) { return atomic_load(&t->reload_failures); }

void tls_ctx_free(struct tls_ctx *t) {
    if (!t)
        return;
    SSL_CTX_free(t->cur);
    pthread_mutex_destroy(&t->lock);
    free(t->cert);
    free(t->key);
    free(t);
}

int tls_io_init(struct tls_io *io, size_t read_size) {
    memset(io, 0, sizeof(*io));
    io->plain_cap = TLS_PLAIN_CAP(read_size);
    io->plain = malloc(io->plain_cap);
    return io->plain ? 0 : -ENOMEM;
}

void tls_io_free(struct tls_io *io) {
    free(io->plain);
    free(io->out);
    memset(io, 0, sizeof(*io));
}

int tls_session_init(struct tls_session *s, struct tls_ctx *t, struct tls_io *io) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_lock(&t->lock);
    SSL *ssl = SSL_new(t->cur); /* takes its reference to the pair under the lock */
    pthread_mutex_unlock(&t->lock);
    BIO *b = ssl ? BIO_new(io_method) : NULL;
    if (!b) {
        SSL_free(ssl);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_data(b, io);
    SSL_set_bio(ssl, b, b);
    SSL_set_accept_state(ssl);
    s->ssl = ssl;
    return 0;
}

void tls_session_free(struct tls_session *s) {
    SSL_free(s->ssl);
    free(s->pend);
    free(s->later);
    memset(s, 0, sizeof(*s));
}

enum tls_rc tls_session_input(struct tls_session *s, struct tls_io *io, const uint8_t *data, size_t len,
                              size_t *plen) {
    enum tls_rc rc = TLS_OK;
    size_t n = 0;
    io->in = data;
    io->in_len = len;
    if (!s->ready) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
                rc = TLS_ERR;
            goto out;
        }
        s->ready = true;
    }
    for (;;) {
        if (n == io->plain_cap) {
            /* Cannot happen (TLS_PLAIN_CAP); input left now would be lost. */
            if (io->in_len || SSL_pending(s->ssl))
                rc = TLS_ERR;
            break;
        }
        size_t got = 0;
        int r = SSL_read_ex(s->ssl, io->plain + n, io->plain_cap - n, &got);
        if (r == 1) {
            n += got;
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            rc = TLS_EOF;
        else if (e != SSL_ERROR_WANT_READ)
            rc = TLS_ERR;
        break;
    }
out:
    ERR_clear_error();
    io->in = NULL;
    io->in_len = 0;
    *plen = n;
    return rc;
}

int tls_session_write(struct tls_session *s, struct tls_io *io, const void *p, size_t len) {
    size_t done = 0;
    if (len == 0)
        return 0;
    if (SSL_write_ex(s->ssl, p, len, &done) != 1 || done != len) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

void tls_session_batch(struct tls_session *s, bool begin) {
    if (begin) {
        SSL_clear_mode(s->ssl, SSL_MODE_RELEASE_BUFFERS);
    } else {
        SSL_set_mode(s->ssl, SSL_MODE_RELEASE_BUFFERS);
        SSL_free_buffers(s->ssl);
    }
}

void tls_session_close_notify(struct tls_session *s, struct tls_io *io) {
    if (!s->ready || (SSL_get_shutdown(s->ssl) & SSL_SENT_SHUTDOWN))
        return;
    SSL_shutdown(s->ssl);
    ERR_clear_error();
}

/* tlsprobe.c - what a resumed TLS 1.3 handshake costs the server inside
 * the TLS library alone (issue 15: resumed handshakes/s against
 * uWebSockets.js).
 *
 * A client and a server in one thread, joined by a BIO pair: no sockets,
 * no kernel, no HTTP. The server's side of each handshake (SSL_new, every
 * SSL_do_handshake step, SSL_free) is timed on the thread's CPU clock;
 * the client's is not counted. Variants change one server setting each,
 * to see which lever moves the floor:
 *   tickets    tickgate's settings: stateless tickets, 1 fresh per handshake
 *   stateful   a server-side session cache instead of tickets
 *   reuse      tickets, SSL objects recycled with SSL_clear
 *   tls12      TLS 1.2 abbreviated handshake (no key exchange at all)
 * and "x25519": one key generation plus one derivation, the key exchange
 * a resumed TLS 1.3 handshake (psk_dhe_ke, as browsers offer) must do;
 * "idle": the heap an idle server SSL keeps (tickgate's TLS idle memory).
 *
 * Usage: tlsprobe CERT KEY [N]   (prints µs of server CPU per handshake) */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum variant { V_TICKETS, V_STATEFUL, V_REUSE, V_TLS12, V_COUNT };
static const char *names[V_COUNT] = {"tickets", "stateful", "reuse", "tls12"};

static double cpu_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(const char *what) {
    fprintf(stderr, "tlsprobe: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static SSL_CTX *server_ctx(const char *cert, const char *key, enum variant v) {
    SSL_CTX *x = SSL_CTX_new(TLS_server_method());
    if (!x)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(x, v == V_TLS12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_options(x, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
    if (v == V_STATEFUL) {
        SSL_CTX_set_options(x, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_SERVER);
    } else {
        SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    }
    SSL_CTX_set_num_tickets(x, 1);
    SSL_CTX_set_session_id_context(x, (const unsigned char *)"tickgate", 8);
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1 || SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1)
        die("cannot load the certificate or key");
    return x;
}

/* Drive both ends until each finishes; only the server's steps count. */
static double handshake(SSL *c, SSL *s) {
    double spent = 0;
    int cd = 0, sd = 0;
    for (int i = 0; i < 100 && !(cd && sd); i++) {
        if (!cd) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cd = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                die("client handshake");
        }
        if (!sd) {
            double t0 = cpu_us();
            int r = SSL_do_handshake(s);
            spent += cpu_us() - t0;
            if (r == 1)
                sd = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                die("server handshake");
        }
    }
    /* The client reads what the server sent after its Finished: in TLS
     * 1.3 the NewSessionTicket, which the server wrote in its last step. */
    unsigned char b[64];
    size_t got;
    if (SSL_read_ex(c, b, sizeof(b), &got) != 1)
        ERR_clear_error();
    return spent;
}

static double run(SSL_CTX *sx, SSL_CTX *cx, enum variant v, int n, int *resumed) {
    SSL_SESSION *sess = NULL;
    SSL *keep = NULL;
    double total = 0;
    *resumed = 0;
    for (int i = 0; i <= n; i++) {
        SSL *c = SSL_new(cx);
        BIO *cb, *sb;
        BIO_new_bio_pair(&cb, 0, &sb, 0);
        SSL_set_bio(c, cb, cb);
        SSL_set_connect_state(c);
        if (sess)
            SSL_set_session(c, sess);
        double t0 = cpu_us();
        SSL *s = keep;
        if (s)
            SSL_clear(s);
        else
            s = SSL_new(sx);
        SSL_set_bio(s, sb, sb);
        SSL_set_accept_state(s);
        double spent = cpu_us() - t0;
        spent += handshake(c, s);
        if (SSL_session_reused(c))
            ++*resumed;
        SSL_SESSION_free(sess);
        sess = SSL_get1_session(c);
        SSL_shutdown(c);
        SSL_free(c);
        t0 = cpu_us();
        SSL_shutdown(s);
        if (v == V_REUSE)
            keep = s;
        else
            SSL_free(s);
        spent += cpu_us() - t0;
        ERR_clear_error();
        if (i > 0) /* the first is the full handshake that issues the ticket */
            total += spent;
    }
    SSL_free(keep);
    SSL_SESSION_free(sess);
    return total / n;
}

/* Heap an idle server SSL keeps after a full handshake with tickgate's
 * settings (record buffers released), its BIOs replaced by one empty
 * memory BIO so that only OpenSSL's own state counts. */
static double idle_bytes(SSL_CTX *sx, SSL_CTX *cx, int n) {
    SSL **held = calloc((size_t)n, sizeof(*held));
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < n; i++) {
        SSL *c = SSL_new(cx), *s = SSL_new(sx);
        BIO *cb, *sb;
        BIO_new_bio_pair(&cb, 0, &sb, 0);
        SSL_set_bio(c, cb, cb);
        SSL_set_bio(s, sb, sb);
        SSL_set_connect_state(c);
        SSL_set_accept_state(s);
        handshake(c, s);
        SSL_free(c);
        BIO *m = BIO_new(BIO_s_mem());
        SSL_set_bio(s, m, m);
        SSL_free_buffers(s);
        held[i] = s;
    }
    double per = ((double)mallinfo2().uordblks - (double)before) / n;
    for (int i = 0; i < n; i++)
        SSL_free(held[i]);
    free(held);
    return per;
}

static double x25519(int n) {
    EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    double t0 = cpu_us();
    for (int i = 0; i < n; i++) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        EVP_PKEY_CTX *d = EVP_PKEY_CTX_new(k, NULL);
        unsigned char out[32];
        size_t len = sizeof(out);
        if (!k || !d || EVP_PKEY_derive_init(d) != 1 || EVP_PKEY_derive_set_peer(d, peer) != 1 ||
            EVP_PKEY_derive(d, out, &len) != 1)
            die("x25519");
        EVP_PKEY_CTX_free(d);
        EVP_PKEY_free(k);
    }
    double us = (cpu_us() - t0) / n;
    EVP_PKEY_free(peer);
    return us;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tlsprobe CERT KEY [N]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_session_cache_mode(cx, SSL_SESS_CACHE_CLIENT);
    printf("%s, %d handshakes each\n", OpenSSL_version(OPENSSL_VERSION), n);
    for (int round = 0; round < 2; round++) {
        for (enum variant v = 0; v < V_COUNT; v++) {
            SSL_CTX_set_max_proto_version(cx, v == V_TLS12 ? TLS1_2_VERSION : TLS1_3_VERSION);
            SSL_CTX *sx = server_ctx(argv[1], argv[2], v);
            int resumed;
            double us = run(sx, cx, v, n, &resumed);
            printf("%-9s %7.1f us server CPU per resumed handshake (%d of %d resumed)\n", names[v], us, resumed, n);
            SSL_CTX_free(sx);
        }
        printf("%-9s %7.1f us per key generation + derivation\n", "x25519", x25519(n));
        SSL_CTX_set_max_proto_version(cx, TLS1_3_VERSION);
        SSL_CTX *sx = server_ctx(argv[1], argv[2], V_TICKETS);
        SSL_CTX_set_session_cache_mode(cx, SSL_SESS_CACHE_OFF);
        printf("%-9s %7.0f bytes of heap per idle server SSL after a full handshake\n", "idle", idle_bytes(sx, cx, n));
        SSL_CTX_set_session_cache_mode(cx, SSL_SESS_CACHE_CLIENT);
        SSL_CTX_free(sx);
    }
    SSL_CTX_free(cx);
    return 0;
}

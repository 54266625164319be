/* tlsprobe_gnutls.c - tlsprobe.c's "tickets" measurement with GnuTLS, the
 * other TLS library Debian 12 packages: server CPU per resumed TLS 1.3
 * handshake (session tickets, X25519 key share), client and server in one
 * thread joined by memory, no kernel, no HTTP. It answers whether changing
 * the TLS library would reach issue 15's resumed-handshake target.
 *
 * Usage: tlsprobe-gnutls CERT KEY [N]   (needs libgnutls28-dev) */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519"

struct pipe {
    unsigned char b[65536];
    size_t len, off;
};
struct end {
    struct pipe *in, *out;
};

static double cpu_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static ssize_t push(gnutls_transport_ptr_t p, const void *d, size_t n) {
    struct end *e = p;
    if (n > sizeof(e->out->b) - e->out->len) {
        errno = EAGAIN;
        return -1;
    }
    memcpy(e->out->b + e->out->len, d, n);
    e->out->len += n;
    return (ssize_t)n;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *d, size_t n) {
    struct end *e = p;
    size_t have = e->in->len - e->in->off;
    if (have == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (n > have)
        n = have;
    memcpy(d, e->in->b + e->in->off, n);
    e->in->off += n;
    if (e->in->off == e->in->len)
        e->in->off = e->in->len = 0;
    return (ssize_t)n;
}

static void check(int r, const char *what) {
    if (r < 0) {
        fprintf(stderr, "tlsprobe-gnutls: %s: %s\n", what, gnutls_strerror(r));
        exit(1);
    }
}

static gnutls_session_t end_new(unsigned flags, gnutls_certificate_credentials_t cred, struct end *e) {
    gnutls_session_t s;
    check(gnutls_init(&s, flags | GNUTLS_NONBLOCK), "gnutls_init");
    check(gnutls_priority_set_direct(s, PRIORITY, NULL), "priority");
    check(gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred), "credentials");
    gnutls_transport_set_ptr(s, e);
    gnutls_transport_set_push_function(s, push);
    gnutls_transport_set_pull_function(s, pull);
    return s;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tlsprobe-gnutls CERT KEY [N]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    gnutls_certificate_credentials_t sc, cc;
    gnutls_datum_t key, sess = {0};
    check(gnutls_certificate_allocate_credentials(&sc), "credentials");
    check(gnutls_certificate_set_x509_key_file(sc, argv[1], argv[2], GNUTLS_X509_FMT_PEM), "certificate or key");
    check(gnutls_certificate_allocate_credentials(&cc), "credentials");
    check(gnutls_session_ticket_key_generate(&key), "ticket key");
    double total = 0;
    int resumed = 0;
    for (int i = 0; i <= n; i++) {
        static struct pipe a, b;
        a.len = a.off = b.len = b.off = 0;
        struct end ce = {&a, &b}, se = {&b, &a};
        gnutls_session_t c = end_new(GNUTLS_CLIENT, cc, &ce);
        if (sess.data)
            check(gnutls_session_set_data(c, sess.data, sess.size), "session data");
        double t0 = cpu_us();
        gnutls_session_t s = end_new(GNUTLS_SERVER, sc, &se);
        check(gnutls_session_ticket_enable_server(s, &key), "tickets");
        double spent = cpu_us() - t0;
        int cd = 0, sd = 0;
        for (int k = 0; k < 100 && !(cd && sd); k++) {
            int r;
            if (!cd && (r = gnutls_handshake(c)) != GNUTLS_E_AGAIN) {
                check(r, "client handshake");
                cd = 1;
            }
            if (!sd) {
                t0 = cpu_us();
                r = gnutls_handshake(s);
                spent += cpu_us() - t0;
                if (r != GNUTLS_E_AGAIN) {
                    check(r, "server handshake");
                    sd = 1;
                }
            }
        }
        char buf[64];
        (void)gnutls_record_recv(c, buf, sizeof(buf)); /* takes the fresh ticket */
        resumed += gnutls_session_is_resumed(c) != 0;
        gnutls_free(sess.data);
        check(gnutls_session_get_data2(c, &sess), "session data");
        t0 = cpu_us();
        gnutls_deinit(s);
        spent += cpu_us() - t0;
        gnutls_deinit(c);
        if (i > 0) /* the first is the full handshake that issues the ticket */
            total += spent;
    }
    printf("GnuTLS %s: %.1f us server CPU per resumed handshake (%d of %d resumed)\n", gnutls_check_version(NULL),
           total / n, resumed, n);
    gnutls_free(sess.data);
    gnutls_free(key.data);
    gnutls_certificate_free_credentials(sc);
    gnutls_certificate_free_credentials(cc);
    return 0;
}

/* test_tls.c - unit tests for the TLS engine (src/net/tls.c): a client SSL
 * over memory BIOs talks to a server session fed through struct tls_io,
 * with a certificate made here. Handshake, ALPN, data both ways, TLS 1.1
 * refused, garbage refused, reload (failure keeps the old pair and counts,
 * success serves the new one), and a bad file at start named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls.h"

static char dir[] = "/tmp/tickgate-tls-XXXXXX";
static char cert_path[256], key_path[256];

/* A self-signed P-256 certificate for CN=cn into cert_path and key_path. */
static X509 *make_cert(const char *cn) {
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(k);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key_path, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(k);
    return x;
}

struct pair {
    SSL_CTX *cctx;
    SSL *client;
    BIO *to_client, *from_client; /* the client's rbio and wbio */
    struct tls_session s;
    struct tls_io io;
    uint8_t plain[4096];
    size_t plain_len;
};

static void pair_open(struct pair *p, struct tls_ctx *t, int max_version, const char *alpn) {
    memset(p, 0, sizeof(*p));
    p->cctx = SSL_CTX_new(TLS_client_method());
    if (max_version) {
        SSL_CTX_set_security_level(p->cctx, 0);
        SSL_CTX_set_min_proto_version(p->cctx, max_version);
        SSL_CTX_set_max_proto_version(p->cctx, max_version);
    }
    p->client = SSL_new(p->cctx);
    if (alpn)
        SSL_set_alpn_protos(p->client, (const unsigned char *)alpn, (unsigned)strlen(alpn));
    p->to_client = BIO_new(BIO_s_mem());
    p->from_client = BIO_new(BIO_s_mem());
    SSL_set_bio(p->client, p->to_client, p->from_client);
    SSL_set_connect_state(p->client);
    assert_int_equal(tls_io_init(&p->io, 16384), 0);
    assert_int_equal(tls_session_init(&p->s, t, &p->io), 0);
}

static void pair_close(struct pair *p) {
    tls_session_free(&p->s);
    tls_io_free(&p->io);
    SSL_free(p->client);
    SSL_CTX_free(p->cctx);
}

/* Moves the client's bytes to the server and back; the server's result. */
static enum tls_rc pump(struct pair *p) {
    char buf[16384];
    int n = BIO_read(p->from_client, buf, sizeof(buf));
    enum tls_rc rc = TLS_OK;
    size_t got = 0;
    if (n > 0) {
        rc = tls_session_input(&p->s, &p->io, (uint8_t *)buf, (size_t)n, &got);
        memcpy(p->plain + p->plain_len, p->io.plain, got);
        p->plain_len += got;
    }
    BIO_write(p->to_client, p->io.out, (int)p->io.out_len);
    p->io.out_len = 0;
    return rc;
}

/* Runs the handshake; true when both sides finished. */
static bool handshake(struct pair *p) {
    for (int i = 0; i < 10; i++) {
        int r = SSL_do_handshake(p->client);
        if (pump(p) == TLS_ERR)
            return false;
        if (r == 1 && p->s.ready)
            return true;
    }
    return false;
}

static void test_handshake_alpn_and_data(void **state) {
    struct tls_ctx *t = *state;
    struct pair p;
    pair_open(&p, t, 0, "\x02h2\x08http/1.1");
    assert_true(handshake(&p));
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(p.client, &proto, &plen);
    assert_int_equal(plen, 8);
    assert_memory_equal(proto, "http/1.1", 8);
    /* Client to server. */
    assert_int_equal(SSL_write(p.client, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    assert_int_equal(pump(&p), TLS_OK);
    assert_int_equal(p.plain_len, 18);
    assert_memory_equal(p.plain, "GET / HTTP/1.1\r\n\r\n", 18);
    /* Server to client: two blocks in one batch. */
    tls_session_batch(&p.s, true);
    assert_int_equal(tls_session_write(&p.s, &p.io, "hello ", 6), 0);
    assert_int_equal(tls_session_write(&p.s, &p.io, "world", 5), 0);
    tls_session_batch(&p.s, false);
    pump(&p);
    char got[32] = {0};
    int n = SSL_read(p.client, got, sizeof(got));
    n += SSL_read(p.client, got + n, (int)sizeof(got) - n);
    assert_int_equal(n, 11);
    assert_string_equal(got, "hello world");
    /* close_notify from the client ends the session. */
    SSL_shutdown(p.client);
    assert_int_equal(pump(&p), TLS_EOF);
    pair_close(&p);
}

static void test_h2_only_gets_no_alpn(void **state) {
    struct pair p;
    pair_open(&p, *state, 0, "\x02h2");
    assert_true(handshake(&p));
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(p.client, &proto, &plen);
    assert_int_equal(plen, 0);
    pair_close(&p);
}

static void test_tls11_refused(void **state) {
    struct pair p;
    pair_open(&p, *state, TLS1_1_VERSION, NULL);
    assert_false(handshake(&p));
    pair_close(&p);
}

static void test_garbage_refused(void **state) {
    struct pair p;
    pair_open(&p, *state, 0, NULL);
    size_t got;
    assert_int_equal(tls_session_input(&p.s, &p.io, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &got), TLS_ERR);
    pair_close(&p);
}

static void test_reload(void **state) {
    struct tls_ctx *t = *state;
    char why[512];
    char good[300];
    snprintf(good, sizeof(good), "%s.good", cert_path);
    rename(cert_path, good);
    assert_int_equal(tls_ctx_reload(t, why, sizeof(why)), -1);
    assert_non_null(strstr(why, cert_path));
    assert_int_equal(tls_ctx_reload_failures(t), 1);
    struct pair p;
    pair_open(&p, t, 0, NULL); /* the old pair still serves */
    assert_true(handshake(&p));
    pair_close(&p);
    X509 *b = make_cert("b");
    unlink(good);
    assert_int_equal(tls_ctx_reload(t, why, sizeof(why)), 0);
    pair_open(&p, t, 0, NULL);
    assert_true(handshake(&p));
    assert_int_equal(X509_cmp(SSL_get0_peer_certificate(p.client), b), 0);
    pair_close(&p);
    X509_free(b);
}

static void test_bad_file_at_start_named(void **state) {
    char *msg = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&msg, &len);
    assert_null(tls_ctx_new("/nonexistent/cert.pem", key_path, err));
    fclose(err);
    assert_non_null(strstr(msg, "server.tls_cert"));
    assert_non_null(strstr(msg, "/nonexistent/cert.pem"));
    free(msg);
}

static int setup(void **state) {
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    X509_free(make_cert("a"));
    *state = tls_ctx_new(cert_path, key_path, stderr);
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    tls_ctx_free(*state);
    unlink(cert_path);
    unlink(key_path);
    rmdir(dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_alpn_and_data),
        cmocka_unit_test(test_h2_only_gets_no_alpn),
        cmocka_unit_test(test_tls11_refused),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_bad_file_at_start_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

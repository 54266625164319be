/* test_deflate.c - unit tests for permessage-deflate (src/ws/deflate.c):
 * offer negotiation, the shared compressed sibling of a frame, inflate
 * with its bounds (RFC 7692 section 7.2.3 examples), RSV1 in the frame
 * parser; the shared compressed sibling of net/zframe.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/outbuf.h"
#include "net/zframe.h"
#include "ws/deflate.h"
#include "ws/frame.h"

static int setup(void **state) {
    (void)state;
    ws_deflate_configure(true, 256);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ws_deflate_thread_free();
    return 0;
}

/* ---- negotiation -------------------------------------------------------- */

#define EXT "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static void check_offer(const char *offer, const char *expect) {
    char resp[WS_DEFLATE_RESPONSE_MAX];
    bool ok = ws_deflate_negotiate(offer, offer ? strlen(offer) : 0, resp);
    if (!expect) {
        if (ok)
            fail_msg("offer '%s' accepted as '%s', expected declined", offer ? offer : "(none)", resp);
        return;
    }
    if (!ok)
        fail_msg("offer '%s' declined, expected '%s'", offer, expect);
    assert_string_equal(resp, expect);
}

static void test_negotiate_accepts(void **state) {
    (void)state;
    check_offer("permessage-deflate", EXT);
    check_offer("  permessage-deflate  ", EXT);
    check_offer("permessage-deflate; client_max_window_bits", EXT);
    check_offer("permessage-deflate;client_max_window_bits=8", EXT);
    check_offer("permessage-deflate; client_max_window_bits=\"12\"", EXT);
    check_offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover", EXT);
    check_offer("permessage-deflate; server_max_window_bits=15", EXT "; server_max_window_bits=15");
    check_offer("Permessage-Deflate", EXT);
    check_offer(", ,permessage-deflate", EXT);
}

static void test_negotiate_first_acceptable_offer(void **state) {
    (void)state;
    check_offer("foo; bar=1, permessage-deflate", EXT);
    check_offer("permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits", EXT);
    check_offer("permessage-deflate; x=\"a,b\", permessage-deflate", EXT);
    check_offer("permessage-deflate; server_max_window_bits=15, permessage-deflate",
                EXT "; server_max_window_bits=15");
}

static void test_negotiate_declines(void **state) {
    (void)state;
    check_offer(NULL, NULL);
    check_offer("", NULL);
    check_offer("x-webkit-deflate-frame", NULL);
    check_offer("permessage-deflate; server_max_window_bits=9", NULL);   /* libdeflate: 32 KiB only */
    check_offer("permessage-deflate; server_max_window_bits=8", NULL);
    check_offer("permessage-deflate; server_max_window_bits", NULL);     /* value required */
    check_offer("permessage-deflate; server_max_window_bits=015", NULL); /* leading zero */
    check_offer("permessage-deflate; server_max_window_bits=16", NULL);
    check_offer("permessage-deflate; client_max_window_bits=7", NULL);
    check_offer("permessage-deflate; client_max_window_bits=abc", NULL);
    check_offer("permessage-deflate; server_no_context_takeover=true", NULL);
    check_offer("permessage-deflate; client_no_context_takeover; client_no_context_takeover", NULL);
    check_offer("permessage-deflate; client_max_window_bits; client_max_window_bits=10", NULL);
    check_offer("permessage-deflate; unknown", NULL);
}

static void test_negotiate_malformed(void **state) {
    (void)state;
    check_offer("permessage-deflate;", NULL);
    check_offer("permessage-deflate; =1", NULL);
    check_offer("permessage-deflate; a=\"unterminated", NULL);
    check_offer("permessage-deflate garbage", NULL);
    check_offer("; permessage-deflate", NULL);
    check_offer("permessage-deflate; client_max_window_bits=", NULL);
    /* malformed after an acceptable offer: the first one stands */
    check_offer("permessage-deflate, ;;;", EXT);
}

static void test_negotiate_off(void **state) {
    (void)state;
    char resp[WS_DEFLATE_RESPONSE_MAX];
    ws_deflate_configure(false, 256);
    assert_false(ws_deflate_negotiate("permessage-deflate", 18, resp));
    ws_deflate_configure(true, 256);
}

/* ---- inflate (RFC 7692 7.2.3) ------------------------------------------- */

static void check_inflate(const uint8_t *in, size_t n, const char *expect) {
    uint8_t *out;
    size_t len;
    assert_int_equal(ws_inflate(in, n, 1000, &out, &len), 0);
    assert_int_equal(len, strlen(expect));
    assert_memory_equal(out, expect, len);
}

static void test_inflate_rfc_examples(void **state) {
    (void)state;
    static const uint8_t fixed[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};          /* 7.2.3.1 */
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c,    /* 7.2.3.3 */
                                     0x6c, 0x6f, 0x00};
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};   /* 7.2.3.4 */
    static const uint8_t empty[] = {0x00};                                               /* 7.2.3.6 */
    check_inflate(fixed, sizeof(fixed), "Hello");
    check_inflate(stored, sizeof(stored), "Hello");
    check_inflate(bfinal, sizeof(bfinal), "Hello");
    check_inflate(empty, sizeof(empty), "");
    check_inflate(NULL, 0, "");
}

static void test_inflate_bounds(void **state) {
    (void)state;
    uint8_t *out;
    size_t len;
    static const uint8_t fixed[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(ws_inflate(fixed, sizeof(fixed), 5, &out, &len), 0);   /* exactly the cap */
    assert_int_equal(ws_inflate(fixed, sizeof(fixed), 4, &out, &len), -WS_CLOSE_TOO_BIG);
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(ws_inflate(junk, sizeof(junk), 1000, &out, &len), -WS_CLOSE_INVALID_DATA);
    static const uint8_t stored_short[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48}; /* 5 announced, 1 there */
    int rc = ws_inflate(stored_short, sizeof(stored_short), 1000, &out, &len);
    assert_true(rc == -WS_CLOSE_INVALID_DATA || (rc == 0 && len <= 1000));
}

/* ---- outbound sibling --------------------------------------------------- */

static struct outbuf *frame(unsigned op, const char *text, size_t n) {
    struct outbuf *b = outbuf_new(n);
    assert_non_null(b);
    memcpy(outbuf_payload(b), text, n);
    outbuf_seal_ws(b, op, n);
    return b;
}

/* The payload of a server frame (no mask). */
static const uint8_t *payload_of(const struct outbuf *b, size_t *n) {
    size_t len = b->p[1] & 0x7F, hl = 2;
    if (len == 126) {
        len = ((size_t)b->p[2] << 8) | b->p[3];
        hl = 4;
    }
    assert_int_equal(hl + len, b->len);
    *n = len;
    return b->p + hl;
}

static char *json_text(size_t *n) {
    static char buf[4096];
    size_t o = 0;
    o += (size_t)sprintf(buf, "{\"type\":\"price_batch\",\"updates\":[");
    for (int i = 0; i < 15; i++)
        o += (size_t)sprintf(buf + o, "%s{\"type\":\"price_update\",\"symbol\":\"S%d\",\"price\":%d.25,\"seq\":%d}",
                             i ? "," : "", i, 100 + i, i);
    o += (size_t)sprintf(buf + o, "]}");
    *n = o;
    return buf;
}

static void test_sibling_shared_and_inflates(void **state) {
    (void)state;
    size_t n;
    char *text = json_text(&n);
    struct outbuf *b = frame(WS_OP_TEXT, text, n);
    b->kind = OB_TICK;
    b->sym = 7;
    b->seq = 42;
    uint64_t runs = ws_deflate_runs();
    struct outbuf *s1 = zframe_pick(outbuf_ref(b));
    struct outbuf *s2 = zframe_pick(outbuf_ref(b));
    assert_ptr_equal(s1, s2);                       /* one sibling, shared */
    assert_ptr_not_equal(s1, b);
    assert_int_equal(ws_deflate_runs(), runs + 1);  /* compressed once */
    assert_int_equal(atomic_load(&s1->refs), 3);    /* b's and two picks */
    assert_int_equal(s1->p[0], 0x80 | 0x40 | WS_OP_TEXT);
    assert_int_equal(s1->kind, OB_TICK);            /* conflation keys */
    assert_int_equal(s1->sym, 7);
    assert_int_equal(s1->seq, 42);
    assert_int_equal(s1->zsaved, b->len - s1->len);
    assert_true(s1->len < b->len);
    assert_ptr_equal(zframe_pick(s1), s1);      /* a sibling stays as it is */
    size_t zn;
    const uint8_t *z = payload_of(s1, &zn);
    uint8_t *out;
    size_t len;
    assert_int_equal(ws_inflate(z, zn, 65536, &out, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, text, n);
    outbuf_unref(b); /* the sibling outlives its frame while queued */
    outbuf_unref(s1);
    outbuf_unref(s2);
}

static void test_plain_cases(void **state) {
    (void)state;
    size_t n;
    char *text = json_text(&n);
    uint64_t runs = ws_deflate_runs();
    struct outbuf *small = frame(WS_OP_TEXT, text, 255); /* below the minimum */
    assert_ptr_equal(zframe_pick(small), small);
    struct outbuf *ping = frame(WS_OP_PING, text, 100);
    assert_ptr_equal(zframe_pick(ping), ping);
    assert_int_equal(ws_deflate_runs(), runs);
    uint8_t rnd[600];
    srand(1);
    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)rand();
    struct outbuf *noise = frame(WS_OP_BINARY, (const char *)rnd, sizeof(rnd)); /* no gain */
    assert_ptr_equal(zframe_pick(noise), noise);
    assert_ptr_equal(atomic_load(&noise->z), noise);
    assert_int_equal(ws_deflate_runs(), runs + 1);
    assert_ptr_equal(zframe_pick(noise), noise); /* decided once */
    assert_int_equal(ws_deflate_runs(), runs + 1);
    outbuf_unref(small);
    outbuf_unref(ping);
    outbuf_unref(noise);
}

/* ---- RSV1 in the frame parser ------------------------------------------- */

static ssize_t parse_header(bool rsv1_ok, uint8_t b0, struct ws_frame_event *ev) {
    struct ws_parser p;
    ws_parser_init(&p, false);
    p.rsv1_ok = rsv1_ok;
    uint8_t buf[2] = {b0, 0x00};
    return ws_parse(&p, buf, 2, ev);
}

static void test_parser_rsv1(void **state) {
    (void)state;
    struct ws_frame_event ev;
    assert_int_equal(parse_header(false, 0xC1, &ev), -WS_CLOSE_PROTOCOL); /* not negotiated */
    assert_int_equal(parse_header(true, 0xC1, &ev), 2);
    assert_true(ev.rsv1);
    assert_int_equal(parse_header(true, 0x42, &ev), 2);                 /* first of a binary message */
    assert_int_equal(parse_header(true, 0xC0, &ev), -WS_CLOSE_PROTOCOL); /* continuation */
    assert_int_equal(parse_header(true, 0xC9, &ev), -WS_CLOSE_PROTOCOL); /* ping */
    assert_int_equal(parse_header(true, 0xA1, &ev), -WS_CLOSE_PROTOCOL); /* RSV2 */
    assert_int_equal(parse_header(true, 0x81, &ev), 2);
    assert_false(ev.rsv1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiate_accepts),
        cmocka_unit_test(test_negotiate_first_acceptable_offer),
        cmocka_unit_test(test_negotiate_declines),
        cmocka_unit_test(test_negotiate_malformed),
        cmocka_unit_test(test_negotiate_off),
        cmocka_unit_test(test_inflate_rfc_examples),
        cmocka_unit_test(test_inflate_bounds),
        cmocka_unit_test(test_sibling_shared_and_inflates),
        cmocka_unit_test(test_plain_cases),
        cmocka_unit_test(test_parser_rsv1),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

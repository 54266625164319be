/* test_frame.c - unit tests for the RFC 6455 frame decoder and encoder
 * (src/ws/frame.c): ws_parse, ws_header_encode, ws_mask, ws_close_code_valid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws/frame.h"

/* ---- helpers ------------------------------------------------------------ */

#define MAX_FRAMES 16
#define ERR_PROTO (-(ssize_t)WS_CLOSE_PROTOCOL)

static uint32_t rng_state;
static uint8_t rnd8(void) {
    rng_state = rng_state * 1103515245u + 12345u;
    return (uint8_t)(rng_state >> 16);
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed) {
    rng_state = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = rnd8();
}

/* Everything a parse run reports. */
struct frame_out {
    uint8_t opcode;
    bool fin;
    uint64_t length;
    uint8_t *payload; /* malloc'd concatenation of PAYLOAD slices */
    size_t got;
    bool ended;
};

struct run {
    struct frame_out f[MAX_FRAMES];
    int nframes;
    ssize_t err;       /* 0 or the negative code ws_parse returned */
    size_t consumed;   /* total bytes consumed (before an error) */
};

static void run_free(struct run *r) {
    for (int i = 0; i < r->nframes; i++)
        free(r->f[i].payload);
    memset(r, 0, sizeof(*r));
}

/* Feeds buf[0..len) to a fresh parser in chunks of `chunk` bytes (the last
 * may be shorter), calling ws_parse on each chunk until it reports
 * WS_EV_NONE, the way a read loop does. Collects every event in *r and checks
 * the invariants of each event on the way. buf is modified (unmasked). */
static void run_parse(struct run *r, bool require_mask, uint8_t *buf, size_t len, size_t chunk) {
    struct ws_parser p;
    ws_parser_init(&p, require_mask);
    memset(r, 0, sizeof(*r));
    struct frame_out *cur = NULL;
    size_t pos = 0;
    if (chunk == 0)
        chunk = len ? len : 1;
    do {
        size_t end = len - pos < chunk ? len : pos + chunk;
        for (;;) {
            struct ws_frame_event ev;
            memset(&ev, 0xA5, sizeof(ev));
            ssize_t n = ws_parse(&p, buf + pos, end - pos, &ev);
            if (n < 0) {
                r->err = n;
                r->consumed = pos;
                return;
            }
            assert_true((size_t)n <= end - pos);
            size_t at = pos;
            pos += (size_t)n;
            if (ev.type == WS_EV_NONE) {
                assert_int_equal(pos, end); /* NONE only when the input is used up */
                break;
            }
            switch (ev.type) {
            case WS_EV_HEADER:
                assert_null(cur);
                assert_true(r->nframes < MAX_FRAMES);
                cur = &r->f[r->nframes++];
                cur->opcode = ev.opcode;
                cur->fin = ev.fin;
                cur->length = ev.length;
                if (ev.length <= (64u << 20)) {
                    cur->payload = malloc(ev.length ? (size_t)ev.length : 1);
                    assert_non_null(cur->payload);
                }
                break;
            case WS_EV_PAYLOAD:
                assert_non_null(cur);
                assert_true(n > 0);
                assert_ptr_equal(ev.data, buf + at); /* a slice of our buffer */
                assert_int_equal(ev.len, (size_t)n);
                assert_int_equal(ev.opcode, cur->opcode);
                assert_int_equal(ev.fin, cur->fin);
                assert_true(ev.length == cur->length);
                assert_true(cur->got + ev.len <= cur->length);
                if (cur->payload)
                    memcpy(cur->payload + cur->got, ev.data, ev.len);
                cur->got += ev.len;
                break;
            case WS_EV_FRAME_END:
                assert_non_null(cur);
                assert_int_equal(n, 0);
                assert_true(cur->got == cur->length);
                assert_int_equal(ev.opcode, cur->opcode);
                assert_int_equal(ev.fin, cur->fin);
                cur->ended = true;
                cur = NULL;
                break;
            default:
                fail_msg("unknown event type %d", (int)ev.type);
            }
        }
    } while (pos < len);
    r->consumed = pos;
}

/* Builds one frame: header (shortest length form) + payload, masked with
 * mask when mask != NULL. Returns the frame size. */
static size_t build_frame(uint8_t *out, unsigned b0, const uint8_t *payload, size_t plen, const uint8_t *mask) {
    size_t h = ws_header_encode(out, b0 & 0x0F, (b0 & 0x80) != 0, plen, mask);
    out[0] = (uint8_t)b0; /* keep RSV bits the caller asked for */
    if (plen)
        memcpy(out + h, payload, plen);
    if (mask)
        ws_mask(out + h, plen, mask, 0);
    return h + plen;
}

/* Parses a raw buffer (copied, so the caller's stays intact) whole and
 * byte by byte and returns the first result; both must agree. */
static ssize_t parse_error(bool require_mask, const uint8_t *raw, size_t len) {
    uint8_t *a = malloc(len ? len : 1), *b = malloc(len ? len : 1);
    assert_non_null(a);
    assert_non_null(b);
    memcpy(a, raw, len);
    memcpy(b, raw, len);
    struct run r1, r2;
    run_parse(&r1, require_mask, a, len, 0);
    run_parse(&r2, require_mask, b, len, 1);
    assert_true(r1.err == r2.err);
    ssize_t e = r1.err;
    run_free(&r1);
    run_free(&r2);
    free(a);
    free(b);
    return e;
}

static const uint8_t MASK[4] = {0x37, 0xFA, 0x21, 0x3D};

/* ---- RFC 6455 section 5.7 examples -------------------------------------- */

static void test_rfc_examples(void **state) {
    (void)state;
    struct run r;

    /* single-frame unmasked text "Hello" */
    uint8_t a[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    run_parse(&r, false, a, sizeof(a), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nframes, 1);
    assert_int_equal(r.f[0].opcode, WS_OP_TEXT);
    assert_true(r.f[0].fin);
    assert_true(r.f[0].length == 5);
    assert_true(r.f[0].ended);
    assert_memory_equal(r.f[0].payload, "Hello", 5);
    run_free(&r);

    /* single-frame masked text "Hello", unmasked in place */
    uint8_t b[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    run_parse(&r, true, b, sizeof(b), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nframes, 1);
    assert_memory_equal(r.f[0].payload, "Hello", 5);
    assert_memory_equal(b + 6, "Hello", 5); /* in place */
    run_free(&r);

    /* fragmented unmasked text "Hel" + "lo" */
    uint8_t c[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    run_parse(&r, false, c, sizeof(c), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nframes, 2);
    assert_int_equal(r.f[0].opcode, WS_OP_TEXT);
    assert_false(r.f[0].fin);
    assert_memory_equal(r.f[0].payload, "Hel", 3);
    assert_int_equal(r.f[1].opcode, WS_OP_CONT);
    assert_true(r.f[1].fin);
    assert_memory_equal(r.f[1].payload, "lo", 2);
    run_free(&r);

    /* unmasked ping "Hello", masked pong "Hello" */
    uint8_t d[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    run_parse(&r, false, d, sizeof(d), 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nframes, 2);
    assert_int_equal(r.f[0].opcode, WS_OP_PING);
    assert_int_equal(r.f[1].opcode, WS_OP_PONG);
    assert_memory_equal(r.f[0].payload, "Hello", 5);
    assert_memory_equal(r.f[1].payload, "Hello", 5);
    run_free(&r);

    /* 256 bytes binary in a single unmasked frame: 16-bit length */
    uint8_t *e = calloc(1, 4 + 256);
    assert_non_null(e);
    e[0] = 0x82;
    e[1] = 0x7E;
    e[2] = 0x01;
    e[3] = 0x00;
    run_parse(&r, false, e, 4 + 256, 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.f[0].opcode, WS_OP_BINARY);
    assert_true(r.f[0].length == 256);
    assert_true(r.f[0].ended);
    run_free(&r);
    free(e);

    /* 64 KiB binary in a single unmasked frame: 64-bit length */
    uint8_t *g = calloc(1, 10 + 65536);
    assert_non_null(g);
    const uint8_t gh[10] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    memcpy(g, gh, sizeof(gh));
    run_parse(&r, false, g, 10 + 65536, 0);
    assert_int_equal(r.err, 0);
    assert_true(r.f[0].length == 65536);
    assert_true(r.f[0].ended);
    run_free(&r);
    free(g);
}

/* ---- length forms, masking, chunking ------------------------------------ */

/* Header size for a length with the minimal encoding. */
static size_t hdr_size(uint64_t len, bool masked) {
    return (len < 126 ? 2 : len <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0);
}

static void check_length(size_t plen, bool masked, size_t chunk) {
    uint8_t *payload = malloc(plen ? plen : 1);
    uint8_t *frame = malloc(plen + WS_MAX_HEADER);
    assert_non_null(payload);
    assert_non_null(frame);
    fill_pattern(payload, plen, (uint32_t)plen * 31u + 7u);
    size_t n = build_frame(frame, 0x82, payload, plen, masked ? MASK : NULL);
    assert_int_equal(n, hdr_size(plen, masked) + plen);

    struct run r;
    run_parse(&r, masked, frame, n, chunk);
    if (r.err)
        fail_msg("len %zu masked %d chunk %zu: error %zd", plen, masked, chunk, r.err);
    assert_int_equal(r.nframes, 1);
    assert_int_equal(r.consumed, n);
    assert_int_equal(r.f[0].opcode, WS_OP_BINARY);
    assert_true(r.f[0].fin);
    assert_true(r.f[0].length == plen);
    assert_true(r.f[0].ended);
    assert_int_equal(r.f[0].got, plen);
    if (plen)
        assert_memory_equal(r.f[0].payload, payload, plen);
    run_free(&r);
    free(payload);
    free(frame);
}

static void test_length_forms(void **state) {
    (void)state;
    static const size_t lens[] = {0, 1, 7, 8, 9, 124, 125, 126, 127, 255, 256, 65534, 65535, 65536, 65537, 200000};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (int m = 0; m < 2; m++)
            check_length(lens[i], m, 0);
}

static void test_header_bytes_consumed(void **state) {
    (void)state;
    /* the HEADER event arrives exactly when the last header byte is fed */
    static const size_t lens[] = {0, 125, 126, 65535, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (int m = 0; m < 2; m++) {
            uint8_t h[WS_MAX_HEADER + 4] = {0};
            size_t hn = ws_header_encode(h, WS_OP_BINARY, true, lens[i], m ? MASK : NULL);
            assert_int_equal(hn, hdr_size(lens[i], m));
            struct ws_parser p;
            ws_parser_init(&p, false);
            struct ws_frame_event ev;
            for (size_t k = 0; k + 1 < hn; k++) {
                assert_int_equal(ws_parse(&p, h + k, 1, &ev), 1);
                assert_int_equal(ev.type, WS_EV_NONE);
            }
            assert_int_equal(ws_parse(&p, h + hn - 1, 1, &ev), 1);
            assert_int_equal(ev.type, WS_EV_HEADER);
            assert_true(ev.length == lens[i]);

            /* whole header plus extra bytes: stops right after the header */
            ws_parser_init(&p, false);
            assert_int_equal(ws_parse(&p, h, hn + 4, &ev), (ssize_t)hn);
            assert_int_equal(ev.type, WS_EV_HEADER);
        }
}

static void test_masked_unmasking(void **state) {
    (void)state;
    /* masked frames of every small length and a few masks, unmasked in place */
    const uint8_t masks[][4] = {{0, 0, 0, 0}, {0xFF, 0xFF, 0xFF, 0xFF}, {1, 2, 3, 4}, {0x37, 0xFA, 0x21, 0x3D}};
    for (size_t mi = 0; mi < 4; mi++)
        for (size_t plen = 0; plen <= 40; plen++) {
            uint8_t payload[40], frame[40 + WS_MAX_HEADER];
            fill_pattern(payload, plen, (uint32_t)(plen + 100 * mi));
            size_t n = build_frame(frame, 0x81, payload, plen, masks[mi]);
            /* the wire bytes are payload XOR mask[i % 4] */
            for (size_t i = 0; i < plen; i++)
                assert_int_equal(frame[6 + i], payload[i] ^ masks[mi][i % 4]);
            struct run r;
            run_parse(&r, true, frame, n, 0);
            assert_int_equal(r.err, 0);
            assert_int_equal(r.nframes, 1);
            if (plen) {
                assert_memory_equal(r.f[0].payload, payload, plen);
                assert_memory_equal(frame + 6, payload, plen);
            }
            run_free(&r);
        }

    /* a masked frame is accepted, and unmasked, by a parser that does not
     * require masks (client side) */
    uint8_t b[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct run r;
    run_parse(&r, false, b, sizeof(b), 0);
    assert_int_equal(r.err, 0);
    assert_memory_equal(r.f[0].payload, "Hello", 5);
    run_free(&r);
}

static void test_byte_at_a_time(void **state) {
    (void)state;
    static const size_t lens[] = {0, 1, 5, 125, 126, 1000, 65535, 65536};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (int m = 0; m < 2; m++)
            check_length(lens[i], m, 1);
    /* every chunk size for a mid-sized masked frame */
    for (size_t chunk = 1; chunk <= 300 + 8; chunk++)
        check_length(300, true, chunk);
    /* and for a small one including chunk sizes larger than the frame */
    for (size_t chunk = 1; chunk <= 40; chunk++) {
        check_length(17, true, chunk);
        check_length(17, false, chunk);
    }
}

static void test_multiple_frames_one_buffer(void **state) {
    (void)state;
    /* text "ab" (FIN=0), ping "", cont "cd" (FIN=1), binary 300 bytes, close
     * with code 1000, an empty text frame, all masked, back to back */
    uint8_t bin[300];
    fill_pattern(bin, sizeof(bin), 42);
    const uint8_t close_body[] = {0x03, 0xE8, 'b', 'y', 'e'};
    const uint8_t m2[4] = {0xA1, 0xB2, 0xC3, 0xD4};
    uint8_t buf[1024];
    size_t n = 0;
    n += build_frame(buf + n, 0x01, (const uint8_t *)"ab", 2, MASK);
    n += build_frame(buf + n, 0x89, NULL, 0, m2);
    n += build_frame(buf + n, 0x80, (const uint8_t *)"cd", 2, m2);
    n += build_frame(buf + n, 0x82, bin, sizeof(bin), MASK);
    n += build_frame(buf + n, 0x88, close_body, sizeof(close_body), m2);
    n += build_frame(buf + n, 0x81, NULL, 0, MASK);

    static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 13, 64, 1000};
    for (size_t ci = 0; ci < sizeof(chunks) / sizeof(chunks[0]); ci++) {
        uint8_t copy[1024];
        memcpy(copy, buf, n);
        struct run r;
        run_parse(&r, true, copy, n, chunks[ci]);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.consumed, n);
        assert_int_equal(r.nframes, 6);
        for (int i = 0; i < 6; i++)
            assert_true(r.f[i].ended);
        assert_int_equal(r.f[0].opcode, WS_OP_TEXT);
        assert_false(r.f[0].fin);
        assert_memory_equal(r.f[0].payload, "ab", 2);
        assert_int_equal(r.f[1].opcode, WS_OP_PING);
        assert_true(r.f[1].length == 0);
        assert_int_equal(r.f[2].opcode, WS_OP_CONT);
        assert_true(r.f[2].fin);
        assert_memory_equal(r.f[2].payload, "cd", 2);
        assert_int_equal(r.f[3].opcode, WS_OP_BINARY);
        assert_memory_equal(r.f[3].payload, bin, sizeof(bin));
        assert_int_equal(r.f[4].opcode, WS_OP_CLOSE);
        assert_memory_equal(r.f[4].payload, close_body, sizeof(close_body));
        assert_int_equal(r.f[5].opcode, WS_OP_TEXT);
        assert_true(r.f[5].length == 0);
        run_free(&r);
    }
}

static void test_zero_length_and_empty_input(void **state) {
    (void)state;
    struct ws_parser p;
    struct ws_frame_event ev;
    ws_parser_init(&p, false);
    /* no input at all: nothing happens */
    assert_int_equal(ws_parse(&p, NULL, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);

    /* zero-length frame: HEADER, then FRAME_END with no bytes at all */
    uint8_t f[] = {0x82, 0x00};
    assert_int_equal(ws_parse(&p, f, sizeof(f), &ev), 2);
    assert_int_equal(ev.type, WS_EV_HEADER);
    assert_true(ev.length == 0);
    assert_int_equal(ws_parse(&p, f + 2, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_FRAME_END);
    assert_int_equal(ev.opcode, WS_OP_BINARY);
    assert_int_equal(ws_parse(&p, f + 2, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);

    /* payload pending but no input: NONE, nothing consumed */
    uint8_t g[] = {0x81, 0x03, 'a', 'b', 'c'};
    assert_int_equal(ws_parse(&p, g, sizeof(g), &ev), 2);
    assert_int_equal(ev.type, WS_EV_HEADER);
    assert_int_equal(ws_parse(&p, g + 2, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NONE);
    assert_int_equal(ws_parse(&p, g + 2, 3, &ev), 3);
    assert_int_equal(ev.type, WS_EV_PAYLOAD);
    assert_int_equal(ev.len, 3);
    assert_memory_equal(ev.data, "abc", 3);
    assert_int_equal(ws_parse(&p, g + 5, 0, &ev), 0);
    assert_int_equal(ev.type, WS_EV_FRAME_END);
}

/* A header announcing a huge payload is reported as is: the parser does not
 * buffer, and the caller decides. */
static void test_huge_length_header(void **state) {
    (void)state;
    const uint64_t lens[] = {1ULL << 32, 1ULL << 62, (1ULL << 63) - 1};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int m = 0; m < 2; m++) {
            uint8_t h[WS_MAX_HEADER];
            size_t hn = ws_header_encode(h, WS_OP_BINARY, true, lens[i], m ? MASK : NULL);
            assert_int_equal(hn, m ? 14 : 10);
            for (int k = 0; k < 8; k++)
                assert_int_equal(h[2 + k], (uint8_t)(lens[i] >> (56 - 8 * k)));
            struct ws_parser p;
            ws_parser_init(&p, m);
            struct ws_frame_event ev;
            assert_int_equal(ws_parse(&p, h, hn, &ev), (ssize_t)hn);
            assert_int_equal(ev.type, WS_EV_HEADER);
            assert_int_equal(ev.opcode, WS_OP_BINARY);
            assert_true(ev.fin);
            assert_true(ev.length == lens[i]);

            /* some payload: delivered as it comes, no FRAME_END yet */
            uint8_t chunk[1000];
            memset(chunk, 0x55, sizeof(chunk));
            assert_int_equal(ws_parse(&p, chunk, sizeof(chunk), &ev), (ssize_t)sizeof(chunk));
            assert_int_equal(ev.type, WS_EV_PAYLOAD);
            assert_int_equal(ev.len, sizeof(chunk));
            assert_true(ev.length == lens[i]);
            assert_int_equal(ws_parse(&p, chunk, 0, &ev), 0);
            assert_int_equal(ev.type, WS_EV_NONE);
        }
    }
}

/* ---- rejections: all -1002 ---------------------------------------------- */

static void test_reject_rsv(void **state) {
    (void)state;
    static const uint8_t rsv[] = {0x40, 0x20, 0x10, 0x70};
    static const uint8_t ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_CONT, WS_OP_PING, WS_OP_CLOSE};
    for (size_t i = 0; i < sizeof(rsv); i++)
        for (size_t o = 0; o < sizeof(ops); o++) {
            uint8_t f[] = {(uint8_t)(0x80 | rsv[i] | ops[o]), 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
            assert_int_equal(parse_error(true, f, sizeof(f)), ERR_PROTO);
            assert_int_equal(parse_error(false, f, sizeof(f)), ERR_PROTO);
            /* the error is reported as soon as the second byte is in */
            struct ws_parser p;
            ws_parser_init(&p, true);
            struct ws_frame_event ev;
            assert_int_equal(ws_parse(&p, f, 1, &ev), 1);
            assert_int_equal(ev.type, WS_EV_NONE);
            assert_int_equal(ws_parse(&p, f + 1, 1, &ev), ERR_PROTO);
        }
    /* the same frame without RSV is fine */
    uint8_t ok[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
    assert_int_equal(parse_error(true, ok, sizeof(ok)), 0);
}

static void test_reject_reserved_opcodes(void **state) {
    (void)state;
    for (unsigned op = 0; op <= 0xF; op++) {
        bool reserved = (op >= 3 && op <= 7) || op >= 0xB;
        for (int fin = 0; fin < 2; fin++) {
            uint8_t f[] = {(uint8_t)((fin ? 0x80 : 0) | op), 0x80, 0, 0, 0, 0};
            ssize_t e = parse_error(true, f, sizeof(f));
            if (reserved)
                assert_int_equal(e, ERR_PROTO);
            else if (ws_op_is_control(op) && !fin)
                assert_int_equal(e, ERR_PROTO); /* fragmented control */
            else
                assert_int_equal(e, 0);
        }
    }
}

static void test_reject_fragmented_control(void **state) {
    (void)state;
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t f[] = {ops[i], 0x80, 0, 0, 0, 0};
        assert_int_equal(parse_error(true, f, sizeof(f)), ERR_PROTO);
        uint8_t g[] = {ops[i], 0x00};
        assert_int_equal(parse_error(false, g, sizeof(g)), ERR_PROTO);
        /* with FIN set they are fine */
        uint8_t ok[] = {(uint8_t)(0x80 | ops[i]), 0x80, 0, 0, 0, 0};
        assert_int_equal(parse_error(true, ok, sizeof(ok)), 0);
    }
    /* data frames may be fragmented */
    uint8_t t[] = {WS_OP_TEXT, 0x80, 0, 0, 0, 0};
    assert_int_equal(parse_error(true, t, sizeof(t)), 0);
}

static void test_reject_control_too_long(void **state) {
    (void)state;
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t b0 = (uint8_t)(0x80 | ops[i]);
        /* 125 bytes: the largest control frame, fine */
        uint8_t ok[2 + 125] = {b0, 125};
        if (ops[i] == WS_OP_CLOSE) {
            ok[2] = 0x03;
            ok[3] = 0xE8;
        }
        assert_int_equal(parse_error(false, ok, sizeof(ok)), 0);

        /* 16-bit form: 126 and 65535 */
        uint8_t a[] = {b0, 126, 0x00, 126};
        assert_int_equal(parse_error(false, a, sizeof(a)), ERR_PROTO);
        uint8_t a2[] = {b0, 0x80 | 126, 0xFF, 0xFF, 1, 2, 3, 4};
        assert_int_equal(parse_error(true, a2, sizeof(a2)), ERR_PROTO);
        /* 16-bit form announcing <= 125 is still rejected (both non-minimal
         * and a control frame using an extended length) */
        uint8_t a3[] = {b0, 126, 0x00, 5, 'h', 'e', 'l', 'l', 'o'};
        assert_int_equal(parse_error(false, a3, sizeof(a3)), ERR_PROTO);

        /* 64-bit form: 65536 and 2^40 */
        uint8_t c[] = {b0, 127, 0, 0, 0, 0, 0, 1, 0, 0};
        assert_int_equal(parse_error(false, c, sizeof(c)), ERR_PROTO);
        uint8_t c2[] = {b0, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4};
        assert_int_equal(parse_error(true, c2, sizeof(c2)), ERR_PROTO);

        /* rejected from the second byte on, before the length bytes */
        struct ws_parser p;
        ws_parser_init(&p, false);
        struct ws_frame_event ev;
        assert_int_equal(ws_parse(&p, a, 2, &ev), ERR_PROTO);
        ws_parser_init(&p, false);
        assert_int_equal(ws_parse(&p, c, 2, &ev), ERR_PROTO);
    }
}

static void test_reject_unmasked(void **state) {
    (void)state;
    uint8_t f[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(parse_error(true, f, sizeof(f)), ERR_PROTO);
    assert_int_equal(parse_error(false, f, sizeof(f)), 0);
    /* control and continuation frames too */
    uint8_t ping[] = {0x89, 0x00};
    assert_int_equal(parse_error(true, ping, sizeof(ping)), ERR_PROTO);
    uint8_t cont[] = {0x80, 0x00};
    assert_int_equal(parse_error(true, cont, sizeof(cont)), ERR_PROTO);
    /* an unmasked second frame after a good masked one */
    uint8_t two[] = {0x81, 0x81, 1, 2, 3, 4, 'a' ^ 1, 0x81, 0x01, 'b'};
    uint8_t copy[sizeof(two)];
    memcpy(copy, two, sizeof(two));
    struct run r;
    run_parse(&r, true, copy, sizeof(copy), 0);
    assert_int_equal(r.err, ERR_PROTO);
    assert_int_equal(r.nframes, 1);
    assert_true(r.f[0].ended);
    assert_memory_equal(r.f[0].payload, "a", 1);
    run_free(&r);
}

static void test_reject_non_minimal_length(void **state) {
    (void)state;
    /* 16-bit form for lengths below 126 */
    static const uint16_t l16[] = {0, 1, 125};
    for (size_t i = 0; i < sizeof(l16) / sizeof(l16[0]); i++) {
        uint8_t f[4 + 125] = {0x82, 126, (uint8_t)(l16[i] >> 8), (uint8_t)l16[i]};
        assert_int_equal(parse_error(false, f, 4 + l16[i]), ERR_PROTO);
        uint8_t g[8] = {0x82, 0x80 | 126, (uint8_t)(l16[i] >> 8), (uint8_t)l16[i], 1, 2, 3, 4};
        assert_int_equal(parse_error(true, g, sizeof(g)), ERR_PROTO);
    }
    uint8_t ok16[4 + 126] = {0x82, 126, 0, 126};
    assert_int_equal(parse_error(false, ok16, sizeof(ok16)), 0);

    /* 64-bit form for lengths that fit 16 bits */
    static const uint64_t l64[] = {0, 1, 125, 126, 127, 65535};
    for (size_t i = 0; i < sizeof(l64) / sizeof(l64[0]); i++) {
        uint8_t f[10] = {0x82, 127};
        for (int k = 0; k < 8; k++)
            f[2 + k] = (uint8_t)(l64[i] >> (56 - 8 * k));
        assert_int_equal(parse_error(false, f, sizeof(f)), ERR_PROTO);
        uint8_t g[14] = {0x82, 0x80 | 127};
        memcpy(g + 2, f + 2, 8);
        memcpy(g + 10, MASK, 4);
        assert_int_equal(parse_error(true, g, sizeof(g)), ERR_PROTO);
    }
    /* 65536 in the 64-bit form is minimal: header accepted */
    uint8_t ok64[10] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    struct ws_parser p;
    ws_parser_init(&p, false);
    struct ws_frame_event ev;
    assert_int_equal(ws_parse(&p, ok64, sizeof(ok64), &ev), 10);
    assert_int_equal(ev.type, WS_EV_HEADER);
    assert_true(ev.length == 65536);
}

static void test_reject_64bit_msb(void **state) {
    (void)state;
    const uint64_t bad[] = {1ULL << 63, (1ULL << 63) | 65536, UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t f[14] = {0x82, 0x80 | 127};
        for (int k = 0; k < 8; k++)
            f[2 + k] = (uint8_t)(bad[i] >> (56 - 8 * k));
        memcpy(f + 10, MASK, 4);
        assert_int_equal(parse_error(true, f, sizeof(f)), ERR_PROTO);
        f[1] = 127;
        assert_int_equal(parse_error(false, f, 10), ERR_PROTO);
    }
}

/* The parser can be reused after FRAME_END with a different mask, and masks
 * do not leak between frames. */
static void test_mask_per_frame(void **state) {
    (void)state;
    uint8_t buf[256];
    size_t n = 0;
    const uint8_t m1[4] = {1, 2, 3, 4}, m2[4] = {0xF0, 0x0F, 0xAA, 0x55};
    n += build_frame(buf + n, 0x81, (const uint8_t *)"first frame", 11, m1);
    n += build_frame(buf + n, 0x81, (const uint8_t *)"second frame!", 13, m2);
    n += build_frame(buf + n, 0x82, (const uint8_t *)"third", 5, NULL);
    struct run r;
    run_parse(&r, false, buf, n, 3);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.nframes, 3);
    assert_memory_equal(r.f[0].payload, "first frame", 11);
    assert_memory_equal(r.f[1].payload, "second frame!", 13);
    assert_memory_equal(r.f[2].payload, "third", 5);
    run_free(&r);
}

/* ---- encoder ------------------------------------------------------------ */

static void test_header_encode_bytes(void **state) {
    (void)state;
    uint8_t h[WS_MAX_HEADER];
    assert_int_equal(ws_header_encode(h, WS_OP_TEXT, true, 5, NULL), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 0x05);

    assert_int_equal(ws_header_encode(h, WS_OP_TEXT, true, 5, MASK), 6);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 0x85);
    assert_memory_equal(h + 2, MASK, 4);

    assert_int_equal(ws_header_encode(h, WS_OP_CONT, false, 125, NULL), 2);
    assert_int_equal(h[0], 0x00);
    assert_int_equal(h[1], 125);

    assert_int_equal(ws_header_encode(h, WS_OP_BINARY, true, 256, NULL), 4);
    const uint8_t e256[] = {0x82, 0x7E, 0x01, 0x00};
    assert_memory_equal(h, e256, 4);

    assert_int_equal(ws_header_encode(h, WS_OP_BINARY, true, 126, NULL), 4);
    const uint8_t e126[] = {0x82, 0x7E, 0x00, 0x7E};
    assert_memory_equal(h, e126, 4);

    assert_int_equal(ws_header_encode(h, WS_OP_BINARY, true, 65535, MASK), 8);
    const uint8_t e65535[] = {0x82, 0xFE, 0xFF, 0xFF, 0x37, 0xFA, 0x21, 0x3D};
    assert_memory_equal(h, e65535, 8);

    assert_int_equal(ws_header_encode(h, WS_OP_BINARY, true, 65536, NULL), 10);
    const uint8_t e65536[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    assert_memory_equal(h, e65536, 10);

    assert_int_equal(ws_header_encode(h, WS_OP_CLOSE, true, 2, NULL), 2);
    assert_int_equal(h[0], 0x88);
    assert_int_equal(ws_header_encode(h, WS_OP_PONG, true, 0, MASK), 6);
    assert_int_equal(h[0], 0x8A);
    assert_int_equal(h[1], 0x80);
}

static void test_header_encode_round_trip(void **state) {
    (void)state;
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000};
    static const uint8_t ops[] = {WS_OP_CONT, WS_OP_TEXT, WS_OP_BINARY};
    uint8_t *frame = malloc(70000 + WS_MAX_HEADER);
    uint8_t *payload = malloc(70000);
    assert_non_null(frame);
    assert_non_null(payload);
    for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
        for (size_t oi = 0; oi < sizeof(ops); oi++)
            for (int fin = 0; fin < 2; fin++) {
                size_t plen = (size_t)lens[li];
                uint8_t mask[4] = {(uint8_t)(li + 1), (uint8_t)(oi * 7 + 3), (uint8_t)(fin + 0x80), 0x5A};
                fill_pattern(payload, plen, (uint32_t)(li * 100 + oi * 10 + (size_t)fin));
                size_t hn = ws_header_encode(frame, ops[oi], fin, plen, mask);
                assert_int_equal(hn, hdr_size(plen, true));
                memcpy(frame + hn, payload, plen);
                ws_mask(frame + hn, plen, mask, 0);
                struct run r;
                run_parse(&r, true, frame, hn + plen, plen > 1000 ? 0 : 7);
                assert_int_equal(r.err, 0);
                assert_int_equal(r.nframes, 1);
                assert_int_equal(r.f[0].opcode, ops[oi]);
                assert_int_equal(r.f[0].fin, fin);
                assert_true(r.f[0].length == plen);
                assert_true(r.f[0].ended);
                if (plen)
                    assert_memory_equal(r.f[0].payload, payload, plen);
                run_free(&r);
            }
    /* control frames with the largest allowed payload */
    static const uint8_t cops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t oi = 0; oi < sizeof(cops); oi++) {
        size_t hn = ws_header_encode(frame, cops[oi], true, 125, MASK);
        assert_int_equal(hn, 6);
        fill_pattern(payload, 125, (uint32_t)oi);
        memcpy(frame + hn, payload, 125);
        ws_mask(frame + hn, 125, MASK, 0);
        struct run r;
        run_parse(&r, true, frame, hn + 125, 1);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.f[0].opcode, cops[oi]);
        assert_memory_equal(r.f[0].payload, payload, 125);
        run_free(&r);
    }
    free(frame);
    free(payload);
}

/* ---- ws_mask ------------------------------------------------------------ */

static void ref_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t off) {
    for (size_t i = 0; i < len; i++)
        buf[i] ^= mask[(off + i) % 4];
}

static void test_mask_reference(void **state) {
    (void)state;
    const uint8_t m[4] = {0x12, 0x34, 0x56, 0x78};
    const uint64_t offs[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 1001, (1ULL << 32) + 3, (1ULL << 62) + 1, UINT64_MAX};
    for (size_t len = 0; len <= 70; len++)
        for (size_t oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++) {
            uint8_t a[70], b[70];
            fill_pattern(a, len, (uint32_t)len);
            memcpy(b, a, len);
            ws_mask(a, len, m, offs[oi]);
            ref_mask(b, len, m, offs[oi]);
            assert_memory_equal(a, b, len);
            /* masking twice restores the input */
            ws_mask(a, len, m, offs[oi]);
            fill_pattern(b, len, (uint32_t)len);
            assert_memory_equal(a, b, len);
        }
}

static void test_mask_chunked(void **state) {
    (void)state;
    enum { N = 257 };
    uint8_t orig[N], whole[N], part[N];
    fill_pattern(orig, N, 99);
    memcpy(whole, orig, N);
    ws_mask(whole, N, MASK, 0);

    /* every two-way split */
    for (size_t cut = 0; cut <= N; cut++) {
        memcpy(part, orig, N);
        ws_mask(part, cut, MASK, 0);
        ws_mask(part + cut, N - cut, MASK, cut);
        assert_memory_equal(part, whole, N);
    }
    /* fixed chunk sizes 1..N */
    for (size_t chunk = 1; chunk <= N; chunk++) {
        memcpy(part, orig, N);
        for (size_t off = 0; off < N; off += chunk)
            ws_mask(part + off, N - off < chunk ? N - off : chunk, MASK, off);
        assert_memory_equal(part, whole, N);
    }
    /* uneven chunks from a pseudo-random sequence */
    rng_state = 7;
    for (int round = 0; round < 200; round++) {
        memcpy(part, orig, N);
        size_t off = 0;
        while (off < N) {
            size_t c = (size_t)(rnd8() % 20);
            if (c > N - off)
                c = N - off;
            ws_mask(part + off, c, MASK, off);
            off += c;
        }
        assert_memory_equal(part, whole, N);
    }
    /* a large base offset congruent to 0 mod 4 behaves like offset 0 */
    memcpy(part, orig, N);
    ws_mask(part, N, MASK, 1ULL << 40);
    assert_memory_equal(part, whole, N);
}

/* ---- close codes -------------------------------------------------------- */

static void test_close_code_valid(void **state) {
    (void)state;
    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4001, 4999};
    static const unsigned bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535, 100000};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!ws_close_code_valid(ok[i]))
            fail_msg("close code %u should be valid", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ws_close_code_valid(bad[i]))
            fail_msg("close code %u should be invalid", bad[i]);
    /* exhaustive over 0..5999 against the RFC 6455 7.4 rule */
    for (unsigned c = 0; c < 6000; c++) {
        bool expect = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        if (ws_close_code_valid(c) != expect)
            fail_msg("close code %u: expected %d", c, expect);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_length_forms),
        cmocka_unit_test(test_header_bytes_consumed),
        cmocka_unit_test(test_masked_unmasking),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_multiple_frames_one_buffer),
        cmocka_unit_test(test_zero_length_and_empty_input),
        cmocka_unit_test(test_huge_length_header),
        cmocka_unit_test(test_reject_rsv),
        cmocka_unit_test(test_reject_reserved_opcodes),
        cmocka_unit_test(test_reject_fragmented_control),
        cmocka_unit_test(test_reject_control_too_long),
        cmocka_unit_test(test_reject_unmasked),
        cmocka_unit_test(test_reject_non_minimal_length),
        cmocka_unit_test(test_reject_64bit_msb),
        cmocka_unit_test(test_mask_per_frame),
        cmocka_unit_test(test_header_encode_bytes),
        cmocka_unit_test(test_header_encode_round_trip),
        cmocka_unit_test(test_mask_reference),
        cmocka_unit_test(test_mask_chunked),
        cmocka_unit_test(test_close_code_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

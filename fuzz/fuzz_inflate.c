/* fuzz_inflate.c - permessage-deflate (src/ws/deflate.c): the offer parser
 * and the inflate path with its bounds.
 *
 * Input: [mode][bytes...]
 *   mode bit 0 set:   bytes are a Sec-WebSocket-Extensions value;
 *   mode bits 0-1 00: bytes are a compressed message (RSV1 payload),
 *                     inflated with the cap 125 / 1000 / 65536 (bits 2-3);
 *   mode bits 0-1 10: bytes are a message, compressed by the shared-frame
 *                     path and inflated back.
 * Checks:
 *   - an accepted offer's answer always carries both no_context_takeover
 *     parameters and nothing the RFC forbids (client_max_window_bits);
 *   - parsing the same value twice gives the same answer;
 *   - inflate never returns more than the cap, fails only with 1007 or
 *     1009, and a repeat gives the same bytes;
 *   - compress then inflate is the identity, the sibling is shorter than
 *     its frame, and a cap one byte short gives 1009. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "net/outbuf.h"
#include "net/zframe.h"
#include "ws/deflate.h"
#include "ws/frame.h"

#define EXT "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static void fuzz_negotiate(const uint8_t *data, size_t size) {
    char r1[WS_DEFLATE_RESPONSE_MAX], r2[WS_DEFLATE_RESPONSE_MAX];
    char *v = (char *)fuzz_dup(data, size);
    bool a1 = ws_deflate_negotiate(v, size, r1);
    bool a2 = ws_deflate_negotiate(v, size, r2);
    FUZZ_CHECK(a1 == a2, "two parses disagree");
    if (a1) {
        FUZZ_CHECK(strncmp(r1, EXT, strlen(EXT)) == 0, "answer '%s'", r1);
        FUZZ_CHECK(!strstr(r1, "client_max_window_bits"), "answer '%s'", r1);
        FUZZ_CHECK(strcmp(r1, r2) == 0, "answers differ: '%s' '%s'", r1, r2);
    }
    free(v);
}

static void fuzz_inflate_raw(const uint8_t *data, size_t size, size_t max) {
    uint8_t *in = fuzz_dup(data, size);
    uint8_t *out;
    size_t n = 0;
    int rc = ws_inflate(in, size, max, &out, &n);
    FUZZ_CHECK(rc == 0 || rc == -WS_CLOSE_TOO_BIG || rc == -WS_CLOSE_INVALID_DATA, "rc %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(n <= max, "inflated %zu > cap %zu", n, max);
        uint8_t *first = fuzz_dup(out, n);
        size_t n2 = 0;
        FUZZ_CHECK(ws_inflate(in, size, max, &out, &n2) == 0 && n2 == n && memcmp(out, first, n) == 0,
                   "a repeat differs");
        free(first);
    }
    free(in);
}

static void fuzz_roundtrip(const uint8_t *data, size_t size) {
    struct outbuf *b = outbuf_new(size);
    FUZZ_CHECK(b != NULL, "out of memory");
    memcpy(outbuf_payload(b), data, size);
    outbuf_seal_ws(b, WS_OP_BINARY, size);
    struct outbuf *s = zframe_pick(outbuf_ref(b));
    if (s != b) {
        FUZZ_CHECK(s->len < b->len && s->zsaved == b->len - s->len, "sibling not shorter");
        FUZZ_CHECK(s->p[0] == (0x80 | 0x40 | WS_OP_BINARY), "sibling header %02x", s->p[0]);
        size_t hl = (s->p[1] & 0x7F) == 126 ? 4 : (s->p[1] & 0x7F) == 127 ? 10 : 2;
        uint8_t *out;
        size_t n = 0;
        int rc = ws_inflate(s->p + hl, s->len - hl, size, &out, &n);
        FUZZ_CHECK(rc == 0 && n == size && memcmp(out, data, size) == 0, "round trip rc %d, %zu of %zu", rc, n,
                   size);
        if (size)
            FUZZ_CHECK(ws_inflate(s->p + hl, s->len - hl, size - 1, &out, &n) == -WS_CLOSE_TOO_BIG,
                       "cap one short not refused");
    }
    outbuf_unref(s);
    outbuf_unref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t CAPS[4] = {125, 1000, 65536, 65536};
    static bool configured;
    if (!configured) {
        ws_deflate_configure(true, 0);
        configured = true;
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode & 1)
        fuzz_negotiate(data, size);
    else if (mode & 2)
        fuzz_roundtrip(data, size);
    else
        fuzz_inflate_raw(data, size, CAPS[(mode >> 2) & 3]);
    return 0;
}

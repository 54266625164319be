/* fuzz_frame.c - the RFC 6455 frame decoder (src/ws/frame.c) with message
 * reassembly and UTF-8 validation as src/net/websocket.c does them.
 *
 * Input: [options][4 chunking bytes][client bytes...]
 *   options bit 0: JSON endpoint (binary refused with 1003) / echo
 *   options bits 1-2: message limit 125 / 1000 / 65536 / 65536
 *   options bit 3: require masking (server side) / not
 *
 * websocket.c's receive loop needs a live connection, so it is mirrored here
 * (same order of checks, same "direct" zero-copy path for a whole frame in
 * one read, same 125-byte control buffer) with the limit at most 64 KiB.
 * Checks:
 *   - whole and chunked feeding deliver the same messages, pongs and close
 *     (or the same failure code);
 *   - an independent, non-incremental reference decoder written from RFC
 *     6455 and docs/protocol.md agrees with both;
 *   - ws_header_encode output parses back to the same header;
 *   - ws_mask at any offset/split equals byte-wise XOR. */
#include <stdbool.h>

#include "fuzz_common.h"
#include "ws/frame.h"
#include "ws/utf8.h"

#define CLOSE_RCVD 1   /* outcome.end: the peer's close frame was handled */

struct outcome {
    uint64_t hash;
    unsigned events;
    int end;           /* 0: need more; CLOSE_RCVD; or the failure code */
};

static void ev_message(struct outcome *o, uint8_t op, const uint8_t *p, size_t len) {
    uint8_t tag[2] = {'M', op};
    o->hash = fuzz_hash(o->hash, tag, 2);
    o->hash = fuzz_hash(o->hash, &len, sizeof(len));
    o->hash = fuzz_hash(o->hash, p, len);
    o->events++;
}

static void ev_pong(struct outcome *o, const uint8_t *p, size_t len) {
    o->hash = fuzz_hash(o->hash, "P", 1);
    o->hash = fuzz_hash(o->hash, &len, sizeof(len));
    o->hash = fuzz_hash(o->hash, p, len);
    o->events++;
}

static void ev_close(struct outcome *o, unsigned code) {
    o->hash = fuzz_hash(o->hash, "C", 1);
    o->hash = fuzz_hash(o->hash, &code, sizeof(code));
    o->events++;
}

/* ---- the mirror of websocket.c ------------------------------------------ */

struct sess {
    struct ws_parser parser;
    struct utf8_state utf8;
    bool json;
    uint64_t max;
    uint8_t msg_op;
    uint8_t ctrl_len;
    uint8_t *msg, *direct;
    uint32_t msg_len, msg_cap;
    uint8_t ctrl[125];
    bool done;          /* failed or close received: input ignored */
    struct outcome *o;
};

static void s_fail(struct sess *s, unsigned code) {
    s->o->end = (int)code;
    s->done = true;
}

static void s_control(struct sess *s, uint8_t op) {
    if (op == WS_OP_PING) {
        ev_pong(s->o, s->ctrl, s->ctrl_len);
    } else if (op == WS_OP_CLOSE) {
        unsigned code = WS_CLOSE_NORMAL;
        if (s->ctrl_len == 1)
            return s_fail(s, WS_CLOSE_PROTOCOL);
        if (s->ctrl_len >= 2) {
            code = ((unsigned)s->ctrl[0] << 8) | s->ctrl[1];
            if (!ws_close_code_valid(code))
                return s_fail(s, WS_CLOSE_PROTOCOL);
            if (!utf8_valid(s->ctrl + 2, s->ctrl_len - 2u))
                return s_fail(s, WS_CLOSE_INVALID_DATA);
        }
        ev_close(s->o, code);
        s->o->end = CLOSE_RCVD;
        s->done = true;
    }
}

static void s_feed(struct sess *s, uint8_t *data, size_t len) {
    while (!s->done) {
        struct ws_frame_event ev;
        ssize_t n = ws_parse(&s->parser, data, len, &ev);
        if (n < 0)
            return s_fail(s, (unsigned)-n);
        FUZZ_CHECK((size_t)n <= len, "ws_parse consumed %zd of %zu", n, len);
        FUZZ_CHECK(n > 0 || ev.type != WS_EV_NONE || len == 0, "ws_parse made no progress on %zu bytes", len);
        data += n;
        len -= (size_t)n;
        switch (ev.type) {
        case WS_EV_NONE:
            FUZZ_CHECK(len == 0, "WS_EV_NONE with %zu bytes left", len);
            return;
        case WS_EV_HEADER:
            if (ws_op_is_control(ev.opcode)) {
                FUZZ_CHECK(ev.length <= 125 && ev.fin, "control frame of %llu bytes, fin %d",
                           (unsigned long long)ev.length, ev.fin);
                s->ctrl_len = 0;
                break;
            }
            FUZZ_CHECK(ev.length < (1ull << 63), "length with the MSB set passed the decoder");
            if (ev.opcode == WS_OP_CONT) {
                if (!s->msg_op)
                    return s_fail(s, WS_CLOSE_PROTOCOL);
            } else {
                if (s->msg_op)
                    return s_fail(s, WS_CLOSE_PROTOCOL);
                if (ev.opcode == WS_OP_BINARY && s->json)
                    return s_fail(s, WS_CLOSE_UNSUPPORTED);
                s->msg_op = ev.opcode;
                s->msg_len = 0;
                s->direct = NULL;
                utf8_init(&s->utf8);
            }
            if ((uint64_t)s->msg_len + ev.length > s->max)
                return s_fail(s, WS_CLOSE_TOO_BIG);
            break;
        case WS_EV_PAYLOAD:
            FUZZ_CHECK(ev.len > 0 && ev.data >= data - ev.len && ev.len <= ev.length, "bad payload slice");
            if (ws_op_is_control(ev.opcode)) {
                FUZZ_CHECK(s->ctrl_len + ev.len <= sizeof(s->ctrl), "control payload overflows 125 bytes");
                memcpy(s->ctrl + s->ctrl_len, ev.data, ev.len);
                s->ctrl_len = (uint8_t)(s->ctrl_len + ev.len);
                break;
            }
            if (s->msg_op == WS_OP_TEXT && !utf8_feed(&s->utf8, ev.data, ev.len))
                return s_fail(s, WS_CLOSE_INVALID_DATA);
            if (ev.fin && ev.opcode != WS_OP_CONT && ev.len == ev.length) {
                s->direct = ev.data;
                s->msg_len = (uint32_t)ev.len;
                break;
            }
            FUZZ_CHECK(s->direct == NULL, "direct message mixed with a copied one");
            if (s->msg_len + ev.len > s->msg_cap) {
                uint32_t ncap = s->msg_cap ? s->msg_cap : 256;
                while (ncap < s->msg_len + ev.len)
                    ncap *= 2;
                uint8_t *nb = realloc(s->msg, ncap);
                if (!nb)
                    abort();
                s->msg = nb;
                s->msg_cap = ncap;
            }
            memcpy(s->msg + s->msg_len, ev.data, ev.len);
            s->msg_len += (uint32_t)ev.len;
            break;
        case WS_EV_FRAME_END:
            FUZZ_CHECK(n == 0, "FRAME_END consumed bytes");
            if (ws_op_is_control(ev.opcode)) {
                s_control(s, ev.opcode);
                break;
            }
            if (!ev.fin)
                break;
            if (s->msg_op == WS_OP_TEXT && !utf8_complete(&s->utf8))
                return s_fail(s, WS_CLOSE_INVALID_DATA);
            {
                uint8_t op = s->msg_op;
                uint8_t *m = s->direct ? s->direct : s->msg;
                size_t ml = s->msg_len;
                FUZZ_CHECK(ml <= s->max, "message of %zu bytes over the limit %llu", ml, (unsigned long long)s->max);
                s->msg_op = 0;
                s->msg_len = 0;
                s->direct = NULL;
                ev_message(s->o, op, m ? m : (const uint8_t *)"", ml);
                free(s->msg);
                s->msg = NULL;
                s->msg_cap = 0;
            }
            break;
        }
    }
}

static struct outcome run_session(const uint8_t *data, size_t size, bool json, uint64_t max, bool require_mask,
                                  struct chunker *ch) {
    struct outcome o = {FUZZ_HASH_INIT, 0, 0};
    struct sess s;
    memset(&s, 0, sizeof(s));
    ws_parser_init(&s.parser, require_mask);
    s.json = json;
    s.max = max;
    s.o = &o;
    size_t off = 0;
    while (off < size && !s.done) {
        size_t n = ch ? chunker_next(ch, size - off) : size - off;
        uint8_t *buf = fuzz_dup(data + off, n); /* the worker's read buffer */
        s_feed(&s, buf, n);
        /* After a failure the session ignores all input, so a stale pointer
         * is harmless; otherwise it must not survive the read. */
        FUZZ_CHECK(s.done || s.direct == NULL, "a direct message outlived its read buffer");
        free(buf);
        off += n;
    }
    free(s.msg);
    return o;
}

/* ---- an independent reference decoder --------------------------------- */

static struct outcome run_reference(const uint8_t *in, size_t size, bool json, uint64_t max, bool require_mask) {
    struct outcome o = {FUZZ_HASH_INIT, 0, 0};
    uint8_t *d = fuzz_dup(in, size);
    size_t pos = 0;
    uint8_t msg_op = 0;
    uint8_t *msg = NULL;
    size_t msg_len = 0;
    struct utf8_state u;
    utf8_init(&u);
    for (;;) {
        if (size - pos < 2)
            break;
        uint8_t b0 = d[pos], b1 = d[pos + 1];
        unsigned op = b0 & 15;
        bool fin = b0 & 0x80, masked = b1 & 0x80, control = op >= 8;
        unsigned l7 = b1 & 0x7F;
        if ((b0 & 0x70) || !(op <= 2 || (op >= 8 && op <= 10)) || (control && !fin) || (require_mask && !masked) ||
            (control && l7 > 125)) {
            o.end = 1002;
            break;
        }
        size_t hl = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (size - pos < hl)
            break;
        uint64_t len = l7;
        if (l7 == 126) {
            len = (uint64_t)d[pos + 2] << 8 | d[pos + 3];
            if (len < 126) {
                o.end = 1002;
                break;
            }
        } else if (l7 == 127) {
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | d[pos + 2 + i];
            if (len >> 63 || len < 65536) {
                o.end = 1002;
                break;
            }
        }
        const uint8_t *key = masked ? d + pos + hl - 4 : NULL;
        pos += hl;
        if (!control) {
            if (op == 0 && !msg_op) {
                o.end = 1002;
                break;
            }
            if (op != 0 && msg_op) {
                o.end = 1002;
                break;
            }
            if (op == 2 && json) {
                o.end = 1003;
                break;
            }
            if (op != 0) {
                msg_op = (uint8_t)op;
                msg_len = 0;
                utf8_init(&u);
            }
            if (msg_len + len > max) {
                o.end = 1009;
                break;
            }
        }
        size_t avail = size - pos < len ? size - pos : (size_t)len;
        uint8_t *p = d + pos;
        for (size_t i = 0; key && i < avail; i++)
            p[i] ^= key[i & 3];
        pos += avail;
        if (!control) {
            if (msg_op == 1 && !utf8_feed(&u, p, avail)) {
                o.end = 1007;
                break;
            }
            msg = realloc(msg, msg_len + avail + 1);
            memcpy(msg + msg_len, p, avail);
            msg_len += avail;
        }
        if (avail < len)
            break; /* frame incomplete */
        if (control) {
            if (op == 9) {
                ev_pong(&o, p, avail);
            } else if (op == 8) {
                if (avail == 1) {
                    o.end = 1002;
                    break;
                }
                unsigned code = 1000;
                if (avail >= 2) {
                    code = (unsigned)p[0] << 8 | p[1];
                    bool valid = (code >= 3000 && code <= 4999) || (code >= 1000 && code <= 1003) ||
                                 (code >= 1007 && code <= 1014);
                    if (!valid) {
                        o.end = 1002;
                        break;
                    }
                    if (!utf8_valid(p + 2, avail - 2)) {
                        o.end = 1007;
                        break;
                    }
                }
                ev_close(&o, code);
                o.end = CLOSE_RCVD;
                break;
            }
            continue;
        }
        if (fin) {
            if (msg_op == 1 && !utf8_complete(&u)) {
                o.end = 1007;
                break;
            }
            ev_message(&o, msg_op, msg ? msg : (const uint8_t *)"", msg_len);
            msg_op = 0;
            msg_len = 0;
        }
    }
    free(msg);
    free(d);
    return o;
}

/* ---- encoder and mask ---------------------------------------------------- */

static void check_encoder(const uint8_t *data, size_t size) {
    if (size < 10)
        return;
    unsigned op = data[0] & 15;
    if (!(op <= 2 || (op >= 8 && op <= 10)))
        op = 1;
    bool fin = (data[0] & 0x80) || op >= 8;
    uint64_t len = 0;
    memcpy(&len, data + 1, 8);
    len >>= (data[9] & 63); /* all magnitudes */
    len &= ~(1ull << 63);
    if (op >= 8)
        len %= 126;
    uint8_t mask[4] = {data[0], data[1], data[2], data[3]};
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_header_encode(hdr, op, fin, len, (data[9] & 64) ? mask : NULL);
    FUZZ_CHECK(hl <= WS_MAX_HEADER, "header of %zu bytes", hl);
    struct ws_parser p;
    ws_parser_init(&p, false);
    struct ws_frame_event ev;
    uint8_t *copy = fuzz_dup(hdr, hl);
    ssize_t n = ws_parse(&p, copy, hl, &ev);
    free(copy);
    FUZZ_CHECK(n == (ssize_t)hl && ev.type == WS_EV_HEADER && ev.opcode == op && ev.fin == fin && ev.length == len,
               "encoded header (op %u fin %d len %llu) parsed back as n=%zd type %d op %u len %llu", op, fin,
               (unsigned long long)len, n, ev.type, ev.opcode, (unsigned long long)ev.length);
}

static void check_mask(const uint8_t *data, size_t size) {
    if (size < 6)
        return;
    uint8_t key[4] = {data[0], data[1], data[2], data[3]};
    uint64_t off = data[4];
    unsigned split = data[5];
    data += 6;
    size -= 6;
    uint8_t *a = fuzz_dup(data, size);
    size_t cut = size ? split % (size + 1) : 0;
    ws_mask(a, cut, key, off);
    ws_mask(a + cut, size - cut, key, off + cut);
    for (size_t i = 0; i < size; i++)
        FUZZ_CHECK(a[i] == (data[i] ^ key[(off + i) & 3]), "ws_mask differs at %zu (offset %llu, cut %zu)", i,
                   (unsigned long long)off, cut);
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    static const uint64_t LIMITS[4] = {125, 1000, 65536, 65536};
    uint8_t opt = data[0];
    bool json = opt & 1, require_mask = !(opt & 8);
    uint64_t max = LIMITS[(opt >> 1) & 3];
    data++;
    size--;
    check_encoder(data, size);
    check_mask(data, size);
    struct chunker ch;
    chunker_init(&ch, &data, &size);
    struct outcome whole = run_session(data, size, json, max, require_mask, NULL);
    struct outcome parts = run_session(data, size, json, max, require_mask, &ch);
    struct outcome ref = run_reference(data, size, json, max, require_mask);
    FUZZ_CHECK(whole.hash == parts.hash && whole.events == parts.events && whole.end == parts.end,
               "whole vs chunked: events %u/%u end %d/%d (chunks %u,%u,%u,%u)", whole.events, parts.events, whole.end,
               parts.end, ch.pattern[0], ch.pattern[1], ch.pattern[2], ch.pattern[3]);
    FUZZ_CHECK(whole.hash == ref.hash && whole.events == ref.events && whole.end == ref.end,
               "decoder vs reference: events %u/%u end %d/%d", whole.events, ref.events, whole.end, ref.end);
    return 0;
}

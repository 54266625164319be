/* frame.c - RFC 6455 frame decoder and header encoder; see frame.h. */
#include "ws/frame.h"

#include <string.h>

bool ws_close_code_valid(unsigned code) {
    if (code >= 3000 && code <= 4999)
        return true; /* registered and private-use ranges */
    switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008:
    case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
        return true;
    default:
        return false; /* 1004-1006 and 1015 must never be sent; rest unassigned */
    }
}

void ws_parser_init(struct ws_parser *p, bool require_mask) {
    memset(p, 0, sizeof(*p));
    p->require_mask = require_mask;
}

void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t off) {
    uint8_t m[8];
    for (int i = 0; i < 8; i++)
        m[i] = mask[(off + (uint64_t)i) & 3];
    size_t i = 0;
    uint64_t m64;
    memcpy(&m64, m, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, buf + i, 8);
        v ^= m64;
        memcpy(buf + i, &v, 8);
    }
    for (; i < len; i++)
        buf[i] ^= m[i & 7];
}

/* Validates the complete header in p->hdr and fills the frame fields.
 * Returns 0 or -close code. */
static int header_finish(struct ws_parser *p) {
    const uint8_t *h = p->hdr;
    size_t pos = 2;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        if (len < 126)
            return -WS_CLOSE_PROTOCOL; /* not the minimal encoding */
        pos = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        if (len >> 63)
            return -WS_CLOSE_PROTOCOL; /* most significant bit must be 0 */
        if (len <= 0xFFFF)
            return -WS_CLOSE_PROTOCOL;
        pos = 10;
    }
    if (p->masked)
        memcpy(p->mask, h + pos, 4);
    if (ws_op_is_control(p->opcode) && len > 125)
        return -WS_CLOSE_PROTOCOL;
    p->length = len;
    p->done = 0;
    return 0;
}

ssize_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_frame_event *ev) {
    size_t used = 0;
    ev->type = WS_EV_NONE;
    if (!p->in_payload) {
        while (used < len) {
            p->hdr[p->hdr_len++] = buf[used++];
            if (p->hdr_len == 2) {
                uint8_t b0 = p->hdr[0], b1 = p->hdr[1];
                p->opcode = b0 & 0x0F;
                p->rsv1 = (b0 & 0x40) != 0;
                if (b0 & 0x30)
                    return -WS_CLOSE_PROTOCOL; /* RSV2-3: no extension uses them */
                if (p->rsv1 && (!p->rsv1_ok || (p->opcode != WS_OP_TEXT && p->opcode != WS_OP_BINARY)))
                    return -WS_CLOSE_PROTOCOL; /* RSV1: not negotiated, or not a message's first frame */
                p->fin = (b0 & 0x80) != 0;
                switch (p->opcode) {
                case WS_OP_CONT: case WS_OP_TEXT: case WS_OP_BINARY:
                case WS_OP_CLOSE: case WS_OP_PING: case WS_OP_PONG:
                    break;
                default:
                    return -WS_CLOSE_PROTOCOL; /* reserved opcode */
                }
                if (ws_op_is_control(p->opcode) && !p->fin)
                    return -WS_CLOSE_PROTOCOL; /* fragmented control frame */
                p->masked = (b1 & 0x80) != 0;
                if (p->require_mask && !p->masked)
                    return -WS_CLOSE_PROTOCOL;
                uint8_t l7 = b1 & 0x7F;
                p->hdr_need = (uint8_t)(2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (p->masked ? 4 : 0));
                if (ws_op_is_control(p->opcode) && l7 > 125)
                    return -WS_CLOSE_PROTOCOL;
            }
            if (p->hdr_len >= 2 && p->hdr_len == p->hdr_need) {
                int rc = header_finish(p);
                if (rc < 0)
                    return rc;
                p->hdr_len = 0;
                p->in_payload = true;
                ev->type = WS_EV_HEADER;
                ev->opcode = p->opcode;
                ev->fin = p->fin;
                ev->rsv1 = p->rsv1;
                ev->length = p->length;
                return (ssize_t)used;
            }
        }
        return (ssize_t)used;
    }
    ev->opcode = p->opcode;
    ev->fin = p->fin;
    ev->rsv1 = p->rsv1;
    ev->length = p->length;
    if (p->done == p->length) {
        p->in_payload = false;
        ev->type = WS_EV_FRAME_END;
        return 0;
    }
    if (len == 0)
        return 0;
    uint64_t left = p->length - p->done;
    size_t n = len < left ? len : (size_t)left;
    if (p->masked)
        ws_mask(buf, n, p->mask, p->done);
    p->done += n;
    ev->type = WS_EV_PAYLOAD;
    ev->data = buf;
    ev->len = n;
    return (ssize_t)n;
}

size_t ws_header_encode(uint8_t *out, unsigned opcode, bool fin, uint64_t len, const uint8_t mask[4]) {
    size_t n;
    uint8_t mbit = mask ? 0x80 : 0;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
        n = 2;
    } else if (len <= 0xFFFF) {
        out[1] = (uint8_t)(mbit | 126);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = (uint8_t)(mbit | 127);
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

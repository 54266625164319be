/* frame.h - RFC 6455 frame decoder (incremental) and header encoder.
 *
 * The decoder is a push parser in the picohttpparser manner: the caller
 * hands it whatever bytes arrived, it returns how many it consumed and at
 * most one event, and payload comes back as slices of the caller's own
 * buffer, unmasked in place. Nothing is allocated and nothing is copied, so
 * a frame split across any number of reads (one byte at a time included)
 * decodes exactly like one that arrived whole, and a header announcing an
 * enormous length costs nothing: the caller decides at WS_EV_HEADER whether
 * to accept that many bytes.
 *
 * Frame-local rules are enforced here (RSV bits: RSV1 only with rsv1_ok and
 * only on a text or binary frame, RFC 7692 6.1; reserved opcodes, control
 * frame size and fragmentation, masking, minimal length encoding, 63-bit
 * length); message-level rules (continuation order, size of a reassembled
 * message, UTF-8) belong to the caller, which sees every header first. */
#ifndef TG_FRAME_H
#define TG_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

static inline bool ws_op_is_control(unsigned op) { return (op & 0x8) != 0; }

/* Close codes of RFC 6455 and the contract (PROTOCOL.md section 5). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005,
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_TRY_AGAIN = 1013,
    WS_CLOSE_HEARTBEAT = 4000,
    WS_CLOSE_TOKEN_EXPIRED = 4001,
};

/* True for a code a peer may put in a close frame (RFC 6455 7.4). */
bool ws_close_code_valid(unsigned code);

enum ws_event {
    WS_EV_NONE = 0,    /* all input consumed, frame not finished: feed more */
    WS_EV_HEADER,      /* a frame header is complete: opcode/fin/length set */
    WS_EV_PAYLOAD,     /* ev->data/ev->len: unmasked slice of the payload */
    WS_EV_FRAME_END,   /* the current frame's payload is complete */
};

struct ws_frame_event {
    enum ws_event type;
    uint8_t opcode;     /* valid from WS_EV_HEADER to WS_EV_FRAME_END */
    bool fin;
    bool rsv1;          /* RSV1 (permessage-deflate: a compressed message) */
    uint64_t length;    /* payload length announced by the header */
    uint8_t *data;      /* WS_EV_PAYLOAD: slice of the caller's buffer */
    size_t len;
};

struct ws_parser {
    uint8_t hdr[14];    /* header bytes gathered so far */
    uint8_t hdr_len;    /* bytes in hdr */
    uint8_t hdr_need;   /* bytes the header needs, known after byte 2 */
    bool in_payload;    /* header done, payload bytes pending */
    bool require_mask;  /* server side: every client frame must be masked */
    bool rsv1_ok;       /* permessage-deflate negotiated: RSV1 allowed on a
                         * text or binary frame (a message's first frame) */
    uint8_t opcode;
    bool rsv1;
    bool fin;
    bool masked;
    uint8_t mask[4];
    uint64_t length;    /* payload length of the current frame */
    uint64_t done;      /* payload bytes of the current frame consumed */
};

void ws_parser_init(struct ws_parser *p, bool require_mask);

/* Consumes bytes from buf[0..len) and reports at most one event in *ev.
 * Returns the number of bytes consumed (0 is possible only with an event),
 * or -code (a WS close code, e.g. -1002) when the input breaks RFC 6455.
 * Payload is unmasked in place, so buf must be writable and stay valid
 * while the caller uses ev->data. */
ssize_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_frame_event *ev);

/* Largest header ws_header_encode can write. */
#define WS_MAX_HEADER 14

/* Writes a frame header for a payload of len bytes into out and returns its
 * size (2, 4 or 10 bytes; +4 with a mask). mask may be NULL (server frames). */
size_t ws_header_encode(uint8_t *out, unsigned opcode, bool fin, uint64_t len, const uint8_t mask[4]);

/* XORs buf with mask, starting at mask offset off (for chunked payloads). */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t off);

#endif

/* fuzz_http.c - HTTP request parsing (src/net/http.c) and the handshake
 * helpers (src/ws/handshake.c) on arbitrary bytes.
 *
 * Input: [max-body selector][4 chunking bytes][request bytes...]
 *
 * The request bytes are fed the way conn.c's on_read does (pipelined
 * requests: reset after each complete one; stop at an upgrade or an
 * error), once whole and once in chunks. Checks:
 *   - the parser's bookkeeping stays inside its buffers (offsets, lengths,
 *     limits of 16 KiB / 100 headers, NUL-terminated path and query);
 *   - whole and chunked feeding give the same requests and the same
 *     verdict (a push parser must not depend on read sizes);
 *   - ws_key_valid and http_header_has_token agree with independent
 *     reference implementations; ws_accept_key gives 28 base64 chars. */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <strings.h>

#include "fuzz_common.h"
#include "net/http.h"
#include "ws/handshake.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64v(char c) {
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Reference: a key is valid when it decodes to 16 bytes and re-encodes to
 * exactly itself (canonical base64 with padding). */
static bool ref_key_valid(const char *k, size_t len) {
    if (len != 24)
        return false;
    unsigned char raw[18];
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < 22; i++) {
        int v = b64v(k[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (o != 16 || k[22] != '=' || k[23] != '=')
        return false;
    unsigned char enc[32];
    EVP_EncodeBlock(enc, raw, 16);
    return memcmp(enc, k, 24) == 0;
}

/* Reference: comma-separated list, optional whitespace around elements,
 * ASCII case-insensitive comparison. */
static bool ref_has_token(const char *v, size_t len, const char *tok) {
    size_t tl = strlen(tok);
    size_t s = 0;
    while (s <= len) {
        size_t e = s;
        while (e < len && v[e] != ',')
            e++;
        size_t a = s, b = e;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b - a == tl && strncasecmp(v + a, tok, tl) == 0)
            return true;
        s = e + 1;
    }
    return false;
}

static void check_value(const char *v, size_t len) {
    static const char *TOKENS[] = {"upgrade", "websocket", "keep-alive", "close"};
    for (size_t i = 0; i < sizeof(TOKENS) / sizeof(TOKENS[0]); i++) {
        bool got = http_header_has_token(v, len, TOKENS[i]);
        bool want = ref_has_token(v, len, TOKENS[i]);
        FUZZ_CHECK(got == want, "http_header_has_token(%.*s, \"%s\") = %d, reference %d", (int)len, v, TOKENS[i],
                   got, want);
    }
    bool kv = ws_key_valid(v, len);
    FUZZ_CHECK(kv == ref_key_valid(v, len), "ws_key_valid(%.*s) = %d", (int)len, v, kv);
    char acc[WS_ACCEPT_LEN];
    memset(acc, 'X', sizeof(acc));
    ws_accept_key(v, len, acc);
    FUZZ_CHECK(acc[28] == '\0' && strlen(acc) == 28, "ws_accept_key output is not 28 characters");
    /* Cross-check with a one-shot SHA-1 of key + GUID. */
    unsigned char *buf = malloc(len + 36);
    memcpy(buf, v, len);
    memcpy(buf + len, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char dg[SHA_DIGEST_LENGTH];
    SHA1(buf, len + 36, dg);
    free(buf);
    unsigned char want[32];
    EVP_EncodeBlock(want, dg, SHA_DIGEST_LENGTH);
    FUZZ_CHECK(memcmp(want, acc, 28) == 0, "ws_accept_key differs from SHA-1 + base64");
}

/* Structural checks of a request and a hash of what the server would see. */
static uint64_t inspect(struct http_req *r, uint64_t h, bool check_values) {
    FUZZ_CHECK(r->head_len <= HTTP_MAX_HEAD && (r->head_len <= r->head_cap || r->head_len == 0),
               "head_len %u cap %u", r->head_len, r->head_cap);
    FUZZ_CHECK(r->nhdrs <= HTTP_MAX_HEADERS, "nhdrs %u", r->nhdrs);
    FUZZ_CHECK((uint64_t)r->url + r->url_len <= r->head_len, "url %u+%u > %u", r->url, r->url_len, r->head_len);
    for (unsigned i = 0; i < r->nhdrs; i++) {
        const struct http_header *x = &r->hdrs[i];
        FUZZ_CHECK((uint64_t)x->name + x->name_len <= r->head_len && (uint64_t)x->value + x->value_len <= r->head_len,
                   "header %u out of the head buffer", i);
    }
    FUZZ_CHECK(r->body_len <= r->max_body, "body %zu over max %zu", r->body_len, r->max_body);
    /* NUL-terminated (ASan reports a read past the end otherwise) and
     * bounded by the request head. */
    FUZZ_CHECK(strlen(r->path) <= HTTP_MAX_HEAD && strlen(r->query) <= HTTP_MAX_HEAD, "path/query too long");
    h = fuzz_hash(h, r->path, strlen(r->path) + 1);
    h = fuzz_hash(h, r->query, strlen(r->query) + 1);
    const char *m = http_req_method(r);
    h = fuzz_hash(h, m, strlen(m));
    uint8_t flags = (uint8_t)(http_req_keep_alive(r) | http_req_is_upgrade(r) << 1 | http_req_is_get(r) << 2 |
                              http_req_is_post(r) << 3 | http_req_is_head(r) << 4);
    h = fuzz_hash(h, &flags, 1);
    h = fuzz_hash(h, &r->nhdrs, sizeof(r->nhdrs));
    for (unsigned i = 0; i < r->nhdrs; i++) {
        const struct http_header *x = &r->hdrs[i];
        h = fuzz_hash(h, r->head + x->name, x->name_len);
        h = fuzz_hash(h, ":", 1);
        h = fuzz_hash(h, r->head + x->value, x->value_len);
        if (check_values)
            check_value(r->head + x->value, x->value_len);
    }
    if (r->body_len)
        h = fuzz_hash(h, r->body, r->body_len);
    /* The lookups the router and auth make. */
    static const char *NAMES[] = {"Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                                  "Origin", "Authorization", "X-API-Key", "X-Forwarded-For", "Host"};
    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++) {
        size_t vl = 12345;
        const char *v = http_req_header(r, NAMES[i], &vl);
        if (v) {
            FUZZ_CHECK(v >= r->head && v + vl <= r->head + r->head_len, "header value outside the head");
            if (check_values)
                check_value(v, vl);
        }
        char small[16], big[HTTP_MAX_HEAD];
        size_t n1 = http_req_header_all(r, NAMES[i], small, sizeof(small));
        FUZZ_CHECK(n1 < sizeof(small) && small[n1] == '\0', "header_all overflow (small)");
        size_t n2 = http_req_header_all(r, NAMES[i], big, sizeof(big));
        FUZZ_CHECK(n2 < sizeof(big) && big[n2] == '\0', "header_all overflow");
    }
    static const char *QS[] = {"token", "api_key", "symbols", ""};
    for (size_t i = 0; i < sizeof(QS) / sizeof(QS[0]); i++) {
        char out[4096], tiny[2];
        if (http_req_query(r, QS[i], out, sizeof(out))) {
            FUZZ_CHECK(memchr(out, 0, sizeof(out)), "query value not terminated");
            h = fuzz_hash(h, out, strlen(out));
        }
        if (http_req_query(r, QS[i], tiny, sizeof(tiny)))
            FUZZ_CHECK(memchr(tiny, 0, sizeof(tiny)), "query value not terminated (tiny)");
    }
    return h;
}

struct outcome {
    uint64_t hash;      /* every complete request */
    unsigned requests;
    int end;            /* 0 need more, 1 upgrade, -status error */
    bool early_upgrade; /* COMPLETE for an upgrade whose message had not ended */
};

/* Feeds data like conn.c's on_read, chunk by chunk (chunked == NULL: whole). */
static struct outcome run(const uint8_t *data, size_t size, size_t max_body, struct chunker *chunked) {
    struct outcome o = {FUZZ_HASH_INIT, 0, 0, false};
    struct http_req *r = http_req_new(max_body);
    if (!r)
        abort();
    size_t off = 0;
    bool done = false;
    while (off < size && !done) {
        size_t n = chunked ? chunker_next(chunked, size - off) : size - off;
        uint8_t *buf = fuzz_dup(data + off, n);
        const uint8_t *p = buf;
        size_t len = n;
        while (len > 0 && !done) {
            size_t used = 0;
            enum http_status_rc rc = http_req_feed(r, (const char *)p, len, &used);
            FUZZ_CHECK(used <= len, "http_req_feed used %zu of %zu", used, len);
            if (rc == HTTP_NEED_MORE) {
                FUZZ_CHECK(used == len || r->parser.upgrade, "NEED_MORE but only %zu of %zu consumed", used, len);
                break;
            }
            if (rc == HTTP_ERROR) {
                FUZZ_CHECK(r->error_status >= 400 && r->error_status < 600, "error status %d", r->error_status);
                o.end = -r->error_status;
                done = true;
                break;
            }
            p += used;
            len -= used;
            o.requests++;
            if (!r->complete)
                o.early_upgrade = true;
            o.hash = inspect(r, o.hash, chunked == NULL);
            if (http_req_is_upgrade(r)) {
                o.end = 1; /* the rest belongs to the WebSocket */
                done = true;
                break;
            }
            http_req_reset(r);
        }
        free(buf);
        off += n;
    }
    if (!done)
        inspect(r, 0, false); /* partial request: bookkeeping must still hold */
    http_req_free(r);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    static const size_t BODIES[8] = {0, 1, 16, 100, 1024, 4096, 65536, 1048576};
    size_t max_body = BODIES[data[0] & 7];
    data++;
    size--;
    struct chunker ch;
    chunker_init(&ch, &data, &size);
    struct outcome whole = run(data, size, max_body, NULL);
    struct outcome parts = run(data, size, max_body, &ch);
    /* Known bug (see docs/testing.md): http_req_feed reports an Upgrade
     * request complete as soon as its headers are in, while a body
     * (Content-Length or chunked) is still to come; the body then depends on
     * the read boundaries (parsed as the next request or as WebSocket bytes).
     * TG_FUZZ_KNOWN_EARLY_UPGRADE=1 skips such inputs to look for other bugs. */
    if ((whole.early_upgrade || parts.early_upgrade) && getenv("TG_FUZZ_KNOWN_EARLY_UPGRADE"))
        return 0;
    FUZZ_CHECK(!whole.early_upgrade && !parts.early_upgrade,
               "an Upgrade request was reported complete before its body (%s feeding): src/net/http.c "
               "http_req_feed returns HTTP_COMPLETE on parser.upgrade without on_message_complete",
               whole.early_upgrade ? "whole" : "chunked");
    /* Both refusing is the same verdict even when the status differs: a
     * request that is both malformed and over a limit gets 400 or 431
     * depending on which the parser meets first, and http-parser reports a
     * header field early when a read ends inside it. */
    if (whole.end < 0 && parts.end < 0)
        whole.end = parts.end;
    FUZZ_CHECK(whole.requests == parts.requests && whole.end == parts.end && whole.hash == parts.hash,
               "whole vs chunked differ: requests %u/%u end %d/%d hash %llx/%llx (chunks %u,%u,%u,%u)",
               whole.requests, parts.requests, whole.end, parts.end, (unsigned long long)whole.hash,
               (unsigned long long)parts.hash, ch.pattern[0], ch.pattern[1], ch.pattern[2], ch.pattern[3]);
    return 0;
}

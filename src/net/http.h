/* http.h - one HTTP/1.1 request at a time, parsed by http-parser.
 *
 * Bytes arrive in reads of any size into a buffer the worker reuses, so the
 * request line and headers are copied into the request's own head buffer
 * (at most HTTP_MAX_HEAD bytes: 431 beyond) and the body into its own
 * (at most server.max_http_body_bytes: 413 beyond). A request lives only
 * while its connection speaks HTTP; an upgraded connection frees it. */
#ifndef TG_HTTP_H
#define TG_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD 16384
#define HTTP_MAX_HEADERS 100

struct http_header {
    uint32_t name, name_len;  /* offsets into head */
    uint32_t value, value_len;
};

enum http_status_rc {
    HTTP_NEED_MORE = 0,  /* everything consumed, request not complete */
    HTTP_COMPLETE = 1,   /* a request is complete; unconsumed bytes remain the caller's */
    HTTP_ERROR = -1,     /* malformed or over a limit: answer req->error_status and close */
};

/* Stricter than http-parser, where a proxy in front might read a request
 * differently (request smuggling): a field name with whitespace
 * ("Content-Length : 5"), a line folded onto the previous one (obs-fold) or
 * whitespace before the first field, whitespace or control bytes in the
 * request target, Transfer-Encoding in an HTTP/1.0 request, and a Host
 * field missing (HTTP/1.1) or repeated are all 400 (RFC 9112 2.2, 3.2, 5.1,
 * 5.2, 6.1). */

struct http_req {
    http_parser parser;
    char *head;                 /* URL and header bytes (NUL-free, offsets) */
    uint32_t head_len, head_cap;
    uint32_t url, url_len;
    struct http_header hdrs[HTTP_MAX_HEADERS];
    uint16_t nhdrs;
    bool in_value;              /* last callback was a header value */
    bool complete;
    uint8_t lines;              /* where the head's line scan is (http.c: obs-fold) */
    int error_status;           /* 400, 413 or 431 when HTTP_ERROR */
    char *body;
    size_t body_len, body_cap;
    size_t max_body;
    uint64_t born_ms;           /* the connection's accept, loop ms (set by conn.c; kept across requests) */
    /* filled at completion (owned, NUL-terminated; "" when absent) */
    char *path;                 /* the URL's path, not decoded */
    char *query;                /* the raw query string */
};

/* Allocates a request parser. NULL on allocation failure. */
struct http_req *http_req_new(size_t max_body);
void http_req_free(struct http_req *r);

/* Prepares r for the next request on a keep-alive connection; buffers
 * grown past 4 KiB are freed, so an idle connection holds little. */
void http_req_reset(struct http_req *r);

/* Feeds bytes; *used gets the bytes consumed. */
enum http_status_rc http_req_feed(struct http_req *r, const char *data, size_t len, size_t *used);

/* The value of the first header named name (case-insensitive), or NULL;
 * *len gets its length. The pointer is valid until reset/free. */
const char *http_req_header(const struct http_req *r, const char *name, size_t *len);

/* Joins every value of header name with ", " (RFC 9110 5.3) into out.
 * Returns the length, 0 when absent; values that do not fit are cut at a
 * comma boundary. */
size_t http_req_header_all(const struct http_req *r, const char *name, char *out, size_t outlen);

/* Copies the value of query parameter name (URL-decoded) into out. Returns
 * true when present. */
bool http_req_query(const struct http_req *r, const char *name, char *out, size_t outlen);

static inline const char *http_req_method(const struct http_req *r) {
    return http_method_str((enum http_method)r->parser.method);
}
static inline bool http_req_is_get(const struct http_req *r) { return r->parser.method == HTTP_GET; }
static inline bool http_req_is_head(const struct http_req *r) { return r->parser.method == HTTP_HEAD; }
static inline bool http_req_is_post(const struct http_req *r) { return r->parser.method == HTTP_POST; }
static inline bool http_req_keep_alive(const struct http_req *r) { return http_should_keep_alive(&r->parser) != 0; }
static inline bool http_req_is_upgrade(const struct http_req *r) { return r->parser.upgrade != 0; }

/* Reason phrase for a status code. */
const char *http_reason(int status);

#endif

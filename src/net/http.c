/* http.c - HTTP/1.1 request parsing with http-parser; see http.h. */
#include "net/http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char EMPTY[1]; /* path/query when absent: never freed */

static int append_head(struct http_req *r, const char *at, size_t len) {
    if ((size_t)r->head_len + len > HTTP_MAX_HEAD) {
        r->error_status = 431;
        return -1;
    }
    if (r->head_len + len > r->head_cap) {
        uint32_t ncap = r->head_cap ? r->head_cap : 512;
        while (ncap < r->head_len + len)
            ncap *= 2;
        if (ncap > HTTP_MAX_HEAD)
            ncap = HTTP_MAX_HEAD;
        char *n = realloc(r->head, ncap);
        if (!n) {
            r->error_status = 503;
            return -1;
        }
        r->head = n;
        r->head_cap = ncap;
    }
    memcpy(r->head + r->head_len, at, len);
    r->head_len += (uint32_t)len;
    return 0;
}

/* Marks r malformed (400) unless an error is already recorded; returns -1
 * for the parser callbacks. */
static int bad_request(struct http_req *r) {
    if (!r->error_status)
        r->error_status = 400;
    return -1;
}

/* True when s[0..len) holds whitespace or a control byte. */
static bool has_space_or_ctl(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    struct http_req *r = p->data;
    /* http-parser lets a tab through; no whitespace or control byte in a target. */
    if (has_space_or_ctl(at, len))
        return bad_request(r);
    if (r->url_len == 0)
        r->url = r->head_len;
    if (append_head(r, at, len) < 0)
        return -1;
    r->url_len += (uint32_t)len;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len) {
    struct http_req *r = p->data;
    /* A name is a token: http-parser lets a space through, and then honours
     * "Content-Length : 5" (RFC 9112 5.1: 400). */
    if (memchr(at, ' ', len) || memchr(at, '\t', len))
        return bad_request(r);
    if (r->in_value || r->nhdrs == 0) {
        if (r->nhdrs == HTTP_MAX_HEADERS) {
            r->error_status = 431;
            return -1;
        }
        struct http_header *h = &r->hdrs[r->nhdrs++];
        h->name = r->head_len;
        h->name_len = 0;
        h->value = r->head_len;
        h->value_len = 0;
        r->in_value = false;
    }
    if (append_head(r, at, len) < 0)
        return -1;
    r->hdrs[r->nhdrs - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
    struct http_req *r = p->data;
    if (r->nhdrs == 0)
        return -1;
    struct http_header *h = &r->hdrs[r->nhdrs - 1];
    if (!r->in_value) {
        h->value = r->head_len;
        h->value_len = 0;
        r->in_value = true;
    }
    if (append_head(r, at, len) < 0)
        return -1;
    h->value_len += (uint32_t)len;
    return 0;
}

static unsigned count_headers(const struct http_req *r, const char *name) {
    size_t nl = strlen(name);
    unsigned n = 0;
    for (uint16_t i = 0; i < r->nhdrs; i++)
        n += r->hdrs[i].name_len == nl && strncasecmp(r->head + r->hdrs[i].name, name, nl) == 0;
    return n;
}

static int on_headers_complete(http_parser *p) {
    struct http_req *r = p->data;
    bool v11 = p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1);
    /* RFC 9112 3.2: exactly one Host in HTTP/1.1, at most one before. */
    unsigned hosts = count_headers(r, "Host");
    if (hosts > 1 || (hosts == 0 && v11))
        return bad_request(r);
    /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
     * framing (http-parser accepts only chunked, which then sets F_CHUNKED). */
    if (!v11 && (p->flags & F_CHUNKED))
        return bad_request(r);
    /* An upgrade carries no body: one that announces one is refused, so
     * the body can never be read as a request of its own. */
    if ((p->flags & F_UPGRADE) &&
        (((p->flags & F_CONTENTLENGTH) && p->content_length > 0) || (p->flags & F_CHUNKED))) {
        return bad_request(r);
    }
    /* Content-Length announced beyond the limit: refuse before reading it. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->max_body) {
        r->error_status = 413;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
    struct http_req *r = p->data;
    if (r->body_len + len > r->max_body) {
        r->error_status = 413;
        return -1;
    }
    if (r->body_len + len > r->body_cap) {
        size_t ncap = r->body_cap ? r->body_cap : 1024;
        while (ncap < r->body_len + len)
            ncap *= 2;
        char *n = realloc(r->body, ncap + 1);
        if (!n) {
            r->error_status = 503;
            return -1;
        }
        r->body = n;
        r->body_cap = ncap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p) {
    struct http_req *r = p->data;
    r->complete = true;
    http_parser_pause(p, 1); /* one request at a time: the caller answers first */
    return 0;
}

static const http_parser_settings SETTINGS = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

struct http_req *http_req_new(size_t max_body) {
    struct http_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->max_body = max_body;
    r->path = r->query = EMPTY;
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    return r;
}

static void free_url(struct http_req *r) {
    if (r->path != EMPTY)
        free(r->path);
    if (r->query != EMPTY)
        free(r->query);
    r->path = r->query = EMPTY;
}

void http_req_free(struct http_req *r) {
    if (!r)
        return;
    free_url(r);
    free(r->head);
    free(r->body);
    free(r);
}

/* Buffers larger than this are not kept for the next request: an idle
 * keep-alive connection holds no more than a small request needs. */
#define HTTP_KEEP_BUF 4096

void http_req_reset(struct http_req *r) {
    if (r->head_cap > HTTP_KEEP_BUF) {
        free(r->head);
        r->head = NULL;
        r->head_cap = 0;
    }
    if (r->body_cap > HTTP_KEEP_BUF) {
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
    r->lines = 0;
    r->head_len = 0;
    r->url = r->url_len = 0;
    r->nhdrs = 0;
    r->in_value = false;
    r->complete = false;
    r->error_status = 0;
    r->body_len = 0;
    free_url(r);
    http_parser_pause(&r->parser, 0);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
}

/* Splits the URL into path and query once the request is complete. */
static int split_url(struct http_req *r) {
    struct http_parser_url u;
    http_parser_url_init(&u);
    const char *url = r->head + r->url;
    if (http_parser_parse_url(url, r->url_len, 0, &u) != 0)
        return -1;
    if (!(u.field_set & (1 << UF_PATH)))
        return -1;
    uint16_t po = u.field_data[UF_PATH].off, pl = u.field_data[UF_PATH].len;
    if (pl >= 1024) {
        r->error_status = 414;
        return -1;
    }
    r->path = strndup(url + po, pl);
    if (!r->path) {
        r->path = EMPTY;
        r->error_status = 503;
        return -1;
    }
    if (u.field_set & (1 << UF_QUERY)) {
        uint16_t qo = u.field_data[UF_QUERY].off, ql = u.field_data[UF_QUERY].len;
        if (ql >= 8192) {
            r->error_status = 414;
            return -1;
        }
        r->query = strndup(url + qo, ql);
        if (!r->query) {
            r->query = EMPTY;
            r->error_status = 503;
            return -1;
        }
    }
    return 0;
}

/* States of the head's line scan. */
enum { LS_START = 0, LS_LINE, LS_BOL, LS_BOL_CR, LS_DONE };

/* Follows the lines of the head through the bytes the parser consumed (any
 * split across reads) and returns false at a line that starts with SP or
 * HTAB: obs-fold (RFC 9112 5.2), or whitespace before the first field
 * (2.2). http-parser joins a folded line to the previous value; a proxy may
 * not, so it is refused (400) rather than unfolded. Bare LF ends a line as
 * it does for http-parser (2.2 allows it). Stops at the empty line. */
static bool scan_lines(struct http_req *r, const char *p, size_t n) {
    uint8_t s = r->lines;
    for (size_t i = 0; i < n && s != LS_DONE; i++) {
        char ch = p[i];
        switch (s) {
        case LS_START: /* empty lines before the request line are ignored */
            if (ch != '\r' && ch != '\n')
                s = LS_LINE;
            break;
        case LS_LINE:
            if (ch == '\n')
                s = LS_BOL;
            break;
        case LS_BOL:
            if (ch == ' ' || ch == '\t')
                return false;
            s = ch == '\r' ? LS_BOL_CR : ch == '\n' ? LS_DONE : LS_LINE;
            break;
        case LS_BOL_CR:
            s = ch == '\n' ? LS_DONE : LS_LINE;
            break;
        }
    }
    r->lines = s;
    return true;
}

enum http_status_rc http_req_feed(struct http_req *r, const char *data, size_t len, size_t *used) {
    size_t n = http_parser_execute(&r->parser, &SETTINGS, data, len);
    *used = n;
    if (!scan_lines(r, data, n)) {
        bad_request(r);
        return HTTP_ERROR;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (r->complete) {
        if (split_url(r) < 0) {
            if (!r->error_status)
                r->error_status = 400;
            return HTTP_ERROR;
        }
        /* A paused parser reports the byte it stopped on as consumed. */
        return HTTP_COMPLETE;
    }
    if (e != HPE_OK) {
        if (!r->error_status)
            r->error_status = (e == HPE_HEADER_OVERFLOW) ? 431 : 400;
        return HTTP_ERROR;
    }
    return HTTP_NEED_MORE;
}

const char *http_req_header(const struct http_req *r, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (uint16_t i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        if (h->name_len == nl && strncasecmp(r->head + h->name, name, nl) == 0) {
            /* trim surrounding whitespace */
            const char *v = r->head + h->value;
            size_t vl = h->value_len;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (len)
                *len = vl;
            return v;
        }
    }
    return NULL;
}

size_t http_req_header_all(const struct http_req *r, const char *name, char *out, size_t outlen) {
    size_t nl = strlen(name), o = 0;
    for (uint16_t i = 0; i < r->nhdrs; i++) {
        const struct http_header *h = &r->hdrs[i];
        if (h->name_len != nl || strncasecmp(r->head + h->name, name, nl) != 0)
            continue;
        size_t need = h->value_len + (o ? 2 : 0);
        if (o + need + 1 > outlen)
            break;
        if (o) {
            out[o++] = ',';
            out[o++] = ' ';
        }
        memcpy(out + o, r->head + h->value, h->value_len);
        o += h->value_len;
    }
    if (outlen)
        out[o] = '\0';
    return o;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool http_req_query(const struct http_req *r, const char *name, char *out, size_t outlen) {
    size_t nl = strlen(name);
    const char *q = r->query;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t seg = amp ? (size_t)(amp - q) : strlen(q);
        if (seg > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < seg && o + 1 < outlen; i++) {
                char c = q[i];
                if (c == '+')
                    c = ' ';
                else if (c == '%' && i + 2 < seg && hexval(q[i + 1]) >= 0 && hexval(q[i + 2]) >= 0) {
                    c = (char)(hexval(q[i + 1]) * 16 + hexval(q[i + 2]));
                    i += 2;
                }
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        q += seg + (amp ? 1 : 0);
    }
    return false;
}

const char *http_reason(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

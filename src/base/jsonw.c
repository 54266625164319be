/* jsonw.c - JSON text writer; see jsonw.h. */
#include "base/jsonw.h"

void jw_raw(struct jw *w, const char *s, size_t len) {
    if (w->full || len > w->cap - w->n) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->n, s, len);
    w->n += len;
}

void jw_str(struct jw *w, const char *s) {
    if (!s) {
        jw_lit(w, "null");
        return;
    }
    static const char HEX[] = "0123456789ABCDEF"; /* as jansson prints them */
    jw_lit(w, "\"");
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        jw_raw(w, run, (size_t)(s - run));
        run = s + 1;
        char e[6] = {'\\', 0};
        switch (ch) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = HEX[ch >> 4], e[5] = HEX[ch & 15];
            jw_raw(w, e, 6);
            continue;
        }
        jw_raw(w, e, 2);
    }
    jw_raw(w, run, (size_t)(s - run));
    jw_lit(w, "\"");
}

void jw_i64(struct jw *w, int64_t v) {
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof(tmp) - ++n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[sizeof(tmp) - ++n] = '-';
    jw_raw(w, tmp + sizeof(tmp) - n, n);
}

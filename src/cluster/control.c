/* control.c - the control channel's message format; see control.h. */
#include "cluster/control.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *control_block(const char *node, const struct ip16 *ip, int64_t duration_s) {
    char text[64];
    ip16_format(ip, text, sizeof(text));
    return format("B|%s|%s|%lld", node, text, (long long)duration_s);
}

char *control_unblock(const char *node, const struct ip16 *ip) {
    char text[64];
    ip16_format(ip, text, sizeof(text));
    return format("U|%s|%s", node, text);
}

char *control_broadcast(const char *node, uint32_t roles, const char *frame_json) {
    return format("M|%s|%u|%s", node, roles, frame_json);
}

char *control_user_event(const char *node, const char *user, bool portfolio_only, const char *event_json) {
    if (strchr(user, '|') || strlen(user) >= sizeof(((struct control_msg *)0)->user))
        return NULL;
    return format("E|%s|%d|%s|%s", node, portfolio_only ? 1 : 0, user, event_json);
}

/* The next '|'-separated field of [*p, end): its start and length; *p moves
 * past the bar. -1 when there is no bar (last: the rest is the field). */
static int field(const char **p, const char *end, bool last, const char **f, size_t *fl) {
    const char *bar = last ? NULL : memchr(*p, '|', (size_t)(end - *p));
    if (!last && !bar)
        return -1;
    *f = *p;
    *fl = (size_t)((bar ? bar : end) - *p);
    *p = bar ? bar + 1 : end;
    return 0;
}

static int copy(char *out, size_t cap, const char *f, size_t fl) {
    if (fl >= cap)
        return -1;
    memcpy(out, f, fl);
    out[fl] = '\0';
    return 0;
}

int control_parse(const char *msg, size_t len, struct control_msg *m) {
    const char *p = msg, *end = msg + len, *f;
    size_t fl;
    memset(m, 0, sizeof(*m));
    if (len < 2 || msg[1] != '|' || !strchr("BUME", msg[0]))
        return -1;
    m->kind = msg[0];
    p += 2;
    bool ip_last = m->kind == 'U';
    if (field(&p, end, false, &f, &fl) < 0 || copy(m->node, sizeof(m->node), f, fl) < 0)
        return -1;
    char num[24];
    switch (m->kind) {
    case 'B':
    case 'U':
        if (field(&p, end, ip_last, &f, &fl) < 0 || !ip16_parse(f, fl, &m->ip))
            return -1;
        if (m->kind == 'B') {
            if (field(&p, end, true, &f, &fl) < 0 || copy(num, sizeof(num), f, fl) < 0)
                return -1;
            m->duration_s = strtoll(num, NULL, 10);
        }
        return 0;
    case 'M':
        if (field(&p, end, false, &f, &fl) < 0 || copy(num, sizeof(num), f, fl) < 0)
            return -1;
        m->roles = (uint32_t)strtoul(num, NULL, 10);
        break;
    case 'E':
        if (field(&p, end, false, &f, &fl) < 0 || fl != 1)
            return -1;
        m->portfolio_only = f[0] == '1';
        if (field(&p, end, false, &f, &fl) < 0 || copy(m->user, sizeof(m->user), f, fl) < 0)
            return -1;
        break;
    }
    m->json = p;
    m->json_len = (size_t)(end - p);
    return 0;
}

/* clientip.c - client address resolution; see clientip.h. */
#include "net/clientip.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/config.h"

void ip16_from_raw(struct ip16 *out, int family, const uint8_t *raw) {
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        out->b[10] = out->b[11] = 0xff;
        memcpy(out->b + 12, raw, 4);
    } else {
        memcpy(out->b, raw, 16);
    }
}

bool ip16_parse(const char *s, size_t len, struct ip16 *out) {
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    uint8_t raw[16];
    if (inet_pton(AF_INET, buf, raw) == 1) {
        ip16_from_raw(out, AF_INET, raw);
        return true;
    }
    if (inet_pton(AF_INET6, buf, raw) == 1) {
        ip16_from_raw(out, AF_INET6, raw);
        return true;
    }
    return false;
}

bool ip16_is_v4(const struct ip16 *ip) {
    static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(ip->b, pre, 12) == 0;
}

struct ip16 ip16_client_key(const struct ip16 *ip, int v6_prefix) {
    struct ip16 k = *ip;
    if (ip16_is_v4(ip) || v6_prefix >= 128)
        return k;
    int full = v6_prefix / 8, rest = v6_prefix % 8;
    if (rest)
        k.b[full++] &= (uint8_t)(0xff << (8 - rest));
    memset(k.b + full, 0, (size_t)(16 - full));
    return k;
}

void ip16_format(const struct ip16 *ip, char *out, size_t len) {
    if (ip16_is_v4(ip))
        inet_ntop(AF_INET, ip->b + 12, out, (socklen_t)len);
    else
        inet_ntop(AF_INET6, ip->b, out, (socklen_t)len);
}

int cidr_list_parse(struct cidr_list *l, const char *text, const char *key, FILE *err) {
    memset(l, 0, sizeof(*l));
    const char *cur = text, *p;
    size_t n;
    while (config_list_next(&cur, &p, &n)) {
        const char *slash = memchr(p, '/', n);
        size_t al = slash ? (size_t)(slash - p) : n;
        struct cidr c;
        if (!ip16_parse(p, al, &c.net)) {
            fprintf(err, "tickgate: %s: '%.*s' is not an IP address or CIDR\n", key, (int)n, p);
            goto fail;
        }
        int max = ip16_is_v4(&c.net) ? 32 : 128;
        int bits = max;
        if (slash) {
            char num[8];
            size_t nl = n - al - 1;
            char *end;
            if (nl == 0 || nl >= sizeof(num))
                goto bad_prefix;
            memcpy(num, slash + 1, nl);
            num[nl] = '\0';
            long b = strtol(num, &end, 10);
            if (*end || b < 0 || b > max)
                goto bad_prefix;
            bits = (int)b;
        }
        c.bits = (uint8_t)(bits + (max == 32 ? 96 : 0));
        struct cidr *nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
        if (!nv)
            goto fail;
        l->v = nv;
        l->v[l->n++] = c;
        continue;
    bad_prefix:
        fprintf(err, "tickgate: %s: '%.*s' has a bad prefix length\n", key, (int)n, p);
        goto fail;
    }
    return 0;
fail:
    cidr_list_free(l);
    return -1;
}

void cidr_list_free(struct cidr_list *l) {
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool cidr_list_match(const struct cidr_list *l, const struct ip16 *ip) {
    for (size_t i = 0; i < l->n; i++) {
        const struct cidr *c = &l->v[i];
        int full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(c->net.b, ip->b, (size_t)full) != 0)
            continue;
        if (rest) {
            uint8_t mask = (uint8_t)(0xff << (8 - rest));
            if ((c->net.b[full] & mask) != (ip->b[full] & mask))
                continue;
        }
        return true;
    }
    return false;
}

struct ip16 client_ip(const struct cidr_list *trusted, const struct ip16 *peer, const char *xff, size_t xl) {
    struct ip16 ip = *peer;
    if (!xff || !trusted->n || !cidr_list_match(trusted, peer))
        return ip;
    /* Walk X-Forwarded-For from the right: each trusted hop vouches for the
     * address before it; the first untrusted one is the client. */
    size_t end = xl;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t s = start, e = end;
        while (s < e && (xff[s] == ' ' || xff[s] == '\t'))
            s++;
        while (e > s && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
            e--;
        struct ip16 hop;
        if (!ip16_parse(xff + s, e - s, &hop))
            return ip; /* garbage: stop at the last address we could trust */
        ip = hop;
        if (!cidr_list_match(trusted, &hop))
            return ip;
        end = start > 0 ? start - 1 : 0;
    }
    return ip;
}

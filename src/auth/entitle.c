/* entitle.c - interned symbol pattern sets; see entitle.h. */
#include "auth/entitle.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define TABLE 1024

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;
static struct entitle_set *table[TABLE];
static size_t alive;

static void init_lock(void) { uv_mutex_init(&lock); }

/* A symbol's characters (pubsub/symbols.h symbol_valid), '*' last for a prefix. */
bool entitle_pattern_valid(const char *p, size_t len) {
    if (len == 1 && p[0] == '*')
        return true;
    bool prefix = len > 1 && p[len - 1] == '*';
    size_t n = prefix ? len - 1 : len;
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || !strchr(".-:/_", c) || c == '\0'))
            return false;
    }
    return true;
}

static int pat_cmp(const void *a, const void *b) {
    const struct entitle_pat *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (int)x->len - (int)y->len;
}

bool entitle_match(const struct entitle_set *s, const char *name, size_t len) {
    if (s->all)
        return true;
    size_t lo = 0, hi = s->nexact;
    struct entitle_pat key;
    if (len <= 32) {
        memcpy(key.s, name, len);
        key.len = (uint8_t)len;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            int c = pat_cmp(&key, &s->exact[mid]);
            if (c == 0)
                return true;
            if (c < 0)
                hi = mid;
            else
                lo = mid + 1;
        }
    }
    for (uint32_t i = 0; i < s->nprefix; i++)
        if (len >= s->prefix[i].len && memcmp(name, s->prefix[i].s, s->prefix[i].len) == 0)
            return true;
    return false;
}

static void set_free(struct entitle_set *s) {
    if (!s)
        return;
    free(s->exact);
    free(s->prefix);
    free(s);
}

/* Same patterns (both canonical: sorted, deduplicated). */
static bool same(const struct entitle_set *a, const struct entitle_set *b) {
    if (a->all != b->all || a->nexact != b->nexact || a->nprefix != b->nprefix)
        return false;
    for (uint32_t i = 0; i < a->nexact; i++)
        if (pat_cmp(&a->exact[i], &b->exact[i]))
            return false;
    for (uint32_t i = 0; i < a->nprefix; i++)
        if (pat_cmp(&a->prefix[i], &b->prefix[i]))
            return false;
    return true;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

static uint32_t dedup(struct entitle_pat *v, uint32_t n) {
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), pat_cmp);
    uint32_t o = 1;
    for (uint32_t i = 1; i < n; i++)
        if (pat_cmp(&v[i], &v[o - 1]))
            v[o++] = v[i];
    return o;
}

struct entitle_set *entitle_get(const char *const *pats, const size_t *lens, size_t n, const char **why) {
    uv_once(&once, init_lock);
    if (n > ENTITLE_PATTERNS_MAX) {
        *why = "too many patterns";
        return NULL;
    }
    struct entitle_set *s = calloc(1, sizeof(*s));
    if (s) {
        s->exact = calloc(n + 1, sizeof(*s->exact));
        s->prefix = calloc(n + 1, sizeof(*s->prefix));
    }
    if (!s || !s->exact || !s->prefix) {
        set_free(s);
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!entitle_pattern_valid(pats[i], lens[i])) {
            set_free(s);
            *why = "invalid pattern";
            return NULL;
        }
        if (lens[i] == 1 && pats[i][0] == '*') {
            s->all = true;
            continue;
        }
        bool pre = pats[i][lens[i] - 1] == '*';
        struct entitle_pat *p = pre ? &s->prefix[s->nprefix++] : &s->exact[s->nexact++];
        p->prefix = pre;
        p->len = (uint8_t)(pre ? lens[i] - 1 : lens[i]);
        memcpy(p->s, pats[i], p->len);
    }
    if (s->all)
        s->nexact = s->nprefix = 0; /* "*" says it all */
    s->nexact = dedup(s->exact, s->nexact);
    s->nprefix = dedup(s->prefix, s->nprefix);
    uint64_t h = fnv(14695981039346656037ULL, &s->all, 1);
    for (uint32_t i = 0; i < s->nexact; i++)
        h = fnv(fnv(h, s->exact[i].s, s->exact[i].len), ",", 1);
    h = fnv(h, "|", 1);
    for (uint32_t i = 0; i < s->nprefix; i++)
        h = fnv(fnv(h, s->prefix[i].s, s->prefix[i].len), ",", 1);
    s->hash = h;
    uv_mutex_lock(&lock);
    struct entitle_set **b = &table[h % TABLE], *e;
    for (e = *b; e && !(e->hash == h && same(e, s)); e = e->next)
        ;
    if (e) {
        e->refs++;
    } else if (alive < ENTITLE_SETS_MAX) {
        s->refs = 1;
        s->next = *b;
        *b = s;
        alive++;
        e = s;
        s = NULL;
    } else {
        *why = "too many entitlement sets";
    }
    uv_mutex_unlock(&lock);
    set_free(s);
    return e;
}

struct entitle_set *entitle_get_json(const json_t *arr, const char **why) {
    if (!json_is_array(arr)) {
        *why = "not an array of strings";
        return NULL;
    }
    size_t n = json_array_size(arr);
    if (n > ENTITLE_PATTERNS_MAX) {
        *why = "too many patterns";
        return NULL;
    }
    const char *pats[ENTITLE_PATTERNS_MAX];
    size_t lens[ENTITLE_PATTERNS_MAX];
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        if (!json_is_string(e)) {
            *why = "not an array of strings";
            return NULL;
        }
        pats[i] = json_string_value(e);
        lens[i] = json_string_length(e);
    }
    return entitle_get(pats, lens, n, why);
}

struct entitle_set *entitle_get_list(const char *list, const char **why) {
    const char *pats[ENTITLE_PATTERNS_MAX];
    size_t lens[ENTITLE_PATTERNS_MAX], n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t l = (size_t)(e - p);
        while (l && p[l - 1] == ' ')
            l--;
        if (n == ENTITLE_PATTERNS_MAX) {
            *why = "too many patterns";
            return NULL;
        }
        pats[n] = p;
        lens[n++] = l;
        p = e;
    }
    return entitle_get(pats, lens, n, why);
}

struct entitle_set *entitle_ref(struct entitle_set *s) {
    if (s) {
        uv_mutex_lock(&lock);
        s->refs++;
        uv_mutex_unlock(&lock);
    }
    return s;
}

void entitle_put(struct entitle_set *s) {
    if (!s)
        return;
    uv_mutex_lock(&lock);
    bool last = --s->refs == 0;
    if (last) {
        struct entitle_set **b = &table[s->hash % TABLE];
        while (*b != s)
            b = &(*b)->next;
        *b = s->next;
        alive--;
    }
    uv_mutex_unlock(&lock);
    if (last)
        set_free(s);
}

size_t entitle_sets_alive(void) {
    uv_once(&once, init_lock);
    uv_mutex_lock(&lock);
    size_t n = alive;
    uv_mutex_unlock(&lock);
    return n;
}

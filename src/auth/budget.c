/* budget.c - per-identity rate budgets; see budget.h.
 *
 * GCRA: a bucket holding `burst` tokens refilled one per `interval` is the
 * same as a theoretical arrival time tat: a token may be taken at now when
 * tat <= now + tau (tau = (burst - 1) * interval), and taking it moves tat to
 * max(tat, now) + interval. tat <= now means the bucket is full. */
#include "auth/budget.h"

#include <stdlib.h>
#include <string.h>

#define NS_PER_MIN 60000000000ULL

struct budget {
    struct budget *next;            /* hash chain */
    struct budget *iprev, *inext;   /* idle list, while refs == 0 */
    _Atomic uint64_t tat;           /* ns; the bucket is full when <= now */
    uint64_t idle_since;            /* ns at the last put that left it unused */
    uint32_t refs;                  /* connections holding it */
    uint8_t kind;                   /* enum budget_kind */
    uint8_t len;
    unsigned char key[];
};

static uint32_t hash(enum budget_kind kind, const unsigned char *p, size_t n) {
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % BUDGET_HASH;
}

void budgets_init(struct budgets *b, long msg_per_min, long connects_per_min) {
    memset(b, 0, sizeof(*b));
    uv_mutex_init(&b->lock);
    budgets_set_rates(b, msg_per_min, connects_per_min);
}

void budgets_set_rates(struct budgets *b, long msg_per_min, long connects_per_min) {
    long per_min[BUDGET_KINDS] = {msg_per_min, msg_per_min, connects_per_min};
    for (int k = 0; k < BUDGET_KINDS; k++) {
        uint64_t n = per_min[k] > 0 ? (uint64_t)per_min[k] : 1;
        b->interval_ns[k] = NS_PER_MIN / n;
        b->tau_ns[k] = (n - 1) * b->interval_ns[k];
    }
}

void budgets_free(struct budgets *b) {
    for (int i = 0; i < BUDGET_HASH; i++)
        for (struct budget *x = b->table[i], *n; x; x = n) {
            n = x->next;
            free(x);
        }
    uv_mutex_destroy(&b->lock);
    memset(b, 0, sizeof(*b));
}

static void idle_unlink(struct budgets *b, struct budget *x) {
    if (x->iprev)
        x->iprev->inext = x->inext;
    else
        b->idle_head = x->inext;
    if (x->inext)
        x->inext->iprev = x->iprev;
    else
        b->idle_tail = x->iprev;
    x->iprev = x->inext = NULL;
    b->nidle--;
}

/* Unlinks an unused bucket from the table and frees it. Under the lock. */
static void forget(struct budgets *b, struct budget *x) {
    idle_unlink(b, x);
    for (struct budget **pp = &b->table[hash(x->kind, x->key, x->len)]; *pp; pp = &(*pp)->next)
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    atomic_fetch_sub_explicit(&b->count, 1, memory_order_relaxed);
    free(x);
}

struct budget *budget_get(struct budgets *b, enum budget_kind kind, const void *key, size_t len) {
    if (len > BUDGET_KEY_MAX)
        return NULL;
    uint32_t h = hash(kind, key, len);
    uv_mutex_lock(&b->lock);
    struct budget *x = b->table[h];
    while (x && !(x->kind == kind && x->len == len && memcmp(x->key, key, len) == 0))
        x = x->next;
    if (x) {
        if (x->refs++ == 0)
            idle_unlink(b, x);
    } else if ((x = calloc(1, sizeof(*x) + len)) != NULL) {
        x->kind = (uint8_t)kind;
        x->len = (uint8_t)len;
        memcpy(x->key, key, len);
        x->refs = 1; /* tat 0: full */
        x->next = b->table[h];
        b->table[h] = x;
        atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed);
    }
    uv_mutex_unlock(&b->lock);
    return x;
}

void budget_put(struct budgets *b, struct budget *x, uint64_t now_ns) {
    if (!x)
        return;
    uv_mutex_lock(&b->lock);
    if (--x->refs == 0) {
        x->idle_since = now_ns;
        x->iprev = b->idle_tail;
        x->inext = NULL;
        if (b->idle_tail)
            b->idle_tail->inext = x;
        else
            b->idle_head = x;
        b->idle_tail = x;
        b->nidle++;
        if (atomic_load_explicit(&x->tat, memory_order_relaxed) <= now_ns) {
            forget(b, x); /* full: a new bucket would be the same */
        } else if (b->nidle > BUDGET_IDLE_MAX) {
            /* At the bound: forget the bucket unused the longest. Its debt
             * is the oldest, so it is the nearest to full. */
            forget(b, b->idle_head);
            atomic_fetch_add_explicit(&b->evicted, 1, memory_order_relaxed);
        }
    }
    uv_mutex_unlock(&b->lock);
}

bool budget_take(struct budgets *b, struct budget *x, uint64_t now_ns, uint64_t *wait_ns) {
    uint64_t iv = b->interval_ns[x->kind], tau = b->tau_ns[x->kind];
    uint64_t tat = atomic_load_explicit(&x->tat, memory_order_relaxed);
    for (;;) {
        uint64_t from = tat > now_ns ? tat : now_ns;
        if (from - now_ns > tau) {
            atomic_fetch_add_explicit(&b->refused[x->kind], 1, memory_order_relaxed);
            if (wait_ns)
                *wait_ns = from - now_ns - tau;
            return false;
        }
        if (atomic_compare_exchange_weak_explicit(&x->tat, &tat, from + iv, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

struct budget *budget_for_client(struct budgets *b, const char *user_id, const struct ip16 *ipkey) {
    if (user_id)
        return budget_get(b, BUDGET_MSG_USER, user_id, strlen(user_id));
    return budget_get(b, BUDGET_MSG_IP, ipkey->b, sizeof(ipkey->b));
}

bool budget_take_key(struct budgets *b, enum budget_kind kind, const void *key, size_t len, uint64_t now_ns,
                     uint64_t *wait_ns) {
    struct budget *x = budget_get(b, kind, key, len);
    if (!x)
        return true;
    bool ok = budget_take(b, x, now_ns, wait_ns);
    budget_put(b, x, now_ns);
    return ok;
}

void budget_sweep(struct budgets *b, uint64_t now_ns) {
    uv_mutex_lock(&b->lock);
    /* Longest unused first. A debt is at most one minute of tokens, so past
     * the first bucket unused for less than a minute there is little to
     * find; a full one further on goes at a later sweep. */
    for (struct budget *x = b->idle_head, *n; x; x = n) {
        n = x->inext;
        if (atomic_load_explicit(&x->tat, memory_order_relaxed) <= now_ns)
            forget(b, x);
        else if (now_ns < x->idle_since + NS_PER_MIN)
            break;
    }
    uv_mutex_unlock(&b->lock);
}

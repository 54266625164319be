/* order_book.c - resting limit orders by price; see order_book.h. */
#include "trade/order_book.h"

#include <errno.h>
#include <stdlib.h>

/* True when a fills before b: higher key, then earlier arrival. */
static bool before(const struct book_entry *a, const struct book_entry *b) {
    return a->key > b->key || (a->key == b->key && a->seq < b->seq);
}

static void swap(struct book_entry *a, struct book_entry *b) {
    struct book_entry t = *a;
    *a = *b;
    *b = t;
}

static int side_push(struct book_side *s, struct book_entry e) {
    if (s->n == s->cap) {
        if (s->cap > UINT32_MAX / 2)
            return -ENOMEM;
        uint32_t ncap = s->cap ? s->cap * 2 : 4;
        struct book_entry *v = realloc(s->v, (size_t)ncap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = ncap;
    }
    uint32_t i = s->n++;
    s->v[i] = e;
    while (i > 0 && before(&s->v[i], &s->v[(i - 1) / 2])) {
        swap(&s->v[i], &s->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    return 0;
}

/* Removes the best entry of a non-empty side and returns its item. */
static void *side_pop(struct book_side *s) {
    void *item = s->v[0].item;
    s->v[0] = s->v[--s->n];
    for (uint32_t i = 0;;) {
        uint32_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < s->n && before(&s->v[l], &s->v[best]))
            best = l;
        if (r < s->n && before(&s->v[r], &s->v[best]))
            best = r;
        if (best == i)
            break;
        swap(&s->v[i], &s->v[best]);
        i = best;
    }
    if (s->n == 0) { /* nothing is kept for a side with no order */
        free(s->v);
        s->v = NULL;
        s->cap = 0;
    }
    return item;
}

int order_book_add(struct order_book *b, bool sell, double limit, void *item) {
    struct book_entry e = {.key = sell ? -limit : limit, .seq = b->next_seq, .item = item};
    int rc = side_push(sell ? &b->sell : &b->buy, e);
    if (rc == 0)
        b->next_seq++;
    return rc;
}

void *order_book_take(struct order_book *b, double price) {
    if (b->buy.n && b->buy.v[0].key >= price)
        return side_pop(&b->buy);
    if (b->sell.n && b->sell.v[0].key >= -price)
        return side_pop(&b->sell);
    return NULL;
}

uint32_t order_book_size(const struct order_book *b) { return b->buy.n + b->sell.n; }

void order_book_clear(struct order_book *b, void (*drop)(void *item)) {
    struct book_side *sides[] = {&b->buy, &b->sell};
    for (int k = 0; k < 2; k++) {
        for (uint32_t i = 0; drop && i < sides[k]->n; i++)
            drop(sides[k]->v[i].item);
        free(sides[k]->v);
        *sides[k] = (struct book_side){0};
    }
    b->next_seq = 0;
}

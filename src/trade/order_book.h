/* order_book.h - the resting limit orders of one symbol, indexed by price.
 *
 * Buys wait in a max-heap on their limit, sells in a min-heap, ties broken
 * by arrival. A tick at price p takes exactly the orders it crosses (buys
 * with limit >= p, then sells with limit <= p), best limit first and the
 * oldest first among equal limits, in O(log n) each; an order the tick
 * does not cross is never looked at. The book holds opaque items (the
 * broker's orders) and is used by one thread only. */
#ifndef TG_ORDER_BOOK_H
#define TG_ORDER_BOOK_H

#include <stdbool.h>
#include <stdint.h>

struct book_entry {
    double key;                 /* buy: the limit; sell: minus the limit (larger fills first) */
    uint64_t seq;               /* arrival in this book: smaller fills first on equal keys */
    void *item;                 /* the caller's; the book never dereferences it */
};

struct book_side {
    struct book_entry *v;       /* binary heap, best at v[0]; freed when empty */
    uint32_t n, cap;
};

struct order_book {
    struct book_side buy, sell;
    uint64_t next_seq;
};

/* Rests item with limit price `limit` (finite, > 0) on the buy or sell
 * side. 0, or -ENOMEM (nothing changed). */
int order_book_add(struct order_book *b, bool sell, double limit, void *item);

/* Removes and returns the best order a tick at price crosses, or NULL
 * when it crosses none. Call until NULL to take them all. */
void *order_book_take(struct order_book *b, double price);

/* Orders resting in b. */
uint32_t order_book_size(const struct order_book *b);

/* Empties b, handing every item to drop (if not NULL), and frees its
 * memory; b is then an empty book. */
void order_book_clear(struct order_book *b, void (*drop)(void *item));

#endif

/* mailbox.h - a bounded multi-producer queue into one event loop.
 *
 * The only way threads talk: any thread posts a small message, the owning
 * loop's uv_async wakes it and the handler receives the messages in post
 * order, in batches. Bounded: post fails with -ENOSPC when the ring is full
 * and the caller applies its documented policy (the message's owner keeps
 * whatever the message referenced). */
#ifndef TG_MAILBOX_H
#define TG_MAILBOX_H

#include <stdint.h>
#include <uv.h>

struct mail {
    uintptr_t type; /* meaning is the receiver's (a number, or a pointer to its kind) */
    void *ptr;  /* ownership passes to the receiver on successful post */
    uint64_t a;
    uint64_t b;
};

struct mailbox;
typedef void (*mailbox_cb)(struct mailbox *mb, struct mail *m, void *data);

struct mailbox {
    uv_async_t async;   /* owned by the receiving loop */
    uv_mutex_t lock;    /* guards ring, count */
    struct mail *ring;  /* cap entries: the first count are queued, in order */
    struct mail *batch; /* the receiver's: what it took, swapped with ring */
    uint32_t cap, count;
    mailbox_cb cb;
    void *data;
};

/* Initializes mb on loop; cap is rounded up to a power of two. 0 or -errno. */
int mailbox_init(struct mailbox *mb, uv_loop_t *loop, uint32_t cap, mailbox_cb cb, void *data);

/* Posts one message from any thread. 0, or -ENOSPC when full. */
int mailbox_post(struct mailbox *mb, const struct mail *m);

/* Closes the async handle; later posts fail. Messages still queued are
 * handed to drop (may be NULL) first. Called on the receiving loop's
 * thread, once. The memory stays until mailbox_destroy. */
void mailbox_close(struct mailbox *mb, void (*drop)(struct mail *m));

/* Frees the ring and the lock, once no thread can post any more (after
 * every thread that knows mb has been joined). */
void mailbox_destroy(struct mailbox *mb);

#endif

/* mailbox.c - bounded multi-producer queue into one loop; see mailbox.h. */
#include "base/mailbox.h"

#include <errno.h>
#include <stdlib.h>

static void on_async(uv_async_t *h) {
    struct mailbox *mb = h->data;
    for (;;) {
        /* Take everything queued in one critical section (the two arrays
         * swap: nothing is copied), then run the handler without the lock
         * so it may post (even to itself). Posts always fill from slot 0, so
         * the arrays touch only as many pages as the deepest backlog. */
        uv_mutex_lock(&mb->lock);
        uint32_t n = mb->count;
        struct mail *taken = mb->ring;
        mb->ring = mb->batch;
        mb->batch = taken;
        mb->count = 0;
        uv_mutex_unlock(&mb->lock);
        if (n == 0)
            return;
        for (uint32_t i = 0; i < n; i++)
            mb->cb(mb, &mb->batch[i], mb->data);
    }
}

int mailbox_init(struct mailbox *mb, uv_loop_t *loop, uint32_t cap, mailbox_cb cb, void *data) {
    uint32_t c = 16;
    while (c < cap)
        c <<= 1;
    mb->ring = calloc(c, sizeof(*mb->ring));
    mb->batch = calloc(c, sizeof(*mb->batch));
    if (!mb->ring || !mb->batch)
        goto out_free;
    if (uv_mutex_init(&mb->lock) != 0)
        goto out_free;
    mb->cap = c;
    mb->count = 0;
    mb->cb = cb;
    mb->data = data;
    if (uv_async_init(loop, &mb->async, on_async) != 0)
        goto out_mutex;
    mb->async.data = mb;
    return 0;
out_mutex:
    uv_mutex_destroy(&mb->lock);
out_free:
    free(mb->ring);
    free(mb->batch);
    return -ENOMEM;
}

int mailbox_post(struct mailbox *mb, const struct mail *m) {
    uv_mutex_lock(&mb->lock);
    if (mb->count == mb->cap) {
        uv_mutex_unlock(&mb->lock);
        return -ENOSPC;
    }
    mb->ring[mb->count++] = *m;
    /* Sent under the lock so it can never race mailbox_close. */
    uv_async_send(&mb->async);
    uv_mutex_unlock(&mb->lock);
    return 0;
}

void mailbox_destroy(struct mailbox *mb) {
    if (!mb->ring)
        return;
    uv_mutex_destroy(&mb->lock);
    free(mb->ring);
    free(mb->batch);
    mb->ring = mb->batch = NULL;
}

void mailbox_close(struct mailbox *mb, void (*drop)(struct mail *m)) {
    uv_mutex_lock(&mb->lock);
    for (uint32_t i = 0; i < mb->count; i++)
        if (drop)
            drop(&mb->ring[i]);
    mb->count = 0;
    mb->cap = 0; /* later posts fail with -ENOSPC and never touch the handle */
    uv_mutex_unlock(&mb->lock);
    uv_close((uv_handle_t *)&mb->async, NULL);
}

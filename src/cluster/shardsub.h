/* shardsub.h - one sharded pub/sub connection (SSUBSCRIBE) to one Redis
 * Cluster primary. hiredis 0.14 (Debian 12) does not know SSUBSCRIBE: its
 * async context would take each "smessage" for the reply of a command, so
 * this connection is a libuv TCP stream read with hiredis's reply parser.
 * Every reply after the handshake goes to reply_cb; any failure (connect,
 * an error reply, the peer closing, memory) to fail_cb once, after which
 * the owner closes it. Writes are the owner's (un)subscribes: a handful
 * per symbol, never per tick. Main loop only. */
#ifndef TG_CLUSTER_SHARDSUB_H
#define TG_CLUSTER_SHARDSUB_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct redisReply;

struct shard_sub {
    uv_tcp_t tcp;
    uv_connect_t connect;
    void *reader;                   /* redisReader */
    char *buf;                      /* read buffer */
    bool open;                      /* the handle exists (until its close callback) */
    bool closing, ready, failed;
    int handshake;                  /* handshake replies still awaited */
    const char *password;           /* the engine's (never logged), or NULL */
    int timeout_ms;
    uint64_t progress_ms;           /* loop ms of the last read */
    void (*ready_cb)(struct shard_sub *s);
    void (*reply_cb)(struct shard_sub *s, struct redisReply *r);
    void (*fail_cb)(struct shard_sub *s, const char *why, const char *detail);
    void (*closed_cb)(struct shard_sub *s);
    void *data;
};

/* Connects to ip:port (an IP address: CLUSTER SLOTS names them), then
 * AUTH (password, may be NULL, kept by reference) and PING. 0, or -1:
 * not an IP, or memory (nothing to close). A failed connect comes later
 * to fail_cb. */
int shard_sub_open(struct shard_sub *s, uv_loop_t *loop, const char *ip, int port, const char *password,
                   int timeout_ms);

/* Sends "<verb> <channel>". 0, or -1 (not open, or memory). */
int shard_sub_send(struct shard_sub *s, const char *verb, const char *channel);

/* Closes (closed_cb follows on a later loop turn); no callback but
 * closed_cb runs after this. */
void shard_sub_close(struct shard_sub *s);

#endif

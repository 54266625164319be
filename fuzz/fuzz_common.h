/* fuzz_common.h - helpers shared by tickgate's libFuzzer targets.
 *
 * Chunking: a push parser must give the same result whatever the read
 * sizes, so most targets feed their input twice: whole, and cut into
 * chunks whose sizes come from the first bytes of the input. Every chunk
 * is copied into a heap block of exactly its size, so AddressSanitizer
 * sees a read past the end of a read as what it would be in the server:
 * a read past the end of the worker's buffer. */
#ifndef TG_FUZZ_COMMON_H
#define TG_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Aborts with a message: libFuzzer reports it as a crash and saves the input. */
#define FUZZ_CHECK(cond, ...)                                                        \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  ", __FILE__, __LINE__, \
                    #cond);                                                          \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* Chunk sizes, cycled: pattern[i] is 1..64, or 0 meaning "the rest". */
struct chunker {
    uint8_t pattern[4];
    unsigned i;
};

/* Takes up to 4 bytes from *data to build a chunking pattern. */
static inline void chunker_init(struct chunker *ch, const uint8_t **data, size_t *size) {
    memset(ch, 0, sizeof(*ch));
    for (int k = 0; k < 4; k++) {
        uint8_t b = 0;
        if (*size) {
            b = **data;
            (*data)++;
            (*size)--;
        }
        /* 0..191 -> 1..64 bytes (small chunks are the interesting ones);
         * 192..255 -> the rest of the input in one go. */
        ch->pattern[k] = b < 192 ? (uint8_t)(1 + b % 64) : 0;
    }
    ch->i = 0;
}

/* Size of the next chunk given len bytes left. */
static inline size_t chunker_next(struct chunker *ch, size_t left) {
    uint8_t p = ch->pattern[ch->i++ & 3];
    size_t n = p ? p : left;
    return n < left ? n : left;
}

/* A heap copy of exactly len bytes (never NULL; len 0 gives a 1-byte
 * block the callee must not read). */
static inline uint8_t *fuzz_dup(const uint8_t *p, size_t len) {
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        abort();
    if (len)
        memcpy(d, p, len);
    return d;
}

/* FNV-1a over bytes, to compare outcomes cheaply. */
static inline uint64_t fuzz_hash(uint64_t h, const void *p, size_t len) {
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
#define FUZZ_HASH_INIT 14695981039346656037ull

/* The input file of harnesses whose input is a file (configuration, users
 * file): one private temporary file per process, created at the first call
 * (mkstemp), removed at exit, rewritten for every input. */
static char fuzz_file_path[64];

static void fuzz_file_remove(void) { unlink(fuzz_file_path); }

static inline char *fuzz_file_create(const char *tag) {
    snprintf(fuzz_file_path, sizeof(fuzz_file_path), "/tmp/tickgate-fuzz-%s-XXXXXX", tag);
    int fd = mkstemp(fuzz_file_path);
    if (fd < 0)
        abort();
    close(fd);
    atexit(fuzz_file_remove);
    return fuzz_file_path;
}

static inline void fuzz_file_write(const void *data, size_t size) {
    FILE *f = fopen(fuzz_file_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        abort();
    fclose(f);
}

#endif

/* fuzz_users.c - the files tickgate loads at start: the users file
 * (static users_load in src/auth/auth.c, reached through auth_init) and
 * the symbols file (symbols_load in src/pubsub/symbols.c).
 *
 * Input: [mode][file bytes...]
 *   mode bit 0: 0 users file (auth.users_file), 1 symbols file (feed.symbols_file)
 * The bytes are written to a private temporary file that the loader reads
 * exactly as the server does at start and on SIGHUP.
 * Checks: a loaded users table is sane (ids non-empty < 128 bytes, a
 * username, a real role that is not anonymous), API keys and tokens are
 * looked up in it without incident (an active user's key gives its
 * identity); a loaded symbol table holds only valid, unique names that
 * symbols_find finds at their own index. */
#include <stdbool.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/config.h"
#include "fuzz_common.h"
#include "pubsub/symbols.h"

#define SECRET "tickgate-fuzz-secret-0123456789abcdef0123"

static char *path; /* the input file (fuzz_common.h) */
static FILE *devnull;
static struct config cfg;
static char *tokens[3];

static void init(void) {
    static bool done;
    if (done)
        return;
    done = true;
    path = fuzz_file_create("users");
    devnull = fopen("/dev/null", "w");
    char a1[128], a2[] = "--auth.jwt_secret=" SECRET, a3[] = "--audit.path=";
    snprintf(a1, sizeof(a1), "--auth.users_file=%s", path);
    char *argv[] = {a1, a2, a3};
    for (char **e = environ; *e; e++)
        if (!strncmp(*e, "TICKGATE_", 9))
            abort(); /* the harness must run without TICKGATE_* variables */
    if (config_load(&cfg, 3, argv, stderr) != 0)
        abort();
    const char *subs[3] = {"alice", "u1", "feed-1"};
    for (int i = 0; i < 3; i++) {
        char payload[128];
        snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":4102444800}", subs[i]);
        tokens[i] = jwt_sign_hs256((const unsigned char *)SECRET, strlen(SECRET), payload);
    }
}

static void fuzz_users(void) {
    struct auth a;
    if (auth_init(&a, &cfg, devnull) != 0)
        return;
    FUZZ_CHECK(a.users != NULL, "users file loaded but no table");
    for (size_t i = 0; i < a.users->n; i++) {
        const struct user *u = &a.users->v[i];
        FUZZ_CHECK(u->id && u->id[0] && strlen(u->id) < 128, "user %zu: bad id", i);
        FUZZ_CHECK(u->username, "user %zu: no username", i);
        FUZZ_CHECK(u->role >= 0 && u->role < ROLE_COUNT && u->role != ROLE_ANONYMOUS, "user %zu: role %d", i,
                   u->role);
        FUZZ_CHECK(u->nkeys == 0 || u->keys, "user %zu: keys", i);
    }
    static const char *KEYS[] = {"key1", "MYKEY", "", "secret-api-key"};
    for (size_t k = 0; k < sizeof(KEYS) / sizeof(KEYS[0]); k++) {
        struct identity id;
        const char *why = NULL;
        int st = auth_api_key(&a, KEYS[k], strlen(KEYS[k]), &id, &why);
        FUZZ_CHECK(st == 0 || st == 401 || st == 403, "auth_api_key status %d", st);
        if (st == 0)
            FUZZ_CHECK(id.user_id[0] && id.role != ROLE_ANONYMOUS && id.exp == 0, "api key identity");
        else
            FUZZ_CHECK(why && *why, "refusal without a reason");
        auth_identity_release(&id);
    }
    for (int t = 0; t < 3; t++) {
        struct identity id;
        const char *why = NULL;
        int st = auth_token(&a, tokens[t], strlen(tokens[t]), &id, &why);
        FUZZ_CHECK(st == 0 || st == 401 || st == 403, "auth_token status %d", st);
        if (st == 0)
            FUZZ_CHECK(id.user_id[0] && id.role >= 0 && id.role < ROLE_ANONYMOUS, "token identity role %d", id.role);
        auth_identity_release(&id);
    }
    auth_free(&a);
}

static void fuzz_symbols(void) {
    struct symbol_table t;
    if (symbols_load(&t, path, devnull) != 0)
        return;
    FUZZ_CHECK(t.n > 0 && t.n <= SYMBOLS_MAX, "%u symbols", t.n);
    for (uint32_t i = 0; i < t.n; i++) {
        size_t l = strnlen(t.names[i], SYMBOL_MAX + 1);
        FUZZ_CHECK(l <= SYMBOL_MAX && symbol_valid(t.names[i], l), "symbol %u invalid", i);
        FUZZ_CHECK(symbols_find(&t, t.names[i], l) == (int)i, "symbol %u not found at its index", i);
        FUZZ_CHECK(t.start[i] >= 0 && t.start[i] <= 1e12, "start price %g", t.start[i]);
    }
    symbols_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init();
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    fuzz_file_write(data + 1, size - 1);
    if (mode & 1)
        fuzz_symbols();
    else
        fuzz_users();
    return 0;
}

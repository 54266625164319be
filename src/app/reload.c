/* reload.c - SIGHUP reload, all or nothing; see reload.h. */
#include "app/reload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app/sd_notify.h"
#include "app/server.h"
#include "base/log.h"
#include "gateway/protocol.h"
#include "net/conn.h"
#include "net/tls.h"

/* ---- the parts ---------------------------------------------------------- */

static int users_prepare(struct server *srv, const struct config *next, void **staged, FILE *err) {
    struct users *u;
    if (auth_users_prepare(&srv->auth, &u, err) < 0)
        return -1;
    *staged = u;
    return 0;
}

static void users_commit(struct server *srv, struct config *next, void **staged) {
    if (srv->auth.users_path)
        *staged = auth_users_install(&srv->auth, *staged); /* the old table, freed by discard */
}

static void users_discard(void *staged) { auth_users_free(staged); }

/* auth.jwks_file's content (key rotation; the path is read at start). */
static int keys_prepare(struct server *srv, const struct config *next, void **staged, FILE *err) {
    struct jwks *k;
    if (auth_keys_prepare(&srv->auth, &k, err) < 0)
        return -1;
    *staged = k;
    return 0;
}

static void keys_commit(struct server *srv, struct config *next, void **staged) {
    if (srv->auth.jwks_path)
        *staged = auth_keys_install(&srv->auth, *staged); /* the old set, freed by discard */
}

static void keys_discard(void *staged) { auth_keys_free(staged); }

/* [limits], [roles] and [throttle] together: the roles table holds the
 * symbol limits and the rates. */
static int limits_prepare(struct server *srv, const struct config *next, void **staged, FILE *err) {
    struct roles *r = malloc(sizeof(*r));
    if (!r || roles_init(r, next, err) < 0) {
        free(r);
        return -1;
    }
    *staged = r;
    return 0;
}

static void limits_commit(struct server *srv, struct config *next, void **staged) {
    struct config *cfg = &srv->cfg;
    int v6 = cfg->limits.ipv6_prefix_len; /* keys of the tables: restart only */
    cfg->limits = next->limits;
    cfg->limits.ipv6_prefix_len = v6;
    cfg->throttle = next->throttle;
    __typeof__(cfg->roles) tmp = cfg->roles; /* the old strings go with next */
    cfg->roles = next->roles;
    next->roles = tmp;
    srv->auth.roles = *(struct roles *)*staged;
    srv->guard.per_ip = cfg->limits.max_connections_per_ip;
    srv->guard.per_user = cfg->limits.max_connections_per_user;
    budgets_set_rates(&srv->budgets, cfg->limits.max_messages_per_minute, cfg->limits.max_connects_per_ip_per_minute);
}

/* The certificate and key named at start, read again (server.tls_cert and
 * server.tls_key themselves are read at start only). */
static int tls_prepare(struct server *srv, const struct config *next, void **staged, FILE *err) {
    if (!srv->tls)
        return 0;
    char why[1024];
    if (!(*staged = tls_ctx_prepare(srv->tls, why, sizeof(why)))) {
        fprintf(err, "TLS reload failed, keeping the previous certificate and key: %s\n", why);
        return -1;
    }
    return 0;
}

static void tls_commit(struct server *srv, struct config *next, void **staged) {
    if (!*staged)
        return;
    tls_ctx_install(srv->tls, *staged);
    *staged = NULL;
    log_info("TLS certificate and key reloaded");
}

static void tls_discard(void *staged) {
    if (staged)
        tls_ctx_discard(staged);
}

static void log_commit(struct server *srv, struct config *next, void **staged) {
    srv->cfg.log.level = next->log.level;
    log_set_level((enum log_level)next->log.level);
}

static const struct reload_part RELOAD_PARTS[] = {
    {"users", "", users_prepare, users_commit, users_discard},
    {"jwks", "", keys_prepare, keys_commit, keys_discard},
    {"tls", "", tls_prepare, tls_commit, tls_discard},
    {"limits", "limits.,roles.,throttle.", limits_prepare, limits_commit, free},
    {"log", "log.level", NULL, log_commit, NULL},
};
#define NPARTS (sizeof(RELOAD_PARTS) / sizeof(RELOAD_PARTS[0]))

/* ---- parking the workers ------------------------------------------------ */

struct park {
    uv_mutex_t mu;
    uv_cond_t cv;
    int refs;        /* the main thread's and one per posted mail */
    int arrived;
    bool go;         /* the workers may leave */
    bool committed;  /* re-arm timers on the way out */
    bool rethrottle; /* [throttle] changed: move held subscriptions to the new rates */
};

static void park_unref(struct park *p) {
    uv_mutex_lock(&p->mu);
    int left = --p->refs;
    uv_mutex_unlock(&p->mu);
    if (left)
        return;
    uv_cond_destroy(&p->cv);
    uv_mutex_destroy(&p->mu);
    free(p);
}

/* On a worker, between two loop turns: wait until the main thread is done. */
static void run_park(struct worker *w, void *ptr, uint64_t a, uint64_t b) {
    struct park *p = ptr;
    uv_mutex_lock(&p->mu);
    p->arrived++;
    uv_cond_broadcast(&p->cv);
    while (!p->go)
        uv_cond_wait(&p->cv, &p->mu);
    bool committed = p->committed;
    bool rethrottle = p->rethrottle;
    uv_mutex_unlock(&p->mu);
    if (committed)
        worker_retime(w);
    if (committed && rethrottle)
        for (struct conn *c = w->conns; c; c = c->next)
            if (c->endpoint == EP_JSON && c->phase == PHASE_WS && !c->closing)
                protocol_reapply_modes(c);
    park_unref(p);
}

static void drop_park(void *ptr, uint64_t a, uint64_t b) { park_unref(ptr); }
static const struct worker_mail PARK_MAIL = {"reload_park", run_park, drop_park};

/* Parks every worker, commits every part, releases them. -1 (nothing
 * committed) when a worker could not be parked. */
static int park_and_commit(struct server *srv, struct config *next, void **staged, FILE *err) {
    struct park *p = calloc(1, sizeof(*p));
    if (!p) {
        fprintf(err, "out of memory\n");
        return -1;
    }
    uv_mutex_init(&p->mu);
    uv_cond_init(&p->cv);
    p->refs = 1;
    int posted = 0;
    for (int i = 0; i < srv->nworkers; i++, posted++) {
        uv_mutex_lock(&p->mu);
        p->refs++;
        uv_mutex_unlock(&p->mu);
        if (worker_post(&srv->workers[i], &PARK_MAIL, p, 0, 0) < 0) {
            park_unref(p);
            fprintf(err, "worker %d: mailbox full\n", i);
            break;
        }
    }
    uv_mutex_lock(&p->mu);
    uint64_t deadline = uv_hrtime() + (uint64_t)RELOAD_PARK_MS * 1000000;
    while (posted == srv->nworkers && p->arrived < posted) {
        uint64_t now = uv_hrtime();
        if (now >= deadline || uv_cond_timedwait(&p->cv, &p->mu, deadline - now) == UV_ETIMEDOUT)
            break;
    }
    int rc = -1;
    if (posted == srv->nworkers && p->arrived == posted) {
        p->rethrottle = memcmp(&srv->cfg.throttle, &next->throttle, sizeof(next->throttle)) != 0;
        for (size_t i = 0; i < NPARTS; i++)
            RELOAD_PARTS[i].commit(srv, next, &staged[i]);
        p->committed = true;
        rc = 0;
    } else if (posted == srv->nworkers) {
        fprintf(err, "%d of %d workers did not pause within %d ms\n", posted - p->arrived, posted, RELOAD_PARK_MS);
    }
    p->go = true;
    uv_cond_broadcast(&p->cv);
    uv_mutex_unlock(&p->mu);
    park_unref(p);
    return rc;
}

/* ---- the reload --------------------------------------------------------- */

/* Whether a part applies key section.name. */
static bool reloadable(const char *section, const char *name) {
    char full[160];
    snprintf(full, sizeof(full), "%s.%s", section, name);
    if (strcmp(full, "limits.ipv6_prefix_len") == 0)
        return false;
    for (size_t i = 0; i < NPARTS; i++) {
        const char *cur = RELOAD_PARTS[i].keys, *item;
        size_t len;
        while (config_list_next(&cur, &item, &len))
            if (item[len - 1] == '.' ? strncmp(full, item, len) == 0
                                     : strlen(full) == len && strncmp(full, item, len) == 0)
                return true;
    }
    return false;
}

static void warn_restart_only(const struct config *cur, const struct config *next) {
    struct config_key_doc d;
    for (size_t i = 0; config_key_doc(i, &d); i++) {
        if (config_key_same(cur, next, i) || reloadable(d.section, d.name))
            continue;
        char key[160];
        snprintf(key, sizeof(key), "%s.%s", d.section, d.name);
        log_event(LOG_WARN, "changed key not reloaded: takes effect at the next start", "key", key, NULL);
    }
}

/* Logs each line of what err collected (messages start "tickgate: "). */
static void log_reasons(char *text) {
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "tickgate: ", 10) == 0)
            l += 10;
        log_event(LOG_ERROR, "reload failed; nothing changed", "reason", l, NULL);
    }
}

int reload_run(struct server *srv) {
    char *text = NULL;
    size_t tlen = 0;
    FILE *err = open_memstream(&text, &tlen);
    if (!err) {
        log_error("reload failed; nothing changed: out of memory");
        return -1;
    }
    sd_notify_send("RELOADING=1");
    void *staged[NPARTS] = {0};
    size_t prepared = 0;
    int rc = -1;
    struct config next;
    if (atomic_load(&srv->shutting_down)) {
        fprintf(err, "the server is draining\n");
        goto out;
    }
    if (config_load(&next, srv->argc, srv->argv, err) != 0) {
        if (!text || !tlen) /* --help among the flags: nothing to load */
            fprintf(err, "the command line does not name a configuration\n");
        goto out;
    }
    for (; prepared < NPARTS; prepared++) {
        const struct reload_part *p = &RELOAD_PARTS[prepared];
        if (p->prepare && p->prepare(srv, &next, &staged[prepared], err) < 0)
            goto out_next;
    }
    if (park_and_commit(srv, &next, staged, err) < 0)
        goto out_next;
    warn_restart_only(&srv->cfg, &next);
    rc = 0;
out_next:
    for (size_t i = 0; i < prepared; i++)
        if (RELOAD_PARTS[i].discard)
            RELOAD_PARTS[i].discard(staged[i]);
    config_free(&next);
out:
    fclose(err);
    atomic_fetch_add(&srv->gw.reloads[rc == 0 ? 0 : 1], 1);
    if (rc == 0) {
        char users[32], keys[32];
        snprintf(users, sizeof(users), "%zu", auth_users_count(srv->auth.users));
        snprintf(keys, sizeof(keys), "%zu", auth_keys_count(srv->auth.jwks));
        log_event(LOG_INFO, "configuration reloaded", "users", srv->auth.users_path ? users : "none", "jwks_keys",
                  srv->auth.jwks_path ? keys : "none", NULL);
    } else {
        if (text && *text)
            log_reasons(text);
        else
            log_error("reload failed; nothing changed");
    }
    free(text);
    sd_notify_send("READY=1");
    return rc;
}

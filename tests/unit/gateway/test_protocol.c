/* test_protocol.c - the gateway's message handling around a fake
 * connection: no server, no socket, no thread. The test builds the
 * collaborators the gateway is given at start (struct gateway), one worker
 * that is never run as a thread, and a connection slot in the WebSocket
 * phase; what the gateway answers is read back from the connection's
 * output queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "auth/auth.h"
#include "auth/budget.h"
#include "auth/guard.h"
#include "base/audit.h"
#include "base/config.h"
#include "cluster/engine.h"
#include "gateway/gateway.h"
#include "gateway/hooks.h"
#include "gateway/protocol.h"
#include "gateway/session.h"
#include "net/conn.h"
#include "net/worker.h"
#include "pubsub/hub.h"
#include "pubsub/symbols.h"
#include "pubsub/userevents.h"
#include "trade/broker.h"
#include "../unit_env.h"

struct fixture {
    struct config cfg;
    struct auth auth;
    struct guard guard;
    struct budgets budgets;
    struct audit audit;            /* off: no path */
    struct cidr_list trusted;
    struct symbol_table syms;
    struct hub hub;
    struct redis_engine redis;     /* not enabled: one node */
    struct broker broker;
    struct user_events events;
    atomic_bool shutting_down;
    struct gateway gw;
    struct worker w;
    struct conn *c;
};

/* The worker's mail, run as its loop would (net/worker.c). */
static void run_mail(struct mailbox *mb, struct mail *m, void *data) {
    const struct worker_mail *kind = (const struct worker_mail *)m->type;
    kind->run(data, m->ptr, m->a, m->b);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    unit_clear_tickgate_env();
    char *argv[] = {"--audit.path=", "--security.blocks_file="};
    if (!f || config_load(&f->cfg, 2, argv, stderr) != 0 || auth_init(&f->auth, &f->cfg, stderr) != 0 ||
        symbols_load(&f->syms, f->cfg.feed.symbols_file, stderr) != 0 ||
        hub_init(&f->hub, &f->syms, (uint32_t)f->cfg.feed.history_size) != 0 ||
        guard_init(&f->guard, &f->cfg, stderr) != 0)
        return -1;
    budgets_init(&f->budgets, f->cfg.limits.max_messages_per_minute, f->cfg.limits.max_connects_per_ip_per_minute);
    hub_set_workers(&f->hub, &f->w, 1);
    f->events = (struct user_events){.workers = &f->w, .nworkers = 1, .user_of = session_user};
    f->gw = (struct gateway){
        .cfg = &f->cfg,
        .auth = &f->auth,
        .guard = &f->guard,
        .budgets = &f->budgets,
        .audit = &f->audit,
        .trusted = &f->trusted,
        .syms = &f->syms,
        .hub = &f->hub,
        .redis = &f->redis,
        .broker = &f->broker,
        .events = &f->events,
        .workers = &f->w,
        .nworkers = 1,
        .instance = 0x5a88b013,
        .shutting_down = &f->shutting_down,
    };
    /* The worker's state as worker_start leaves it, minus the thread. */
    struct worker *w = &f->w;
    w->cfg = &f->cfg;
    w->hooks = &GATEWAY_WORKER_HOOKS;
    w->env = (struct worker_env){.cfg = &f->cfg, .hooks = w->hooks, .upper_ctx = &f->gw};
    if (uv_loop_init(&w->loop) != 0 || mailbox_init(&w->inbox, &w->loop, 64, run_mail, w) != 0 ||
        w->hooks->start(w) != 0)
        return -1;
    uv_timer_init(&w->loop, &w->replayer);
    w->replayer.data = w;
    /* A connection slot with the upper area, upgraded to the gateway
     * endpoint; its socket is never opened, its output never flushed. */
    struct conn *c = calloc(1, CONN_UPPER_OFFSET + GATEWAY_WORKER_HOOKS.conn_upper);
    if (!c)
        return -1;
    c->w = w;
    c->id = 7;
    c->phase = PHASE_WS;
    c->endpoint = EP_JSON;
    c->family = AF_INET;
    c->ip[0] = 127, c->ip[3] = 1;
    c->cip = (struct ip16){.b = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}};
    uv_tcp_init(&w->loop, &c->tcp); /* never connected: closing it takes the one release path */
    c->tcp.data = c;
    w->conns = c;
    w->nconns = 1;
    struct identity anon = {.user_id = "", .role = ROLE_ANONYMOUS};
    protocol_set_identity(c, &anon); /* as the router does at the upgrade */
    f->c = c;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    conn_close(f->c);
    uv_run(&f->w.loop, UV_RUN_NOWAIT); /* the close callback releases the session */
    assert_int_equal(atomic_load(&f->hub.active_streams), 0);
    free(f->c);                         /* the slot is ours, not a slab's */
    f->w.hooks->stop(&f->w);
    uv_close((uv_handle_t *)&f->w.replayer, NULL);
    mailbox_close(&f->w.inbox, NULL);
    uv_run(&f->w.loop, UV_RUN_DEFAULT);
    mailbox_destroy(&f->w.inbox);
    uv_loop_close(&f->w.loop);
    budgets_free(&f->budgets);
    guard_free(&f->guard);
    hub_free(&f->hub);
    symbols_free(&f->syms);
    auth_free(&f->auth);
    config_free(&f->cfg);
    free(f);
    return 0;
}

/* The next message the gateway queued for c, parsed; NULL when none. The
 * queue holds complete unfragmented text frames. */
static json_t *next_message(struct conn *c) {
    if (c->out.count == 0)
        return NULL;
    struct outbuf *b = outq_at(&c->out, 0)->b;
    const uint8_t *p = b->p;
    assert_int_equal(p[0], 0x81); /* FIN, text */
    size_t hl = (p[1] & 0x7f) == 126 ? 4 : (p[1] & 0x7f) == 127 ? 10 : 2;
    json_error_t err;
    json_t *o = json_loadb((const char *)p + hl, b->len - hl, 0, &err);
    assert_non_null(o);
    outq_consume(&c->out, b->len);
    return o;
}

static const char *type_of(json_t *o) { return json_string_value(json_object_get(o, "type")); }

static void send_text(struct conn *c, const char *text) { protocol_on_message(c, text, strlen(text)); }

static void test_open_says_connected(void **state) {
    struct fixture *f = *state;
    protocol_on_open(f->c);
    json_t *o = next_message(f->c);
    assert_string_equal(type_of(o), "connected");
    assert_string_equal(json_string_value(json_object_get(o, "role")), "anonymous");
    assert_string_equal(json_string_value(json_object_get(o, "client_id")), "c-5a88b0137");
    json_decref(o);
    assert_null(next_message(f->c));
}

static void test_subscribe_confirms_known_symbols(void **state) {
    struct fixture *f = *state;
    protocol_on_open(f->c);
    json_decref(next_message(f->c));
    const char *sym = f->syms.names[0];
    char msg[128];
    snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"symbols\":[\"%s\"],\"id\":3}", sym);
    send_text(f->c, msg);
    json_t *o = next_message(f->c);
    assert_string_equal(type_of(o), "subscription_confirmed");
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 3);
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "symbols"), 0)), sym);
    json_decref(o);
    assert_int_equal(conn_subs(f->c)->nsubs, 1);
    assert_true(hub_is_active(&f->hub, 0));
}

static void test_bad_input_gets_a_clear_error(void **state) {
    struct fixture *f = *state;
    protocol_on_open(f->c);
    json_decref(next_message(f->c));
    static const char *BAD[] = {"not json", "[1,2]", "{\"type\":\"no_such_thing\"}", "{\"type\":42}"};
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        send_text(f->c, BAD[i]);
        json_t *o = next_message(f->c);
        assert_non_null(o);
        assert_string_equal(type_of(o), "error");
        assert_non_null(json_string_value(json_object_get(o, "code")));
        json_decref(o);
    }
    assert_false(f->c->closing);
    assert_int_equal(session_of(f->c)->violations, 4);
}

static void test_role_gate(void **state) {
    struct fixture *f = *state;
    protocol_on_open(f->c);
    json_decref(next_message(f->c));
    send_text(f->c, "{\"type\":\"trade\",\"symbol\":\"X\",\"side\":\"buy\",\"quantity\":1,\"id\":9}");
    json_t *o = next_message(f->c);
    assert_string_equal(type_of(o), "error");
    assert_string_equal(json_string_value(json_object_get(o, "code")), "forbidden");
    json_decref(o);
}

/* The join: a recovering subscribe gets its confirmation, then the ticks
 * after its seq in slices, while live ticks published meanwhile wait in
 * the hold and follow: one run of consecutive seqs, no snapshot. */
static void beat_noop(uv_timer_t *t) {}

static void test_recover_joins_the_live_stream(void **state) {
    struct fixture *f = *state;
    protocol_on_open(f->c);
    json_decref(next_message(f->c));
    for (int i = 0; i < 200; i++) {
        struct tick_in in = {.sym = 0, .price = 10.0 + i};
        hub_publish_local(&f->hub, &in);
    }
    char msg[256];
    snprintf(msg, sizeof(msg),
             "{\"type\":\"subscribe\",\"symbols\":[\"%s\"],\"recover\":{\"%s\":{\"seq\":0,\"epoch\":\"%s\"}}}",
             f->syms.names[0], f->syms.names[0], f->hub.local_epoch);
    send_text(f->c, msg);
    json_t *o = next_message(f->c);
    assert_string_equal(type_of(o), "subscription_confirmed");
    assert_true(json_is_true(json_object_get(json_object_get(o, "recovered"), f->syms.names[0])));
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "epochs"), f->syms.names[0])),
                        f->hub.local_epoch);
    json_decref(o);
    assert_non_null(conn_subs(f->c)->replay); /* more than one slice: still replaying */
    for (int i = 0; i < 5; i++) { /* live, while the replay is being written */
        struct tick_in in = {.sym = 0, .price = 20.0 + i};
        hub_publish_local(&f->hub, &in);
    }
    /* The client reads as it comes: the pump writes while its queue is
     * under half of limits.max_outbound_bytes. */
    uint64_t seq = 0;
    /* A turn never waits for ever: the replay may end in the pump's timer
     * at the start of a turn, leaving nothing to wake that turn's poll. */
    uv_timer_t beat;
    uv_timer_init(&f->w.loop, &beat);
    uv_timer_start(&beat, beat_noop, 1, 1);
    for (int turns = 0; seq < 205 && turns < 1000; turns++) {
        uv_run(&f->w.loop, conn_subs(f->c)->replay ? UV_RUN_ONCE : UV_RUN_NOWAIT); /* mail, the pump timer */
        while ((o = next_message(f->c))) {
            assert_string_equal(type_of(o), "price_update");
            assert_null(json_object_get(o, "snapshot"));
            assert_int_equal(json_integer_value(json_object_get(o, "seq")), ++seq);
            json_decref(o);
        }
    }
    uv_close((uv_handle_t *)&beat, NULL);
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    assert_int_equal(seq, 205);
    assert_null(conn_subs(f->c)->replay);
    assert_null(next_message(f->c));
    struct tick_in in = {.sym = 0, .price = 30.0}; /* then live, as any subscriber */
    hub_publish_local(&f->hub, &in);
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    o = next_message(f->c);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 206);
    json_decref(o);
}

/* After the replay, the first live frame must follow the replayed seq: a
 * gap there (this node heard the symbol only from a later tick) is asked
 * again and, when nobody retains the ticks, the client sees the snapshot,
 * never a silent jump; a following frame releases the hold. */
static void recover_up_to_date(struct fixture *f) {
    protocol_on_open(f->c);
    json_decref(next_message(f->c));
    for (int i = 0; i < 10; i++) {
        struct tick_in in = {.sym = 0, .price = 10.0 + i};
        hub_publish_local(&f->hub, &in);
    }
    char msg[256];
    snprintf(msg, sizeof(msg),
             "{\"type\":\"subscribe\",\"symbols\":[\"%s\"],\"recover\":{\"%s\":{\"seq\":10,\"epoch\":\"%s\"}}}",
             f->syms.names[0], f->syms.names[0], f->hub.local_epoch);
    send_text(f->c, msg);
    json_t *o = next_message(f->c);
    assert_true(json_is_true(json_object_get(json_object_get(o, "recovered"), f->syms.names[0])));
    json_decref(o);
    assert_null(next_message(f->c));
}

static json_t *deliver(struct fixture *f, uint64_t seq) {
    struct tick t = {.price = 50.0, .bid = 50.0, .ask = 50.0, .seq = seq};
    hub_deliver(&f->hub, 0, &t, 10.0, f->hub.local_epoch);
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    return next_message(f->c);
}

static void test_recover_gap_after_the_replay_is_never_silent(void **state) {
    struct fixture *f = *state;
    recover_up_to_date(f);
    json_t *o = deliver(f, 15); /* 11..14 never reached this node */
    assert_non_null(o);
    assert_true(json_is_true(json_object_get(o, "snapshot")));
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 15);
    json_decref(o);
    o = deliver(f, 16);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 16);
    assert_null(json_object_get(o, "snapshot"));
    json_decref(o);
    assert_null(conn_subs(f->c)->replay);
}

static void test_recover_next_live_frame_releases_the_hold(void **state) {
    struct fixture *f = *state;
    recover_up_to_date(f);
    assert_non_null(conn_subs(f->c)->replay); /* awaiting the first live frame */
    json_t *o = deliver(f, 11);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 11);
    assert_null(json_object_get(o, "snapshot"));
    json_decref(o);
    assert_null(conn_subs(f->c)->replay);
    o = deliver(f, 12);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 12);
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_says_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_subscribe_confirms_known_symbols, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_gets_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_gate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_joins_the_live_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_gap_after_the_replay_is_never_silent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recover_next_live_frame_releases_the_hold, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

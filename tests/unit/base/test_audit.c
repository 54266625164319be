/* test_audit.c - unit tests for the audit log writer (src/base/audit.c):
 * accepted events reach the file when the writer stops, and a dropped
 * event makes the log "dropping" for AUDIT_DROP_WINDOW_MS, not for ever
 * (health used to compare the cumulative counter with 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/audit.h"

static int64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void drop_is_news_for_a_window(void **state) {
    char path[] = "/tmp/tickgate-audit-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct audit a;
    memset(&a, 0, sizeof(a));
    assert_int_equal(audit_start(&a, path, 16, stderr), 0);
    audit_event_text(&a, "TEST", "c-1", NULL, "127.0.0.1", NULL);
    int64_t now = wall_ms();
    assert_false(audit_dropping(&a, now));

    uv_mutex_lock(&a.lock); /* a stopping writer refuses events: one drop */
    a.stopping = true;
    uv_mutex_unlock(&a.lock);
    audit_event_text(&a, "TEST", "c-2", NULL, "127.0.0.1", NULL);
    assert_int_equal(atomic_load(&a.dropped), 1);
    now = wall_ms();
    assert_true(audit_dropping(&a, now));
    assert_true(audit_dropping(&a, now + AUDIT_DROP_WINDOW_MS - 1000));
    assert_false(audit_dropping(&a, now + AUDIT_DROP_WINDOW_MS + 1000));

    audit_stop(&a);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "\"client_id\":\"c-1\""));
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drop_is_news_for_a_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ini_file.c - INI reader with line numbers; see ini_file.h. */
#include "base/ini_file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* The value part: quotes removed, or an inline comment (" ;", " #") cut.
 * NULL for an unterminated quote. */
static char *value_of(char *v) {
    v = trim(v);
    if (v[0] == '"' || v[0] == '\'') {
        char *end = strchr(v + 1, v[0]);
        if (!end)
            return NULL;
        char *rest = trim(end + 1);
        if (*rest && *rest != ';' && *rest != '#')
            return NULL;
        *end = '\0';
        return v + 1;
    }
    for (char *p = v; *p; p++)
        if ((*p == ';' || *p == '#') && p > v && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    return trim(v);
}

int ini_file_read(const char *path, ini_kv_fn fn, void *ctx, FILE *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "tickgate: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char buf[INI_LINE_MAX + 2], section[64] = "";
    int line = 0, rc = 0;
    while (rc == 0 && fgets(buf, sizeof(buf), f)) {
        line++;
        size_t n = strlen(buf);
        if (n == sizeof(buf) - 1 && buf[n - 1] != '\n' && !feof(f)) {
            fprintf(err, "tickgate: %s:%d: line longer than %d bytes\n", path, line, INI_LINE_MAX);
            rc = -1;
            break;
        }
        char *s = trim(buf);
        if (line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF)
            s += 3; /* UTF-8 byte order mark */
        if (!*s || *s == ';' || *s == '#')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            char *name = NULL, *rest = NULL;
            if (end) {
                *end = '\0';
                name = trim(s + 1);
                rest = trim(end + 1);
            }
            if (!end || (*rest && *rest != ';' && *rest != '#') || !*name || strlen(name) >= sizeof(section)) {
                fprintf(err, "tickgate: %s:%d: expected [section]\n", path, line);
                rc = -1;
                break;
            }
            snprintf(section, sizeof(section), "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            /* Show the key part only: the rest may be a secret. */
            char *sp = strpbrk(s, " \t:");
            int kl = sp ? (int)(sp - s) : (int)strlen(s);
            fprintf(err, "tickgate: %s:%d: expected KEY = VALUE, found no '=' after '%.*s'\n", path, line,
                    kl > 64 ? 64 : kl, s);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *val = value_of(eq + 1);
        if (!*key) {
            fprintf(err, "tickgate: %s:%d: '=' without a key\n", path, line);
            rc = -1;
        } else if (!section[0]) {
            fprintf(err, "tickgate: %s:%d: key '%s' before any [section]\n", path, line, key);
            rc = -1;
        } else if (!val) {
            fprintf(err, "tickgate: %s:%d: %s.%s: unterminated quote\n", path, line, section, key);
            rc = -1;
        } else {
            rc = fn(ctx, section, key, val, line);
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(err, "tickgate: cannot read config file %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

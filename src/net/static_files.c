/* static_files.c - serves the demo page files; see static_files.h.
 * Files are small and read per request: this is a demo page, not a CDN. */
#include "net/static_files.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/config.h"
#include "net/worker.h"
#include "net/conn.h"

#define STATIC_MAX_FILE (4 * 1024 * 1024)

static bool safe_path(const char *path) {
    if (path[0] != '/')
        return false;
    for (const char *p = path; *p; p++) {
        if (p[0] == '/' && p[1] == '.')
            return false; /* "..", ".hidden" */
        if (*p == '\\' || *p == '%')
            return false;
    }
    return true;
}

static int full_path(const char *dir, const char *path, char *out, size_t len) {
    if (!safe_path(path))
        return -1;
    const char *rel = strcmp(path, "/") == 0 ? "/index.html" : path;
    int n = snprintf(out, len, "%s%s", dir, rel);
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

bool static_files_has(const char *dir, const char *path) {
    char fp[PATH_MAX];
    struct stat st;
    if (full_path(dir, path, fp, sizeof(fp)) < 0)
        return false;
    return stat(fp, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *content_type(const char *p) {
    const char *dot = strrchr(p, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".json"))
        return "application/json";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    if (!strcmp(dot, ".ico"))
        return "image/x-icon";
    return "application/octet-stream";
}

void static_files_respond(struct conn *c, const char *path, bool keep_alive) {
    char fp[PATH_MAX];
    struct stat st;
    int fd = -1;
    char *body = NULL;
    if (full_path(c->w->cfg->server.static_dir, path, fp, sizeof(fp)) < 0)
        goto not_found;
    fd = open(fp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX_FILE)
        goto not_found;
    body = malloc((size_t)st.st_size + 1);
    if (!body)
        goto not_found;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, body + got, (size_t)st.st_size - got);
        if (r <= 0)
            goto not_found;
        got += (size_t)r;
    }
    conn_http_respond(c, 200, content_type(fp), body, got, NULL, keep_alive);
    free(body);
    close(fd);
    return;
not_found:
    free(body);
    if (fd >= 0)
        close(fd);
    conn_http_error(c, 404, "not_found", "no such path", NULL, keep_alive);
}

/* static_files.h - the demo page: files served from server.static_dir. */
#ifndef TG_STATIC_FILES_H
#define TG_STATIC_FILES_H

#include <stdbool.h>

struct conn;

/* True when path names a regular file under dir (server.static_dir; "/"
 * means index.html). Paths with ".." or hidden segments never match. */
bool static_files_has(const char *dir, const char *path);

/* Answers GET/HEAD for path. */
void static_files_respond(struct conn *c, const char *path, bool keep_alive);

#endif

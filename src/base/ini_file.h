/* ini_file.h - the configuration file's syntax: INI with line numbers.
 *
 *   ; or # comment           (also after a value, preceded by a space)
 *   [section]
 *   key = value              ("value" or 'value': quotes removed, inside
 *                             them ; and # are kept)
 *
 * Every error names the file and line. Lines are at most INI_LINE_MAX
 * bytes. */
#ifndef TG_INI_FILE_H
#define TG_INI_FILE_H

#include <stdio.h>

#define INI_LINE_MAX 4096

/* Called for each key; returns 0, or -1 after writing its own message to
 * err (the read stops). */
typedef int (*ini_kv_fn)(void *ctx, const char *section, const char *key, const char *value, int line);

/* Reads path, calling fn for each key in order. 0, or -1 after a message
 * (file:line: what is wrong; a file that cannot be opened: the errno's
 * reason) to err. */
int ini_file_read(const char *path, ini_kv_fn fn, void *ctx, FILE *err);

#endif

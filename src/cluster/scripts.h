/* redis_scripts.h - the engine's Lua scripts. Loaded once per connection
 * (SCRIPT LOAD before any other command) and run by SHA1 (EVALSHA), so a
 * tick carries its arguments, not the script text. */
#ifndef TG_REDIS_SCRIPTS_H
#define TG_REDIS_SCRIPTS_H

enum redis_script {
    RS_PUBLISH,     /* KEYS seq first last channel history epoch; ARGV body start maxlen vol ts deadline_ms tag
                       publish-command */
    RS_WRITEBACK,   /* KEYS seq first; ARGV seq first */
    RS_ADMIT,       /* KEYS nodes; ARGV registry-prefix node user limit */
    RS_RELEASE,     /* KEYS users-hash; ARGV user */
    RS_CLEAN_NODE,  /* KEYS nodes; ARGV registry-prefix node */
    RS_CLEANUP,     /* KEYS nodes; ARGV registry-prefix now_s */
    RS_RECOVER,     /* KEYS epoch history seq; ARGV from_seq|'' count tag */
    RS_COUNT
};

extern const char *const redis_script_text[RS_COUNT];

/* Fills sha[i] with script i's SHA1 in hex. 0, or -1 when the digest
 * is unavailable. */
int redis_scripts_sha(char sha[RS_COUNT][41]);

#endif

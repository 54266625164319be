/* config_doc.c - the documents written from the settings table: --help,
 * the man page tickgate(1) and the example configuration, so the three
 * never disagree with the code (config.h). */
#include "base/config.h"

#include <string.h>

#include "base/config_keys.h"

static const char USAGE[] =
    "usage: tickgate [--config FILE] [--SECTION.KEY=VALUE ...]\n"
    "       tickgate token --sub USER [--role ROLE] [--ttl SECONDS] [config flags]\n"
    "       tickgate hash-key KEY\n"
    "       tickgate --help | --version | --print-man | --print-config\n";

static const char SUBCOMMANDS[] =
    "Subcommands:\n"
    "  token      prints a JWT signed with the configured HS256 secret (auth.jwt_secret or\n"
    "             auth.jwt_secret_file), for development and tests; --ttl defaults to 3600 s\n"
    "  hash-key   prints the stored form (sha256:...) of an API key, for the users file\n\n"
    "Signals: SIGTERM/SIGINT drain the clients and exit within the shutdown grace; SIGHUP\n"
    "reloads the users file, [limits], [roles] and log.level (all or nothing).\n"
    "--print-man writes the man page tickgate(1); --print-config an example configuration.\n\n";

void config_print_help(FILE *out) {
    fprintf(out, "%s\n%s", USAGE, SUBCOMMANDS);
    fprintf(out, "Every key can be set in the INI file (section [SECTION], KEY = VALUE),\n"
                 "as environment variable TICKGATE_SECTION_KEY, or as --SECTION.KEY=VALUE;\n"
                 "command line beats environment beats file beats default.\n\n");
    struct config_key_doc d;
    const char *sec = "";
    for (size_t i = 0; config_key_doc(i, &d); i++) {
        if (strcmp(sec, d.section) != 0) {
            fprintf(out, "[%s]\n", d.section);
            sec = d.section;
        }
        fprintf(out, "  %s.%s (default: %s%s%s)\n      %s%s%s\n", d.section, d.name, d.def[0] ? "" : "\"", d.def,
                d.def[0] ? "" : "\"", d.help, d.choices ? "; one of " : "", d.choices ? d.choices : "");
    }
}

/* Text for roff: a leading '.' or '\'' escaped, backslashes doubled. */
static void roff(FILE *out, const char *s) {
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

void config_print_man(FILE *out) {
    fprintf(out, ".TH TICKGATE 1 \"\" \"tickgate %s\" \"User Commands\"\n", TG_VERSION);
    fputs(".SH NAME\ntickgate \\- real\\-time market\\-data WebSocket gateway\n.SH SYNOPSIS\n.nf\n", out);
    roff(out, USAGE);
    fputs(".fi\n.SH DESCRIPTION\n"
          "tickgate serves live prices over WebSocket (one HTTP/1.1 port), with authentication, roles, "
          "rate limits, an audit log, a paper broker and analysis of recent ticks; optionally clustered "
          "through Redis. GET /health, /ready and /metrics serve operators.\n"
          ".PP\nEvery key can be set in the INI file given with \\-\\-config (section [SECTION], KEY = VALUE), as "
          "environment variable TICKGATE_SECTION_KEY, or as \\-\\-SECTION.KEY=VALUE; command line beats "
          "environment beats file beats default.\n.SH SUBCOMMANDS\n.nf\n", out);
    roff(out, SUBCOMMANDS);
    fputs(".fi\n.SH SIGNALS\n.TP\nSIGTERM, SIGINT\nDrain: /ready answers 503, new WebSocket upgrades 503, clients are "
          "told to reconnect and closed with 1001 over server.shutdown_grace_ms, then exit 0.\n.TP\nSIGHUP\n"
          "Reload the users file, [limits], [roles] and log.level: validated as a whole, applied on every "
          "worker at once, or not at all.\n.SH OPTIONS\n", out);
    struct config_key_doc d;
    const char *sec = "";
    for (size_t i = 0; config_key_doc(i, &d); i++) {
        if (strcmp(sec, d.section) != 0) {
            fprintf(out, ".SS [%s]\n", d.section);
            sec = d.section;
        }
        fprintf(out, ".TP\n.B \\-\\-%s.%s\n(default: ", d.section, d.name);
        roff(out, d.def[0] ? d.def : "\"\"");
        fputs(")\n", out);
        roff(out, d.help);
        if (d.choices) {
            fputs("; one of ", out);
            roff(out, d.choices);
        }
        fputs(".\n", out);
    }
    fputs(".SH FILES\n.TP\n/etc/tickgate/tickgate.ini\nexample configuration (make install)\n"
          ".SH SEE ALSO\nThe operations guide (docs/operations.md) and the protocol (docs/protocol.md) "
          "in the source tree.\n", out);
}

void config_print_example(FILE *out) {
    fputs("; tickgate configuration: every key at its default (tickgate --print-config).\n"
          "; Uncomment and change what you need; KEY = VALUE, quotes optional.\n", out);
    struct config_key_doc d;
    const char *sec = "";
    for (size_t i = 0; config_key_doc(i, &d); i++) {
        if (strcmp(sec, d.section) != 0) {
            fprintf(out, "\n[%s]\n", d.section);
            sec = d.section;
        }
        fprintf(out, "; %s%s%s\n;%s = %s\n", d.help, d.choices ? "; one of " : "", d.choices ? d.choices : "",
                d.name, d.secret ? "" : d.def);
    }
}

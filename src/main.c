/* main.c - the tickgate command: the gateway, and its helper subcommands. */
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/server.h"

int main(int argc, char **argv) {
    static struct server srv;
    int rc = config_load(&srv.cfg, argc - 1, argv + 1, stderr);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    rc = server_run(&srv);
    config_free(&srv.cfg);
    return rc;
}

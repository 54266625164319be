/* sd_notify.h - systemd's readiness protocol (Type=notify), written here
 * rather than linking libsystemd: it is one datagram to the socket named
 * by $NOTIFY_SOCKET ("READY=1", "STOPPING=1", "RELOADING=1",
 * "WATCHDOG=1", "STATUS=..."), and a dependency would tie every build to
 * systemd's headers for twenty lines. Without NOTIFY_SOCKET (not under
 * systemd) every call does nothing. */
#ifndef TG_SD_NOTIFY_H
#define TG_SD_NOTIFY_H

#include <stdint.h>

/* Sends state (newline-separated assignments). 1 sent, 0 no socket,
 * -errno on failure. */
int sd_notify_send(const char *state);

/* The watchdog period systemd expects pings within ($WATCHDOG_USEC, for
 * this process: $WATCHDOG_PID), in ms; 0 when no watchdog is set. */
uint64_t sd_watchdog_ms(void);

#endif

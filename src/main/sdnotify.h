/* main/sdnotify — systemd's readiness protocol without libsystemd.
 *
 * When the service manager sets NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace), each call sends one datagram ("READY=1",
 * "RELOADING=1\nMONOTONIC_USEC=...", "STOPPING=1", "STATUS=...") to it
 * over a unix datagram socket opened for that send. Without NOTIFY_SOCKET
 * every call does nothing and returns 0.
 */
#ifndef WSC_MAIN_SDNOTIFY_H
#define WSC_MAIN_SDNOTIFY_H

/* Sends `state` (newline-separated VAR=value lines). Returns 0, 1 if not
 * under a service manager, or a negative errno. */
int sdnotify(const char *state);

/* "RELOADING=1\nMONOTONIC_USEC=<now>", as Type=notify-reload expects. */
int sdnotify_reloading(void);

#endif

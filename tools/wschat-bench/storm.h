/* storm — wschat-bench's reconnect storm (docs/RELIABILITY.md).
 *
 *   wschat-bench storm --url ws://127.0.0.1:PORT --conns 15000 --rooms 150
 *                      [--rate MSGS_PER_S] [--after S] [--wait S] [--json FILE]
 *
 * C chat clients (rooms of C/R members, the first member of each room its
 * publisher) connect to /ws, say hello and join like the web page; once all
 * have joined, "storm: ready" is printed and messages flow. When the server
 * goes away (the caller restarts it), every client reconnects with the web
 * page's algorithm (web/app.js): delay = cap/2 + random·cap/2 with
 * cap = min(10 s, 0.5 s · 2^attempt), attempt reset on `joined`; the new
 * connection presents its session token, asks for its name again with
 * `hello` when the restarted server no longer knows the token, and rejoins
 * with `since` (the highest id it saw) and `epoch`.
 *
 * Every member checks, per room, that ids arrive consecutively (none lost,
 * none twice) across the restart, that each resume answers
 * "recovered":true, and at the end that it holds every acknowledged
 * message. Reported: time from the first drop until every client has
 * rejoined, attempts, lost, duplicated. Exit 0 only when all resumed with
 * nothing lost or duplicated. Owns nothing of bench.c: its own loop and
 * clients on wsc.c. */
#ifndef WSB_STORM_H
#define WSB_STORM_H

/* argv[0] is "storm". Returns the process exit code. */
int storm_main(int argc, char **argv);

#endif

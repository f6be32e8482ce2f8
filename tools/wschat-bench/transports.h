/* transports — the `transports` scenario of wschat-bench (transports.c):
 * chat over polling, long polling and WebSocket measured side by side, and
 * the memory of held long polls. bench.c dispatches to transports_main and
 * lends it its /proc readers.
 */
#ifndef WSB_TRANSPORTS_H
#define WSB_TRANSPORTS_H

#include <stdbool.h>

/* argv[1] is "transports"; returns the process exit code. */
int transports_main(int argc, char **argv);

/* From bench.c: a process's CPU seconds (user + system), its RSS in KiB
 * (-1 when unknown), and the open-files limit raised to `need`. */
bool bench_read_proc_cpu(int pid, double *secs);
long bench_read_rss_kb(int pid);
void bench_raise_fd_limit(int need);

#endif

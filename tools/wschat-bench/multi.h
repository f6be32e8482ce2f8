/* multi — one run's clients spread over several server nodes (a cluster on
 * Redis): `--node URL` (repeatable) adds a node besides --url, and client i
 * connects to node i mod (1 + nodes), so every room has members on every
 * node. `--node-pid PID` (repeatable) adds that process's CPU to the
 * server CPU (e.g. the second node). Kept apart from bench.c, which only
 * calls the three hooks below.
 */
#ifndef WSCHAT_BENCH_MULTI_H
#define WSCHAT_BENCH_MULTI_H

#include <netinet/in.h>
#include <stdbool.h>

/* Consumes option a with value v (true: the caller skips v). */
bool multi_option(const char *a, const char *v);
/* Replaces *dst with the node of client `id` when nodes were given. */
void multi_dst(int id, struct sockaddr_in *dst);
/* CPU seconds used so far by the --node-pid processes (0 without). */
double multi_cpu(void);

#endif

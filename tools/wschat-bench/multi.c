/* multi — see multi.h. */
#include "multi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define MULTI_MAX 16

static struct sockaddr_in nodes[MULTI_MAX];
static int n_nodes;
static int pids[MULTI_MAX];
static int n_pids;

/* ws://IPV4:PORT[/...] -> addr; false if not that shape. */
static bool parse_node(const char *url, struct sockaddr_in *out) {
  if (strncmp(url, "ws://", 5) != 0) return false;
  char host[64];
  const char *h = url + 5, *colon = strchr(h, ':');
  if (!colon || (size_t)(colon - h) >= sizeof host) return false;
  memcpy(host, h, (size_t)(colon - h));
  host[colon - h] = '\0';
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  int port = atoi(colon + 1);
  return port > 0 && port < 65536 && uv_ip4_addr(host, port, out) == 0;
}

bool multi_option(const char *a, const char *v) {
  if (!v) return false;
  if (strcmp(a, "--node") == 0 && n_nodes < MULTI_MAX) {
    if (!parse_node(v, &nodes[n_nodes])) {
      fprintf(stderr, "wschat-bench: --node must be ws://IPV4:PORT, got %s\n", v);
      exit(2);
    }
    n_nodes++;
    return true;
  }
  if (strcmp(a, "--node-pid") == 0 && n_pids < MULTI_MAX) {
    pids[n_pids++] = atoi(v);
    return true;
  }
  return false;
}

void multi_dst(int id, struct sockaddr_in *dst) {
  int k = id % (n_nodes + 1);
  if (k > 0) *dst = nodes[k - 1];
}

static double pid_cpu(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  unsigned long long ut = 0, st = 0;
  int field = 2;
  for (char *tok = strtok(p + 1, " "); tok && field < 15; tok = strtok(NULL, " ")) {
    field++;
    if (field == 14) ut = strtoull(tok, NULL, 10);
    if (field == 15) st = strtoull(tok, NULL, 10);
  }
  long hz = sysconf(_SC_CLK_TCK);
  return (double)(ut + st) / (double)(hz > 0 ? hz : 100);
}

double multi_cpu(void) {
  double s = 0;
  for (int i = 0; i < n_pids; i++) s += pid_cpu(pids[i]);
  return s;
}

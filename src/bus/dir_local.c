/* bus/dir_local — the in-process directory; see dir.h. One process is the
 * whole cluster, so every answer is "nothing beyond this node", at once. */
#include <stdlib.h>

#include "bus/dir.h"

static int local_claim(dir_t *d, const char *token, const char *name, uint64_t cid, dir_claim_cb cb, void *ud) {
  if (cb) cb(ud, 0, 0);
  return 0;
}

static void local_release(dir_t *d, const char *token, const char *name, uint64_t cid) {}

static int local_lookup(dir_t *d, const char *token, dir_lookup_cb cb, void *ud) {
  if (cb) cb(ud, 0, NULL);
  return 0;
}

static int local_room(dir_room_cb cb, void *ud) {
  if (cb) cb(ud, 0, -1, NULL, 0);
  return 0;
}

static int local_join(dir_t *d, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud) {
  return local_room(cb, ud);
}

static int local_leave(dir_t *d, const char *room, uint64_t cid, int last_here, dir_room_cb cb, void *ud) {
  return local_room(cb, ud);
}

static int local_rename(dir_t *d, const char *room, uint64_t cid, const char *name, dir_room_cb cb, void *ud) {
  return local_room(cb, ud);
}

static int local_dm(dir_t *d, const char *to, const char *from, const char *text, size_t len, int64_t ts,
                    dir_dm_cb cb, void *ud) {
  if (cb) cb(ud, 0, 0);
  return 0;
}

static void local_free(dir_t *d) { free(d); }

static const dir_ops_t local_ops = {
  .claim = local_claim,
  .release = local_release,
  .lookup = local_lookup,
  .join = local_join,
  .leave = local_leave,
  .rename = local_rename,
  .dm = local_dm,
  .free = local_free,
};

int dir_is_shared(const dir_t *d) { return d->ops != &local_ops; }

dir_t *dir_local_new(void) {
  dir_t *d = malloc(sizeof *d);
  if (d) d->ops = &local_ops;
  return d;
}

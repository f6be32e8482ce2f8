/* bus/dir_redis — the directory in Redis (contract: dir.h).
 *
 * Keys (names and sessions are global; room members are hash-tagged by
 * room like the room's history):
 *   wschat:name:<lowercase name>   the session token holding the name
 *   wschat:sess:<token>            hash name, node, cid (the connection
 *                                  holding it now); expires after a day idle
 *   wschat:{ROOM}:members          hash "<node>/<cid>" -> name
 *   wschat:nodes                   hash node -> heartbeat deadline (ms)
 *   wschat:node:<node>:rooms       rooms the node has members in
 *   wschat:node:<node>:names       names the node's connections hold
 *   wschat:node:<node>             channel: "k<cid>" (kick), "d<cid> <json>" (dm)
 * Every node refreshes its deadline every ttl/3 and runs the sweep script
 * once a second: a node past its deadline loses its members (HDEL + one
 * presence leave each, PUBLISHed to the room), names and sessions, in one
 * atomic script, so exactly one sweeper does it.
 */
#ifndef WSC_BUS_DIR_REDIS_H
#define WSC_BUS_DIR_REDIS_H

#include "bus/dir.h"
#include "redis/link.h"

/* Call before wsc_redis_start (it registers scripts). The link and config
 * must outlive the directory. */
dir_t *dir_redis_new(uv_loop_t *loop, wsc_redis_t *link, const wsc_config_t *config, const dir_handler_t *h);

#endif

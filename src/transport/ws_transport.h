/* transport/ws_transport — a WebSocket connection after its handshake:
 * glues a net connection, a ws/session (the RFC 6455 state machine) and,
 * on chat endpoints, a chat client.
 *
 * Two kinds: ECHO (GET /echo: every message is sent back with its opcode;
 * back-pressure by cut-off only when the peer stops reading) and CHAT
 * (GET /ws, /ws/{room}: text messages go to chat/, binary ones close with
 * 1003, messages over config->max_chat_message close with 1009).
 *
 * It also runs the heartbeat: every config->ping_interval_ms each
 * connection gets a ping; one that has missed two pongs is dropped. A close
 * we start (shutdown 1001, session replaced 4001, slow consumer 1013) waits
 * up to NET_CLOSE_GRACE_MS for the peer's close frame.
 *
 * Ownership: the ws_conn hangs on conn->ud from ws_transport_start until
 * the net connection closes (its on_close frees it and detaches the chat
 * client).
 */
#ifndef WSC_TRANSPORT_WS_TRANSPORT_H
#define WSC_TRANSPORT_WS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "net/net.h"

typedef enum ws_kind { WS_KIND_ECHO, WS_KIND_CHAT } ws_kind_t;

/* Sets the process-wide settings the sessions read (once, at start-up). */
void ws_transport_init(const wsc_config_t *config, chat_server_t *chat);
/* Takes over `c` (its 101 response already queued): installs the WebSocket
 * handler, attaches a chat client for WS_KIND_CHAT, and feeds `rest` (bytes
 * that followed the handshake). Returns 0, or -1 (connection aborted). */
int ws_transport_start(net_conn_t *c, ws_kind_t kind, const chat_connect_params_t *params,
                       uint8_t *rest, size_t rest_len);

#endif

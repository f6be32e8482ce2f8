/* transport/ws_transport — a WebSocket after its handshake: glues a
 * carrier (net/carrier.h: a TCP connection after 101, an HTTP/2 stream
 * after extended CONNECT, an HTTP/3 stream), a ws/session (the RFC 6455
 * state machine) and, on chat endpoints, a chat client. Nothing here
 * depends on which carrier is underneath.
 *
 * Two kinds: ECHO (/echo: every message is sent back with its opcode;
 * back-pressure by cut-off only when the peer stops reading) and CHAT
 * (/ws, /ws/{room}: text messages go to chat/, binary ones close with
 * 1003, messages over config->max_chat_message close with 1009).
 *
 * It also runs the heartbeat: every config->ping_interval_ms each
 * WebSocket gets a ping; one that has missed two pongs is dropped. A close
 * we start (shutdown 1001, session replaced 4001, slow consumer 1013) waits
 * up to NET_CLOSE_GRACE_MS for the peer's close frame.
 *
 * Encode-once: chat's sealed buffers are queued to the carrier by
 * reference (wsc_carrier_send), never copied, whatever the carrier. With
 * permessage-deflate, a member gets the message's compressed frame
 * instead (msg/outbuf_wire: built once per message, shared by every
 * member that negotiated it); echoes are compressed per message.
 *
 * Ownership: main owns the ws_transport_t (ws_transport_new/_free; free it
 * after every connection has closed). A ws_conn belongs to the transport
 * from ws_transport_start* until its carrier reports it gone (on_close:
 * the chat client is detached and the ws_conn freed).
 */
#ifndef WSC_TRANSPORT_WS_TRANSPORT_H
#define WSC_TRANSPORT_WS_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "net/carrier.h"
#include "net/net.h"
#include "ws/deflate.h"

typedef enum ws_kind { WS_KIND_ECHO, WS_KIND_CHAT } ws_kind_t;

typedef struct ws_transport ws_transport_t;

/* The WebSocket transport of one server: its settings, its chat server and
 * its heartbeat clock. NULL when out of memory. */
ws_transport_t *ws_transport_new(const wsc_config_t *config, chat_server_t *chat);
void ws_transport_free(ws_transport_t *t);

/* HTTP/1.1: takes over `c` (its 101 response already queued): installs the
 * WebSocket handler, attaches a chat client for WS_KIND_CHAT, and feeds
 * `rest` (bytes that followed the handshake). pmd: what the handshake
 * negotiated for permessage-deflate (NULL: nothing). Returns 0, or -1
 * (connection aborted). */
int ws_transport_start_tcp(ws_transport_t *t, net_conn_t *c, ws_kind_t kind,
                           const chat_connect_params_t *params, const ws_pmd_t *pmd,
                           uint8_t *rest, size_t rest_len);
/* Any other carrier (HTTP/2, HTTP/3 stream; its success response not yet
 * sent): calls carrier.ops->attach with the transport's callbacks (the
 * carrier sends its success response then), then attaches the chat client.
 * Returns 0, or -1 (the carrier was aborted). */
int ws_transport_start(ws_transport_t *t, wsc_carrier_t carrier, ws_kind_t kind,
                       const chat_connect_params_t *params, const ws_pmd_t *pmd);

#endif

/* transport/h3_routes — what an HTTP/3 request gets: the same routes as
 * HTTP/1.1 and HTTP/2, answered through h3/: the request is handed to
 * routes_stream_request (transport/routes), which owns every route and
 * check; this module only adapts h3's request, reply and stream to it.
 *
 *   GET/HEAD /, /index.html, /static/NAME   the embedded page (ETag as routes)
 *   GET/HEAD /healthz, /metrics
 *   CONNECT :protocol websocket  /ws, /ws/{room}, /echo   (RFC 9220)
 * Anything else is 404 (the HTTP session paths too: they are not offered
 * over HTTP/3); a known path with the wrong method is 405. No
 * permessage-deflate over HTTP/3.
 *
 * Ownership: nothing of its own; `app` is the server's routes_t.
 */
#ifndef WSC_TRANSPORT_H3_ROUTES_H
#define WSC_TRANSPORT_H3_ROUTES_H

#include "h3/h3.h"

/* The h3_options_t.on_request callback; app is a routes_t. */
void h3_routes_request(void *app, h3_stream_t *s, const h3_request_t *req);

#endif

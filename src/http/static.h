/* http/static — the web page's files, embedded at build time.
 *
 * scripts/embed-web.cmake turns every file of web/ into an entry of
 * wsc_web_assets[] (path "/name", bytes, size), ending with a NULL path.
 * http serves "/" as /index.html and "/static/NAME" as /NAME, with a
 * Content-Type from the extension and caching headers (ETag per build).
 */
#ifndef WSC_HTTP_STATIC_H
#define WSC_HTTP_STATIC_H

#include <stddef.h>

typedef struct wsc_web_asset {
  const char *path;
  const unsigned char *data;
  size_t size;
} wsc_web_asset_t;

extern const wsc_web_asset_t wsc_web_assets[];

/* The asset at `path` ("/index.html"), or NULL. */
const wsc_web_asset_t *wsc_web_asset_find(const char *path, size_t len);
/* Content-Type for a file name, by extension. */
const char *wsc_content_type(const char *path);

#endif

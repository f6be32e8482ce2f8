/* http/static — lookup of the embedded web/ assets; see static.h. */
#include "http/static.h"

#include <string.h>

const wsc_web_asset_t *wsc_web_asset_find(const char *path, size_t len) {
  for (const wsc_web_asset_t *a = wsc_web_assets; a->path; a++) {
    if (strlen(a->path) == len && memcmp(a->path, path, len) == 0) return a;
  }
  return NULL;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

const char *wsc_content_type(const char *path) {
  static const struct { const char *ext, *type; } types[] = {
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
  };
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (ends_with(path, types[i].ext)) return types[i].type;
  return "application/octet-stream";
}

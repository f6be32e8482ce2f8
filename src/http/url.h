/* http/url — percent-decoding and query-string lookup. Pure code. */
#ifndef WSC_HTTP_URL_H
#define WSC_HTTP_URL_H

#include <stddef.h>

/* Decodes %XX (and '+' as space when plus_is_space) from in[0..len) into
 * out (cap bytes, NUL-terminated). Returns the decoded length, or -EINVAL for a
 * bad escape, a decoded NUL byte, or no room. */
int url_decode(const char *in, size_t len, char *out, size_t cap, int plus_is_space);
/* Finds `key` in a query string ("a=1&b=2") and decodes its value into out.
 * Returns the value's length, -ENOENT when absent, -EINVAL when malformed,
 * too long, or given more than once. A key with no '=' has the empty value. */
int url_query_get(const char *query, size_t len, const char *key, char *out, size_t cap);

#endif

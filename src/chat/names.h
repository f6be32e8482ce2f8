/* chat/names — the syntax of display names and room names (PROTOCOL.md,
 * "Rooms and names"), and guest-name and session-token text. Pure code:
 * nothing here knows which names are held.
 *
 * Display names: surrounding spaces (U+0020) are trimmed; the rest must be
 * valid UTF-8 of 1..CHAT_NAME_MAX_CP code points with no control
 * characters (C0, DEL, C1), and must not begin with "guest-" (any ASCII
 * case): that prefix is the server's. Names compare case-insensitively for
 * ASCII letters only.
 */
#ifndef WSC_CHAT_NAMES_H
#define WSC_CHAT_NAMES_H

#include <stddef.h>

#define CHAT_NAME_MAX_CP 32          /* code points of a display name */
#define CHAT_NAME_MAX_BYTES (CHAT_NAME_MAX_CP * 4)
#define CHAT_ROOM_MAX 64             /* bytes (= characters) of a room name */
#define CHAT_GUEST_PREFIX "guest-"
#define CHAT_GUEST_PREFIX_LEN 6
#define CHAT_GUEST_MIN_DIGITS 4
#define CHAT_GUEST_MAX_DIGITS 16
#define CHAT_TOKEN_BYTES 16          /* 128-bit session token */
#define CHAT_TOKEN_HEX (CHAT_TOKEN_BYTES * 2)

/* Validates a requested display name. On success returns 0 and sets
 * *start and *out_len to the trimmed name inside `name`; -1 if it is not a
 * valid name (bad_name). `name` need not be NUL-terminated nor valid UTF-8. */
int chat_name_check(const char *name, size_t len, size_t *start, size_t *out_len);

/* 1 when a and b are the same name (ASCII case-insensitive). */
int chat_name_eq(const char *a, size_t alen, const char *b, size_t blen);

/* Writes "guest-" + `digits` lowercase hex digits taken from rnd (at least
 * (digits+1)/2 bytes) + NUL into out (room for CHAT_GUEST_PREFIX_LEN +
 * digits + 1). Returns the length. */
size_t chat_guest_name(char *out, const unsigned char *rnd, int digits);

/* Lowercase hex of n bytes into out (2n + 1 with NUL). */
void chat_hex(char *out, const unsigned char *p, size_t n);

/* 1 when name begins with "guest-" (any ASCII case): a server-made name. */
int chat_name_is_guest(const char *name, size_t len);

/* Room name rule: 1..CHAT_ROOM_MAX of [A-Za-z0-9._-]. 1 if valid. Also
 * declared in chat.h as chat_room_name_valid. */
int chat_room_check(const char *room, size_t len);

#endif

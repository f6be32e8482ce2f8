/* base/siphash — SipHash (Aumasson & Bernstein, 2012), keyed with a
 * per-process random key.
 *
 * Why: every hash table indexed by strings a client chooses (room names,
 * display names, session tokens) must not let that client pick keys that
 * all land in one slot. SipHash is a keyed PRF: without the 128-bit key an
 * attacker cannot predict which keys collide.
 *
 * wsc_hash() is SipHash-1-3 (one compression round per 8-byte word, three
 * finalization rounds: the variant hash tables use) under the process key,
 * made from getrandom() the first time any table hashes. wsc_siphash()
 * takes the round counts and key explicitly, for tests against the
 * reference vectors of the paper (SipHash-2-4).
 *
 * `fold_ascii`: hash the bytes as if 'A'..'Z' were 'a'..'z' (for tables
 * whose keys compare ASCII case-insensitively). Thread-safe.
 */
#ifndef WSC_BASE_SIPHASH_H
#define WSC_BASE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define WSC_SIPHASH_KEY_BYTES 16

uint64_t wsc_siphash(const uint8_t key[WSC_SIPHASH_KEY_BYTES], int c_rounds, int d_rounds,
                     const void *data, size_t len, int fold_ascii);

/* SipHash-1-3 of data[0..len) under the per-process random key. */
uint64_t wsc_hash(const void *data, size_t len, int fold_ascii);

#endif

/* SipHash-2-4 (Aumasson and Bernstein, 2012) over whole 64-bit words: the
 * MAC of lockd's wire messages (docs/security.md). One definition for the
 * BPF programs, which run it on every request and reply, and for the C++
 * client library and daemon. Plain C with constant loop bounds, so that a
 * call with a constant word count unrolls into straight BPF code. */
#ifndef LOCKD_ABI_SIPHASH_H_
#define LOCKD_ABI_SIPHASH_H_

#include <linux/types.h>

/* Little-endian 64-bit load from unaligned memory (SipHash reads its input
 * as little-endian words). */
static inline __attribute__((always_inline)) __u64 lockd_load_le64(
    const void *p) {
  __u64 v;
  __builtin_memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

static inline __attribute__((always_inline)) __u64 lockd_rotl64(__u64 x,
                                                                int b) {
  return (x << b) | (x >> (64 - b));
}

#define LOCKD_SIPROUND(v0, v1, v2, v3) \
  do {                                 \
    v0 += v1;                          \
    v1 = lockd_rotl64(v1, 13);         \
    v1 ^= v0;                          \
    v0 = lockd_rotl64(v0, 32);         \
    v2 += v3;                          \
    v3 = lockd_rotl64(v3, 16);         \
    v3 ^= v2;                          \
    v0 += v3;                          \
    v3 = lockd_rotl64(v3, 21);         \
    v3 ^= v0;                          \
    v2 += v1;                          \
    v1 = lockd_rotl64(v1, 17);         \
    v1 ^= v2;                          \
    v2 = lockd_rotl64(v2, 32);         \
  } while (0)

/* SipHash-2-4 of the first `words` 64-bit words at `msg` (8 * words bytes,
 * words <= 31) under the 128-bit key (k0, k1), as a little-endian u64: its
 * bytes in memory are SipHash's 8 output bytes. */
static inline __attribute__((always_inline)) __u64 lockd_siphash24(
    __u64 k0, __u64 k1, const void *msg, __u32 words) {
  __u64 v0 = k0 ^ 0x736f6d6570736575ULL;
  __u64 v1 = k1 ^ 0x646f72616e646f6dULL;
  __u64 v2 = k0 ^ 0x6c7967656e657261ULL;
  __u64 v3 = k1 ^ 0x7465646279746573ULL;
  const unsigned char *in = (const unsigned char *)msg;
  for (__u32 i = 0; i < words; i++) {
    __u64 m = lockd_load_le64(in + 8 * i);
    v3 ^= m;
    LOCKD_SIPROUND(v0, v1, v2, v3);
    LOCKD_SIPROUND(v0, v1, v2, v3);
    v0 ^= m;
  }
  /* The last block: the length in bytes (mod 256) in the top byte, as the
   * message has no partial word. */
  __u64 b = ((__u64)(words * 8) & 0xff) << 56;
  v3 ^= b;
  LOCKD_SIPROUND(v0, v1, v2, v3);
  LOCKD_SIPROUND(v0, v1, v2, v3);
  v0 ^= b;
  v2 ^= 0xff;
  LOCKD_SIPROUND(v0, v1, v2, v3);
  LOCKD_SIPROUND(v0, v1, v2, v3);
  LOCKD_SIPROUND(v0, v1, v2, v3);
  LOCKD_SIPROUND(v0, v1, v2, v3);
  __u64 out = v0 ^ v1 ^ v2 ^ v3;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  out = __builtin_bswap64(out);
#endif
  return out;
}

#endif /* LOCKD_ABI_SIPHASH_H_ */

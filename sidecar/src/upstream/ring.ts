// Consistent hashing for RING_HASH: each host gets ring entries hashed from "address:port_i"; a
// request hash picks the first entry at or after it. Removing a host moves only its own keys.
// 32-bit hashes are enough here (Envoy uses 64-bit xxHash; rings are not shared between proxies
// of different kinds, and every Tether sidecar hashes alike).

/** FNV-1a over UTF-16 code units with a murmur3 finalizer for avalanche. */
export function hash32(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Envoy's combination of several hash_policy results: rotate left by one, then xor. */
export function combineHashes(previous: number | undefined, next: number): number {
  if (previous === undefined) return next >>> 0;
  return (((previous << 1) | (previous >>> 31)) ^ next) >>> 0;
}

export interface Ring<T> {
  readonly hashes: Uint32Array;
  readonly items: readonly T[];
}

/**
 * Entries per host from the ring size bounds and the number of hosts *configured* (not healthy):
 * keeping it fixed while hosts come and go is what keeps other hosts' keys in place.
 */
export function entriesPerHost(configuredHosts: number, minSize: number, maxSize: number): number {
  const n = Math.max(1, configuredHosts);
  return Math.max(1, Math.ceil(Math.min(Math.max(minSize, n), maxSize) / n));
}

export function buildRing<T extends { readonly key: string }>(items: readonly T[], perItem: number): Ring<T> {
  if (items.length === 0) return { hashes: new Uint32Array(0), items: [] };
  const entries: [number, T][] = [];
  for (const item of items) {
    for (let i = 0; i < perItem; i++) entries.push([hash32(`${item.key}_${i}`), item]);
  }
  entries.sort((a, b) => a[0] - b[0]);
  return { hashes: Uint32Array.from(entries.map((e) => e[0])), items: entries.map((e) => e[1]) };
}

/** Index of the first entry at or after `hash`, wrapping to 0; the ring must not be empty. */
function ringIndex<T>(ring: Ring<T>, hash: number): number {
  const n = ring.hashes.length;
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ring.hashes[mid] ?? 0) < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === n ? 0 : lo;
}

export function ringLookup<T>(ring: Ring<T>, hash: number): T | undefined {
  if (ring.hashes.length === 0) return undefined;
  return ring.items[ringIndex(ring, hash)];
}

/** As ringLookup, walking on past entries of `skip` when the ring holds another item. */
export function ringLookupExcept<T>(ring: Ring<T>, hash: number, skip: T | undefined): T | undefined {
  const n = ring.hashes.length;
  if (n === 0) return undefined;
  const start = ringIndex(ring, hash);
  for (let k = 0; k < n; k++) {
    const item = ring.items[(start + k) % n];
    if (item !== skip) return item;
  }
  return ring.items[start];
}

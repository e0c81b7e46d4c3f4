//! A ketama ring placed bit for bit as NGINX's `hash $key consistent`.

use super::{CRC_INIT, LoadBound, crc32, crc32_update};

/// Points per unit of weight: NGINX's `peer->weight * 160`, ketama's and pingora-ketama's default.
pub const POINTS_PER_WEIGHT: u32 = 160;

/// One point of the ring: its hash and the index of the backend owning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Point {
    hash: u32,
    backend: u32,
}

/// A consistent-hashing ring with NGINX's placement (`ngx_http_upstream_hash_module.c`,
/// `ngx_http_upstream_update_chash` and `ngx_http_upstream_find_chash_point`).
///
/// For each backend, given as its server text `"host:port"` and a weight `w`:
///
/// - the text is split at its last `:` when only digits follow (otherwise the whole text is the host and
///   the port is empty; a `unix:` prefix is dropped and the rest is the host), and the base state is the
///   running CRC-32 of `host`, one NUL byte, `port` (Cache::Memcached::Fast's `HOST \0 PORT`);
/// - `160 · w` points follow, each the CRC-32 of the base state continued with the previous point's hash
///   as 4 little-endian bytes (0 for the first point), finalised;
/// - all points are sorted by hash and points of equal hash are kept once (the first in backend order:
///   NGINX uses an unstable `qsort`, so which of two colliding backends wins there is unspecified).
///
/// A key hashes with [`crc32`] (NGINX's `ngx_crc32_long`) and lands on the first point whose hash is ≥
/// the key's, wrapping to the first point past the last. A backend whose weight is 0 has no points.
///
/// ```
/// use rrlb_core::hash::KetamaRing;
///
/// let ring = KetamaRing::build(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 2)]);
/// let b = ring.lookup_key(b"user-42").unwrap();
/// assert!(b < 2);
/// assert_eq!(ring.len(), 480);
/// ```
#[derive(Debug, Clone, Default)]
pub struct KetamaRing {
    points: Vec<Point>,
    backends: usize,
}

impl KetamaRing {
    /// Builds the ring of `backends`, each `(server text "host:port", weight)`.
    #[must_use]
    pub fn build<S: AsRef<str>>(backends: &[(S, u32)]) -> Self {
        let total: usize = backends.iter().map(|(_, w)| *w as usize).sum();
        let mut points = Vec::with_capacity(total * POINTS_PER_WEIGHT as usize);
        for (index, (server, weight)) in backends.iter().enumerate() {
            let (host, port) = split_server(server.as_ref().as_bytes());
            let mut base = crc32_update(CRC_INIT, host);
            base = crc32_update(base, &[0]);
            base = crc32_update(base, port);
            let mut prev: u32 = 0;
            for _ in 0..u64::from(*weight) * u64::from(POINTS_PER_WEIGHT) {
                let hash = crc32_update(base, &prev.to_le_bytes()) ^ CRC_INIT;
                points.push(Point {
                    hash,
                    backend: index as u32,
                });
                prev = hash;
            }
        }
        // Stable: of equal hashes the first backend's point is kept.
        points.sort_by_key(|p| p.hash);
        points.dedup_by_key(|p| p.hash);
        points.shrink_to_fit();
        Self {
            points,
            backends: backends.len(),
        }
    }

    /// The number of points on the ring (after removing duplicate hashes).
    #[must_use]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points (no backends, or all of weight 0).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The number of backends the ring was built from (some may own no point).
    #[must_use]
    pub fn backends(&self) -> usize {
        self.backends
    }

    /// The hash of each point in ring order and the index of its backend (for inspection and tests).
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u32, usize)> + '_ {
        self.points.iter().map(|p| (p.hash, p.backend as usize))
    }

    /// The position (point index) where `hash` lands: the first point with hash ≥ `hash`, wrapping.
    /// `None` when the ring is empty.
    #[must_use]
    pub fn position(&self, hash: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|p| p.hash < hash);
        Some(if i == self.points.len() { 0 } else { i })
    }

    /// The backend (index into the slice given to [`build`](Self::build)) that key hash `hash` maps to.
    #[must_use]
    pub fn lookup(&self, hash: u32) -> Option<usize> {
        self.position(hash).map(|i| self.points[i].backend as usize)
    }

    /// [`lookup`](Self::lookup) of [`crc32`]`(key)`, as NGINX hashes `hash $key consistent`.
    #[must_use]
    pub fn lookup_key(&self, key: &[u8]) -> Option<usize> {
        self.lookup(crc32(key))
    }

    /// The bounded-loads pick: from where `hash` lands, the first backend `b` (walking the next points,
    /// wrapping, as NGINX's `hp->hash++`) for which `load(b)` is `Some(in_flight)` (eligible) and
    /// `bound` admits `in_flight`. `None` when the ring is empty or no point's backend qualifies.
    ///
    /// With [`LoadBound::unbounded`] and every backend eligible this is [`lookup`](Self::lookup). It
    /// neither locks nor allocates; at worst it visits every point once.
    pub fn pick_bounded(
        &self,
        hash: u32,
        bound: LoadBound,
        load: impl FnMut(usize) -> Option<u64>,
    ) -> Option<usize> {
        let start = self.position(hash)?;
        super::walk_bounded(
            start,
            self.points.len(),
            |i| self.points[i].backend as usize,
            bound,
            load,
        )
    }
}

/// Splits a server text into NGINX's hashed `(host, port)`: see [`KetamaRing`].
fn split_server(server: &[u8]) -> (&[u8], &[u8]) {
    if server.len() >= 5 && server[..5].eq_ignore_ascii_case(b"unix:") {
        return (&server[5..], &[]);
    }
    for j in 0..server.len() {
        let c = server[server.len() - j - 1];
        if c == b':' {
            return (&server[..server.len() - j - 1], &server[server.len() - j..]);
        }
        if !c.is_ascii_digit() {
            break;
        }
    }
    (server, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_nginx() {
        assert_eq!(
            split_server(b"127.0.0.1:8080"),
            (&b"127.0.0.1"[..], &b"8080"[..])
        );
        assert_eq!(split_server(b"backend"), (&b"backend"[..], &b""[..]));
        assert_eq!(split_server(b"unix:/tmp/s"), (&b"/tmp/s"[..], &b""[..]));
        assert_eq!(split_server(b"[::1]:80"), (&b"[::1]"[..], &b"80"[..]));
        assert_eq!(split_server(b"a:b"), (&b"a:b"[..], &b""[..]));
    }

    #[test]
    fn empty_and_wrap() {
        let empty = KetamaRing::build::<&str>(&[]);
        assert_eq!(empty.lookup(5), None);
        let ring = KetamaRing::build(&[("a:1", 1), ("b:2", 1)]);
        let points: Vec<(u32, usize)> = ring.points().collect();
        let (first, last) = (points[0], points[points.len() - 1]);
        assert!(
            points.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, no duplicates"
        );
        // On a point: that point. Past the last point: wraps to the first.
        assert_eq!(ring.lookup(last.0), Some(last.1));
        if last.0 < u32::MAX {
            assert_eq!(ring.lookup(last.0 + 1), Some(first.1));
        }
        assert_eq!(ring.lookup(0), Some(first.1));
    }
}

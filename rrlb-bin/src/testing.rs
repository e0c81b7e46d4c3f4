//! Entry points for the fuzz targets into the crate-private HTTP/1 state machines (`h1`), the fast path's
//! request reader and the TLS pair loader. Not a stable API.

use bytes::BytesMut;

use crate::h1::{answer, chunked};

/// A client's request head as the fast path reads it: `Some((head length, the head's forwarded part))` when
/// it is served, `None` when it is refused, incomplete, or for hyper.
pub fn request(buf: &[u8], client_ip: &str) -> Option<(usize, Vec<u8>)> {
    crate::fast::fuzzing_request(buf, client_ip)
}

/// Where a chunked body fed in `parts` ends (counted from the start of the first part), and its data.
#[allow(clippy::result_unit_err)]
pub fn chunked(parts: &[&[u8]]) -> Result<Option<(usize, Vec<u8>)>, ()> {
    let mut d = chunked::Decoder::default();
    let mut data = Vec::new();
    let mut offset = 0;
    for p in parts {
        let progress = d.decode(p, |b| data.extend_from_slice(b)).map_err(|_| ())?;
        if progress.done {
            return Ok(Some((offset + progress.consumed, data)));
        }
        offset += p.len();
    }
    Ok(None)
}

/// What a backend's byte stream came to, read the way the fast path reads it.
#[derive(Debug, Default)]
pub struct Relayed {
    /// The bytes the client got (rrlb's own headers aside).
    pub client: Vec<u8>,
    /// The answer's status, once a final head was read and its body's first bytes passed (else nothing is relayed).
    pub status: Option<u16>,
    /// Whether the answer was refused (the proxy answers `502` if nothing was sent yet, else closes).
    pub refused: bool,
    /// Whether the body reached its framed end.
    pub complete: bool,
    /// Whether the backend connection would go back to the pool.
    pub reused: bool,
}

/// Reads a backend's answer to one request from `parts` (each a read), with the upstream's own readers
/// (`h1::answer::HeadReader` and `BodyReader`, the code that serves traffic) and the fast path's framing;
/// `closed`: the backend closed the connection after the last part. Only the socket is replaced: each part is
/// what one read returned.
pub fn relay(parts: &[&[u8]], head_request: bool, closed: bool) -> Relayed {
    let mut out = Relayed::default();
    let mut parts = parts.iter();
    let mut buf = BytesMut::new();
    let mut heads = answer::HeadReader::new(head_request);
    let head = loop {
        match heads.read(&mut buf) {
            Ok(Some(head)) => break head,
            Ok(None) => match parts.next() {
                Some(p) => buf.extend_from_slice(p),
                None => return out,
            },
            Err(_) => {
                out.refused = true;
                return out;
            }
        }
    };
    // A body that breaks the rules in the bytes read with the head is refused before the client gets anything
    // (the upstream answers 502): no status, nothing relayed.
    let Ok((mut body, first)) = answer::BodyReader::start(&head, &mut buf) else {
        out.refused = true;
        return out;
    };
    out.status = Some(head.status);
    out.client.extend_from_slice(&head.bytes);
    out.client.extend_from_slice(b"\r\n");
    body.frame(&first, body.is_done(), &mut out.client);
    let mut data = Vec::new();
    while !body.is_done() {
        data.clear();
        let step = match parts.next() {
            Some(p) => body.feed(p, &mut data),
            None if closed => body.closed().map(|()| true),
            None => return out,
        };
        match step {
            Ok(done) => body.frame(&data, done, &mut out.client),
            Err(_) => {
                out.refused = true;
                return out;
            }
        }
    }
    out.complete = true;
    // A pooled connection that became readable (bytes nobody asked for, or the close) is dropped when taken.
    out.reused = body.reusable() && parts.len() == 0 && !closed;
    out
}

/// Whether a certificate/key pair loads from PEM bytes, through the function the listener loads its files
/// with (`tls::pair_from_pem`: PEM, X.509, the key, key against certificate). Never panics.
pub fn tls_pair(cert_pem: &[u8], key_pem: &[u8]) -> bool {
    crate::tls::pair_from_pem(cert_pem, key_pem, ("cert.pem", "key.pem")).is_ok()
}

/// The admin route table's operations as `(method, path pattern, mutating)`, in table order, for the test that
/// holds it to `docs/api-spec.yml`.
pub fn admin_operations() -> Vec<(&'static str, &'static str, bool)> {
    crate::admin::operations()
}

/// The admin API's body parsers, for the `admin` fuzz target.
pub use crate::admin::{Patch, parse_new_backend, parse_object, parse_patch};

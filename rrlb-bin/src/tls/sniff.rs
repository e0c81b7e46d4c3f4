//! Plaintext HTTP on a TLS port. A TLS client speaks first with a record whose first byte is its content
//! type (22, a handshake, for a ClientHello: RFC 8446 §5.1), never an ASCII letter; an HTTP/1 client speaks
//! first with its method, a token of letters, then a space (RFC 9112 §3). So the first bytes tell the two
//! apart, and a plaintext client gets a clear `400` and a close instead of a handshake that waits for bytes
//! that never come.

/// The longest method recognised (`OPTIONS` is 7; extension methods may be longer).
const MAX_METHOD: usize = 20;

/// Whether the first bytes a client sent on a TLS port look like a plaintext HTTP/1 request: 1 to 20 ASCII
/// upper-case letters, `-` or `_`, then a space (`GET / HTTP/1.1`, `PRI * HTTP/2.0`). `false` for a TLS
/// record, and for too few bytes to tell (peek at least `MAX_METHOD + 1` bytes, or what has arrived).
pub(crate) fn looks_like_plain_http(first: &[u8]) -> bool {
    let method_len = first
        .iter()
        .take(MAX_METHOD + 1)
        .position(|&b| !(b.is_ascii_uppercase() || b == b'-' || b == b'_'));
    matches!(method_len, Some(n) if n > 0 && first[n] == b' ')
}

/// What a plaintext HTTP/1 client gets on a TLS port before the close: rrlb's JSON error shape.
pub(crate) const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: application/json\r\n\
content-length: 64\r\n\
connection: close\r\n\
\r\n\
{\"error\":\"this port speaks TLS: send the request with https://\"}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_requests_are_recognised() {
        for yes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.1\r\nhost: a\r\n",
            b"OPTIONS * HTTP/1.1",
            b"PRI * HTTP/2.0\r\n",
            b"M-SEARCH * HTTP/1.1",
        ] {
            assert!(
                looks_like_plain_http(yes),
                "{:?}",
                String::from_utf8_lossy(yes)
            );
        }
    }

    #[test]
    fn tls_and_the_undecided_are_not() {
        let client_hello = [
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        for no in [
            &client_hello[..],
            b"",
            b"GET",
            b" GET / HTTP/1.1",
            b"get / HTTP/1.1",
            b"GET\t/",
            b"AAAAAAAAAAAAAAAAAAAAA / HTTP/1.1",
        ] {
            assert!(!looks_like_plain_http(no), "{no:?}");
        }
    }

    #[test]
    fn the_answer_is_framed_by_its_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{text}"
        );
        assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
    }
}

//! A backend's byte stream, split into reads at arbitrary points and with arbitrary bytes after the answer,
//! read the way both request paths read it (`h1::answer` through `rrlb::testing::relay`). Whatever the backend
//! sends, the client gets at most one answer, framed so that its own end is where rrlb's is (checked by an
//! independent reader below), and a connection that had any byte after the answer, or an answer whose end is
//! not its framed end, is never reused. That is the response-desync invariant of issue 11.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rrlb::testing::relay;

/// Reads `client` as one HTTP/1.1 answer; `Ok(true)` when it is complete, `Ok(false)` when it is a prefix of
/// one (cut short), `Err` when it is anything else (two answers, junk after the end, bad framing).
fn one_answer(client: &[u8], head_request: bool) -> Result<bool, String> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(client) {
        Ok(httparse::Status::Complete(n)) => n,
        other => return Err(format!("not one answer head: {other:?}")),
    };
    if res.version != Some(1) {
        return Err("not HTTP/1.1".into());
    }
    let head = &client[..len];
    if head.windows(2).filter(|w| w == b"\r\n").count() != head.iter().filter(|&&b| b == b'\n').count() {
        return Err("a bare LF in the head".into());
    }
    let status = res.code.unwrap_or(0);
    if !(200..=599).contains(&status) {
        return Err(format!("status {status}"));
    }
    let field = |name: &str| {
        res.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
            .collect::<Vec<_>>()
    };
    let lengths = field("content-length");
    let codings = field("transfer-encoding");
    if lengths.len() > 1 || codings.len() > 1 || (!lengths.is_empty() && !codings.is_empty()) {
        return Err("framing fields repeated or in conflict".into());
    }
    let body = &client[len..];
    if head_request || status == 204 || status == 304 {
        return if body.is_empty() { Ok(true) } else { Err("a body where none may be".into()) };
    }
    if let Some(l) = lengths.first() {
        let n: usize = std::str::from_utf8(l).ok().and_then(|s| s.parse().ok()).ok_or("bad length")?;
        return match body.len().cmp(&n) {
            std::cmp::Ordering::Greater => Err("bytes after the length".into()),
            o => Ok(o == std::cmp::Ordering::Equal),
        };
    }
    if codings.first() != Some(&&b"chunked"[..]) {
        return Err("neither a length nor chunked".into());
    }
    // rrlb's own chunks: `hex\r\ndata\r\n`, then `0\r\n`, trailer lines, `\r\n`.
    let mut at = 0;
    loop {
        let Some(eol) = body[at..].windows(2).position(|w| w == b"\r\n") else {
            return check_prefix(&body[at..]);
        };
        let size = std::str::from_utf8(&body[at..at + eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or("bad chunk size")?;
        at += eol + 2;
        if size == 0 {
            // Trailer lines until an empty one, which must be the last bytes.
            loop {
                let Some(eol) = body[at..].windows(2).position(|w| w == b"\r\n") else {
                    return check_prefix(&body[at..]);
                };
                if eol == 0 {
                    return if at + 2 == body.len() { Ok(true) } else { Err("bytes after the last chunk".into()) };
                }
                if !body[at..at + eol].contains(&b':') {
                    return Err("a trailer line that is not a field".into());
                }
                at += eol + 2;
            }
        }
        if body.len() < at + size + 2 {
            return Ok(false);
        }
        if &body[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += size + 2;
    }
}

fn check_prefix(rest: &[u8]) -> Result<bool, String> {
    if rest.contains(&b'\n') {
        Err("a bare LF in framing".into())
    } else {
        Ok(false)
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, cuts @ .., ] = data else { return };
    let Some((ncuts, rest)) = cuts.split_first() else { return };
    let ncuts = usize::from(ncuts % 8).min(rest.len());
    let (cuts, stream) = rest.split_at(ncuts);
    let head_request = flags & 1 != 0;
    let closed = flags & 2 != 0;
    // Split the stream at the cut points (each a byte: a distance from the previous cut).
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut at = 0;
    for &c in cuts {
        let next = (at + usize::from(c)).min(stream.len());
        parts.push(&stream[at..next]);
        at = next;
    }
    parts.push(&stream[at..]);
    let out = relay(&parts, head_request, closed);
    if out.status.is_none() {
        assert!(out.client.is_empty(), "bytes relayed without a head");
        assert!(!out.reused);
        return;
    }
    match one_answer(&out.client, head_request) {
        Ok(complete) => {
            if out.complete && !out.refused {
                assert!(complete, "rrlb ended the answer where its framing does not: {:?}", String::from_utf8_lossy(&out.client));
            }
        }
        Err(why) => panic!("{why}: {:?}", String::from_utf8_lossy(&out.client)),
    }
    if out.reused {
        assert!(out.complete && !out.refused);
        // Reused only when the whole stream was this one answer.
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert!(total > 0);
    }
});

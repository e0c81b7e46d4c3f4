use super::*;

fn all(_: &str) -> bool {
    true
}

fn final_head(raw: &[u8], head_request: bool) -> (usize, Head) {
    match parse_head(raw, head_request, all) {
        Ok(Parsed::Final(len, head)) => (len, head),
        other => panic!("{other:?} for {:?}", String::from_utf8_lossy(raw)),
    }
}

/// Reads a whole answer the way the fast path does: the client's bytes, and whether the connection is
/// reusable.
fn read(raw: &[u8], head_request: bool) -> Result<(Vec<u8>, bool), AnswerError> {
    let mut at = 0;
    loop {
        match parse_head(&raw[at..], head_request, all)? {
            Parsed::Partial => return Err(AnswerError::Truncated),
            Parsed::Interim(n) => at += n,
            Parsed::Final(n, head) => {
                at += n;
                let mut out = head.bytes.clone();
                out.extend_from_slice(b"\r\n");
                let mut body = Body::new(head.framing);
                let p = body.relay(&raw[at..], &mut out)?;
                if !p.done {
                    body.finish()?;
                    body.frame(b"", true, &mut out);
                }
                let left = raw.len() - at - p.consumed;
                return Ok((out, body.reusable(head.keep_alive, left)));
            }
        }
    }
}

#[test]
fn answers_are_framed_and_rewritten_for_the_client() {
    let raw = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nx-kept: yes\r\n\r\nhello";
    let (len, h) = final_head(raw, false);
    assert_eq!(len, raw.len() - 5);
    assert_eq!(
        (h.status, h.framing, h.keep_alive),
        (200, Framing::Length(5), true)
    );
    assert_eq!(
        *h.bytes,
        b"HTTP/1.1 200 OK\r\nx-kept: yes\r\ncontent-length: 5\r\n"
    );

    let (_, h) = final_head(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    );
    assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
    assert_eq!(
        *h.bytes,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
    );

    let (_, h) = final_head(b"HTTP/1.0 200 OK\r\nx-a: 1\r\n\r\n", false);
    assert_eq!((h.framing, h.keep_alive), (Framing::Close, false));

    let (_, h) = final_head(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", true);
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    assert_eq!(*h.bytes, b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\n");

    let (_, h) = final_head(
        b"HTTP/1.1 204 No Content\r\ncontent-length: 6\r\n\r\n",
        false,
    );
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, false));
    assert_eq!(*h.bytes, b"HTTP/1.1 204 No Content\r\n");

    let (_, h) = final_head(
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 6\r\n\r\n",
        false,
    );
    assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));

    let (_, h) = final_head(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: close\r\n\r\n",
        false,
    );
    assert!(!h.keep_alive);
}

#[test]
fn interim_answers_are_skipped_and_unasked_upgrades_refused() {
    assert!(matches!(
        parse_head(
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n",
            false,
            all
        ),
        Ok(Parsed::Interim(40))
    ));
    assert!(matches!(
        parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false, all),
        Ok(Parsed::Partial)
    ));
    assert_eq!(
        parse_head(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
            false,
            all
        )
        .err(),
        Some(AnswerError::UnaskedUpgrade)
    );
}

#[test]
fn ambiguous_or_malformed_heads_are_refused() {
    for bad in [
        &b"NOT HTTP\r\n\r\n"[..],
        b"HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 600 High\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 999 High\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.2 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\ncontent-length: 0\n\n",
        b"HTTP/1.1 200 OK\r\nx: a\rb\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: \x01\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: \x7f\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx: a\r\n folded\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx : a\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-bad\xffname: 1\r\n\r\n",
    ] {
        assert!(
            parse_head(bad, false, all).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn bytes_after_the_end_make_a_connection_unusable() {
    let good = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
    assert_eq!(
        read(good, false),
        Ok((
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec(),
            true
        ))
    );
    let extra = [
        &good[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON",
    ]
    .concat();
    let (out, reusable) = read(&extra, false).unwrap();
    assert!(!reusable);
    assert!(!out.windows(6).any(|w| w == b"POISON"));

    let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nx-t: 1\r\n\r\n";
    let (out, reusable) = read(chunked, false).unwrap();
    assert!(reusable);
    assert!(
        out.ends_with(b"\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let extra = [&chunked[..], b"HTTP/1.1 200 OK\r\n\r\nPOISON"].concat();
    assert!(!read(&extra, false).unwrap().1);

    for no_body in [
        &b"HTTP/1.1 204 No Content\r\n\r\nPOISON"[..],
        b"HTTP/1.1 304 Not Modified\r\n\r\nPOISON",
    ] {
        let (out, reusable) = read(no_body, false).unwrap();
        assert!(!reusable && out.ends_with(b"\r\n\r\n"));
    }
    let (out, reusable) =
        read(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON", true).unwrap();
    assert!(!reusable && out.ends_with(b"content-length: 6\r\n\r\n"));
    let (out, reusable) = read(b"HTTP/1.1 200 OK\r\n\r\nuntil close", false).unwrap();
    assert!(!reusable);
    assert!(out.ends_with(b"b\r\nuntil close\r\n0\r\n\r\n"));
}

#[test]
fn a_bad_chunk_relays_nothing_of_its_read() {
    let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
    let (_, head) = final_head(raw, false);
    let mut body = Body::new(head.framing);
    let mut out = Vec::new();
    assert!(body.relay(b"5\r\nhello\r\n", &mut out).is_ok());
    assert_eq!(out, b"5\r\nhello\r\n");
    out.clear();
    let smuggled = b"3\r\nabc\r\n5\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\nPOISON";
    assert!(body.relay(smuggled, &mut out).is_err());
    assert!(out.is_empty());
    assert_eq!(Body::Length(5).finish(), Err(AnswerError::Truncated));
}

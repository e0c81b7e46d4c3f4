use super::*;

fn peer(ip: &str) -> &'static Peer {
    Box::leak(Box::new(Peer::plain(ip.to_owned())))
}

fn facts(fields: &[(&'static str, &'static [u8])]) -> Facts<'static> {
    Facts::gather(fields.iter().copied())
}

fn plan(
    protocol: Protocol,
    target: &'static str,
    fields: &[(&'static str, &'static [u8])],
) -> Result<Plan<'static>, Rejection> {
    let f = Box::leak(Box::new(facts(fields)));
    decide(
        protocol,
        &Method::GET,
        (target, None),
        f,
        peer("10.0.0.9"),
        0.0,
    )
}

/// The fields rrlb adds.
fn added(p: &Plan<'_>) -> String {
    let mut out = Vec::new();
    p.write_h1(&Facts::default(), [], &mut out);
    let text = String::from_utf8(out).unwrap();
    text.split_once("\r\n").unwrap().1.to_owned()
}

#[test]
fn hosts_are_checked() {
    use Protocol::*;
    assert_eq!(
        plan(Http11, "/", &[]).err(),
        Some(Rejection::bad("missing host header"))
    );
    assert!(plan(Http10, "/", &[]).is_ok());
    for p in [Http10, Http11, Http2] {
        assert_eq!(
            plan(p, "/", &[("host", b"a"), ("Host", b"b")]).err(),
            Some(Rejection::bad("more than one host header"))
        );
    }
    for bad in [&b"a b"[..], b"a/b", b"user@a", b"a\x01"] {
        assert_eq!(
            plan(Http11, "/", &[("host", bad)]).err(),
            Some(Rejection::bad("invalid host header"))
        );
    }
    let p = plan(Http11, "/", &[("host", b""), ("x-forwarded-host", b"evil")]).unwrap();
    assert!(!added(&p).contains("x-forwarded-host"));
    let p = plan(Http11, "http://A.example/p?q=1", &[("host", b"a.example")]).unwrap();
    assert_eq!(p.target, "/p?q=1");
    assert!(added(&p).contains("x-forwarded-host: A.example\r\n"));
    let p = plan(Http11, "https://a.example", &[("host", b"a.example")]).unwrap();
    assert_eq!(p.target, "/");
    let p = plan(Http11, "http://a.example?q", &[("host", b"a.example")]).unwrap();
    assert_eq!(p.target, "/?q");
    assert_eq!(
        plan(Http11, "http://evil.example/p", &[("host", b"a.example")]).err(),
        Some(Rejection::bad(
            "the host header does not match the request target"
        ))
    );
    for bad in ["*", "ftp://a/", "a.example/p", "http://a@b/", "http:///p"] {
        assert!(plan(Http11, bad, &[("host", b"a")]).is_err(), "{bad}");
    }
    let f = Box::leak(Box::new(facts(&[])));
    let p = decide(
        Http2,
        &Method::GET,
        ("/x", Some("h2.example")),
        f,
        peer("::1"),
        0.0,
    )
    .unwrap();
    assert!(added(&p).contains("x-forwarded-host: h2.example\r\n"));
    assert_eq!(
        decide(
            Http11,
            &Method::CONNECT,
            ("a:443", None),
            f,
            peer("::1"),
            0.0
        )
        .err(),
        Some(Rejection::Connect)
    );
}

#[test]
fn bodies_are_framed_one_way_only() {
    use Protocol::*;
    let h = ("host", &b"a"[..]);
    assert_eq!(
        plan(Http11, "/", &[h, ("content-length", b"5")])
            .unwrap()
            .body,
        BodyFraming::Length(5)
    );
    assert_eq!(
        plan(Http11, "/", &[h, ("content-length", b"0")])
            .unwrap()
            .body,
        BodyFraming::None
    );
    assert_eq!(
        plan(Http11, "/", &[h, ("transfer-encoding", b"Chunked")])
            .unwrap()
            .body,
        BodyFraming::Chunked
    );
    for bad in [
        &[
            h,
            ("content-length", &b"5"[..]),
            ("transfer-encoding", b"chunked"),
        ][..],
        &[h, ("content-length", b"5"), ("content-length", b"5")],
        &[h, ("content-length", b"5, 5")],
        &[h, ("content-length", b"+5")],
        &[h, ("content-length", b"-1")],
        &[h, ("content-length", b"0x5")],
    ] {
        assert!(
            matches!(plan(Http11, "/", bad), Err(Rejection::BadRequest(_))),
            "{bad:?}"
        );
    }
    for coding in [
        &b"gzip, chunked"[..],
        b"identity",
        b"chunked, identity",
        b"xchunked",
    ] {
        assert_eq!(
            plan(Http11, "/", &[h, ("transfer-encoding", coding)]).err(),
            Some(Rejection::UnsupportedCoding)
        );
    }
    assert_eq!(
        plan(
            Http11,
            "/",
            &[
                h,
                ("transfer-encoding", b"chunked"),
                ("transfer-encoding", b"chunked")
            ]
        )
        .err(),
        Some(Rejection::UnsupportedCoding)
    );
    assert!(matches!(
        plan(Http10, "/", &[("transfer-encoding", b"chunked")]),
        Err(Rejection::BadRequest(_))
    ));
    assert!(
        plan(Http11, "/", &[h, ("expect", b"100-Continue")])
            .unwrap()
            .expect_continue
    );
    assert!(
        !plan(Http10, "/", &[("expect", b"100-continue")])
            .unwrap()
            .expect_continue
    );
    assert_eq!(
        plan(Http11, "/", &[h, ("expect", b"x")]).err(),
        Some(Rejection::Expectation)
    );
}

#[test]
fn forwarded_fields_are_rrlbs() {
    let p = plan(
        Protocol::Http11,
        "/",
        &[
            ("host", b"example.com"),
            ("x-forwarded-for", b" 1.2.3.4 "),
            ("X-Forwarded-For", b""),
            ("x-forwarded-for", b"\xff"),
            ("x-forwarded-for", b"5.6.7.8, 9.9.9.9"),
            ("x-forwarded-host", b"evil"),
            ("x-forwarded-proto", b"https"),
            ("x-request-id", b"abc-1"),
        ],
    )
    .unwrap();
    assert_eq!(
        added(&p),
        "x-forwarded-for: 1.2.3.4, 5.6.7.8, 9.9.9.9, 10.0.0.9\r\nx-forwarded-proto: http\r\n\
         x-forwarded-host: example.com\r\nx-request-id: abc-1\r\n"
    );
    let p = plan(Protocol::Http10, "/", &[("x-request-id", b"bad id")]).unwrap();
    assert_eq!(p.request_id.len(), 36);
    assert_eq!(
        added(&p),
        format!(
            "x-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\nx-request-id: {}\r\n",
            p.request_id.to_str().unwrap()
        )
    );
    assert!(p.close);
    let f = facts(&[("connection", b"keep-alive, X-Secret"), ("te", b"trailers")]);
    for gone in [
        "connection",
        "x-secret",
        "te",
        "keep-alive",
        "host",
        "content-length",
        "transfer-encoding",
        "expect",
        "x-forwarded-host",
        "X-Forwarded-Proto",
        "upgrade",
        "proxy-connection",
    ] {
        assert!(!f.forwards(gone), "{gone}");
    }
    assert!(f.forwards("x-kept"));
}

#[test]
fn tls_clients_get_https_and_only_rrlbs_subject_header() {
    let mut peer = Peer::plain("10.0.0.7".into());
    peer.https = true;
    peer.subject = Some((
        HeaderName::from_static("x-client-subject"),
        Some(HeaderValue::from_static("CN=alice")),
    ));
    let fields: &[(&str, &[u8])] = &[
        ("host", b"a"),
        ("X-Client-Subject", b"CN=mallory"),
        ("x-kept", b"1"),
    ];
    let f = facts(fields);
    let p = decide(Protocol::Http11, &Method::GET, ("/", None), &f, &peer, 0.0).unwrap();
    let mut out = Vec::new();
    p.write_h1(&f, fields.iter().copied(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("x-forwarded-proto: https\r\n"), "{text}");
    assert!(text.contains("x-client-subject: CN=alice\r\n"), "{text}");
    assert!(
        !text.contains("mallory"),
        "a client's own subject header never passes: {text}"
    );
    assert!(text.contains("x-kept: 1\r\n"), "{text}");
    // Without a certificate the client's header is still dropped, and none is written.
    peer.subject = Some((HeaderName::from_static("x-client-subject"), None));
    let p = decide(Protocol::Http11, &Method::GET, ("/", None), &f, &peer, 0.0).unwrap();
    let mut out = Vec::new();
    p.write_h1(&f, fields.iter().copied(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.to_ascii_lowercase().contains("x-client-subject"),
        "{text}"
    );
}

#[test]
fn request_ids_are_sane_or_new() {
    assert!(sane_request_id(b"abc-123"));
    assert!(!sane_request_id(b""));
    assert!(!sane_request_id(&[b'x'; 129]));
    let id = new_request_id();
    assert_eq!(id.as_bytes()[14], b'4');
    assert_ne!(new_request_id(), id);
    // Ids cut from one block and across blocks stay whole, distinct and well-formed.
    let ids: Vec<HeaderValue> = (0..200).map(|_| new_request_id()).collect();
    let distinct: std::collections::HashSet<&[u8]> = ids.iter().map(|i| i.as_bytes()).collect();
    assert_eq!(distinct.len(), ids.len());
    for id in &ids {
        let b = id.as_bytes();
        assert_eq!(b.len(), 36);
        assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'), "{id:?}");
        assert!([8, 13, 18, 23].iter().all(|&i| b[i] == b'-'), "{id:?}");
    }
}

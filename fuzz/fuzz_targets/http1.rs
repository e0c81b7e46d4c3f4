//! The fast path's HTTP/1 request reader and chunked decoder on arbitrary bytes. Never a panic; a request the
//! fast path serves is forwarded as one well-formed head (no header line can be smuggled in); a chunked body
//! decodes to the same data and ends at the same byte however it is split across reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rrlb::testing::{chunked, request};

fn well_formed_lines(text: &[u8], what: &str) {
    assert!(text.ends_with(b"\r\n"), "{what} does not end a line");
    assert!(
        !text.windows(4).any(|w| w == b"\r\n\r\n"),
        "{what} holds an empty line"
    );
    for line in text.split(|&b| b == b'\n') {
        assert!(
            !line.contains(&b'\r') || line.ends_with(b"\r") && line.iter().filter(|&&b| b == b'\r').count() == 1,
            "{what}: a bare CR"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some((len, rest)) = request(data, "192.0.2.1") {
        assert!(len <= data.len());
        well_formed_lines(&rest, "the forwarded head");
        assert!(rest.starts_with(b"/"), "origin-form target");
        let lower = String::from_utf8_lossy(&rest).to_ascii_lowercase();
        assert_eq!(lower.matches("\r\nx-request-id:").count(), 1, "{lower}");
        assert_eq!(lower.matches("\r\nx-forwarded-for:").count(), 1, "{lower}");
        assert_eq!(lower.matches("\r\nx-forwarded-proto:").count(), 1, "{lower}");
        assert!(lower.matches("\r\nx-forwarded-host:").count() <= 1, "{lower}");
        assert!(!lower.contains("\r\nhost:"), "the backend's host is added later");
        assert!(!lower.contains("\r\ntransfer-encoding:"), "{lower}");
        assert!(!lower.contains("\r\ncontent-length:"), "the length is added after the body: {lower}");
    }
    let whole = chunked(&[data]);
    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(cut);
    assert_eq!(chunked(&[a, b]), whole, "split at {cut}");
});

//! A certificate file and a key file as the TLS listener loads them (`tls::pair_from_pem` through
//! `rrlb::testing::tls_pair`: PEM, X.509, the key, the key against the certificate). The input is the
//! certificate file's bytes, a NUL byte (never part of PEM), then the key file's bytes. Whatever the files
//! hold, loading returns an answer and never panics, and the same files always get the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rrlb::testing::tls_pair;

fuzz_target!(|data: &[u8]| {
    let (cert, key) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let loads = tls_pair(cert, key);
    assert_eq!(loads, tls_pair(cert, key), "the same files loaded differently");
});

//! `rrlb --healthcheck`: a blocking probe of a running rrlb's admin listener, for the container image's
//! `HEALTHCHECK`.

use std::net::SocketAddr;
use std::time::Duration;

/// The address to probe for `--healthcheck`: the admin listener, with an unspecified IP replaced by loopback.
pub(crate) fn healthcheck_addr(admin: SocketAddr) -> SocketAddr {
    let mut addr = admin;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    addr
}

/// `--healthcheck`: `GET /healthz` on the admin listener; `true` on `200`.
pub fn healthcheck(admin: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let addr = healthcheck_addr(admin);
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

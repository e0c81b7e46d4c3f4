//! An authoritative DNS server for the tests, on `127.0.0.1` (UDP and TCP, the same ephemeral port), whose
//! answers the test changes while it runs. Every answer has TTL 0. Dropping it stops it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

#[derive(Default)]
struct Zone {
    records: HashMap<(String, RecordType), Vec<RData>>,
    failing: bool,
    queries: u64,
}

/// The server.
pub(crate) struct FakeDns {
    /// Where it answers (UDP and TCP).
    pub(crate) addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `name` as a lowercase FQDN key.
fn key(name: &str) -> String {
    let mut k = name.to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

impl FakeDns {
    /// Starts on `127.0.0.1`, UDP and TCP on one ephemeral port.
    pub(crate) async fn start() -> Self {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS UDP");
            let addr = udp.local_addr().expect("addr");
            let Ok(tcp) = TcpListener::bind(addr).await else {
                continue;
            };
            let zone = Arc::new(Mutex::new(Zone::default()));
            let udp_zone = Arc::clone(&zone);
            let udp_task = tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                        continue;
                    };
                    if let Some(out) = answer(&udp_zone, &buf[..n]) {
                        let _ = udp.send_to(&out, peer).await;
                    }
                }
            });
            let tcp_zone = Arc::clone(&zone);
            let tcp_task = tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = tcp.accept().await else {
                        continue;
                    };
                    let zone = Arc::clone(&tcp_zone);
                    tokio::spawn(async move {
                        loop {
                            let Ok(len) = stream.read_u16().await else {
                                return;
                            };
                            let mut msg = vec![0u8; usize::from(len)];
                            if stream.read_exact(&mut msg).await.is_err() {
                                return;
                            }
                            let Some(out) = answer(&zone, &msg) else {
                                return;
                            };
                            let Ok(len) = u16::try_from(out.len()) else {
                                return;
                            };
                            if stream.write_u16(len).await.is_err()
                                || stream.write_all(&out).await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            });
            return Self {
                addr,
                zone,
                tasks: vec![udp_task, tcp_task],
            };
        }
        panic!("no port free for UDP and TCP at once");
    }

    /// `name`'s A and AAAA records become `ips` (none: an empty answer).
    pub(crate) fn set_addrs(&self, name: &str, ips: &[IpAddr]) {
        let mut z = self.zone.lock().unwrap();
        let (v4, v6): (Vec<_>, Vec<_>) = ips.iter().partition(|ip| ip.is_ipv4());
        let v4 = v4.iter().filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(RData::A(A(*a))),
            IpAddr::V6(_) => None,
        });
        let v6 = v6.iter().filter_map(|ip| match ip {
            IpAddr::V6(a) => Some(RData::AAAA(AAAA(*a))),
            IpAddr::V4(_) => None,
        });
        z.records.insert((key(name), RecordType::A), v4.collect());
        z.records
            .insert((key(name), RecordType::AAAA), v6.collect());
    }

    /// `name`'s SRV records become `records`: (priority, weight, port, target).
    pub(crate) fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)]) {
        let rdata = records
            .iter()
            .map(|&(priority, weight, port, target)| {
                let target = Name::from_ascii(key(target)).expect("target name");
                RData::SRV(SRV::new(priority, weight, port, target))
            })
            .collect();
        self.zone
            .lock()
            .unwrap()
            .records
            .insert((key(name), RecordType::SRV), rdata);
    }

    /// While `failing`, every answer is `SERVFAIL`.
    pub(crate) fn set_failing(&self, failing: bool) {
        self.zone.lock().unwrap().failing = failing;
    }

    /// Queries answered so far.
    pub(crate) fn queries(&self) -> u64 {
        self.zone.lock().unwrap().queries
    }
}

fn answer(zone: &Mutex<Zone>, bytes: &[u8]) -> Option<Vec<u8>> {
    let req = Message::from_vec(bytes).ok()?;
    let mut res = Message::response(req.metadata.id, req.metadata.op_code);
    res.metadata.authoritative = true;
    res.metadata.recursion_desired = req.metadata.recursion_desired;
    let mut z = zone.lock().unwrap();
    z.queries += 1;
    if z.failing {
        res.metadata.response_code = ResponseCode::ServFail;
    }
    for q in &req.queries {
        res.add_query(q.clone());
        if z.failing {
            continue;
        }
        let found = z.records.get(&(key(&q.name().to_ascii()), q.query_type()));
        for rdata in found.into_iter().flatten() {
            res.add_answer(Record::from_rdata(q.name().clone(), 0, rdata.clone()));
        }
    }
    res.to_vec().ok()
}

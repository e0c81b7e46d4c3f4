//! A real etcd (Debian's `etcd-server`) for the fleet tests: one member on `127.0.0.1`, its client and peer
//! ports picked free at start, its data in a temporary directory; killed on drop (also when a test fails),
//! restartable on the same ports and data to test an outage. `etcdctl` writes by hand what an operator would.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use http::Method;

use super::{HANG, MAX_POLLS, POLL, client, free_addr, try_send};

/// A running (or stopped) single-member etcd.
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its client address.
    pub client: SocketAddr,
    peer: SocketAddr,
    tls: Option<EtcdTls>,
}

/// TLS on etcd's client port: its certificate, the CA clients must chain to (`--client-cert-auth`), and
/// the client certificate etcdctl uses (PEM files).
pub struct EtcdTls {
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Etcd {
    /// Starts etcd and waits until it answers `/health`.
    pub async fn start() -> Self {
        let mut etcd = Self::stopped();
        etcd.resume().await;
        etcd
    }

    /// Starts etcd with TLS on its client port, requiring client certificates.
    pub async fn start_tls(tls: EtcdTls) -> Self {
        let mut etcd = Self::stopped();
        etcd.tls = Some(tls);
        etcd.resume().await;
        etcd
    }

    /// Not started yet ([`resume`](Self::resume) starts it), on addresses reserved now.
    pub fn stopped() -> Self {
        Self {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            client: free_addr(),
            peer: free_addr(),
            tls: None,
        }
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), its client URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.client)
    }

    /// etcdctl's connection arguments.
    fn ctl_args(&self) -> Vec<String> {
        let mut args = vec!["--endpoints".to_owned(), self.url()];
        if let Some(t) = &self.tls {
            for (flag, path) in [
                ("--cacert", &t.ca),
                ("--cert", &t.client_cert),
                ("--key", &t.client_key),
            ] {
                args.push(flag.to_owned());
                args.push(path.display().to_string());
            }
        }
        args
    }

    fn healthy(&self) -> bool {
        Command::new("etcdctl")
            .env_clear()
            .env("ETCDCTL_API", "3")
            .args(self.ctl_args())
            .args(["--command-timeout", "1s", "endpoint", "health"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts it (again, on the same addresses and data) and waits until it is healthy.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let peer = format!("http://{}", self.peer);
        let mut tls_args = Vec::new();
        if let Some(t) = &self.tls {
            for (flag, path) in [
                ("--cert-file", &t.server_cert),
                ("--key-file", &t.server_key),
                ("--trusted-ca-file", &t.ca),
            ] {
                tls_args.push(format!("{flag}={}", path.display()));
            }
            tls_args.push("--client-cert-auth".to_owned());
        }
        let child = Command::new("etcd")
            .env_clear()
            .args(&tls_args)
            .args([
                "--name",
                "test",
                "--data-dir",
                &self.dir.path().join("data").display().to_string(),
                "--listen-client-urls",
                &self.url(),
                "--advertise-client-urls",
                &self.url(),
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &format!("test={peer}"),
                "--log-level",
                "error",
                "--logger",
                "zap",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd (Debian: apt-get install etcd-server)");
        self.child = Some(child);
        let http = client();
        let health = format!("{}/health", self.url());
        for _ in 0..MAX_POLLS {
            let healthy = if self.tls.is_some() {
                self.healthy()
            } else {
                try_send(&http, Method::GET, &health, &[], "")
                    .await
                    .is_ok_and(|res| res.status.is_success() && res.text().contains("true"))
            };
            if healthy {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("etcd did not become healthy at {health} within {HANG:?}");
    }

    /// Kills it, like a crash or a partition.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `etcdctl put KEY VALUE`, as an operator would write by hand.
    pub fn put(&self, key: &str, value: &str) {
        let out = Command::new("etcdctl")
            .env_clear()
            .env("ETCDCTL_API", "3")
            .args(self.ctl_args())
            .args(["put", key, value])
            .output()
            .expect("run etcdctl (Debian: apt-get install etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl put {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

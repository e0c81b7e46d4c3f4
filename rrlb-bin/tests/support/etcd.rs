//! A real etcd (Debian's `etcd-server`) for the fleet tests: one member on `127.0.0.1`, its client and peer
//! ports picked free at start, its data in a temporary directory; killed on drop (also when a test fails),
//! restartable on the same ports and data to test an outage. `etcdctl` writes by hand what an operator would.

use std::net::SocketAddr;
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

    /// Not started yet ([`resume`](Self::resume) starts it), on addresses reserved now.
    pub fn stopped() -> Self {
        Self {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            client: free_addr(),
            peer: free_addr(),
        }
    }

    /// `http://127.0.0.1:PORT`, its client URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.client)
    }

    /// Starts it (again, on the same addresses and data) and waits until it is healthy.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let peer = format!("http://{}", self.peer);
        let child = Command::new("etcd")
            .env_clear()
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
            if let Ok(res) = try_send(&http, Method::GET, &health, &[], "").await
                && res.status.is_success()
                && res.text().contains("true")
            {
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
            .args(["--endpoints", &self.url(), "put", key, value])
            .output()
            .expect("run etcdctl (Debian: apt-get install etcd-client)");
        assert!(
            out.status.success(),
            "etcdctl put {key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

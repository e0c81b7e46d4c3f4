//! Discovered members as the admin API shows them, for the discovery tests (DNS and Kubernetes).

use super::support::Harness;

/// The name of the discovered member of group `echo` at `127.0.0.1:port`.
pub(crate) fn member(port: u16) -> String {
    format!("echo/127.0.0.1:{port}")
}

/// Every backend's name, sorted.
pub(crate) async fn sorted_names(h: &Harness) -> Vec<String> {
    let mut names = h.backend_names().await;
    names.sort();
    names
}

/// `(requests, in_flight)` of a backend in `/admin/metrics` (one snapshot of its statistics).
pub(crate) async fn calls(h: &Harness, name: &str) -> (u64, u64) {
    let m = h.admin_get("/admin/metrics").await.json();
    let b = m["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no {name} in {m}"));
    (
        b["requests"].as_u64().unwrap(),
        b["in_flight"].as_u64().unwrap(),
    )
}

/// `names`, sorted.
pub(crate) fn sorted<const N: usize>(mut names: [String; N]) -> [String; N] {
    names.sort();
    names
}

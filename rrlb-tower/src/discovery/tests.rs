use std::net::SocketAddr;

use proptest::prelude::*;
use rrlb_core::{BackendSet, RoundRobin, SetOptions};

use super::*;

fn addr(i: u8, v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, u16::from(i) + 1], 8000 + u16::from(i)))
    } else {
        SocketAddr::from(([10, 0, 0, i], 8000))
    }
}

fn names(set: &BackendSet<RoundRobin>) -> Vec<String> {
    let mut v: Vec<String> = set
        .load()
        .members()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    v.sort();
    v
}

proptest! {
    /// Any sequence of address sets leaves exactly the latest set in the group (nothing in flight, so a
    /// vanished address leaves at once), with the group's or the endpoint's weight, and never touches a
    /// configured backend.
    #[test]
    fn the_set_follows_the_latest_address_set(
        updates in prop::collection::vec(
            prop::collection::vec((0u8..6, any::<bool>(), prop::option::of(1u32..5)), 1..8),
            1..12,
        )
    ) {
        let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
        set.add(rrlb_core::BackendSpec::new("static", "http://192.0.2.1:80")).unwrap();
        let group = Group::new("g", 3);
        for update in &updates {
            let eps: Vec<Endpoint> = update
                .iter()
                .map(|&(i, v6, w)| Endpoint { addr: addr(i, v6), weight: w, priority: 0 })
                .collect();
            sync(&set, &group, &eps);
            let mut want: Vec<String> = eps.iter().map(|e| group.member_name(e.addr)).collect();
            want.push("static".to_owned());
            want.sort();
            want.dedup();
            prop_assert_eq!(names(&set), want);
            for m in set.load().members().iter().filter(|m| group.owns(m.name())) {
                let ep = eps.iter().find(|e| group.member_name(e.addr) == m.name()).unwrap();
                prop_assert_eq!(m.weight(), ep.weight.unwrap_or(3));
                prop_assert!(!m.is_draining());
            }
        }
    }
}

#[test]
fn a_vanished_address_drains_until_idle_and_can_come_back() {
    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    let group = Group::new("g", 1);
    let (a, b) = (Endpoint::new(addr(1, false)), Endpoint::new(addr(2, false)));
    assert_eq!(sync(&set, &group, &[a, b]).added, 2);
    // A call in flight to b.
    let call = loop {
        let c = set.pick().unwrap();
        if c.backend().name() == "g/10.0.0.2:8000" {
            break c;
        }
    };
    let r = sync(&set, &group, &[a]);
    assert_eq!(r.drained, 1);
    let m = set
        .get("g/10.0.0.2:8000")
        .expect("still there while in flight");
    assert!(m.is_draining());
    for _ in 0..4 {
        assert_eq!(set.pick().unwrap().backend().name(), "g/10.0.0.1:8000");
    }
    // It comes back before its call ends: it serves again, its statistics kept.
    assert_eq!(sync(&set, &group, &[a, b]).restored, 1);
    assert!(!set.get("g/10.0.0.2:8000").unwrap().is_draining());
    sync(&set, &group, &[a]);
    call.success();
    set.refresh(std::time::Instant::now());
    assert_eq!(names(&set), ["g/10.0.0.1:8000"]);
}

#[test]
fn srv_priorities_use_the_lowest_level_with_an_eligible_member() {
    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    let group = Group::new("g", 1);
    let low = Endpoint {
        addr: addr(1, false),
        weight: None,
        priority: 10,
    };
    let high = Endpoint {
        addr: addr(2, false),
        weight: Some(7),
        priority: 20,
    };
    sync(&set, &group, &[high, low]);
    assert_eq!(names(&set), ["g/10.0.0.1:8000"]);
    // The preferred level has no eligible member: the next level joins; the first stays to be checked.
    set.get("g/10.0.0.1:8000").unwrap().set_healthy(false);
    sync(&set, &group, &[high, low]);
    assert_eq!(names(&set), ["g/10.0.0.1:8000", "g/10.0.0.2:8000"]);
    assert_eq!(set.get("g/10.0.0.2:8000").unwrap().weight(), 7);
    // It recovers: the higher level drains.
    set.get("g/10.0.0.1:8000").unwrap().set_healthy(true);
    let r = sync(&set, &group, &[high, low]);
    assert_eq!(r.drained, 1);
    assert_eq!(names(&set), ["g/10.0.0.1:8000"]);
}

/// Between two answers of the source, a priority level whose members all became ineligible hands over to the
/// next level within [`PRIORITY_RECHECK`], and takes back over when it recovers.
#[tokio::test(start_paused = true)]
async fn srv_priorities_follow_eligibility_between_answers() {
    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    let low = Endpoint {
        priority: 10,
        ..Endpoint::new(addr(1, false))
    };
    let high = Endpoint {
        priority: 20,
        ..Endpoint::new(addr(2, false))
    };
    // One answer, then the source stays silent (a long TTL, a watch with nothing new).
    let source =
        futures_util::stream::iter([Ok(vec![low, high])]).chain(futures_util::stream::pending());
    let task = Discovery::spawn(set.clone(), Group::new("g", 1), source);
    updates(&task, 1).await;
    assert_eq!(names(&set), ["g/10.0.0.1:8000"]);
    // In virtual time: the wait is the recheck's period, not a guess.
    let until = |want: &'static [&'static str]| {
        let set = set.clone();
        async move {
            let deadline = tokio::time::Instant::now() + 3 * PRIORITY_RECHECK;
            while names(&set) != want {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still {:?}, want {want:?}",
                    names(&set)
                );
                tokio::time::sleep(PRIORITY_RECHECK / 10).await;
            }
        }
    };
    set.get("g/10.0.0.1:8000").unwrap().set_healthy(false);
    until(&["g/10.0.0.1:8000", "g/10.0.0.2:8000"]).await;
    set.get("g/10.0.0.1:8000").unwrap().set_healthy(true);
    until(&["g/10.0.0.1:8000"]).await;
    assert_eq!(task.stats().updates(), 1, "rechecks are not answers");
}

#[tokio::test(start_paused = true)]
async fn periodic_backs_off_while_failing_and_never_empties_the_group() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let refresh = Duration::from_secs(1);
    let source = periodic(refresh, Duration::from_secs(5), move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Ok(vec![
                    Endpoint::new(addr(1, false)),
                    Endpoint::new(addr(2, false)),
                ]),
                1 => Ok(Vec::new()),
                2 => Err(DiscoveryError::lookup("refused")),
                3 => std::future::pending().await,
                _ => Ok(vec![Endpoint::new(addr(2, false))]),
            }
        }
    });
    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    let started = tokio::time::Instant::now();
    let task = Discovery::spawn(set.clone(), Group::new("g", 1), source.take(5));
    task.finished().await;
    assert_eq!(task.stats().errors(), 3, "empty, refused, timeout");
    assert_eq!(task.stats().updates(), 2);
    assert_eq!(names(&set), ["g/10.0.0.2:8000"]);
    // Waits: 1 s, then 2 s, 4 s (+ the 5 s timeout), 8 s: the backoff doubles while failures last.
    assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4 + 5 + 8));
}

/// Waits (bounded: a hang is a failure) until `task` has applied `n` sets.
async fn updates(task: &Discovery, n: u64) {
    let wait = async {
        while task.stats().updates() < n {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the set was never applied");
}

#[tokio::test]
async fn resync_applies_the_last_good_set_again() {
    let set = BackendSet::new(RoundRobin::new(), SetOptions::default());
    // A source that stays open: the receiver of a channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Update>(1);
    let source = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let task = Discovery::spawn(set.clone(), Group::new("g", 1), source);
    tx.send(Ok(vec![Endpoint::new(addr(1, false))]))
        .await
        .unwrap();
    updates(&task, 1).await;
    // Someone else replaces the list (a reload) and drops the member; the source has nothing new.
    set.update([]).unwrap();
    assert!(names(&set).is_empty());
    task.resync();
    updates(&task, 2).await;
    assert_eq!(names(&set), ["g/10.0.0.1:8000"]);
}

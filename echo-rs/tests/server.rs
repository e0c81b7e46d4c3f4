//! The in-process API: start, chaos, graceful shutdown, kill and restart on the same address.

mod support;

use std::time::Duration;

use echo_rs::{Config, EchoServer};
use http::{Method, StatusCode};
use serde_json::json;
use support::{Connection, read_until_close, refused, request, write_post};

async fn start(config: Config) -> EchoServer {
    EchoServer::start("127.0.0.1:0", config)
        .await
        .expect("start an echo server")
}

#[tokio::test]
async fn echoes_and_answers_health() {
    let server = start(Config::new("in-process")).await;
    let addr = server.local_addr();
    assert_eq!(server.url(), format!("http://{addr}"));

    let answer = request(
        addr,
        Method::POST,
        "/a/b?c=d",
        r#"{"n":12345678901234567890}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-echo-service"], "in-process");
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(&answer.body[..], br#"{"n":12345678901234567890}"#);

    let answer = request(addr, Method::GET, "/health", "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"status": "ok", "service": "in-process"})
    );

    server.shutdown().await.unwrap();
    assert!(refused(addr).await);
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let server = start(Config::new("keep-alive")).await;
    let mut connection = Connection::open(server.local_addr()).await;
    for i in 0..20 {
        let body = format!("[{i}]");
        let answer = connection.send(Method::POST, "/", &body).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, body);
    }
    server.shutdown().await.unwrap();
    // The idle connection was closed by the shutdown.
    connection.closed.await.unwrap();
}

#[tokio::test]
async fn chaos_handle_and_routes_share_state() {
    let server = start(Config::new("chaotic").with_chaos_routes(true)).await;
    let addr = server.local_addr();
    let chaos = server.chaos().clone();

    chaos.set_healthy(false);
    let answer = request(addr, Method::GET, "/health", "").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json(),
        json!({"status": "unhealthy", "service": "chaotic"})
    );

    let answer = request(
        addr,
        Method::POST,
        "/_chaos",
        r#"{"healthy":true,"fail_rate":1}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let settings = chaos.settings();
    assert!(settings.healthy);
    assert_eq!(settings.fail_rate, 1.0);

    let answer = request(addr, Method::POST, "/", "{}").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json(), json!({"error": "chaos: injected failure"}));

    chaos.reset();
    let answer = request(addr, Method::GET, "/_chaos", "").await;
    assert_eq!(
        answer.json(),
        json!({"delay_ms": 0, "fail_rate": 0.0, "healthy": true})
    );
    assert_eq!(
        request(addr, Method::POST, "/", "{}").await.status,
        StatusCode::OK
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_requests_finish() {
    let server = start(Config::new("draining").with_delay(Duration::from_secs(5))).await;
    let addr = server.local_addr();
    let mut idle = Connection::open(addr).await;
    assert_eq!(
        idle.send(Method::GET, "/health", "").await.unwrap().status,
        StatusCode::OK
    );

    let started = tokio::time::Instant::now();
    let in_flight = write_post(addr, "/slow", r#"{"slow":true}"#).await;
    // Connections are accepted in order: once a later one is answered, the delayed request's
    // connection is being served.
    assert_eq!(
        request(addr, Method::GET, "/health", "").await.status,
        StatusCode::OK
    );

    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(
        read_until_close(in_flight).await,
        Some((200, r#"{"slow":true}"#.to_owned()))
    );
    assert!(started.elapsed() >= Duration::from_secs(5));
    idle.closed.await.unwrap();
    shutdown.await.unwrap().unwrap();
    assert!(refused(addr).await);
}

#[tokio::test(start_paused = true)]
async fn drain_is_bounded() {
    let config = Config::new("stuck")
        .with_delay(Duration::from_secs(600))
        .with_drain_timeout(Duration::from_secs(30));
    let server = start(config).await;
    let addr = server.local_addr();
    let in_flight = write_post(addr, "/", "{}").await;
    assert_eq!(
        request(addr, Method::GET, "/health", "").await.status,
        StatusCode::OK
    );

    let started = tokio::time::Instant::now();
    server.shutdown().await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(600),
        "{waited:?}"
    );
    assert_eq!(read_until_close(in_flight).await, None);
}

#[tokio::test]
async fn kill_drops_everything_and_the_address_can_be_reused() {
    let server = start(Config::new("first").with_delay(Duration::from_secs(600))).await;
    let addr = server.local_addr();
    let mut idle = Connection::open(addr).await;
    assert_eq!(
        idle.send(Method::GET, "/health", "").await.unwrap().status,
        StatusCode::OK
    );
    let in_flight = write_post(addr, "/", "{}").await;
    assert_eq!(
        request(addr, Method::GET, "/health", "").await.status,
        StatusCode::OK
    );

    server.kill().await;
    // The delayed request is never answered, the idle connection is gone, the port is closed.
    assert_eq!(read_until_close(in_flight).await, None);
    idle.closed.await.unwrap();
    assert!(refused(addr).await);

    let second = EchoServer::start(addr, Config::new("second"))
        .await
        .expect("rebind");
    assert_eq!(second.local_addr(), addr);
    let answer = request(addr, Method::POST, "/", "[1]").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["x-echo-service"], "second");
    second.kill().await;
    assert!(refused(addr).await);
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let server = start(Config::new("dropped")).await;
    let addr = server.local_addr();
    drop(server);
    // The server task closes the listener as soon as it runs again.
    let mut closed = false;
    for _ in 0..1000 {
        tokio::task::yield_now().await;
        if refused(addr).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "the listener of a dropped server is still open");
}

#[tokio::test]
async fn refuses_an_invalid_configuration() {
    let err = EchoServer::start("127.0.0.1:0", Config::new("bad\nname"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn probe_health_reports_the_status() {
    let server = start(Config::new("probed")).await;
    let addr = server.local_addr();
    let probe = move || echo_rs::probe_health(addr, Duration::from_secs(5));
    assert_eq!(
        tokio::task::spawn_blocking(probe).await.unwrap().unwrap(),
        200
    );
    server.chaos().set_healthy(false);
    assert_eq!(
        tokio::task::spawn_blocking(probe).await.unwrap().unwrap(),
        503
    );
    server.kill().await;
    assert!(tokio::task::spawn_blocking(probe).await.unwrap().is_err());
}

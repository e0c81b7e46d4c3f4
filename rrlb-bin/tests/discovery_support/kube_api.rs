//! A fake Kubernetes API server for the tests, on `127.0.0.1:0`: it serves the list and the watch of
//! `discovery.k8s.io/v1` EndpointSlices that kube's watcher asks for, and the test changes the slices while
//! it runs (each change is an event on every open watch). Dropping it stops it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Default)]
struct State {
    slices: BTreeMap<String, Value>,
    version: u64,
    watchers: Vec<mpsc::UnboundedSender<Bytes>>,
    failing: bool,
    requests: Vec<String>,
}

/// The server.
pub(crate) struct FakeKubeApi {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An EndpointSlice of Service `service` whose endpoints are `(ip, ready, terminating)`, all at the port
/// named `http`, number `port`.
pub(crate) fn slice(
    name: &str,
    service: &str,
    port: u16,
    endpoints: &[(&str, bool, bool)],
) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "test", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints.iter().map(|(ip, ready, terminating)| json!({
            "addresses": [ip],
            "conditions": {"ready": ready, "serving": true, "terminating": terminating},
        })).collect::<Vec<_>>(),
    })
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: &Value) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

impl FakeKubeApi {
    /// Starts with `slices`.
    pub(crate) async fn start(slices: Vec<Value>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock().unwrap();
            for v in slices {
                let name = v["metadata"]["name"].as_str().unwrap().to_owned();
                s.slices.insert(name, v);
            }
            s.version = 1;
        }
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(serve(&state, &req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// Adds or replaces a slice (a `MODIFIED`/`ADDED` event on every watch).
    pub(crate) fn apply(&self, slice: Value) {
        let name = slice["metadata"]["name"].as_str().unwrap().to_owned();
        let mut s = self.state.lock().unwrap();
        let kind = if s.slices.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.slices.insert(name, slice.clone());
        event(&mut s, kind, slice);
    }

    /// Deletes a slice (a `DELETED` event).
    pub(crate) fn delete(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        let slice = s.slices.remove(name).expect("no such slice");
        event(&mut s, "DELETED", slice);
    }

    /// While `failing`, every request is answered `500`; turning it on also ends every open watch.
    pub(crate) fn set_failing(&self, failing: bool) {
        let mut s = self.state.lock().unwrap();
        s.failing = failing;
        if failing {
            s.watchers.clear();
        }
    }

    /// The paths and queries asked so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn event(s: &mut State, kind: &str, mut object: Value) {
    s.version += 1;
    object["metadata"]["resourceVersion"] = json!(s.version.to_string());
    let line = Bytes::from(format!("{}\n", json!({"type": kind, "object": object})));
    s.watchers.retain(|w| w.send(line.clone()).is_ok());
}

fn serve(state: &Mutex<State>, req: &Request<Incoming>) -> Response<Body> {
    let mut s = state.lock().unwrap();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    s.requests.push(pq);
    if s.failing {
        return full(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "injected", "code": 500}),
        );
    }
    if req.uri().path() != "/apis/discovery.k8s.io/v1/namespaces/test/endpointslices" {
        return full(
            StatusCode::NOT_FOUND,
            &json!({"kind": "Status", "code": 404}),
        );
    }
    let query = req.uri().query().unwrap_or_default();
    if !query.contains("labelSelector=kubernetes.io%2Fservice-name%3Decho") {
        return full(
            StatusCode::BAD_REQUEST,
            &json!({"kind": "Status", "code": 400}),
        );
    }
    if query.split('&').any(|kv| kv == "watch=true") {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        s.watchers.push(tx);
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut res = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames.boxed())));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return res;
    }
    let items: Vec<Value> = s
        .slices
        .values()
        .cloned()
        .map(|mut v| {
            v["metadata"]["resourceVersion"] = json!(s.version.to_string());
            v
        })
        .collect();
    full(
        StatusCode::OK,
        &json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSliceList",
            "metadata": {"resourceVersion": s.version.to_string()},
            "items": items,
        }),
    )
}

//! `docs/api-spec.yml` and the admin route table list the same operations, and the spec asks for the bearer
//! token on exactly the operations the table gates as mutating.
//!
//! The spec is what clients and schemathesis read; the table is what rrlb serves. An endpoint added to one and
//! not the other, or a mutating endpoint the spec documents as open, fails here.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_norway::Value;

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api-spec.yml");

/// The parts of an OpenAPI 3.0 document this test reads.
#[derive(Debug, Deserialize)]
struct Spec {
    #[serde(default)]
    security: Vec<Requirement>,
    paths: BTreeMap<String, PathItem>,
    components: Components,
}

/// A security requirement: scheme name → scopes. An empty one means "no credentials needed".
type Requirement = BTreeMap<String, Vec<String>>;

#[derive(Debug, Deserialize)]
struct Components {
    #[serde(rename = "securitySchemes", default)]
    security_schemes: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
struct PathItem {
    servers: Option<Vec<Value>>,
    get: Option<Operation>,
    put: Option<Operation>,
    post: Option<Operation>,
    delete: Option<Operation>,
    options: Option<Operation>,
    head: Option<Operation>,
    patch: Option<Operation>,
    trace: Option<Operation>,
}

#[derive(Debug, Deserialize)]
struct Operation {
    servers: Option<Vec<Value>>,
    security: Option<Vec<Requirement>>,
    #[serde(default)]
    responses: BTreeMap<String, Value>,
}

impl PathItem {
    fn operations(&self) -> impl Iterator<Item = (&'static str, &Operation)> {
        [
            ("GET", &self.get),
            ("PUT", &self.put),
            ("POST", &self.post),
            ("DELETE", &self.delete),
            ("OPTIONS", &self.options),
            ("HEAD", &self.head),
            ("PATCH", &self.patch),
            ("TRACE", &self.trace),
        ]
        .into_iter()
        .filter_map(|(method, op)| op.as_ref().map(|op| (method, op)))
    }
}

/// The admin listener's operations, `(METHOD, path) → operation`. Proxy-listener operations carry their own
/// `servers` (the spec's description says so) and are left out.
fn admin_operations(spec: &Spec) -> BTreeMap<(String, String), &Operation> {
    let mut ops = BTreeMap::new();
    for (path, item) in &spec.paths {
        if item.servers.is_some() {
            continue;
        }
        for (method, op) in item.operations() {
            if op.servers.is_none() {
                ops.insert((method.to_owned(), path.clone()), op);
            }
        }
    }
    ops
}

/// Whether calling `op` needs credentials: its own `security`, else the document's; an empty requirement
/// (`{}`) in the list makes credentials optional.
fn needs_token(spec: &Spec, op: &Operation) -> bool {
    let requirements = op.security.as_ref().unwrap_or(&spec.security);
    !requirements.is_empty() && requirements.iter().all(|r| !r.is_empty())
}

fn load() -> Spec {
    let text = std::fs::read_to_string(SPEC).unwrap_or_else(|e| panic!("{SPEC}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{SPEC}: {e}"))
}

fn table() -> BTreeMap<(String, String), bool> {
    rrlb::testing::admin_operations()
        .into_iter()
        .map(|(method, path, mutating)| ((method.to_owned(), path.to_owned()), mutating))
        .collect()
}

#[test]
fn spec_and_route_table_list_the_same_operations() {
    let spec = load();
    let documented: BTreeSet<_> = admin_operations(&spec).into_keys().collect();
    let served: BTreeSet<_> = table().into_keys().collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in docs/api-spec.yml: {undocumented:?}\n\
         in docs/api-spec.yml but not in the route table: {unserved:?}"
    );
}

#[test]
fn spec_asks_for_the_token_exactly_where_the_table_gates() {
    let spec = load();
    let table = table();
    let mut wrong = Vec::new();
    for ((method, path), op) in admin_operations(&spec) {
        let gated = table
            .get(&(method.clone(), path.clone()))
            .copied()
            .unwrap_or(false);
        let documented = needs_token(&spec, op);
        if gated != documented {
            wrong.push(format!(
                "{method} {path}: the table {} the token, the spec {}",
                if gated { "needs" } else { "does not need" },
                if documented {
                    "asks for it"
                } else {
                    "does not ask for it"
                },
            ));
        }
        if gated && !op.responses.contains_key("401") {
            wrong.push(format!("{method} {path}: no 401 answer documented"));
        }
        for scheme in op.security.iter().flatten().flat_map(|r| r.keys()) {
            let bearer = spec.security_schemes(scheme).is_some_and(|s| {
                s.get("type").and_then(Value::as_str) == Some("http")
                    && s.get("scheme").and_then(Value::as_str) == Some("bearer")
            });
            if !bearer {
                wrong.push(format!(
                    "{method} {path}: security scheme {scheme:?} is not an http bearer scheme of components"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

impl Spec {
    fn security_schemes(&self, name: &str) -> Option<&Value> {
        self.components.security_schemes.get(name)
    }
}

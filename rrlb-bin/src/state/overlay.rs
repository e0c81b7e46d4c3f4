//! The runtime overlay: what the admin API changed, by backend name, over the base set that the configuration
//! file (and discovery) defines. Pure rules, no I/O: the store keeps an [`Overlay`] durably, and a reload
//! re-applies it to the new base with [`Overlay::resolve`].
//!
//! The rules, as `docs/operations.md` states them for operators:
//! - An entry is keyed by backend name. The overlay wins over the base for that name: a backend defined at run
//!   time replaces a file backend of the same name, a weight set at run time replaces the file's, a backend
//!   deleted at run time stays deleted when the file still lists it.
//! - A change that leaves nothing different from the base (drain lifted, no weight override) removes the entry.
//! - Discovered backends are not in the overlay: their group's source owns them (the admin API refuses them).
//! - Every change (one admin call, whatever it touches) moves the revision on by one ([`Overlay::next`]);
//!   dropping the whole overlay is a change too.

use std::collections::BTreeMap;

use rrlb_core::BackendSpec;
use serde::{Deserialize, Serialize};

/// What the admin API changed about one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Change {
    /// A backend defined at run time (`POST /admin/backends`), or a base backend redefined.
    Define {
        /// Its URL.
        url: String,
        /// Its weight.
        weight: u32,
        /// Whether it is draining (gets no new requests).
        #[serde(default)]
        draining: bool,
    },
    /// A base backend's weight or drain changed (`PATCH /admin/backends/{name}`).
    Modify {
        /// The weight that replaces the base's; `None`: the base's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        /// Whether it is draining.
        #[serde(default)]
        draining: bool,
    },
    /// A base backend taken out (`DELETE`, or a drain with `remove`).
    Remove,
}

/// The runtime changes and the revision they make up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Overlay {
    /// Moves on by one with every change (the `etag` of the admin answers).
    pub revision: u64,
    /// The changes, by backend name.
    pub backends: BTreeMap<String, Change>,
}

/// The effective backend list of a base with an overlay on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The backends, base order first, then those defined at run time (by name).
    pub specs: Vec<BackendSpec>,
    /// The names among them that are draining.
    pub draining: Vec<String>,
    /// Runtime definitions left out: their URL is already in the set under another name (the base wins; a set
    /// cannot hold one URL twice), or `make` refused them.
    pub left_out: Vec<String>,
}

impl Overlay {
    /// The base with the overlay applied; `make` builds the spec of a runtime definition (name, URL, weight),
    /// `None` when it cannot.
    pub(crate) fn resolve(
        &self,
        base: &[BackendSpec],
        make: impl Fn(&str, &str, u32) -> Option<BackendSpec>,
    ) -> Resolved {
        let mut out = Resolved::default();
        for spec in base {
            match self.backends.get(&spec.name) {
                None => out.specs.push(spec.clone()),
                Some(Change::Remove) => {}
                Some(Change::Modify { weight, draining }) => {
                    let mut spec = spec.clone();
                    spec.weight = weight.unwrap_or(spec.weight);
                    if *draining {
                        out.draining.push(spec.name.clone());
                    }
                    out.specs.push(spec);
                }
                Some(Change::Define { .. }) => {} // below, with the other runtime definitions
            }
        }
        for (name, change) in &self.backends {
            let Change::Define {
                url,
                weight,
                draining,
            } = change
            else {
                continue;
            };
            let spec = match make(name, url, *weight) {
                Some(spec) if !out.specs.iter().any(|s| s.url == spec.url) => spec,
                _ => {
                    out.left_out.push(name.clone());
                    continue;
                }
            };
            let at = base.iter().position(|b| b.name == *name).map(|i| {
                out.specs
                    .iter()
                    .take_while(|s| base_index(base, s) < i)
                    .count()
            });
            match at {
                Some(i) => out.specs.insert(i, spec),
                None => out.specs.push(spec),
            }
            if *draining {
                out.draining.push(name.clone());
            }
        }
        out
    }

    /// Whether `name` was defined at run time.
    pub(crate) fn defines(&self, name: &str) -> bool {
        matches!(self.backends.get(name), Some(Change::Define { .. }))
    }

    /// The next revision, with the same changes: a change is made to it and then saved as one revision,
    /// whatever it touches.
    pub(crate) fn next(&self) -> Self {
        Self {
            revision: self.revision + 1,
            backends: self.backends.clone(),
        }
    }

    /// Defines a backend at run time (`POST`).
    pub(crate) fn define(&mut self, name: &str, url: &str, weight: u32) {
        self.put(
            name,
            Some(Change::Define {
                url: url.to_owned(),
                weight,
                draining: false,
            }),
        );
    }

    /// Sets `name`'s weight (`PATCH {"weight"}`).
    pub(crate) fn set_weight(&mut self, name: &str, weight: u32) {
        let change = match self.backends.get(name) {
            Some(Change::Define { url, draining, .. }) => Change::Define {
                url: url.clone(),
                weight,
                draining: *draining,
            },
            Some(Change::Modify { draining, .. }) => Change::Modify {
                weight: Some(weight),
                draining: *draining,
            },
            None | Some(Change::Remove) => Change::Modify {
                weight: Some(weight),
                draining: false,
            },
        };
        self.put(name, Some(change));
    }

    /// Starts or stops draining `name` (`PATCH {"drain"}`); a drain that removes takes it out.
    pub(crate) fn drain(&mut self, name: &str, draining: bool, remove: bool) {
        if draining && remove {
            return self.delete(name);
        }
        let change = match self.backends.get(name) {
            Some(Change::Define { url, weight, .. }) => Change::Define {
                url: url.clone(),
                weight: *weight,
                draining,
            },
            Some(Change::Modify { weight, .. }) => Change::Modify {
                weight: *weight,
                draining,
            },
            None | Some(Change::Remove) => Change::Modify {
                weight: None,
                draining,
            },
        };
        self.put(name, Some(change));
    }

    /// Takes `name` out (`DELETE`): a runtime definition is forgotten, a base backend is removed.
    pub(crate) fn delete(&mut self, name: &str) {
        let change = (!self.defines(name)).then_some(Change::Remove);
        self.put(name, change);
    }

    /// Drops every change (`DELETE /admin/runtime`).
    pub(crate) fn clear(&mut self) {
        self.backends.clear();
    }

    /// Replaces `name`'s entry (`None`, or a change that changes nothing: removed).
    fn put(&mut self, name: &str, change: Option<Change>) {
        match change {
            Some(Change::Modify {
                weight: None,
                draining: false,
            })
            | None => {
                self.backends.remove(name);
            }
            Some(c) => {
                self.backends.insert(name.to_owned(), c);
            }
        }
    }
}

/// Where `spec` sits in `base` (past the end for a runtime definition).
fn base_index(base: &[BackendSpec], spec: &BackendSpec) -> usize {
    base.iter()
        .position(|b| b.name == spec.name)
        .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(name: &str, weight: u32) -> BackendSpec {
        BackendSpec::new(name, format!("http://{name}.test")).with_weight(weight)
    }

    fn make(name: &str, url: &str, weight: u32) -> Option<BackendSpec> {
        Some(BackendSpec::new(name, url).with_weight(weight))
    }

    fn names(r: &Resolved) -> Vec<(String, u32)> {
        r.specs.iter().map(|s| (s.name.clone(), s.weight)).collect()
    }

    #[test]
    fn an_empty_overlay_is_the_base() {
        let base = vec![spec("a", 1), spec("b", 2)];
        let r = Overlay::default().resolve(&base, make);
        assert_eq!(r.specs, base);
        assert!(r.draining.is_empty());
    }

    #[test]
    fn changes_apply_by_name_and_a_redefinition_keeps_its_place() {
        let base = vec![spec("a", 1), spec("b", 2), spec("c", 3)];
        let mut o = Overlay::default().next();
        o.set_weight("a", 7);
        o.delete("b");
        o.define("c", "http://elsewhere.test", 4);
        o.define("d", "http://d.test", 1);
        o.drain("d", true, false);
        assert_eq!(o.revision, 1, "one revision, however many changes it makes");
        let r = o.resolve(&base, make);
        assert_eq!(
            names(&r),
            [("a".into(), 7), ("c".into(), 4), ("d".into(), 1)]
        );
        assert_eq!(r.specs[1].url, "http://elsewhere.test");
        assert_eq!(r.draining, ["d"]);
    }

    #[test]
    fn a_change_back_to_the_base_leaves_no_entry() {
        let mut o = Overlay::default();
        o.drain("a", true, false);
        o.drain("a", false, false);
        assert!(o.backends.is_empty());
        o.define("x", "http://x.test", 1);
        o.delete("x");
        assert!(o.backends.is_empty());
    }

    #[test]
    fn a_runtime_url_that_a_base_backend_has_is_left_out() {
        let base = vec![spec("a", 1)];
        let mut o = Overlay::default();
        o.define("other", "http://a.test", 1);
        let r = o.resolve(&base, make);
        assert_eq!(names(&r), [("a".into(), 1)]);
        assert_eq!(r.left_out, ["other"]);
    }

    #[test]
    fn the_stored_form_reads_back() {
        let mut o = Overlay::default().next();
        o.define("n", "http://n.test", 3);
        o.set_weight("a", 2);
        o.delete("b");
        let text = serde_json::to_string(&o).expect("serialise");
        assert_eq!(
            serde_json::from_str::<Overlay>(&text).expect("parse"),
            o,
            "{text}"
        );
        assert!(
            serde_json::from_str::<Overlay>(r#"{"revision":1,"backends":{"a":{"change":"grow"}}}"#)
                .is_err()
        );
    }

    /// One step of the property test: a reload (a new base) or an admin change.
    #[derive(Debug, Clone)]
    enum Step {
        Reload(Vec<(u8, u32)>),
        Define(u8, u8, u32),
        Weight(u8, u32),
        Drain(u8, bool),
        Delete(u8),
        Clear,
    }

    fn step() -> impl Strategy<Value = Step> {
        let name = 0u8..6;
        prop_oneof![
            proptest::collection::vec((0u8..6, 1u32..5), 0..5).prop_map(Step::Reload),
            (name.clone(), 0u8..9, 1u32..5).prop_map(|(n, u, w)| Step::Define(n, u, w)),
            (name.clone(), 1u32..5).prop_map(|(n, w)| Step::Weight(n, w)),
            (name.clone(), any::<bool>()).prop_map(|(n, d)| Step::Drain(n, d)),
            name.prop_map(Step::Delete),
            Just(Step::Clear),
        ]
    }

    /// A model entry: `None` removed; else the URL (a runtime definition), weight and drain set.
    type Changed = Option<(Option<String>, Option<u32>, bool)>;

    /// The model: the effective set as a plain map, changed the way an operator reads the rules.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    struct Model {
        base: BTreeMap<String, (String, u32)>,
        changed: BTreeMap<String, Changed>,
    }

    impl Model {
        /// The base as changed, then the runtime definitions by name, each skipped when its URL is taken.
        fn effective(&self) -> BTreeMap<String, (String, u32, bool)> {
            let mut out = BTreeMap::new();
            for (n, (url, w)) in &self.base {
                match self.changed.get(n) {
                    None => {
                        out.insert(n.clone(), (url.clone(), *w, false));
                    }
                    Some(Some((None, weight, d))) => {
                        out.insert(n.clone(), (url.clone(), weight.unwrap_or(*w), *d));
                    }
                    Some(None) | Some(Some((Some(_), _, _))) => {}
                }
            }
            for (n, c) in &self.changed {
                if let Some((Some(url), w, d)) = c {
                    if out.values().any(|(u, _, _)| u == url) {
                        continue;
                    }
                    out.insert(n.clone(), (url.clone(), w.unwrap_or(1), *d));
                }
            }
            out
        }
    }

    /// A runtime URL: the base's own URLs among them, so that collisions happen.
    fn url_of(u: u8) -> String {
        if u < 6 {
            format!("http://b{u}.test")
        } else {
            format!("http://runtime-{u}.test")
        }
    }

    proptest! {
        #[test]
        fn any_sequence_of_reloads_and_changes_matches_the_model(steps in proptest::collection::vec(step(), 0..40)) {
            let mut overlay = Overlay::default();
            let mut base: Vec<BackendSpec> = Vec::new();
            let mut model = Model::default();
            for s in steps {
                let revision = overlay.revision;
                let is_reload = matches!(s, Step::Reload(_));
                if !is_reload {
                    overlay = overlay.next();
                }
                match s {
                    Step::Reload(list) => {
                        base.clear();
                        model.base.clear();
                        for (n, w) in list {
                            let name = format!("b{n}");
                            if base.iter().any(|b| b.name == name) {
                                continue;
                            }
                            let url = format!("http://{name}.test");
                            base.push(BackendSpec::new(name.as_str(), url.as_str()).with_weight(w));
                            model.base.insert(name, (url, w));
                        }
                    }
                    Step::Define(n, u, w) => {
                        let name = format!("b{n}");
                        overlay.define(&name, &url_of(u), w);
                        model.changed.insert(name, Some((Some(url_of(u)), Some(w), false)));
                    }
                    Step::Weight(n, w) => {
                        let name = format!("b{n}");
                        overlay.set_weight(&name, w);
                        let e = model.changed.entry(name).or_insert(Some((None, None, false)));
                        match e {
                            Some((_, weight, _)) => *weight = Some(w),
                            None => *e = Some((None, Some(w), false)),
                        }
                    }
                    Step::Drain(n, d) => {
                        let name = format!("b{n}");
                        overlay.drain(&name, d, false);
                        let e = model.changed.entry(name).or_insert(Some((None, None, false)));
                        match e {
                            Some((_, _, draining)) => *draining = d,
                            None => *e = Some((None, None, d)),
                        }
                    }
                    Step::Delete(n) => {
                        let name = format!("b{n}");
                        let runtime = matches!(model.changed.get(&name), Some(Some((Some(_), _, _))));
                        overlay.delete(&name);
                        if runtime {
                            model.changed.remove(&name);
                        } else {
                            model.changed.insert(name, None);
                        }
                    }
                    Step::Clear => {
                        overlay.clear();
                        model.changed.clear();
                    }
                }
                // A reload changes no revision; every admin change moves it on by one.
                prop_assert_eq!(overlay.revision, revision + u64::from(!is_reload));
                let resolved = overlay.resolve(&base, make);
                let got: BTreeMap<String, (String, u32, bool)> = resolved
                    .specs
                    .iter()
                    .map(|s| (s.name.clone(), (s.url.clone(), s.weight, resolved.draining.contains(&s.name))))
                    .collect();
                prop_assert_eq!(got.len(), resolved.specs.len(), "a name twice");
                prop_assert_eq!(got, model.effective());
            }
        }
    }
}

//! Where the overlay is kept: in memory (until the process exits) or in a file that survives restarts.
//!
//! A file is written the way a crash cannot tear: the whole state to a temporary file in the same directory,
//! `fsync`, a rename over the old one, and an `fsync` of the directory, so that after a crash the file holds the
//! old state or the new one, never a mix, and a change is acknowledged only once it is on disk. A file that
//! cannot be read or does not parse at start is an error that names it; rrlb never starts on an empty overlay
//! in its place, and never writes over it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::overlay::{Change, Overlay};
use crate::config::{BackendConfig, StateConfig, StoreKind};

/// The stored file's format version.
const FORMAT: u32 = 1;

/// The state file as written: `{"format": 1, "revision": N, "backends": {NAME: CHANGE}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    revision: u64,
    backends: BTreeMap<String, Change>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state file exists but cannot be read.
    #[error("cannot read the state file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state file does not hold a valid state; it is left as it is.
    #[error(
        "the state file {} is not a valid rrlb state ({reason}); it was left untouched: fix it, or move it \
         away to start without the runtime changes",
        path.display()
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// The state is no longer at the revision the change was made against (`if-match`); nothing changed.
    #[error(
        "the runtime state is at revision {current}, not at the one the change was made against"
    )]
    Stale {
        /// The revision in force.
        current: u64,
    },
    /// The fleet's store cannot be reached (or did not answer in time); nothing changed.
    #[error("the state store is unavailable: {0}")]
    Unavailable(String),
    /// `store = "etcd"` in a build without the `etcd` feature.
    #[error("this rrlb was built without the `etcd` feature")]
    NoEtcd,
    /// The state could not be written durably; nothing changed.
    #[error("cannot write the state file {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where runtime changes are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Store {
    /// In memory: they last until the process exits.
    Memory,
    /// In a file, durably.
    File(PathBuf),
}

impl Store {
    /// The store `[state]` names, and the overlay it holds now. A file store's directory must exist and be
    /// writable (checked here, so that the first admin change does not find out).
    pub(crate) fn open(c: &StateConfig) -> Result<(Self, Overlay), StateError> {
        match c.store {
            StoreKind::Memory | StoreKind::Etcd => Ok((Self::Memory, Overlay::default())),
            StoreKind::File => {
                let path = c.path.clone();
                let overlay = match std::fs::read(&path) {
                    Ok(bytes) => parse(&path, &bytes)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        check_writable(&path)?;
                        Overlay::default()
                    }
                    Err(source) => return Err(StateError::Read { path, source }),
                };
                Ok((Self::File(path), overlay))
            }
        }
    }

    /// What `store` is called in `/admin/runtime`: `memory`, or the file's path.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Memory => "memory".to_owned(),
            Self::File(p) => format!("file {}", p.display()),
        }
    }

    /// Keeps `overlay` durably (a file store: written, synced and renamed into place before this returns).
    /// Blocking: call it off the runtime's threads.
    pub(crate) fn save(&self, overlay: &Overlay) -> Result<(), StateError> {
        let Self::File(path) = self else {
            return Ok(());
        };
        let file = StateFile {
            format: FORMAT,
            revision: overlay.revision,
            backends: overlay.backends.clone(),
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| StateError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        text.push(b'\n');
        write_durably(path, &text).map_err(|source| StateError::Write {
            path: path.clone(),
            source,
        })
    }
}

/// The overlay in `bytes`, every runtime definition checked as the admin API checks a new backend.
fn parse(path: &Path, bytes: &[u8]) -> Result<Overlay, StateError> {
    let invalid = |reason: String| StateError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let file: StateFile = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if file.format != FORMAT {
        return Err(invalid(format!(
            "format {} (this rrlb reads format {FORMAT})",
            file.format
        )));
    }
    for (name, change) in &file.backends {
        check_change(name, change).map_err(|e| invalid(format!("backend {name:?}: {e}")))?;
    }
    Ok(Overlay {
        revision: file.revision,
        backends: file.backends,
    })
}

/// Whether `change` is one the admin API could have made for `name`: a valid name, URL and weight.
pub(crate) fn check_change(name: &str, change: &Change) -> Result<(), String> {
    let weight = match change {
        Change::Define { url, weight, .. } => {
            return BackendConfig::new(url, Some(*weight), Some(name))
                .map(|_| ())
                .map_err(|e| e.to_string());
        }
        Change::Modify { weight, .. } => *weight,
        Change::Remove => None,
    };
    crate::config::check_backend_name(name).map_err(|e| e.to_string())?;
    match weight {
        Some(w) => crate::config::check_weight(w)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// The temporary file a write of `path` goes through (in its directory, so the rename is atomic).
fn temporary(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

fn directory(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// That a file can be written beside `path` (a missing state file is created by the first change).
fn check_writable(path: &Path) -> Result<(), StateError> {
    let probe = temporary(path);
    let result = std::fs::File::create(&probe).and_then(|f| f.sync_all());
    let _ = std::fs::remove_file(&probe);
    result.map_err(|source| StateError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` so that a crash leaves the old contents or the new ones: a temporary file, synced,
/// renamed over `path`, and the directory synced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary(path);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(directory(path))?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_config(path: &Path) -> StateConfig {
        StateConfig {
            store: StoreKind::File,
            path: path.to_path_buf(),
            ..StateConfig::default()
        }
    }

    #[test]
    fn a_saved_overlay_is_read_back_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let (store, empty) = Store::open(&file_config(&path)).expect("open");
        assert_eq!(empty, Overlay::default());
        let mut o = Overlay::default().next();
        o.define("n", "http://127.0.0.1:9", 3);
        o.set_weight("a", 2);
        o.delete("b");
        store.save(&o).expect("save");
        let (_, read) = Store::open(&file_config(&path)).expect("reopen");
        assert_eq!(read, o);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn an_invalid_file_is_refused_naming_it_and_left_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        for (text, needle) in [
            ("{not json", "key must be a string"),
            (r#"{"format":2,"revision":1,"backends":{}}"#, "format 2"),
            (
                r#"{"format":1,"revision":1,"backends":{"x":{"change":"define","url":"ftp://x","weight":1}}}"#,
                "backend \"x\"",
            ),
            (
                r#"{"format":1,"revision":1,"backends":{"x":{"change":"modify","weight":0}}}"#,
                "backend \"x\"",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let e = Store::open(&file_config(&path)).expect_err(text);
            let shown = e.to_string();
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            assert!(shown.contains(needle), "{shown}");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), text);
        }
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_found_at_open_and_at_save() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-dir").join("state.json");
        assert!(matches!(
            Store::open(&file_config(&missing)),
            Err(StateError::Write { .. })
        ));
        let store = Store::File(missing);
        assert!(matches!(
            store.save(&Overlay::default().next()),
            Err(StateError::Write { .. })
        ));
        assert!(Store::Memory.save(&Overlay::default()).is_ok());
    }
}

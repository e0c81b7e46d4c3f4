//! What triggers a reload besides `POST /admin/reload`: SIGHUP, and a change to the configuration file; and
//! SIGUSR1, which reopens the access log (log rotation).

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::apply::Control;
use crate::logging::ErrorChain;

async fn reload_and_log(app: &Control, why: &str) {
    match app.reload().await {
        Ok(c) => tracing::info!(
            trigger = why,
            backends = c.backends.len(),
            "configuration reloaded"
        ),
        Err(e) => {
            tracing::error!(trigger = why, error = %ErrorChain(&e), "reload rejected; the running configuration stays")
        }
    }
}

pub(super) fn spawn_triggers(
    app: &Arc<Control>,
    path: Option<PathBuf>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            let app = Arc::clone(app);
            tasks.push(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reload_and_log(&app, "SIGHUP").await;
                }
            }));
        }
        // Log rotation: the file was moved away; write on to a new one at the configured path.
        if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
            let app = Arc::clone(app);
            tasks.push(tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    let app = Arc::clone(&app);
                    let _ = tokio::task::spawn_blocking(move || app.access_log.reopen()).await;
                    tracing::info!("SIGUSR1: reopened the access log");
                }
            }));
        }
    }
    if let Some(path) = path {
        tasks.extend(spawn_watcher(app, path));
    }
    tasks
}

/// The files a reload reads: the configuration file, and every certificate, key and CA file it names.
fn watched(config_file: &Path, app: &Control) -> Vec<PathBuf> {
    let mut files = vec![config_file.to_path_buf()];
    files.extend(app.config.load().tls_files());
    files
}

/// The files being watched, their watchers, and the contents a change is measured against.
struct Watching {
    files: Vec<PathBuf>,
    _watchers: Vec<notify::RecommendedWatcher>,
    rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    last: Vec<Option<Vec<u8>>>,
}

impl Watching {
    /// Watches `files`, then reads what they hold now: in that order, so a change made after the read is always
    /// an event. Called before rrlb reports ready, so a file replaced right after start is not taken for the
    /// starting point.
    fn start(files: Vec<PathBuf>) -> notify::Result<Self> {
        let (watchers, rx) = watch_files(&files)?;
        let last = files.iter().map(|f| std::fs::read(f).ok()).collect();
        Ok(Self {
            files,
            _watchers: watchers,
            rx,
            last,
        })
    }
}

/// Reloads when the configuration file or a file it names (certificates, keys, CAs) changes content: each
/// file's directory is watched, so editors' atomic renames and a Kubernetes Secret's or ConfigMap's `..data`
/// symlink swap are seen. After each reload the list of files is read again from the configuration in force.
fn spawn_watcher(app: &Arc<Control>, config_file: PathBuf) -> Option<tokio::task::JoinHandle<()>> {
    match Watching::start(watched(&config_file, app)) {
        Ok(watching) => Some(tokio::spawn(watch_and_reload(
            Arc::clone(app),
            config_file,
            watching,
        ))),
        Err(e) => {
            tracing::warn!(error = %ErrorChain(&e), "cannot watch the configuration's files; reload with SIGHUP or the admin API");
            None
        }
    }
}

async fn watch_and_reload(app: Arc<Control>, config_file: PathBuf, mut w: Watching) {
    while w.rx.recv().await.is_some() {
        // Editors, ConfigMap and Secret updates write in several steps: wait for quiet.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while w.rx.try_recv().is_ok() {}
        let now = read_all(&w.files).await;
        if now == w.last {
            continue; // touched, not changed
        }
        w.last = now;
        reload_and_log(&app, "file change").await;
        let next = watched(&config_file, &app);
        if next != w.files {
            // The configuration now names other files: watch those.
            match Watching::start(next) {
                Ok(watching) => w = watching,
                Err(e) => {
                    tracing::warn!(error = %ErrorChain(&e), "cannot watch the configuration's files; reload with SIGHUP or the admin API");
                    return;
                }
            }
        }
    }
}

/// The contents of `files` (`None` for one that cannot be read now).
async fn read_all(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        out.push(tokio::fs::read(f).await.ok());
    }
    out
}

/// Watches the directory of every file in `files` and sends a unit for every event touching one of them (or a
/// `..data` symlink swap in its directory).
fn watch_files(
    files: &[PathBuf],
) -> notify::Result<(
    Vec<notify::RecommendedWatcher>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
)> {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut by_dir: HashMap<PathBuf, HashSet<OsString>> = HashMap::new();
    for path in files {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        if let Some(name) = path.file_name() {
            by_dir.entry(dir).or_default().insert(name.to_owned());
        }
    }
    let mut watchers = Vec::with_capacity(by_dir.len());
    for (dir, names) in by_dir {
        let tx = tx.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !event.kind.is_access()
                    && event.paths.iter().any(|p| {
                        p.file_name()
                            .is_some_and(|n| names.contains(n) || n == "..data")
                    })
                {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        watchers.push(watcher);
    }
    Ok((watchers, rx))
}

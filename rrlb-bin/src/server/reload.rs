//! What triggers a reload besides `POST /admin/reload`: SIGHUP, and a change to the configuration file; and
//! SIGUSR1, which reopens the access log (log rotation).

use std::path::PathBuf;
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
        match watch_file(path.clone()) {
            Ok((watcher, mut rx)) => {
                let app = Arc::clone(app);
                tasks.push(tokio::spawn(async move {
                    let _watcher = watcher; // dropped with the task
                    let mut last = tokio::fs::read(&path).await.ok();
                    while rx.recv().await.is_some() {
                        // Editors and ConfigMap updates write in several steps: wait for quiet.
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        while rx.try_recv().is_ok() {}
                        let content = tokio::fs::read(&path).await.ok();
                        if content == last {
                            continue; // touched, not changed
                        }
                        last = content;
                        reload_and_log(&app, "file change").await;
                    }
                }));
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot watch the configuration file; reload with SIGHUP or the admin API")
            }
        }
    }
    tasks
}

/// Watches the directory holding `path` (so that replaced files and Kubernetes' `..data` symlink swaps are
/// seen) and sends a unit for every event touching the file.
fn watch_file(
    path: PathBuf,
) -> notify::Result<(
    notify::RecommendedWatcher,
    tokio::sync::mpsc::UnboundedReceiver<()>,
)> {
    use notify::{RecursiveMode, Watcher};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = path.file_name().map(|n| n.to_owned());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event.paths.iter().any(|p| {
                p.file_name() == name.as_deref() || p.file_name().is_some_and(|n| n == "..data")
            })
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((watcher, rx))
}

//! Container log rotation (upstream's `pkg/kubelet/logs/container_log_manager.go`): every 10 s
//! the log file of each running container that has reached `--container-log-max-size` is
//! renamed to `<log>.<YYYYmmdd-HHMMSS>` and the runtime is asked to reopen it (CRI
//! `ReopenContainerLog`), so it writes a new file at the same path — which is what
//! `kubectl logs` reads. Before that, leftovers of an interrupted rotation are removed
//! (`*.tmp`, and plain files whose `.gz` exists), the oldest rotated files removed so that at
//! most `--container-log-max-files` files remain with the new one, and every rotated file but
//! the one about to be made is gzip-compressed. [`plan`] decides (pure); the rest is I/O.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::quantity::Quantity;
use crate::runtime::{v1, Runtime, RuntimeError};

/// How often logs are checked (upstream's `logMonitorPeriod`).
pub const MONITOR_PERIOD: Duration = Duration::from_secs(10);
/// The suffix of compressed rotated files.
pub const COMPRESS_SUFFIX: &str = ".gz";
/// The suffix of a file being compressed.
pub const TMP_SUFFIX: &str = ".tmp";

/// The rotation flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRotatePolicy {
    /// `--container-log-max-size` (10Mi): a log at least this big is rotated.
    pub max_size: u64,
    /// `--container-log-max-files` (5): files kept per container, the current one included.
    pub max_files: usize,
}

impl Default for LogRotatePolicy {
    fn default() -> Self {
        LogRotatePolicy {
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

/// What went wrong rotating.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The flags are invalid.
    #[error("{0}")]
    Policy(String),
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The runtime refused to reopen the log (the rename was undone).
    #[error("failed to reopen container log {id}: {source}")]
    Reopen {
        /// The container.
        id: String,
        /// The runtime's error.
        source: RuntimeError,
    },
}

impl LogRotatePolicy {
    /// The policy from the flags' values, checked as upstream (`MaxFiles` > 1, size > 0).
    pub fn parse(max_size: &str, max_files: usize) -> Result<LogRotatePolicy, LogError> {
        let size = Quantity::parse(max_size)
            .map_err(|e| {
                LogError::Policy(format!("invalid container log max size {max_size:?}: {e}"))
            })?
            .value();
        if size <= 0 {
            return Err(LogError::Policy(format!(
                "container log max size {max_size} must be positive"
            )));
        }
        if max_files <= 1 {
            return Err(LogError::Policy(format!(
                "invalid MaxFiles {max_files}, must be > 1"
            )));
        }
        Ok(LogRotatePolicy {
            max_size: size as u64,
            max_files,
        })
    }
}

/// What one rotation does to the files already rotated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files to remove: unfinished compressions, plain copies of compressed files, and the
    /// oldest beyond the limit.
    pub remove: Vec<String>,
    /// Files to gzip.
    pub compress: Vec<String>,
}

/// Upstream's `cleanupUnusedLogs`, `removeExcessLogs` and the compression step, over the
/// names of the rotated files (`<log>.*`).
pub fn plan(rotated: &[String], max_files: usize) -> Plan {
    let mut out = Plan::default();
    let mut in_use: Vec<String> = rotated
        .iter()
        .filter(|l| {
            let unused = l.ends_with(TMP_SUFFIX)
                || (!l.ends_with(COMPRESS_SUFFIX)
                    && rotated.contains(&format!("{l}{COMPRESS_SUFFIX}")));
            if unused {
                out.remove.push((*l).clone());
            }
            !unused
        })
        .cloned()
        .collect();
    in_use.sort();
    // The new file and the one about to be rotated leave room for max_files - 2 others.
    let keep = max_files.saturating_sub(2);
    let excess = in_use.len().saturating_sub(keep);
    out.remove.extend(in_use.drain(..excess));
    out.compress = in_use
        .into_iter()
        .filter(|l| !l.ends_with(COMPRESS_SUFFIX))
        .collect();
    out
}

/// `<log>.<YYYYmmdd-HHMMSS>` (Go's `20060102-150405`, UTC).
pub fn rotated_name(log: &str, now: jiff::Timestamp) -> String {
    format!("{log}.{}", now.strftime("%Y%m%d-%H%M%S"))
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The rotated files of `log` (`<log>.*`), sorted.
fn rotated_files(log: &Path) -> Result<Vec<String>, LogError> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(vec![]);
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map_err(io("listing", dir))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

/// Gzips `path` to `path.gz` (through `path.gz.tmp`) and removes it.
fn compress(path: &Path) -> Result<(), LogError> {
    let target = PathBuf::from(format!("{}{COMPRESS_SUFFIX}", path.display()));
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", target.display()));
    let mut input = std::fs::File::open(path).map_err(io("opening", path))?;
    let output = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    let mut encoder = flate2::write::GzEncoder::new(output, flate2::Compression::default());
    std::io::copy(&mut input, &mut encoder).map_err(io("compressing", path))?;
    encoder
        .finish()
        .and_then(|mut f| f.flush())
        .map_err(io("compressing", path))?;
    std::fs::rename(&tmp, &target).map_err(io("renaming", &tmp))?;
    std::fs::remove_file(path).map_err(io("removing", path))
}

/// Upstream's `rotateLog` for one container's `log`.
pub async fn rotate_log(
    runtime: &dyn Runtime,
    id: &str,
    log: &Path,
    policy: &LogRotatePolicy,
    now: jiff::Timestamp,
) -> Result<(), LogError> {
    let plan = plan(&rotated_files(log)?, policy.max_files);
    for file in &plan.remove {
        let path = Path::new(file);
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", path)(e)),
        }
    }
    for file in &plan.compress {
        compress(Path::new(file))?;
    }
    let rotated = PathBuf::from(rotated_name(&log.to_string_lossy(), now));
    std::fs::rename(log, &rotated).map_err(io("renaming", log))?;
    if let Err(source) = runtime.reopen_container_log(id).await {
        // Put it back, so the runtime keeps writing where readers look.
        if let Err(e) = std::fs::rename(&rotated, log) {
            tracing::error!(log = %log.display(), error = %e, "restoring a log after a failed reopen");
        }
        return Err(LogError::Reopen {
            id: id.to_string(),
            source,
        });
    }
    Ok(())
}

/// Removes a container's log and its rotated files (upstream's `ContainerLogManager.Clean`,
/// called before the container itself is removed); a container or log already gone is fine.
pub async fn clean(runtime: &dyn Runtime, id: &str) {
    let Ok(status) = runtime.container_status(id).await else {
        return;
    };
    if status.log_path.is_empty() {
        return;
    }
    let log = PathBuf::from(&status.log_path);
    let mut files = rotated_files(&log).unwrap_or_default();
    files.push(status.log_path.clone());
    for file in files {
        if let Err(e) = std::fs::remove_file(&file) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(%file, error = %e, "removing a container log");
            }
        }
    }
}

/// The container log manager of one node.
pub struct ContainerLogManager {
    runtime: Arc<dyn Runtime>,
    policy: LogRotatePolicy,
}

impl ContainerLogManager {
    /// A manager rotating the logs of `runtime`'s containers with `policy`.
    pub fn new(runtime: Arc<dyn Runtime>, policy: LogRotatePolicy) -> Self {
        ContainerLogManager { runtime, policy }
    }

    /// One pass over the running containers (upstream's `rotateLogs`); returns how many logs
    /// were rotated.
    pub async fn rotate_logs(&self, now: jiff::Timestamp) -> usize {
        let running = v1::ContainerFilter {
            state: Some(v1::ContainerStateValue {
                state: v1::ContainerState::ContainerRunning.into(),
            }),
            ..Default::default()
        };
        let containers = match self.runtime.list_containers(Some(running)).await {
            Ok(c) => c,
            Err(error) => {
                tracing::debug!(%error, "log rotation: listing containers");
                return 0;
            }
        };
        let mut rotated = 0;
        for container in containers {
            if container.state != i32::from(v1::ContainerState::ContainerRunning) {
                continue;
            }
            let Ok(status) = self.runtime.container_status(&container.id).await else {
                continue;
            };
            let log = PathBuf::from(&status.log_path);
            if status.log_path.is_empty() {
                continue;
            }
            match std::fs::metadata(&log) {
                Ok(meta) if meta.len() < self.policy.max_size => continue,
                Ok(_) => {}
                Err(_) => {
                    // Lost (removed by hand, or a rotation interrupted): ask for a new one.
                    let _ = self.runtime.reopen_container_log(&container.id).await;
                    continue;
                }
            }
            match rotate_log(
                self.runtime.as_ref(),
                &container.id,
                &log,
                &self.policy,
                now,
            )
            .await
            {
                Ok(()) => rotated += 1,
                Err(error) => {
                    tracing::warn!(container = %container.id, %error, "rotating a container log")
                }
            }
        }
        rotated
    }

    /// Rotates every [`MONITOR_PERIOD`] until `shutdown`.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(MONITOR_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => { self.rotate_logs(jiff::Timestamp::now()).await; }
            }
        }
    }
}

#[cfg(test)]
mod tests;

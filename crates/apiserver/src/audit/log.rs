//! The audit log backend (upstream's `--audit-log-path`, `--audit-log-maxsize`,
//! `--audit-log-maxbackup`): one `audit.k8s.io/v1` Event per line, written by a thread of its
//! own so requests never wait on the disk; when the file passes `maxsize` MiB it is renamed
//! with a timestamp (`audit-2026-12-06T04-30-00.000.log`, as upstream's lumberjack names them)
//! and a new one begun, keeping at most `maxbackup` old files (0: all).
//!
//! Events queue in a bounded channel; if the disk cannot keep up and it fills, further events
//! are dropped and counted (upstream's batch mode does the same), and a warning says how many.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use serde_json::Value;

use super::{AuditEvent, AuditSink};

/// Events waiting for the writer at most.
const QUEUE: usize = 8192;

/// Where and how the log is kept.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The file (`-`: standard output).
    pub path: PathBuf,
    /// Rotate past this many MiB (0: never).
    pub max_size_mib: u64,
    /// Old files kept (0: all).
    pub max_backups: usize,
}

/// The log backend.
pub struct LogSink {
    sender: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl LogSink {
    /// Opens (creates) the log and starts its writer.
    pub fn open(config: LogConfig) -> std::io::Result<LogSink> {
        let writer = Writer::open(config)?;
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-log".into())
            .spawn(move || writer.run(receiver))?;
        Ok(LogSink {
            sender,
            dropped: Arc::default(),
        })
    }
}

impl AuditSink for LogSink {
    fn record(&self, event: &AuditEvent) {
        let Some(line) = event.to_json().map(|v: Value| v.to_string()) else {
            return;
        };
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "the audit log cannot keep up; events dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

struct Writer {
    config: LogConfig,
    file: Option<File>,
    size: u64,
}

impl Writer {
    fn open(config: LogConfig) -> std::io::Result<Writer> {
        let (file, size) = if config.path == Path::new("-") {
            (None, 0)
        } else {
            if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.path)?;
            let size = file.metadata()?.len();
            (Some(file), size)
        };
        Ok(Writer { config, file, size })
    }

    fn run(mut self, lines: Receiver<String>) {
        while let Ok(line) = lines.recv() {
            if let Err(error) = self.write(&line) {
                tracing::warn!(%error, path = %self.config.path.display(), "writing the audit log");
            }
        }
    }

    fn write(&mut self, line: &str) -> std::io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            println!("{line}");
            return Ok(());
        };
        file.write_all(line.as_bytes())?;
        file.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        let limit = self.config.max_size_mib * 1024 * 1024;
        if limit > 0 && self.size >= limit {
            self.rotate()?;
        }
        Ok(())
    }

    /// Renames the full file after the moment and begins a new one; prunes old files.
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = &self.config.path;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("audit");
        let extension = path.extension().and_then(|s| s.to_str()).unwrap_or("log");
        let stamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H-%M-%S%.3f")
            .to_string();
        let backup = path.with_file_name(format!("{stem}-{stamp}.{extension}"));
        self.file = None;
        std::fs::rename(path, &backup)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        self.file = Some(file);
        self.size = 0;
        if self.config.max_backups > 0 {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let prefix = format!("{stem}-");
            let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&prefix) && n.ends_with(&format!(".{extension}"))
                    })
                })
                .collect();
            backups.sort();
            let excess = backups.len().saturating_sub(self.config.max_backups);
            for old in &backups[..excess] {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_files_are_rotated_and_old_ones_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let mut writer = Writer::open(LogConfig {
            path: path.clone(),
            max_size_mib: 1,
            max_backups: 2,
        })
        .expect("open");
        let line = "x".repeat(100 * 1024);
        for _ in 0..45 {
            writer.write(&line).expect("write");
            // Distinct timestamps for the backups' names.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().any(|n| n == "audit.log"));
        assert!(names.iter().all(|n| n.starts_with("audit")));
        let current = std::fs::metadata(&path).expect("current").len();
        assert!(current < 1024 * 1024);
    }
}

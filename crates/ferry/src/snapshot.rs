//! `ferry snapshot` (k3s's `etcd-snapshot`): the store saved at one revision to a file while the
//! server runs, saved snapshots listed and deleted; and the server's side of it: the socket that
//! takes a snapshot on request, the schedule with its retention, and `--restore-from`.
//!
//! The server owns the store's files (one process per directory), so a snapshot of the embedded
//! store is asked of the running server, over a unix socket in its data directory
//! (`<data-dir>/snapshot.sock`, mode 0600): whoever may read the data directory — which holds
//! the store itself and the cluster's keys — may take a snapshot, and nobody else, without a
//! new API endpoint and the authorization question it would raise. With `--store etcd` the
//! server saves etcd's own snapshot (`etcdctl snapshot save`); `ferry snapshot save
//! --etcd-endpoints` does that without a server. The protocol is one JSON request line and one
//! JSON answer line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ferry_api::cron::Schedule;
use ferry_store::embedded::{self, EmbeddedStore};
use ferry_store::etcd::EtcdStore;
use ferry_store::Revision;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

/// The socket in the data directory that `ferry snapshot save` talks to.
const SOCKET: &str = "snapshot.sock";
/// The name scheduled snapshots start with (k3s's are `etcd-snapshot-<node>-<time>`).
const SCHEDULED: &str = "ferry-snapshot";

/// `ferry server`'s snapshot flags (k3s's `--etcd-snapshot-*` and `--cluster-reset-restore-path`).
#[derive(clap::Args, Debug, Clone)]
pub struct ServerFlags {
    /// When to save a snapshot: a cron schedule (`0 */12 * * *`, `@daily`), `@every <duration>`
    /// or a plain duration (`30m`).
    #[arg(long, default_value = "0 */12 * * *")]
    snapshot_schedule: String,
    /// Scheduled snapshots kept (the oldest are deleted; 0 keeps all).
    #[arg(long, default_value_t = 5)]
    snapshot_retention: usize,
    /// Where snapshots are saved [default: <data-dir>/snapshots].
    #[arg(long)]
    snapshot_dir: Option<PathBuf>,
    /// Take no scheduled snapshots.
    #[arg(long)]
    disable_snapshots: bool,
    /// Start from this snapshot (made by `ferry snapshot save`) in an empty data directory:
    /// objects keep their resourceVersions; watches from before it get 410 Gone.
    #[arg(long)]
    restore_from: Option<PathBuf>,
    /// With `--restore-from`: how far the store's revision moves ahead of the snapshot's, so
    /// that clients of the old cluster, which may hold newer resourceVersions, relist rather
    /// than resume (upstream's advice for `etcdutl snapshot restore --bump-revision`).
    #[arg(long, default_value_t = 1_000_000_000)]
    restore_bump_revision: Revision,
}

impl ServerFlags {
    fn dir(&self, data_dir: &Path) -> PathBuf {
        self.snapshot_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("snapshots"))
    }
}

/// Checks the snapshot flags and, with `--restore-from`, makes the embedded store in
/// `store_dir` from the snapshot before the server opens it. Refuses an etcd store (restore
/// etcd with `etcdutl snapshot restore`) and a directory that already holds a store.
pub fn prepare(flags: &ServerFlags, embedded: bool, store_dir: &Path) -> anyhow::Result<()> {
    if !flags.disable_snapshots {
        parse_schedule(&flags.snapshot_schedule)?;
    }
    let Some(file) = &flags.restore_from else {
        return Ok(());
    };
    if !embedded {
        anyhow::bail!(
            "--restore-from restores the embedded store; restore etcd with `etcdutl snapshot restore`"
        );
    }
    let (info, revision) = embedded::restore(file, store_dir, flags.restore_bump_revision)
        .with_context(|| format!("--restore-from {}", file.display()))?;
    tracing::info!(file = %file.display(), snapshot_revision = info.revision, revision,
        "store restored from a snapshot");
    Ok(())
}

/// The server's snapshot backend: its embedded store, or else its etcd (a client of its own:
/// etcd's snapshot is a maintenance call, outside the `Store` trait).
pub async fn backend(
    embedded: Option<Arc<EmbeddedStore>>,
    etcd_endpoints: &[String],
) -> anyhow::Result<Backend> {
    Ok(match embedded {
        Some(store) => Backend::Embedded(store),
        None => Backend::Etcd(Arc::new(
            EtcdStore::connect(etcd_endpoints, "")
                .await
                .context("connecting to etcd for snapshots")?,
        )),
    })
}

/// What a server saves snapshots of.
#[derive(Clone)]
pub enum Backend {
    /// The embedded store (a ferry snapshot file).
    Embedded(Arc<EmbeddedStore>),
    /// etcd (etcd's snapshot file, for `etcdutl snapshot restore`).
    Etcd(Arc<EtcdStore>),
}

/// A snapshot saved.
#[derive(Debug, Clone, PartialEq)]
struct Saved {
    path: PathBuf,
    /// `None` for etcd's snapshots, whose format does not say.
    revision: Option<Revision>,
    size: u64,
}

impl Backend {
    /// Saves a snapshot as `<dir>/<name>-<node>-<unix seconds>`, as k3s names them.
    async fn save(&self, dir: &Path, name: &str) -> anyhow::Result<Saved> {
        if name.is_empty() || name.contains('/') {
            anyhow::bail!("snapshot name {name:?}: want a file name");
        }
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let path = dir.join(format!("{name}-{}-{now}", crate::agent::hostname()));
        if path.exists() {
            anyhow::bail!("{} exists already", path.display());
        }
        match self {
            Backend::Embedded(store) => {
                let info = store.save_snapshot(&path).await?;
                Ok(Saved {
                    path,
                    revision: Some(info.revision),
                    size: info.size,
                })
            }
            Backend::Etcd(store) => {
                let size = store.save_snapshot(&path).await?;
                Ok(Saved {
                    path,
                    revision: None,
                    size,
                })
            }
        }
    }
}

/// The server's side: answers `ferry snapshot save` on `<data-dir>/snapshot.sock` and saves
/// scheduled snapshots, until `shutdown`.
pub async fn serve(
    backend: Backend,
    flags: ServerFlags,
    data_dir: PathBuf,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = flags.dir(&data_dir);
    let socket = data_dir.join(SOCKET);
    // Left by a server that did not stop cleanly (a second server on the same embedded store
    // stops at the store's lock before getting here).
    let _ = std::fs::remove_file(&socket);
    // Without the socket (a data directory path too long for one, say) the schedule still runs.
    let listener = match tokio::net::UnixListener::bind(&socket) {
        Ok(listener) => {
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {}", socket.display()))?;
            Some(listener)
        }
        Err(e) => {
            tracing::warn!(socket = %socket.display(), error = %e,
                "cannot listen for `ferry snapshot save`");
            None
        }
    };
    let schedule = if flags.disable_snapshots {
        None
    } else {
        Some(parse_schedule(&flags.snapshot_schedule)?)
    };
    let scheduled = async {
        match schedule {
            Some(schedule) => {
                run_schedule(&backend, &schedule, &dir, flags.snapshot_retention).await
            }
            None => std::future::pending().await,
        }
    };
    let answering = async {
        let Some(listener) = listener else {
            return std::future::pending().await;
        };
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (backend, dir) = (backend.clone(), dir.clone());
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &backend, &dir).await {
                            tracing::warn!(error = %format!("{e:#}"), "snapshot request failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = scheduled => {}
        () = answering => {}
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// A schedule flag: cron, `@every …`, or a plain duration (read as `@every`).
fn parse_schedule(spec: &str) -> anyhow::Result<Schedule> {
    let spec = match crate::server::parse_duration(spec) {
        Ok(every) => format!("@every {}ms", every.as_millis()),
        Err(_) => spec.to_string(),
    };
    Schedule::parse(&spec, &jiff::tz::TimeZone::system())
        .map_err(|e| anyhow::anyhow!("--snapshot-schedule {spec:?}: {e}"))
}

/// Saves a snapshot at each time of `schedule`, keeping the newest `retention`.
async fn run_schedule(backend: &Backend, schedule: &Schedule, dir: &Path, retention: usize) {
    loop {
        let now = jiff::Timestamp::now();
        let Some(next) = schedule.next(now) else {
            tracing::warn!("the snapshot schedule never fires");
            return std::future::pending().await;
        };
        let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
        tokio::time::sleep(wait).await;
        match backend.save(dir, SCHEDULED).await {
            Ok(saved) => tracing::info!(path = %saved.path.display(), revision = saved.revision,
                size = saved.size, "scheduled snapshot saved"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "scheduled snapshot failed"),
        }
        let prefix = format!("{SCHEDULED}-{}-", crate::agent::hostname());
        for old in beyond_retention(dir, &prefix, retention) {
            match std::fs::remove_file(&old) {
                Ok(()) => tracing::info!(path = %old.display(), "old snapshot deleted"),
                Err(e) => {
                    tracing::warn!(path = %old.display(), error = %e, "deleting an old snapshot")
                }
            }
        }
    }
}

/// The snapshots in `dir` named `<prefix><unix seconds>` beyond the newest `retention`.
fn beyond_retention(dir: &Path, prefix: &str, retention: usize) -> Vec<PathBuf> {
    if retention == 0 {
        return Vec::new();
    }
    let mut snapshots: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let time = name.to_str()?.strip_prefix(prefix)?.parse().ok()?;
            Some((time, entry.path()))
        })
        .collect();
    snapshots.sort_by(|a, b| b.cmp(a));
    snapshots
        .into_iter()
        .skip(retention)
        .map(|(_, p)| p)
        .collect()
}

/// Answers one request on the socket.
async fn answer(
    stream: tokio::net::UnixStream,
    backend: &Backend,
    default_dir: &Path,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(read).read_line(&mut line).await?;
    let reply = match save_requested(&line, backend, default_dir).await {
        Ok(saved) => serde_json::json!({
            "path": saved.path,
            "revision": saved.revision,
            "size": saved.size,
        }),
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    Ok(())
}

async fn save_requested(
    line: &str,
    backend: &Backend,
    default_dir: &Path,
) -> anyhow::Result<Saved> {
    let request: serde_json::Value = serde_json::from_str(line).context("reading the request")?;
    if request["op"] != "save" {
        anyhow::bail!("unknown request {line:?}");
    }
    let name = request["name"].as_str().unwrap_or("on-demand");
    let dir = request["dir"]
        .as_str()
        .map_or_else(|| default_dir.to_path_buf(), PathBuf::from);
    backend.save(&dir, name).await
}

/// `ferry snapshot …`.
#[derive(clap::Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Saves the store at one revision while the server runs (asked of the server on this data
    /// directory; with `--etcd-endpoints`, etcd's own snapshot, without a server).
    Save {
        #[command(flatten)]
        location: Location,
        /// The snapshot's name, before `-<node>-<unix time>`.
        #[arg(long, default_value = "on-demand")]
        name: String,
        /// Save etcd's snapshot from these client URLs (comma-separated) instead.
        #[arg(long, value_delimiter = ',')]
        etcd_endpoints: Vec<String>,
    },
    /// Lists the saved snapshots: name, revision, size, creation time.
    #[command(alias = "list")]
    Ls {
        #[command(flatten)]
        location: Location,
    },
    /// Deletes saved snapshots by name.
    #[command(alias = "rm")]
    Delete {
        #[command(flatten)]
        location: Location,
        /// The snapshots' names, as `ls` prints them.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Where the server and its snapshots are.
#[derive(clap::Args, Debug)]
pub struct Location {
    /// The server's data directory [default: as `ferry server`'s].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The snapshots' directory [default: <data-dir>/snapshots].
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl Location {
    fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(crate::server::default_data_dir)
    }

    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("snapshots"))
    }
}

/// Runs `ferry snapshot …`.
pub async fn run(command: SnapshotCommand) -> anyhow::Result<()> {
    match command {
        SnapshotCommand::Save {
            location,
            name,
            etcd_endpoints,
        } => {
            let saved = if etcd_endpoints.is_empty() {
                save_on_server(&location, &name).await?
            } else {
                // The prefix does not matter: etcd's snapshot holds every key.
                let store = EtcdStore::connect(&etcd_endpoints, "")
                    .await
                    .context("connecting to etcd")?;
                Backend::Etcd(Arc::new(store))
                    .save(&location.dir(), &name)
                    .await?
            };
            match saved.revision {
                Some(revision) => println!(
                    "Snapshot {} saved at revision {revision} ({} bytes)",
                    saved.path.display(),
                    saved.size
                ),
                None => println!(
                    "Snapshot {} saved ({} bytes)",
                    saved.path.display(),
                    saved.size
                ),
            }
            Ok(())
        }
        SnapshotCommand::Ls { location } => {
            print!("{}", list(&location.dir())?);
            Ok(())
        }
        SnapshotCommand::Delete { location, names } => {
            let dir = location.dir();
            for name in names {
                if name.is_empty() || name.contains('/') || name.starts_with('.') {
                    anyhow::bail!(
                        "{name:?}: want a snapshot's name as `ferry snapshot ls` prints it"
                    );
                }
                let path = dir.join(&name);
                std::fs::remove_file(&path)
                    .with_context(|| format!("deleting {}", path.display()))?;
                println!("Snapshot {name} deleted");
            }
            Ok(())
        }
    }
}

/// Asks the server on `location`'s data directory to save a snapshot.
async fn save_on_server(location: &Location, name: &str) -> anyhow::Result<Saved> {
    let socket = location.data_dir().join(SOCKET);
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .with_context(|| {
            format!(
            "no server answers on {} (is `ferry server` running with this --data-dir? for etcd, \
             give --etcd-endpoints)",
            socket.display()
        )
        })?;
    let dir = match &location.dir {
        // The server resolves paths from its own working directory.
        Some(dir) => Some(std::path::absolute(dir).with_context(|| dir.display().to_string())?),
        None => None,
    };
    let request = serde_json::json!({ "op": "save", "name": name, "dir": dir });
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let mut line = String::new();
    tokio::io::BufReader::new(read).read_line(&mut line).await?;
    let reply: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("the server's answer {line:?}"))?;
    if let Some(error) = reply["error"].as_str() {
        anyhow::bail!("the server could not save a snapshot: {error}");
    }
    Ok(Saved {
        path: PathBuf::from(reply["path"].as_str().unwrap_or_default()),
        revision: reply["revision"].as_i64(),
        size: reply["size"].as_u64().unwrap_or_default(),
    })
}

/// The table `ferry snapshot ls` prints, newest last.
fn list(dir: &Path) -> anyhow::Result<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut rows = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() || name.ends_with(".tmp") {
            continue;
        }
        let created = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        // A file that is not a ferry snapshot is listed without revision: etcd's own.
        let revision = embedded::read_snapshot_info(&entry.path())
            .map_or_else(|_| "-".to_string(), |info| info.revision.to_string());
        rows.push((created, name, revision, metadata.len()));
    }
    rows.sort();
    let mut table = vec![[
        "NAME".to_string(),
        "REVISION".into(),
        "SIZE".into(),
        "CREATED".into(),
    ]];
    for (created, name, revision, size) in rows {
        table.push([
            name,
            revision,
            size.to_string(),
            ferry_api::time::format_rfc3339(created),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in table {
        let line = (0..4)
            .map(|c| format!("{:<width$}", row[c], width = widths[c]))
            .collect::<Vec<_>>()
            .join("   ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_take_cron_and_durations() {
        assert!(parse_schedule("0 */12 * * *").is_ok());
        assert!(parse_schedule("@every 1h").is_ok());
        let every = parse_schedule("30s").expect("a duration");
        let now = jiff::Timestamp::from_second(1_000_000).expect("time");
        assert_eq!(
            every.next(now),
            Some(now + jiff::SignedDuration::from_secs(30))
        );
        assert!(parse_schedule("every day").is_err());
    }

    #[test]
    fn retention_keeps_the_newest_scheduled_snapshots_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "ferry-snapshot-n1-100",
            "ferry-snapshot-n1-300",
            "ferry-snapshot-n1-200",
            "ferry-snapshot-n1-90",
            "on-demand-n1-50",
            "ferry-snapshot-n2-10",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let mut old = beyond_retention(dir.path(), "ferry-snapshot-n1-", 2);
        old.sort();
        assert_eq!(
            old,
            vec![
                dir.path().join("ferry-snapshot-n1-100"),
                dir.path().join("ferry-snapshot-n1-90")
            ]
        );
        assert!(beyond_retention(dir.path(), "ferry-snapshot-n1-", 0).is_empty());
    }
}

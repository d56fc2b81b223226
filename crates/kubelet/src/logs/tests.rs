use std::io::Read as _;

use super::*;
use crate::runtime::fake::Call;
use crate::runtime::FakeRuntime;

fn names(files: &[&str]) -> Vec<String> {
    files.iter().map(|f| f.to_string()).collect()
}

/// Upstream's `TestCleanupUnusedLogs`, `TestRemoveExcessLog` and `TestRotateLog` decisions.
#[test]
fn plan_as_upstream() {
    let cases: Vec<(&str, Vec<String>, usize, Plan)> = vec![
        ("nothing rotated yet", vec![], 5, Plan::default()),
        (
            "the last rotated file is compressed now",
            names(&["0.log.20240101-000000.gz", "0.log.20240101-000100"]),
            5,
            Plan {
                remove: vec![],
                compress: names(&["0.log.20240101-000100"]),
            },
        ),
        (
            "leftovers of an interrupted compression",
            names(&[
                "0.log.20240101-000000",
                "0.log.20240101-000000.gz",
                "0.log.20240101-000100.gz.tmp",
                "0.log.20240101-000100",
            ]),
            5,
            Plan {
                remove: names(&["0.log.20240101-000000", "0.log.20240101-000100.gz.tmp"]),
                compress: names(&["0.log.20240101-000100"]),
            },
        ),
        (
            "at most max_files - 2 rotated files before the next",
            names(&[
                "0.log.20240101-000000.gz",
                "0.log.20240101-000100.gz",
                "0.log.20240101-000200.gz",
                "0.log.20240101-000300",
            ]),
            4,
            Plan {
                remove: names(&["0.log.20240101-000000.gz", "0.log.20240101-000100.gz"]),
                compress: names(&["0.log.20240101-000300"]),
            },
        ),
        (
            "two files: only the current and the newest rotated",
            names(&["0.log.20240101-000000"]),
            2,
            Plan {
                remove: names(&["0.log.20240101-000000"]),
                compress: vec![],
            },
        ),
    ];
    for (name, rotated, max_files, want) in cases {
        assert_eq!(plan(&rotated, max_files), want, "{name}");
    }
    assert_eq!(
        rotated_name(
            "/l/0.log",
            jiff::Timestamp::from_second(1_704_067_261).expect("ts")
        ),
        "/l/0.log.20240101-000101"
    );
}

#[test]
fn the_policy_is_checked() {
    assert_eq!(
        LogRotatePolicy::parse("10Mi", 5).expect("default"),
        LogRotatePolicy::default()
    );
    assert!(LogRotatePolicy::parse("10Mi", 1).is_err());
    assert!(LogRotatePolicy::parse("0", 5).is_err());
    assert!(LogRotatePolicy::parse("ten", 5).is_err());
}

/// A running container in the fake whose config names `log`.
async fn running_container(runtime: &FakeRuntime, log: &Path) -> String {
    runtime.add_image("r/app:1");
    let config = v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: "p".into(),
            namespace: "default".into(),
            uid: "u".into(),
            attempt: 0,
        }),
        ..Default::default()
    };
    let sandbox = runtime
        .run_pod_sandbox(config.clone(), "")
        .await
        .expect("sandbox");
    let id = runtime
        .create_container(
            &sandbox,
            v1::ContainerConfig {
                metadata: Some(v1::ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                image: Some(crate::runtime::image_spec("r/app:1")),
                log_path: log.to_string_lossy().into_owned(),
                ..Default::default()
            },
            config,
        )
        .await
        .expect("container");
    runtime.start_container(&id).await.expect("start");
    id
}

fn cri_lines(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("2024-01-01T00:00:00.000000000Z stdout F {tag} line {i}\n"))
        .collect()
}

#[tokio::test]
async fn a_big_log_is_rotated_reopened_and_older_files_compressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    let runtime = Arc::new(FakeRuntime::new());
    let id = running_container(&runtime, &log).await;
    let manager = ContainerLogManager::new(
        runtime.clone(),
        LogRotatePolicy {
            max_size: 1000,
            max_files: 3,
        },
    );
    let at = |s: i64| jiff::Timestamp::from_second(1_704_067_200 + s).expect("ts");

    // Small: left alone.
    std::fs::write(&log, cri_lines(2, "first")).expect("write");
    assert_eq!(manager.rotate_logs(at(0)).await, 0);

    // Big: renamed, and the runtime reopened a new file at the same path.
    std::fs::write(&log, cri_lines(50, "first")).expect("write");
    assert_eq!(manager.rotate_logs(at(10)).await, 1);
    assert!(runtime
        .calls()
        .contains(&Call::ReopenContainerLog(id.clone())));
    assert_eq!(std::fs::metadata(&log).expect("new log").len(), 0);
    let first = dir.path().join("0.log.20240101-000010");
    assert!(first.exists());

    // Again: the previous rotated file is compressed, the new one is plain.
    std::fs::write(&log, cri_lines(50, "second")).expect("write");
    assert_eq!(manager.rotate_logs(at(20)).await, 1);
    let gz = dir.path().join("0.log.20240101-000010.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).expect("gz"))
        .read_to_string(&mut text)
        .expect("gunzip");
    assert!(text.contains("first line 49"));
    assert!(!first.exists());
    assert!(dir.path().join("0.log.20240101-000020").exists());

    // A third time with max_files 3: the oldest goes, so three files remain with the new one.
    std::fs::write(&log, cri_lines(50, "third")).expect("write");
    std::fs::write(log.with_extension("log.x.tmp"), "junk").expect("junk");
    assert_eq!(manager.rotate_logs(at(30)).await, 1);
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["0.log", "0.log.20240101-000020.gz", "0.log.20240101-000030"]
    );
    // What `kubectl logs` reads is the current file: lines written after the rotation.
    std::fs::write(&log, cri_lines(1, "fourth")).expect("write");
    assert_eq!(
        std::fs::read_to_string(&log).expect("read"),
        cri_lines(1, "fourth")
    );
}

#[tokio::test]
async fn a_failed_reopen_puts_the_log_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    let runtime = Arc::new(FakeRuntime::new());
    let id = running_container(&runtime, &log).await;
    std::fs::write(&log, cri_lines(50, "x")).expect("write");
    runtime.fail_next(
        crate::runtime::fake::Op::ReopenContainerLog,
        RuntimeError::Unavailable("down".into()),
    );
    let policy = LogRotatePolicy {
        max_size: 100,
        max_files: 5,
    };
    let error = rotate_log(
        runtime.as_ref(),
        &id,
        &log,
        &policy,
        jiff::Timestamp::UNIX_EPOCH,
    )
    .await
    .expect_err("reopen fails");
    assert!(matches!(error, LogError::Reopen { .. }));
    assert_eq!(
        std::fs::read_to_string(&log).expect("back"),
        cri_lines(50, "x")
    );
}

#[tokio::test]
async fn cleaning_removes_the_log_and_its_rotated_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    let runtime = Arc::new(FakeRuntime::new());
    let id = running_container(&runtime, &log).await;
    for name in ["0.log", "0.log.20240101-000000.gz", "0.log.20240101-000100"] {
        std::fs::write(dir.path().join(name), "x").expect("write");
    }
    std::fs::write(dir.path().join("1.log"), "other instance").expect("write");
    clean(runtime.as_ref(), &id).await;
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["1.log"]);
}

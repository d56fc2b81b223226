//! Backup and restore against real servers: `ferry snapshot save` while a writer keeps
//! creating ConfigMaps, then `ferry server --restore-from` in a fresh data directory must serve
//! exactly the objects the snapshot's revision held, with their resourceVersions, and answer
//! a watch from an older revision with 410 Gone.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, Ferry};
use serde_json::Value;

fn ferry(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .expect("run ferry");
    assert!(
        out.status.success(),
        "ferry {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The items of a raw list, by name.
fn items(ferry: &Ferry, path: &str) -> Vec<(String, Value)> {
    let list: Value = serde_json::from_str(&ferry.ok(&["get", "--raw", path])).expect("a list");
    let mut items: Vec<(String, Value)> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            (name.to_string(), item.clone())
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

const KINDS: [&str; 4] = ["configmaps", "secrets", "serviceaccounts", "services"];

#[test]
fn a_snapshot_under_writes_restores_every_object_at_its_revision() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (old_dir, new_dir, snapshots) = (
        tmp.path().join("old"),
        tmp.path().join("new"),
        tmp.path().join("snapshots"),
    );
    let old = Ferry::start_in(&old_dir, &["--disable-snapshots"]);
    old.ok(&["create", "namespace", "snap"]);
    old.ok(&[
        "create",
        "-n",
        "snap",
        "secret",
        "generic",
        "s1",
        "--from-literal=k=v",
    ]);
    old.ok(&[
        "create",
        "-n",
        "snap",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
    ]);
    old.ok(&[
        "create",
        "-n",
        "snap",
        "configmap",
        "first",
        "--from-literal=a=1",
    ]);
    let first: Value =
        serde_json::from_str(&old.ok(&["get", "-n", "snap", "configmap", "first", "-o", "json"]))
            .expect("json");
    let first_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .to_string();
    old.ok(&["label", "-n", "snap", "configmap", "first", "changed=yes"]);
    old.ok(&["delete", "-n", "snap", "secret", "s1"]);
    assert!(
        eventually(Duration::from_secs(10), || old
            .kubectl(&["get", "-n", "snap", "serviceaccount", "default"])
            .status
            .success()),
        "the default ServiceAccount"
    );

    // A writer creating ConfigMaps before, during and after the snapshot.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let kubeconfig = old.kubeconfig.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = written.load(Ordering::Relaxed);
                let status = Command::new("kubectl")
                    .env("KUBECONFIG", &kubeconfig)
                    .args(["create", "-n", "snap", "configmap", &format!("w-{n}")])
                    .arg(format!("--from-literal=n={n}"))
                    .output()
                    .expect("run kubectl");
                if status.status.success() {
                    written.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    assert!(eventually(Duration::from_secs(20), || written
        .load(Ordering::Relaxed)
        >= 3));
    let saved = ferry(&[
        "snapshot",
        "save",
        "--data-dir",
        old_dir.to_str().expect("path"),
        "--dir",
        snapshots.to_str().expect("path"),
        "--name",
        "under-load",
    ]);
    let before = written.load(Ordering::Relaxed);
    assert!(eventually(Duration::from_secs(20), || written
        .load(Ordering::Relaxed)
        >= before + 3));
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");

    // "Snapshot <path> saved at revision <R> (<n> bytes)"
    let words: Vec<&str> = saved.split_whitespace().collect();
    let (file, revision) = (words[1].to_string(), words[5].to_string());
    assert!(Path::new(&file).starts_with(&snapshots), "{saved}");
    let listed = ferry(&["snapshot", "ls", "--dir", snapshots.to_str().expect("path")]);
    let name = Path::new(&file)
        .file_name()
        .expect("name")
        .to_string_lossy();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&*name) && l.split_whitespace().nth(1) == Some(&*revision)),
        "{listed}"
    );

    // What the snapshot's revision held, read from the old server at that revision.
    let at_snapshot: Vec<Vec<(String, Value)>> = KINDS
        .iter()
        .map(|kind| {
            items(
                &old,
                &format!(
                    "/api/v1/namespaces/snap/{kind}?resourceVersion={revision}&resourceVersionMatch=Exact"
                ),
            )
        })
        .collect();
    let writes_in = at_snapshot[0]
        .iter()
        .filter(|(n, _)| n.starts_with("w-"))
        .count();
    assert!(
        writes_in >= 3 && writes_in < written.load(Ordering::Relaxed),
        "the snapshot holds {writes_in} of {} writes",
        written.load(Ordering::Relaxed)
    );
    drop(old);

    // The same cluster identity (CA, service-account key), a fresh store from the snapshot.
    std::fs::create_dir_all(new_dir.join("tls")).expect("mkdir");
    for entry in std::fs::read_dir(old_dir.join("tls")).expect("tls") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), new_dir.join("tls").join(entry.file_name())).expect("copy");
    }
    let new = Ferry::start_in(&new_dir, &["--disable-snapshots", "--restore-from", &file]);
    for (kind, want) in KINDS.iter().zip(&at_snapshot) {
        let got = items(&new, &format!("/api/v1/namespaces/snap/{kind}"));
        assert_eq!(
            got.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            want.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "{kind}"
        );
        for ((name, got), (_, want)) in got.iter().zip(want) {
            assert_eq!(got, want, "{kind} {name}");
        }
    }

    // Watches from before the restore get 410 Gone; new writes get newer resourceVersions.
    for from in [first_rv.as_str(), revision.as_str()] {
        let out = new.ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/snap/configmaps?watch=1&resourceVersion={from}&timeoutSeconds=5"),
        ]);
        assert!(out.contains("\"code\":410"), "watch from {from}: {out}");
    }
    new.ok(&["create", "-n", "snap", "configmap", "after"]);
    let after: Value =
        serde_json::from_str(&new.ok(&["get", "-n", "snap", "configmap", "after", "-o", "json"]))
            .expect("json");
    let after_rv: i64 = after["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .expect("resourceVersion");
    assert!(after_rv > revision.parse::<i64>().expect("revision"));
}

#[test]
fn a_damaged_snapshot_is_refused_and_save_needs_a_running_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("not-a-snapshot");
    std::fs::write(&file, "apiVersion: v1\n").expect("write");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["server", "--disable-agent", "--cluster-dns-port=0"])
        .args(["--https-listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--restore-from")
        .arg(&file)
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ferry");
    // It must refuse at once; a server that started anyway is stopped, by pid, and fails.
    let exited = eventually(Duration::from_secs(20), || {
        matches!(server.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = server.kill();
    }
    let out = server.wait_with_output().expect("wait");
    assert!(exited, "the server started from a file that is no snapshot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a usable ferry snapshot"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["snapshot", "save", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run ferry");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no server answers"), "{stderr}");
}

//! The official Python client (`kubernetes` from PyPI) against a real `ferry server`: the pytest
//! suite in tests/python/ (what needs no kubelet). Needs the client and pytest: scripts/test.sh
//! installs them into target/python and runs this with `--ignored`; set FERRY_PYTHON to another
//! interpreter that has them.

mod common;

use std::process::Command;

use common::Ferry;

#[test]
#[ignore = "needs the Python client and pytest: scripts/test.sh installs them and runs it"]
fn official_python_client() {
    let ferry = Ferry::start();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("FERRY_PYTHON").unwrap_or_else(|_| {
        manifest
            .join("../../target/python/bin/python")
            .to_string_lossy()
            .into_owned()
    });
    let status = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(manifest.join("tests/python"))
        .env("KUBECONFIG", &ferry.kubeconfig)
        .status()
        .unwrap_or_else(|e| panic!("run {python}: {e}"));
    assert!(status.success(), "the Python client's suite failed");
}

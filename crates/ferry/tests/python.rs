//! The official Python client (`kubernetes` from PyPI) against a real `ferry server`: the pytest
//! suite in tests/python/ (what needs no kubelet). Needs the client and pytest: scripts/test.sh
//! installs them into target/python and runs this with `--ignored`; set FERRY_PYTHON to another
//! interpreter that has them.

mod common;

use common::Ferry;

#[test]
#[ignore = "needs the Python client and pytest: scripts/test.sh installs them and runs it"]
fn official_python_client() {
    let ferry = Ferry::start();
    common::python_suite(&ferry, "python");
}

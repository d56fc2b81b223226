//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`):
//! `ferry_protobuf::decode`, the `k8s\0` envelope and the object inside it.
//!
//! Input: a request body.
//!
//! Holds: no panic escapes `decode` (it catches the generated serializers' own panics, as it
//! does in the server, so this target lets those unwind to it); a decoded body is an object
//! with the `apiVersion` and `kind` of its envelope, which canonicalizes.

#![no_main]

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libfuzzer_sys::fuzz_target;

thread_local! {
    /// The message of the last panic, printed when one escapes `decode`.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

fuzz_target!(
    init: {
        // libfuzzer-sys's hook aborts on any panic, even one `decode` catches: remember the
        // message instead, and abort below only when a panic escapes.
        std::panic::set_hook(Box::new(|info| {
            LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
        }));
    },
    |data: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| check(data))).is_err() {
            LAST_PANIC.with(|last| eprintln!("panic escaped: {}", last.borrow()));
            std::process::abort();
        }
    }
);

fn check(data: &[u8]) {
    let Ok(object) = ferry_protobuf::decode(data) else {
        return;
    };
    assert!(object["apiVersion"].is_string(), "no apiVersion: {object}");
    assert!(object["kind"].is_string(), "no kind: {object}");
    let (group, version, kind) = ferry_fuzz::gvk(&object);
    if let Err(e) = ferry_api::kinds::canonical(&group, &version, &kind, object.clone()) {
        panic!("decoded {kind} does not canonicalize: {e}: {object}");
    }
}

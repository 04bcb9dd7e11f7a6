//! Hand-written components (WebAssembly text) for attacks a Rust guest cannot express.

mod common;

use std::time::Duration;

use common::{device, manifest, wait_until};
use ferro_runtime::{ErrorKind, InstallError, InstallOptions};

fn component(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid component text")
}

/// A command whose memory is declared empty and grows by `pages` in `run`.
fn grower(pages: u32) -> Vec<u8> {
    component(&format!(
        r#"(component
            (core module $m
                (memory (export "memory") 0)
                (func (export "run") (result i32)
                    (drop (memory.grow (i32.const {pages})))
                    (i32.const 0)))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $run-instance (export "run" (func $run)))
            (export "wasi:cli/run@0.2.6" (instance $run-instance)))"#
    ))
}

#[test]
fn an_empty_initial_memory_cannot_grow_past_the_allowance() {
    let device = device();
    // 32 pages = 2 MiB, far beyond the 256 KiB allowance, in one growth from 0 after start.
    let app = device
        .runtime
        .install(&grower(32), &manifest("hello"), InstallOptions::default())
        .expect("install");
    let event = wait_until(Duration::from_secs(30), || {
        device
            .runtime
            .recent_events()
            .into_iter()
            .find(|event| event.app == app)
    })
    .expect("an event");
    assert_eq!(
        event.kind,
        ErrorKind::MemoryLimit {
            limit_bytes: 256 * 1024
        }
    );
    let stats = device.runtime.memory_stats(app).unwrap();
    assert_eq!(stats.image_bytes, 0);
    assert_eq!(stats.peak_bytes, 0);
}

#[test]
fn growth_within_the_allowance_is_allowed() {
    let device = device();
    // 4 pages = 256 KiB: exactly the allowance; the command then returns Ok.
    let app = device
        .runtime
        .install(&grower(4), &manifest("hello"), InstallOptions::default())
        .expect("install");
    let event = wait_until(Duration::from_secs(30), || {
        device
            .runtime
            .recent_events()
            .into_iter()
            .find(|event| event.app == app)
    })
    .expect("an event");
    assert_eq!(event.kind, ErrorKind::Exited { code: 0 });
    assert_eq!(
        device.runtime.memory_stats(app).unwrap().peak_bytes,
        256 * 1024
    );
}

#[test]
fn an_image_memory_above_the_cap_does_not_start() {
    let device = device();
    // 512 pages = 32 MiB of initial memory; the cap is 16 MiB.
    let text = r#"(component
        (core module $m
            (memory (export "memory") 512)
            (func (export "run") (result i32) (i32.const 0)))
        (core instance $i (instantiate $m))
        (func $run (result (result)) (canon lift (core func $i "run")))
        (instance $run-instance (export "run" (func $run)))
        (export "wasi:cli/run@0.2.6" (instance $run-instance)))"#;
    let app = device
        .runtime
        .install(
            &component(text),
            &manifest("hello"),
            InstallOptions::default(),
        )
        .expect("install");
    let event = wait_until(Duration::from_secs(30), || {
        device
            .runtime
            .recent_events()
            .into_iter()
            .find(|event| event.app == app)
    })
    .expect("an event");
    let ErrorKind::StartFailed { reason } = &event.kind else {
        panic!("{event:?}");
    };
    assert!(reason.contains("initial memory"), "{reason}");
}

#[test]
fn an_unknown_import_is_refused_by_name() {
    let device = device();
    let text = r#"(component
        (import "evil:host/backdoor" (instance $b (export "open" (func))))
        (core module $m (func (export "run") (result i32) (i32.const 0)))
        (core instance $i (instantiate $m))
        (func $run (result (result)) (canon lift (core func $i "run")))
        (instance $run-instance (export "run" (func $run)))
        (export "wasi:cli/run@0.2.6" (instance $run-instance)))"#;
    let error = device
        .runtime
        .install(
            &component(text),
            &manifest("hello"),
            InstallOptions::default(),
        )
        .unwrap_err();
    let InstallError::ImportNotGranted { import, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(import, "evil:host/backdoor");
    // A device interface that does not exist in the world.
    let text = r#"(component
        (import "ferrosphere:device/secrets@0.1.0" (instance $b (export "read" (func))))
        (core module $m (func (export "run") (result i32) (i32.const 0)))
        (core instance $i (instantiate $m))
        (func $run (result (result)) (canon lift (core func $i "run")))
        (instance $run-instance (export "run" (func $run)))
        (export "wasi:cli/run@0.2.6" (instance $run-instance)))"#;
    let error = device
        .runtime
        .install(
            &component(text),
            &manifest("hello"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is not part of the ferrosphere:device world"),
        "{error}"
    );
}

#[test]
fn a_granted_interface_with_the_wrong_type_fails_to_link() {
    let device = device();
    // `gpio` is granted by blink's manifest, but this import's `close` has the wrong type.
    let text = r#"(component
        (import "ferrosphere:device/gpio@0.1.0" (instance $g (export "close" (func (param "pin" string)))))
        (core module $m (func (export "run") (result i32) (i32.const 0)))
        (core instance $i (instantiate $m))
        (func $run (result (result)) (canon lift (core func $i "run")))
        (instance $run-instance (export "run" (func $run)))
        (export "wasi:cli/run@0.2.6" (instance $run-instance)))"#;
    let error = device
        .runtime
        .install(
            &component(text),
            &manifest("blink"),
            InstallOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(error, InstallError::Link(_)), "{error}");
}

#[test]
fn holding_more_wasi_resources_than_the_cap_traps() {
    let device = device();
    // Calls wasi:cli/stdout.get-stdout 5000 times without dropping a handle: each call makes
    // the host allocate an output stream. The cap (1024) ends the instance.
    let text = r#"(component
        (import "wasi:io/streams@0.2.6" (instance $streams
            (export "output-stream" (type (sub resource)))))
        (alias export $streams "output-stream" (type $output-stream))
        (import "wasi:cli/stdout@0.2.6" (instance $stdout
            (alias outer 1 $output-stream (type $os))
            (export "output-stream" (type $exported (eq $os)))
            (export "get-stdout" (func (result (own $exported))))))
        (core func $get-stdout (canon lower (func $stdout "get-stdout")))
        (core module $m
            (import "host" "get-stdout" (func $get (result i32)))
            (func (export "run") (result i32)
                (local $i i32)
                (loop $again
                    (drop (call $get))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $again (i32.lt_u (local.get $i) (i32.const 5000))))
                (i32.const 0)))
        (core instance $host (export "get-stdout" (func $get-stdout)))
        (core instance $i (instantiate $m (with "host" (instance $host))))
        (func $run (result (result)) (canon lift (core func $i "run")))
        (instance $run-instance (export "run" (func $run)))
        (export "wasi:cli/run@0.2.6" (instance $run-instance)))"#;
    let app = device
        .runtime
        .install(
            &component(text),
            &manifest("hello"),
            InstallOptions::default(),
        )
        .expect("install");
    let event = wait_until(Duration::from_secs(30), || {
        device
            .runtime
            .recent_events()
            .into_iter()
            .find(|event| event.app == app)
    })
    .expect("an event");
    let ErrorKind::Trapped { reason } = &event.kind else {
        panic!("{event:?}");
    };
    eprintln!("trap reason: {reason}");
    assert!(reason.contains("table"), "{reason}");
    // The same guest under a cap above 5000 runs to completion: the cap is what stopped it.
    let roomy = common::device_with(|config| config.limits.max_host_resources = 10_000);
    let app = roomy
        .runtime
        .install(
            &component(text),
            &manifest("hello"),
            InstallOptions::default(),
        )
        .expect("install");
    let event = wait_until(Duration::from_secs(30), || {
        roomy
            .runtime
            .recent_events()
            .into_iter()
            .find(|event| event.app == app)
    })
    .expect("an event");
    assert_eq!(event.kind, ErrorKind::Exited { code: 0 });
}

//! The QEMU harness checks itself: a timeout and an unexpected fault report must fail the test
//! with the serial log in the message, and QEMU must be gone once the machine is dropped.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use tools::qemu::{Machine, Options};

/// Runs `f`, which must panic, and returns its panic message.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).expect_err("the harness should fail");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn failures_carry_the_serial_log() {
    // The expected panics below would print their messages; keep the output readable.
    panic::set_hook(Box::new(|_| {}));
    let mut m = Machine::boot(Options::bios().smp(1));
    let timeout = panic_message(|| {
        m.wait_for("text the kernel never prints", Duration::from_secs(1));
    });
    let unexpected = panic_message(|| {
        m.command("fault ud");
    });
    drop(m);
    let _ = panic::take_hook();

    assert!(
        timeout.contains("timed out after") && timeout.contains("text the kernel never prints"),
        "a timeout should say what was awaited: {timeout}"
    );
    assert!(
        timeout.contains("--- serial log") && timeout.contains("atoll> "),
        "a timeout should carry the serial log: {timeout}"
    );
    assert!(
        unexpected.contains("the guest reported a fault"),
        "an unexpected fault report should fail the test: {unexpected}"
    );
    assert!(
        unexpected.contains("*** EXCEPTION") && unexpected.contains("*** halted"),
        "the failure should show the whole fault report: {unexpected}"
    );
}

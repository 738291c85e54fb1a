//! The console: Xen's `console_io` once allowed, the arch early console before (and
//! without Xen); plus the `log` backend that writes through it.

use crate::arch::{Arch, Current};
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

static USE_XEN: AtomicBool = AtomicBool::new(false);

/// Switches the console to `HYPERVISOR_console_io` (hypercalls must work).
pub fn use_xen_console() {
    USE_XEN.store(true, Ordering::Release);
}

/// Writes raw bytes to the current console.
pub fn write_bytes(bytes: &[u8]) {
    if USE_XEN.load(Ordering::Acquire) {
        crate::xen::console::write(bytes);
    } else {
        Current::early_console_write(bytes);
    }
}

/// A `fmt::Write` handle on the console (stateless; lines may interleave only with traps).
pub struct Writer;

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            use fmt::Write as _;
            // Nowhere to report a console failure.
            let _ = writeln!(Writer, "[{:5}] {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Installs the logger at `level`.
pub fn init_log(level: log::LevelFilter) {
    // A second call (impossible at boot) would only keep the first logger.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

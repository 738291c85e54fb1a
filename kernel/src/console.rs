//! The console: Xen's `console_io` once allowed, the arch early console before (and
//! without Xen); plus the `log` backend that writes through it.

use crate::arch::{Arch, Current};
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;

static USE_XEN: AtomicBool = AtomicBool::new(false);

/// The longest line handed to Xen in one `console_io` write.
const LINE_BYTES: usize = 512;

/// The line being gathered for Xen's console. A line split over several `console_io`
/// writes can come out cut in two: Xen tracks line starts per physical CPU, and our vcpu
/// may move between the writes (seen on Xen 4.22 as a `(XEN) ` in the middle of a line).
static LINE: Mutex<heapless::Vec<u8, LINE_BYTES>> = Mutex::new(heapless::Vec::new());

/// Switches the console to `HYPERVISOR_console_io` (hypercalls must work).
pub fn use_xen_console() {
    USE_XEN.store(true, Ordering::Release);
}

/// Writes raw bytes to the current console. On Xen's console, whole lines go out in one
/// write each (a line longer than [`LINE_BYTES`] in several).
pub fn write_bytes(bytes: &[u8]) {
    if !USE_XEN.load(Ordering::Acquire) {
        Current::early_console_write(bytes);
        return;
    }
    // Held only here; a trap that reports while a line is half gathered writes directly.
    let Some(mut line) = LINE.try_lock() else {
        crate::xen::console::write(bytes);
        return;
    };
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        if line.len() + piece.len() > LINE_BYTES {
            flush(&mut line);
        }
        if line.extend_from_slice(piece).is_err() {
            // Longer than a whole line buffer: it goes out as it is.
            crate::xen::console::write(piece);
        } else if piece.ends_with(b"\n") {
            flush(&mut line);
        }
    }
}

fn flush(line: &mut heapless::Vec<u8, LINE_BYTES>) {
    if !line.is_empty() {
        crate::xen::console::write(line);
        line.clear();
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

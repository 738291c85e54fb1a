//! Panics: print location and message, then shut down with the crash code.

use core::fmt::Write;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // Nowhere to report a console failure.
    let _ = writeln!(crate::console::Writer, "\nPANIC: {info}");
    crate::kmain::fatal_stop()
}

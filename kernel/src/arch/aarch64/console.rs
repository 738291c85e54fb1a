//! The console that works without Xen's help: a PL011 (QEMU `-M virt`) or Xen's vpl011
//! (dom0less domU), whichever the device tree shows; as dom0 (no UART of our own) it
//! falls back to `HYPERVISOR_console_io`. Until the device tree is read, output is dropped.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// PL011 base address; 0 while unknown or absent.
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
/// Whether `HYPERVISOR_console_io` is the fallback (Xen present, no UART of ours).
static XEN_CONSOLE: AtomicBool = AtomicBool::new(false);

const UART_DR: usize = 0x00;
const UART_FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Selects the console: a PL011 at `uart` (identity mapped device memory), or none;
/// `xen_fallback` makes `console_io` the console when there is no UART.
pub fn select(uart: Option<usize>, xen_fallback: bool) {
    UART_BASE.store(uart.unwrap_or(0), Ordering::Release);
    XEN_CONSOLE.store(xen_fallback && uart.is_none(), Ordering::Release);
}

/// Writes `bytes` to the selected console.
pub fn write(bytes: &[u8]) {
    let base = UART_BASE.load(Ordering::Acquire);
    if base != 0 {
        for &byte in bytes {
            pl011_put(base, byte);
        }
    } else if XEN_CONSOLE.load(Ordering::Acquire) {
        crate::xen::console::write(bytes);
    }
}

/// Polls of a full transmit FIFO before a byte is dropped: a UART that never drains (or
/// a device tree naming one that is not there) costs some output, never the whole run.
const TX_FULL_POLLS: u32 = 1 << 20;

fn pl011_put(base: usize, byte: u8) {
    // SAFETY: `base` came from the device tree's PL011/SBSA UART node; the whole first
    // GiB is identity mapped as device memory by entry.S, and FR/DR are 32-bit registers.
    unsafe {
        let mut polls = 0;
        while core::ptr::read_volatile((base + UART_FR) as *const u32) & FR_TXFF != 0 {
            polls += 1;
            if polls >= TX_FULL_POLLS {
                return;
            }
            core::hint::spin_loop();
        }
        core::ptr::write_volatile((base + UART_DR) as *mut u32, u32::from(byte));
    }
}

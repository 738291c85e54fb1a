//! x86_64 (PVH): boot, console, traps, hypercall page, grant-window paging.

mod boot;
mod console;
mod cpu;
mod hypercall;
mod paging;
mod traps;

use crate::arch::Arch;

/// The x86_64 implementation of [`Arch`].
pub struct X86_64;

/// QEMU's `isa-debug-exit` port (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`):
/// writing `v` makes QEMU exit with status `(v << 1) | 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

impl Arch for X86_64 {
    const NAME: &'static str = "x86_64";
    /// 8 GiB: above the identity-mapped 4 GiB and the grant window (PDPT entry 8 is empty).
    const UNMAPPED_VA: usize = 0x2_0000_0000;

    fn early_console_write(bytes: &[u8]) {
        console::write(bytes);
    }

    unsafe fn hypercall(op: u32, args: [u64; 5]) -> i64 {
        // SAFETY: forwarded contract.
        unsafe { hypercall::hypercall5(op, args) }
    }

    fn exit_without_xen(code: u8) -> ! {
        // SAFETY: the debug-exit port only ends QEMU; absent elsewhere, then we halt.
        unsafe { cpu::outb(DEBUG_EXIT_PORT, code) };
        cpu::halt_forever()
    }

    fn halt() -> ! {
        cpu::halt_forever()
    }

    fn window_va(slot: usize) -> usize {
        paging::window_va(slot)
    }

    unsafe fn map_window_page(slot: usize, gpa: u64, writable: bool) {
        // SAFETY: forwarded contract.
        unsafe { paging::map(slot, gpa, writable) }
    }

    unsafe fn unmap_window_pages(slots: impl Iterator<Item = usize> + Clone) {
        for slot in slots {
            // SAFETY: forwarded contract; invlpg is local and needs no batch barrier.
            unsafe { paging::unmap(slot) }
        }
    }
}

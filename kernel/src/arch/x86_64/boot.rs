//! From the PVH entry (boot/x86_64/entry.s) to `kernel_main`: traps, console, Xen
//! detection, and the boot information from `hvm_start_info`.

use super::{console, hypercall, paging, traps};
use crate::arch::{BootInfo, RamRegion, PAGE_SIZE};
use crate::xen::abi::start_info::{
    HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, HVM_START_MAGIC, XEN_HVM_MEMMAP_TYPE_RAM,
};

core::arch::global_asm!(
    include_str!("../../../../boot/x86_64/entry.s"),
    options(att_syntax, raw)
);

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// Longest command line we keep (the rest is cut).
const CMDLINE_MAX: usize = 512;

static mut CMDLINE: [u8; CMDLINE_MAX] = [0; CMDLINE_MAX];

/// Called by entry.s in long mode with the identity map on and `.bss` zeroed.
#[no_mangle]
extern "C" fn x86_64_rust_entry(start_info_paddr: u64) -> ! {
    // SAFETY: first Rust code on the only CPU; the tables are set up once here.
    unsafe { traps::init() };
    console::init();
    paging::init();
    let xen = hypercall::detect_and_init();
    let mut boot = BootInfo {
        cmdline: "",
        ram: heapless::Vec::new(),
        reserved: heapless::Vec::new(),
        xen,
        // Common code still checks that Xen allows it (dom0 yes; a domU of a release
        // Xen no: it keeps port 0xe9, which Xen logs as "(dN) ..." with guest_loglvl=all).
        xen_console: xen,
        grant_window_gpa: paging::WINDOW_BASE,
        host_virtio: heapless::Vec::new(),
        gic_distributor: 0,
        dtb: &[],
    };
    // Taking the address of a linker symbol reads nothing.
    let image_start = core::ptr::addr_of!(__image_start) as u64;
    let image_end = core::ptr::addr_of!(__image_end) as u64;
    // Low memory holds BIOS/ACPI leftovers; never hand it out.
    let _ = boot.reserved.push(RamRegion {
        start: 0,
        len: 0x10_0000,
    });
    let _ = boot.reserved.push(RamRegion {
        start: image_start,
        len: image_end - image_start,
    });
    read_start_info(start_info_paddr, &mut boot);
    crate::kernel_main(boot)
}

/// Fills the command line, memory map and reservations from `hvm_start_info`.
fn read_start_info(paddr: u64, boot: &mut BootInfo) {
    if paddr == 0 {
        return;
    }
    // SAFETY: PVH guarantees %ebx points to a valid hvm_start_info in identity-mapped RAM.
    let info = unsafe { core::ptr::read_unaligned(paddr as *const HvmStartInfo) };
    if info.magic != HVM_START_MAGIC {
        return;
    }
    // The start info, module list and strings sit together right after the image: keep
    // the pages holding them.
    let _ = boot.reserved.push(page_span(
        paddr,
        core::mem::size_of::<HvmStartInfo>() as u64,
    ));
    if info.cmdline_paddr != 0 {
        boot.cmdline = copy_cmdline(info.cmdline_paddr);
        let _ = boot
            .reserved
            .push(page_span(info.cmdline_paddr, CMDLINE_MAX as u64));
    }
    reserve_modules(&info, boot);
    if info.version >= 1 && info.memmap_paddr != 0 {
        let entry_size = core::mem::size_of::<HvmMemmapTableEntry>() as u64;
        for i in 0..u64::from(info.memmap_entries) {
            // SAFETY: version >= 1 promises memmap_entries valid entries at memmap_paddr.
            let entry = unsafe {
                core::ptr::read_unaligned(
                    (info.memmap_paddr + i * entry_size) as *const HvmMemmapTableEntry,
                )
            };
            if entry.type_ == XEN_HVM_MEMMAP_TYPE_RAM {
                let _ = boot.ram.push(RamRegion {
                    start: entry.addr,
                    len: entry.size,
                });
            }
        }
    }
}

/// Keeps boot modules (and their list) away from the frame allocator.
fn reserve_modules(info: &HvmStartInfo, boot: &mut BootInfo) {
    if info.nr_modules == 0 || info.modlist_paddr == 0 {
        return;
    }
    let entry_size = core::mem::size_of::<HvmModlistEntry>() as u64;
    let list_len = u64::from(info.nr_modules) * entry_size;
    let _ = boot.reserved.push(page_span(info.modlist_paddr, list_len));
    for i in 0..u64::from(info.nr_modules) {
        // SAFETY: PVH promises nr_modules entries at modlist_paddr (identity-mapped RAM).
        let module = unsafe {
            core::ptr::read_unaligned(
                (info.modlist_paddr + i * entry_size) as *const HvmModlistEntry,
            )
        };
        if boot
            .reserved
            .push(page_span(module.paddr, module.size))
            .is_err()
        {
            return;
        }
    }
}

/// Copies the NUL-terminated command line into our own buffer (the original page may be
/// reused), keeping valid UTF-8 only.
fn copy_cmdline(paddr: u64) -> &'static str {
    // SAFETY: CMDLINE is written only here, once, before anything reads it; the source
    // string is in identity-mapped memory the boot protocol hands us.
    let buffer = unsafe { &mut *core::ptr::addr_of_mut!(CMDLINE) };
    let mut len = 0;
    for (i, slot) in buffer.iter_mut().enumerate().take(CMDLINE_MAX - 1) {
        // SAFETY: see above; we stop at the terminating NUL.
        let byte = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u8) };
        if byte == 0 {
            break;
        }
        *slot = byte;
        len = i + 1;
    }
    let bytes = buffer.get(..len).unwrap_or(&[]);
    core::str::from_utf8(bytes).unwrap_or("")
}

fn page_span(start: u64, len: u64) -> RamRegion {
    let page = PAGE_SIZE as u64;
    let first = start & !(page - 1);
    let end = (start + len).div_ceil(page) * page;
    RamRegion {
        start: first,
        len: end - first,
    }
}

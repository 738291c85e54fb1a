//! The per-architecture interface: everything the common kernel needs from the CPU.
//!
//! Each architecture lives in its own module (`x86_64/`, `aarch64/`) and provides a
//! zero-sized type implementing [`Arch`], re-exported here as [`Current`]. Common code
//! calls the CPU only through `Current` (e.g. `arch::Current::hypercall(...)`), so a new
//! architecture is one module plus one `cfg` line below; the compiler checks that it
//! provides every item with the right signature.
//!
//! # Boot contract
//! The arch entry code (`boot/<arch>/`) brings the CPU to a state where Rust can run
//! (64-bit mode, MMU on with an identity map of RAM, SIMD usable, a stack, `.bss` zeroed),
//! installs its trap handlers, fills a [`BootInfo`] and calls [`crate::kernel_main`] (which
//! never returns). Before that call it may only use [`Arch::early_console_write`].
//!
//! # Grant window
//! Xen places a foreign page (grant map), a grant-table frame or the shared-info page
//! (add_to_physmap) at a guest-physical address chosen by us: [`BootInfo::grant_window_gpa`] .. `+ GRANT_WINDOW_SLOTS
//! * PAGE_SIZE`, an address range that is **not RAM** and not a device in our physmap.
//! The arch code maps slot `i` (gpa `grant_window_gpa + i * PAGE_SIZE`) at virtual address
//! [`Arch::window_va`]`(i)` on request, with TLB maintenance, and unmaps it again.

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::X86_64 as Current;

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
pub use self::aarch64::counter_ns;
/// A host device's interrupt as a wake-up of `SCHEDOP_poll` (arm64: the GIC; x86: none
/// yet, host devices are not probed there).
#[cfg(target_arch = "aarch64")]
pub use self::aarch64::gic as host_irq;
/// Device-register accesses that report a fault instead of crashing (arm64 only).
#[cfg(target_arch = "aarch64")]
pub use self::aarch64::probe;
#[cfg(target_arch = "aarch64")]
pub use self::aarch64::Aarch64 as Current;
#[cfg(target_arch = "x86_64")]
pub mod host_irq {
    pub fn init(_distributor: usize) {}
    pub fn enable_spi(_intid: u32) -> bool {
        false
    }
    pub fn acknowledge_all(_intid: u32, _quiet_device: impl FnMut()) -> usize {
        0
    }
}

/// Page size shared by every architecture stubvirt supports (and by Xen's grant ABI).
pub const PAGE_SIZE: usize = 4096;

/// Number of page slots in the grant window (grant-table frames + mapped foreign pages).
pub const GRANT_WINDOW_SLOTS: usize = 512;

/// A range of guest-physical RAM usable by the frame allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRegion {
    pub start: u64,
    pub len: u64,
}

/// What the arch boot code hands to [`crate::kernel_main`].
#[derive(Debug)]
pub struct BootInfo {
    /// Kernel command line (PVH `hvm_start_info.cmdline_paddr`, DT `/chosen/bootargs`);
    /// empty when none. Parsed by common code (`loglevel=debug`, ...).
    pub cmdline: &'static str,
    /// Usable RAM as the boot protocol reported it. May be empty: then common code asks
    /// Xen (`XENMEM_memory_map`), as PVH under Xen 4.17 passes no memory map.
    pub ram: heapless::Vec<RamRegion, 32>,
    /// Guest-physical ranges inside `ram` that are in use already and must never be handed
    /// out: the image itself, boot stacks, start info, device tree, boot modules, page
    /// tables built by the boot code.
    pub reserved: heapless::Vec<RamRegion, 16>,
    /// Whether Xen was detected and the hypercall path is ready ([`Arch::hypercall`] works).
    pub xen: bool,
    /// Whether `HYPERVISOR_console_io` should be tried for the console; common code then
    /// checks Xen allows it (dom0, or a debug Xen). Otherwise the console is
    /// [`Arch::early_console_write`].
    pub xen_console: bool,
    /// First guest-physical address of the grant window (page aligned, not RAM).
    pub grant_window_gpa: u64,
    /// The host's own virtio-mmio register windows (arm64: `virtio,mmio` nodes of the
    /// device tree, which Xen passes to dom0 with the host's devices). Empty on x86.
    pub host_virtio: heapless::Vec<HostMmio, 32>,
    /// The interrupt controller's distributor (arm64: the `arm,gic-v3` node), 0 if none.
    pub gic_distributor: u64,
    /// The device tree blob (arm64), read again by serve mode for its topology node;
    /// empty on x86.
    pub dtb: &'static [u8],
}

/// A device register window of the host and the interrupt it raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMmio {
    pub start: u64,
    pub len: u64,
    /// GIC INTID of its first interrupt (an SPI: 32 + the device tree's number), if any.
    pub intid: Option<u32>,
}

/// Everything an architecture provides. All functions are called on the boot CPU only.
pub trait Arch {
    /// Architecture name as printed in the banner and the self-test line ("x86_64", "arm64").
    const NAME: &'static str;

    /// Writes bytes to the console that works without Xen's help (x86: port 0xe9 and
    /// COM1; arm64: PL011 / vpl011). Must work from the first instruction of Rust code.
    fn early_console_write(bytes: &[u8]);

    /// Issues a Xen hypercall with up to five arguments (unused ones are 0) and returns
    /// Xen's result (negative errno on failure).
    ///
    /// # Safety
    /// The caller guarantees that every argument Xen will interpret as a guest address
    /// points to memory valid for the access that hypercall performs, for its duration.
    /// Only callable when [`BootInfo::xen`] is true.
    unsafe fn hypercall(op: u32, args: [u64; 5]) -> i64;

    /// Stops the machine without Xen (QEMU `isa-debug-exit` / PSCI SYSTEM_OFF) with an exit
    /// code, or halts forever when there is no way out. Under Xen common code uses
    /// `SCHEDOP_shutdown` instead.
    fn exit_without_xen(code: u8) -> !;

    /// Stops this CPU forever with interrupts masked (last resort after a fatal error).
    fn halt() -> !;

    /// A virtual address that is never mapped: the `crashtest=fault` boot option reads it
    /// to check the exception report.
    const UNMAPPED_VA: usize;

    /// Virtual address of grant-window slot `slot` (< [`GRANT_WINDOW_SLOTS`]).
    fn window_va(slot: usize) -> usize;

    /// Maps grant-window slot `slot` to guest-physical `gpa` (normal cacheable memory,
    /// no execute; read-only unless `writable`) and makes the mapping visible (TLB).
    ///
    /// # Safety
    /// `gpa` must be a page Xen has placed (or will place before any access) in our
    /// physmap; the slot must not be mapped already.
    unsafe fn map_window_page(slot: usize, gpa: u64, writable: bool);

    /// Removes the mappings of `slots` and invalidates them in the TLB, so no stale
    /// translation survives the grant unmap that follows. A batch waits for its TLB
    /// maintenance once, not once per page.
    ///
    /// # Safety
    /// No reference into the slots' pages may be live.
    unsafe fn unmap_window_pages(slots: impl Iterator<Item = usize> + Clone);
}

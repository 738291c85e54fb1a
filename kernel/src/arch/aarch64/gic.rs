//! Just enough of the GICv3 (Xen's virtual one) for a host device's interrupt to end
//! `SCHEDOP_poll`: the SPI is enabled and routed to vcpu 0 in the distributor, and the CPU
//! interface accepts group 1. stubvirt keeps IRQs masked in PSTATE and takes no exception:
//! Xen wakes a polling vcpu whenever it injects an interrupt into it, and the loop then
//! acknowledges what is pending ([`acknowledge_all`]), which also deactivates the
//! physical interrupt behind it so the device can raise the next one.

use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Distributor registers (GICv3 architecture spec, 12.9).
const GICD_CTLR: usize = 0x0000;
const GICD_ISENABLER: usize = 0x0100;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_IROUTER: usize = 0x6000;
const CTLR_ENABLE_GRP1A: u32 = 1 << 1;
const CTLR_ARE_NS: u32 = 1 << 4;
/// Lowest INTID of an SPI, and past the highest the architecture allows.
const FIRST_SPI: u32 = 32;
const SPI_LIMIT: u32 = 1020;
/// INTIDs 1020..1023 are special (1023: nothing pending).
const SPECIAL: u64 = 1020;
/// Acknowledgements per call: bounded work even if something kept reasserting.
const MAX_ACKS: usize = 32;

static DISTRIBUTOR: AtomicUsize = AtomicUsize::new(0);

/// Uses the distributor at `gicd` (from the device tree; identity mapped as device
/// memory, the boot map's first GiB) and enables group-1 interrupts at the CPU interface.
pub fn init(gicd: usize) {
    if gicd == 0 || gicd >= 1 << 30 {
        return;
    }
    DISTRIBUTOR.store(gicd, Ordering::Release);
    // SAFETY: ICC_* system registers of our own CPU interface (Xen's virtual one; the
    // boot code runs with SRE set by Xen). PMR 0xff lets every priority through; IRQs
    // stay masked in PSTATE, so nothing is ever taken as an exception.
    unsafe {
        asm!(
            "msr icc_pmr_el1, {pmr}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_igrpen1_el1, {on}",
            "isb",
            pmr = in(reg) 0xffu64,
            on = in(reg) 1u64,
            options(nostack),
        );
    }
    let ctlr = read32(GICD_CTLR);
    write32(GICD_CTLR, ctlr | CTLR_ENABLE_GRP1A | CTLR_ARE_NS);
}

/// Enables SPI `intid` at a middle priority, routed to affinity 0.0.0.0 (our vcpu 0).
/// Returns false without a distributor or for an INTID that is not an SPI.
pub fn enable_spi(intid: u32) -> bool {
    if DISTRIBUTOR.load(Ordering::Acquire) == 0 || !(FIRST_SPI..SPI_LIMIT).contains(&intid) {
        return false;
    }
    let n = intid as usize;
    write8(GICD_IPRIORITYR + n, 0xa0);
    write64(GICD_IROUTER + 8 * n, 0);
    write32(GICD_ISENABLER + 4 * (n / 32), 1 << (n % 32));
    true
}

/// Acknowledges and ends every interrupt pending at our CPU interface (at most
/// [`MAX_ACKS`]; Xen's event-channel PPI among them, which stubvirt does not need since
/// it polls its ports); returns how many of them were `intid`.
///
/// `quiet_device` runs after `intid` is acknowledged and before it is ended: it must make
/// the device lower its level-triggered line. Ended while the line is still high, the
/// physical interrupt fires again at once, and Xen takes and injects it again, up to
/// [`MAX_ACKS`] times per call.
pub fn acknowledge_all(intid: u32, mut quiet_device: impl FnMut()) -> usize {
    if DISTRIBUTOR.load(Ordering::Acquire) == 0 {
        return 0;
    }
    let (mut count, mut wanted) = (0, 0);
    while count < MAX_ACKS {
        let iar: u64;
        // SAFETY: reading IAR acknowledges the highest pending group-1 interrupt of our
        // own CPU interface, or returns 1023; it touches no memory.
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nostack)) };
        if iar & 0xff_ffff >= SPECIAL {
            break;
        }
        let ours = iar & 0xff_ffff == u64::from(intid);
        if ours {
            quiet_device();
        }
        // SAFETY: EOImode is 0 (we never set it), so this drops the priority and
        // deactivates the interrupt we just acknowledged; Xen forwards the deactivation
        // to the physical interrupt behind it.
        unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) iar, options(nostack)) };
        count += 1;
        wanted += usize::from(ours);
    }
    wanted
}

fn register(offset: usize) -> usize {
    DISTRIBUTOR.load(Ordering::Acquire) + offset
}

fn read32(offset: usize) -> u32 {
    // SAFETY: a distributor register inside its 64 KiB frame, device memory identity
    // mapped by the boot code; `init` checked the base.
    unsafe { core::ptr::read_volatile(register(offset) as *const u32) }
}

fn write32(offset: usize, value: u32) {
    // SAFETY: as in `read32`.
    unsafe { core::ptr::write_volatile(register(offset) as *mut u32, value) }
}

fn write8(offset: usize, value: u8) {
    // SAFETY: as in `read32`; GICD_IPRIORITYR is byte-accessible.
    unsafe { core::ptr::write_volatile(register(offset) as *mut u8, value) }
}

fn write64(offset: usize, value: u64) {
    // SAFETY: as in `read32`; GICD_IROUTER<n> is a 64-bit register.
    unsafe { core::ptr::write_volatile(register(offset) as *mut u64, value) }
}

//! CPU exceptions: a GDT with a TSS, an IDT whose 32 exception gates all switch to a
//! dedicated IST stack (the interrupted code may use the red zone, and a stack fault must
//! not fault again), and a report of vector, faulting address and registers.
//!
//! Handlers never return: an exception in stubvirt is a bug, so we report and stop.

use core::arch::{asm, global_asm};
use core::fmt::Write;

global_asm!(
    r#"
.macro trap_stub vec, has_error
trap_stub_\vec:
.if \has_error == 0
    push 0
.endif
    push \vec
    jmp trap_common
.endm

.pushsection .text.traps, "ax"
.irp vec, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    trap_stub \vec, 0
.endr
.irp vec, 8,10,11,12,13,14,17,21,29,30
    trap_stub \vec, 1
.endr

trap_common:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    and rsp, -16
    call x86_64_trap
    ud2
.popsection

.pushsection .rodata.traps, "a"
.balign 8
.global trap_stub_table
trap_stub_table:
.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad trap_stub_\vec
.endr
.popsection
"#
);

extern "C" {
    static trap_stub_table: [u64; 32];
}

/// What `trap_common` leaves on the stack (lowest address first).
#[repr(C)]
pub struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 FP",
    "alignment check",
    "machine check",
    "SIMD FP",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Called by `trap_common` on the IST stack with the saved registers.
#[no_mangle]
extern "C" fn x86_64_trap(frame: &TrapFrame) -> ! {
    let name = usize::try_from(frame.vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("?");
    let mut out = crate::console::Writer;
    let f = frame;
    // Console errors cannot be reported anywhere else; ignore them.
    let _ = writeln!(
        out,
        "\nEXCEPTION vector {} ({name}) error {:#x}",
        f.vector, f.error
    );
    let _ = writeln!(
        out,
        "  rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}",
        f.rip, f.cs, f.rflags, f.rsp, f.ss
    );
    if f.vector == 14 {
        let _ = writeln!(out, "  faulting address (cr2) {:#018x}", super::cpu::cr2());
    }
    let _ = writeln!(
        out,
        "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
        f.rax, f.rbx, f.rcx, f.rdx
    );
    let _ = writeln!(
        out,
        "  rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}",
        f.rsi, f.rdi, f.rbp, f.r8
    );
    let _ = writeln!(
        out,
        "  r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}",
        f.r9, f.r10, f.r11, f.r12
    );
    let _ = writeln!(
        out,
        "  r13 {:#018x} r14 {:#018x} r15 {:#018x}",
        f.r13, f.r14, f.r15
    );
    crate::kmain::fatal_stop()
}

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C, align(16))]
struct IstStack([u8; 16 * 1024]);

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const CODE_SELECTOR: u16 = 0x08;
const TSS_SELECTOR: u16 = 0x18;
const INTERRUPT_GATE: u8 = 0x8e;

static mut IST_STACK: IstStack = IstStack([0; 16 * 1024]);
static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: core::mem::size_of::<Tss>() as u16,
};
static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];
static mut IDT: [IdtEntry; 32] = [IdtEntry {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; 32];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// Installs the GDT (with the TSS), loads the task register and the IDT.
///
/// # Safety
/// Call once, on the boot CPU, before anything else touches these tables.
pub unsafe fn init() {
    // SAFETY: single-threaded boot: nothing else references these statics yet; the
    // descriptor writes follow the SDM formats (64-bit TSS descriptor, interrupt gates).
    unsafe {
        let ist_top = core::ptr::addr_of!(IST_STACK) as u64 + 16 * 1024;
        TSS.ist[0] = ist_top;
        let tss = core::ptr::addr_of!(TSS) as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        GDT[3] = (limit & 0xffff)
            | ((tss & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((tss >> 24) & 0xff) << 56);
        GDT[4] = tss >> 32;
        let gdt = DescriptorPointer {
            limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
            base: core::ptr::addr_of!(GDT) as u64,
        };
        asm!("lgdt [{}]", in(reg) &gdt, options(readonly, nostack, preserves_flags));
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));

        let stubs = &*core::ptr::addr_of!(trap_stub_table);
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        for (entry, &stub) in idt.iter_mut().zip(stubs.iter()) {
            *entry = IdtEntry {
                offset_low: stub as u16,
                selector: CODE_SELECTOR,
                ist: 1,
                type_attr: INTERRUPT_GATE,
                offset_mid: (stub >> 16) as u16,
                offset_high: (stub >> 32) as u32,
                reserved: 0,
            };
        }
        let idtr = DescriptorPointer {
            limit: (core::mem::size_of::<[IdtEntry; 32]>() - 1) as u16,
            base: idt.as_ptr() as u64,
        };
        asm!("lidt [{}]", in(reg) &idtr, options(readonly, nostack, preserves_flags));
    }
}

/*
 * stubvirt arm64 exception vectors (VBAR_EL1). Save the general registers and hand them to
 * the Rust handler (arch/aarch64/trap.rs). It either reports the exception (vector, ESR,
 * FAR, ELR, registers) and stops, or, for the one recoverable case (a data abort of an
 * armed MMIO probe, see trap.rs), adjusts the saved ELR and returns: then the registers
 * are restored from the frame and `eret` resumes.
 *
 * Frame layout (must match `TrapFrame`): x0..x30, elr, spsr, esr, far = 35 u64 (+1 pad).
 */

    .macro ventry kind
    .balign 0x80
    sub     sp, sp, #(36 * 8)
    stp     x0, x1, [sp, #(0 * 8)]
    mov     x0, #\kind
    b       trap_common
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global exception_vectors
exception_vectors:
    ventry  0       // current EL, SP_EL0: synchronous
    ventry  1       //                    IRQ
    ventry  2       //                    FIQ
    ventry  3       //                    SError
    ventry  4       // current EL, SP_ELx: synchronous
    ventry  5       //                    IRQ
    ventry  6       //                    FIQ
    ventry  7       //                    SError
    ventry  8       // lower EL, AArch64
    ventry  9
    ventry  10
    ventry  11
    ventry  12      // lower EL, AArch32
    ventry  13
    ventry  14
    ventry  15

    /* Placed before the table (linker/aarch64.ld), in the gap its alignment leaves. */
    .section .text.trap, "ax"
trap_common:
    stp     x2, x3, [sp, #(2 * 8)]
    stp     x4, x5, [sp, #(4 * 8)]
    stp     x6, x7, [sp, #(6 * 8)]
    stp     x8, x9, [sp, #(8 * 8)]
    stp     x10, x11, [sp, #(10 * 8)]
    stp     x12, x13, [sp, #(12 * 8)]
    stp     x14, x15, [sp, #(14 * 8)]
    stp     x16, x17, [sp, #(16 * 8)]
    stp     x18, x19, [sp, #(18 * 8)]
    stp     x20, x21, [sp, #(20 * 8)]
    stp     x22, x23, [sp, #(22 * 8)]
    stp     x24, x25, [sp, #(24 * 8)]
    stp     x26, x27, [sp, #(26 * 8)]
    stp     x28, x29, [sp, #(28 * 8)]
    mrs     x9, elr_el1
    stp     x30, x9, [sp, #(30 * 8)]
    mrs     x9, spsr_el1
    mrs     x10, esr_el1
    stp     x9, x10, [sp, #(32 * 8)]
    mrs     x9, far_el1
    str     x9, [sp, #(34 * 8)]
    mov     x1, sp
    bl      aarch64_trap            // (kind, frame): returns only if recoverable
    ldp     x9, x10, [sp, #(31 * 8)]    // elr, spsr
    msr     elr_el1, x9
    msr     spsr_el1, x10
    ldp     x0, x1, [sp, #(0 * 8)]
    ldp     x2, x3, [sp, #(2 * 8)]
    ldp     x4, x5, [sp, #(4 * 8)]
    ldp     x6, x7, [sp, #(6 * 8)]
    ldp     x8, x9, [sp, #(8 * 8)]
    ldp     x10, x11, [sp, #(10 * 8)]
    ldp     x12, x13, [sp, #(12 * 8)]
    ldp     x14, x15, [sp, #(14 * 8)]
    ldp     x16, x17, [sp, #(16 * 8)]
    ldp     x18, x19, [sp, #(18 * 8)]
    ldp     x20, x21, [sp, #(20 * 8)]
    ldp     x22, x23, [sp, #(22 * 8)]
    ldp     x24, x25, [sp, #(24 * 8)]
    ldp     x26, x27, [sp, #(26 * 8)]
    ldp     x28, x29, [sp, #(28 * 8)]
    ldr     x30, [sp, #(30 * 8)]
    add     sp, sp, #(36 * 8)
    eret

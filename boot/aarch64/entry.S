/*
 * stubvirt arm64 entry: the arm64 Image header, then the code that brings the CPU from the
 * boot protocol's state (EL2 or EL1, MMU off, x0 = device tree) to Rust with the MMU on.
 *
 * Position independent until the MMU is on: only PC-relative addressing (adr/adrp).
 * The image is linked at 0 and relocates itself (packed R_AARCH64_RELATIVE) to where it runs.
 * Memory is identity mapped: level-1 table, 1 GiB blocks, T0SZ = 25 (512 GiB):
 *   entry 0        (0 .. 1 GiB)     Device-nGnRE, never executable (UARTs, GIC, ...)
 *   entries 1..255 (1 .. 256 GiB)   Normal write-back (RAM lives here on QEMU virt / Xen)
 *   entry 511                       the grant window, filled in by Rust (arch/aarch64/mmu.rs)
 */

    .section .text.head, "ax"
    .global _start
_start:
    b       primary_entry           // code0
    .long   0                       // code1
    .quad   0x80000                 // text_offset
    .quad   __image_size            // image_size (linker/aarch64.ld)
    .quad   0xa                     // flags: little endian, 4 KiB pages, anywhere in RAM
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

    .section .text.boot, "ax"
primary_entry:
    mov     x19, x0                 // device tree blob (physical address)
    adr     x20, _start             // where we run (load address)
    msr     daifset, #0xf

    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.ne    at_el1
    /* Entered at EL2 (plain QEMU with virtualization=on): drop to EL1. */
    mov     x9, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64; nothing trapped
    msr     hcr_el2, x9
    mov     x9, #3                  // CNTHCTL_EL2: EL1 may use the physical timer/counter
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mov     x9, #0x3c5              // SPSR: EL1h, DAIF masked
    msr     spsr_el2, x9
    adr     x9, at_el1
    msr     elr_el2, x9
    eret

at_el1:
    movz    x9, #0x0800             // SCTLR_EL1 reset value: MMU and caches off
    movk    x9, #0x30d0, lsl #16
    msr     sctlr_el1, x9
    mov     x9, #(3 << 20)          // CPACR_EL1.FPEN: FP/SIMD usable (Rust uses NEON)
    msr     cpacr_el1, x9
    isb

    /* .bss (including boot stack and level-1 table): invalidate stale cache lines, zero it
     * with the MMU off (non-cacheable), invalidate again so nothing stale hides it. */
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
    bl      dcache_inval_range
    mov     x2, x0
1:  stp     xzr, xzr, [x2], #16
    cmp     x2, x1
    b.lo    1b

    /* Identity map. */
    adrp    x2, __boot_l1
    add     x2, x2, :lo12:__boot_l1
    movz    x3, #0x0401             // block 0: AF | AttrIndx 0 (device) | valid block
    movk    x3, #0x0060, lsl #48    // PXN | UXN
    str     x3, [x2]
    mov     x4, #1
    mov     x5, #0x705              // AF | inner shareable | AttrIndx 1 (normal) | block
2:  orr     x3, x5, x4, lsl #30
    str     x3, [x2, x4, lsl #3]
    add     x4, x4, #1
    cmp     x4, #256
    b.lo    2b
    bl      dcache_inval_range      // x0..x1 still the .bss range
    dsb     sy

    mov     x9, #0xff04             // MAIR: Attr0 Device-nGnRE, Attr1 Normal WB RW-alloc
    msr     mair_el1, x9
    movz    x9, #0x3519             // TCR: T0SZ 25, WB-cacheable inner shareable walks
    movk    x9, #0x80, lsl #16      // EPD1: no TTBR1 walks
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #7
    bfi     x9, x10, #32, #3        // IPS = the CPU's physical address range
    msr     tcr_el1, x9
    msr     ttbr0_el1, x2
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    mrs     x9, sctlr_el1
    mov     x10, #((1 << 0) | (1 << 2) | (1 << 12))    // M | C | I
    orr     x9, x9, x10
    msr     sctlr_el1, x9
    isb
    ic      iallu
    dsb     nsh
    isb

    /* Self-relocation, packed (RELR, linker/aarch64.ld): an even entry is the offset of a
     * word to relocate, an odd one a bitmap of the 63 words after the last one relocated.
     * Every relocated word holds its link-time value (the image is linked at 0), so
     * relocating is adding the load address. */
    adrp    x0, __relr_start
    add     x0, x0, :lo12:__relr_start
    adrp    x1, __relr_end
    add     x1, x1, :lo12:__relr_end
    mov     x5, x20                 // the next word a bitmap covers
5:  cmp     x0, x1
    b.hs    3f
    ldr     x2, [x0], #8
    tbnz    x2, #0, 6f
    add     x5, x20, x2             // an offset: relocate that word
    ldr     x3, [x5]
    add     x3, x3, x20
    str     x3, [x5], #8
    b       5b
6:  mov     x6, x5                  // a bitmap: bit n + 1 is word n from x5
7:  lsr     x2, x2, #1
    cbz     x2, 8f
    tbz     x2, #0, 9f
    ldr     x3, [x6]
    add     x3, x3, x20
    str     x3, [x6]
9:  add     x6, x6, #8
    b       7b
8:  add     x5, x5, #(63 * 8)
    b       5b

    /* Relocations the linker could not pack (an unaligned word); R_AARCH64_RELATIVE only. */
3:  adrp    x0, __rela_start
    add     x0, x0, :lo12:__rela_start
    adrp    x1, __rela_end
    add     x1, x1, :lo12:__rela_end
10: cmp     x0, x1
    b.hs    4f
    ldp     x2, x3, [x0], #16       // r_offset, r_info
    ldr     x4, [x0], #8            // r_addend
    cmp     w3, #0x403              // R_AARCH64_RELATIVE
    b.ne    boot_halt
    add     x4, x4, x20
    str     x4, [x20, x2]
    b       10b
4:
    adrp    x9, __boot_stack_top
    add     x9, x9, :lo12:__boot_stack_top
    mov     sp, x9
    adrp    x9, exception_vectors
    add     x9, x9, :lo12:exception_vectors
    msr     vbar_el1, x9
    isb

    mov     x0, x19
    mov     x1, x20
    bl      aarch64_entry           // arch/aarch64/mod.rs; never returns
boot_halt:
    wfe
    b       boot_halt

/* Invalidate the data cache lines covering [x0, x1) to the point of coherency.
 * Clobbers x9, x10, x11. */
dcache_inval_range:
    mrs     x9, ctr_el0
    ubfx    x9, x9, #16, #4         // DminLine: log2(words per line)
    mov     x10, #4
    lsl     x10, x10, x9            // line size in bytes
    sub     x11, x10, #1
    bic     x9, x0, x11
5:  dc      ivac, x9
    add     x9, x9, x10
    cmp     x9, x1
    b.lo    5b
    dsb     sy
    ret

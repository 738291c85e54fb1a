/*
 * stubvirt x86_64 PVH entry: 32-bit protected mode, paging off, %ebx = hvm_start_info.
 * Zeroes .bss, builds the boot page tables (identity map of the low 4 GiB with 2 MiB
 * pages, plus the grant window at 4 GiB mapped 4 KiB-wise by Rust later), enables PAE,
 * long mode and SSE, and jumps to Rust's `x86_64_rust_entry(start_info_paddr)`.
 * Assembled by kernel/src/arch/x86_64/boot.rs with global_asm! (AT&T syntax, no C
 * preprocessor: constants are .equ).
 */

.equ CR0_PE, (1 << 0)
.equ CR0_MP, (1 << 1)
.equ CR0_EM, (1 << 2)
.equ CR0_TS, (1 << 3)
.equ CR0_WP, (1 << 16)
.equ CR0_PG, (1 << 31)
.equ CR4_PAE, (1 << 5)
.equ CR4_OSFXSR, (1 << 9)
.equ CR4_OSXMMEXCPT, (1 << 10)
.equ MSR_EFER, 0xc0000080
.equ EFER_LME, (1 << 8)
.equ PTE_P, 1
.equ PTE_W, 2
.equ PTE_PS, 0x80

/* The PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY (18), 32-bit address. */
.pushsection .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4
.popsection

.pushsection .text.boot, "ax"
.code32
.global pvh_start32
pvh_start32:
    cli
    cld
    /* %ebx carries hvm_start_info; %esi keeps it while we clobber the rest. */
    mov %ebx, %esi

    /* Zero .bss (the page tables and stacks live there). */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    xor %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT; PDPT[0..3] -> 4 page directories of 2 MiB pages (0..4 GiB);
       PDPT[4] -> the grant-window directory (its table is filled by Rust). */
    mov $boot_pdpt, %eax
    or $(PTE_P | PTE_W), %eax
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $(PTE_P | PTE_W), %eax
    mov $boot_pdpt, %edi
    mov $4, %ecx
1:  mov %eax, (%edi)
    add $4096, %eax
    add $8, %edi
    loop 1b
    mov $window_pd, %eax
    or $(PTE_P | PTE_W), %eax
    mov %eax, (%edi)
    mov $window_pt, %eax
    or $(PTE_P | PTE_W), %eax
    mov %eax, window_pd

    /* 2048 entries of 2 MiB each; the high dword stays 0 from the .bss clear. */
    mov $boot_pd, %edi
    mov $(PTE_P | PTE_W | PTE_PS), %eax
    mov $2048, %ecx
2:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 2b

    /* PAE + SSE. */
    mov %cr4, %eax
    or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    and $~(CR0_EM | CR0_TS), %eax
    or $(CR0_PE | CR0_MP | CR0_WP | CR0_PG), %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $long_mode

.code64
long_mode:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    lea boot_stack_top(%rip), %rsp
    /* Zero-extends: the start info is below 4 GiB. */
    mov %esi, %edi
    call x86_64_rust_entry
3:  cli
    hlt
    jmp 3b

.balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
.popsection

.pushsection .bss.boot, "aw", @nobits
.balign 4096
.global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
window_pd:  .skip 4096
.global window_pt
window_pt:  .skip 4096
/* Xen writes its hypercall stubs here (MSR from CPUID leaf base+2). */
.global HYPERCALL_PAGE
HYPERCALL_PAGE: .skip 4096
boot_stack: .skip 64 * 1024
boot_stack_top:
.popsection

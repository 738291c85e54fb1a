//! A table of every ABI struct we define: its C name, size, and each field's offset and
//! size, computed by the compiler. A host test (kernel/tests/abi_layout.rs) prints the same
//! numbers from Xen's C headers (via [`CProgram`]) and fails on any difference.

use super::{dm_op::*, event_channel::*, grant_table::*, hvm::*, memory::*, sched::*};
use super::{start_info::*, vcpu::*, xenstore::*};
use core::mem::{offset_of, size_of};

/// One struct: C name (with `struct `), Rust size, and its fields.
pub struct StructLayout {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: &'static [FieldLayout],
}

/// One field: its C path (`a` or `a.b`), Rust offset and Rust size.
pub struct FieldLayout {
    pub c_path: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// The size of the field `field` projects to (a field's type cannot be named generically).
const fn field_size<T, F>(_field: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// `layout!(RustType, "struct c_name", rust_field => "c.field.path", ...)`. Paths go
/// through structs only: reading through a union would need `unsafe`.
macro_rules! layout {
    ($ty:ty, $c:literal $(, $($f:ident).+ => $cf:literal)* $(,)?) => {
        StructLayout {
            c_name: $c,
            size: size_of::<$ty>(),
            fields: &[$(FieldLayout {
                c_path: $cf,
                offset: offset_of!($ty, $($f).+),
                size: field_size(|s: &$ty| &s.$($f).+),
            }),*],
        }
    };
}

/// Every struct stubvirt passes to Xen or shares with it.
pub static TABLE: &[StructLayout] = &[
    layout!(GrantEntryV1, "struct grant_entry_v1", flags => "flags", domid => "domid",
        frame => "frame"),
    layout!(GnttabMapGrantRef, "struct gnttab_map_grant_ref", host_addr => "host_addr",
        flags => "flags", ref_ => "ref", dom => "dom", status => "status", handle => "handle",
        dev_bus_addr => "dev_bus_addr"),
    layout!(GnttabUnmapGrantRef, "struct gnttab_unmap_grant_ref", host_addr => "host_addr",
        dev_bus_addr => "dev_bus_addr", handle => "handle", status => "status"),
    layout!(GnttabSetupTable, "struct gnttab_setup_table", dom => "dom",
        nr_frames => "nr_frames", status => "status", frame_list => "frame_list"),
    layout!(GnttabQuerySize, "struct gnttab_query_size", dom => "dom",
        nr_frames => "nr_frames", max_nr_frames => "max_nr_frames", status => "status"),
    layout!(GnttabSetVersion, "struct gnttab_set_version", version => "version"),
    layout!(GnttabCopy, "struct gnttab_copy", source.u => "source.u",
        source.domid => "source.domid", source.offset => "source.offset", dest.u => "dest.u",
        dest.domid => "dest.domid", dest.offset => "dest.offset", len => "len",
        flags => "flags", status => "status"),
    layout!(EvtchnAllocUnbound, "struct evtchn_alloc_unbound", dom => "dom",
        remote_dom => "remote_dom", port => "port"),
    layout!(EvtchnBindInterdomain, "struct evtchn_bind_interdomain",
        remote_dom => "remote_dom", remote_port => "remote_port", local_port => "local_port"),
    layout!(EvtchnBindVirq, "struct evtchn_bind_virq", virq => "virq", vcpu => "vcpu",
        port => "port"),
    layout!(EvtchnSend, "struct evtchn_send", port => "port"),
    layout!(EvtchnUnmask, "struct evtchn_unmask", port => "port"),
    layout!(EvtchnClose, "struct evtchn_close", port => "port"),
    layout!(EvtchnStatus, "struct evtchn_status", dom => "dom", port => "port",
        status => "status", vcpu => "vcpu", u => "u"),
    #[cfg(target_arch = "x86_64")]
    layout!(SharedInfo, "struct shared_info", vcpu_info => "vcpu_info",
        evtchn_pending => "evtchn_pending", evtchn_mask => "evtchn_mask",
        wc_version => "wc_version", arch => "arch"),
    #[cfg(target_arch = "x86_64")]
    layout!(VcpuInfo, "struct vcpu_info", evtchn_upcall_pending => "evtchn_upcall_pending",
        evtchn_upcall_mask => "evtchn_upcall_mask", evtchn_pending_sel => "evtchn_pending_sel",
        arch => "arch", time => "time"),
    layout!(XenAddToPhysmap, "struct xen_add_to_physmap", domid => "domid", size => "size",
        space => "space", idx => "idx", gpfn => "gpfn"),
    layout!(XenMemAcquireResource, "struct xen_mem_acquire_resource", domid => "domid",
        type_ => "type", id => "id", nr_frames => "nr_frames", pad => "pad", frame => "frame",
        frame_list => "frame_list"),
    layout!(XenAddToPhysmapBatch, "struct xen_add_to_physmap_batch", domid => "domid",
        space => "space", size => "size", foreign_domid => "u.foreign_domid", idxs => "idxs",
        gpfns => "gpfns", errs => "errs"),
    layout!(XenRemoveFromPhysmap, "struct xen_remove_from_physmap", domid => "domid",
        gpfn => "gpfn"),
    layout!(XenMemoryMap, "struct xen_memory_map", nr_entries => "nr_entries",
        buffer => "buffer"),
    layout!(XenHvmParam, "struct xen_hvm_param", domid => "domid", pad => "pad",
        index => "index", value => "value"),
    layout!(SchedShutdown, "struct sched_shutdown", reason => "reason"),
    layout!(SchedPoll, "struct sched_poll", ports => "ports", nr_ports => "nr_ports",
        timeout => "timeout"),
    layout!(VcpuRegisterVcpuInfo, "struct vcpu_register_vcpu_info", mfn => "mfn",
        offset => "offset", rsvd => "rsvd"),
    layout!(VcpuSetSingleshotTimer, "struct vcpu_set_singleshot_timer",
        timeout_abs_ns => "timeout_abs_ns", flags => "flags"),
    layout!(HvmStartInfo, "struct hvm_start_info", magic => "magic", version => "version",
        flags => "flags", nr_modules => "nr_modules", modlist_paddr => "modlist_paddr",
        cmdline_paddr => "cmdline_paddr", rsdp_paddr => "rsdp_paddr",
        memmap_paddr => "memmap_paddr", memmap_entries => "memmap_entries",
        reserved => "reserved"),
    layout!(HvmModlistEntry, "struct hvm_modlist_entry", paddr => "paddr", size => "size",
        cmdline_paddr => "cmdline_paddr", reserved => "reserved"),
    layout!(HvmMemmapTableEntry, "struct hvm_memmap_table_entry", addr => "addr",
        size => "size", type_ => "type", reserved => "reserved"),
    layout!(XenDmOpCreateIoreqServer, "struct xen_dm_op_create_ioreq_server",
        handle_bufioreq => "handle_bufioreq", pad => "pad", id => "id"),
    layout!(XenDmOpGetIoreqServerInfo, "struct xen_dm_op_get_ioreq_server_info", id => "id",
        flags => "flags", bufioreq_port => "bufioreq_port", ioreq_gfn => "ioreq_gfn",
        bufioreq_gfn => "bufioreq_gfn"),
    layout!(XenDmOpIoreqServerRange, "struct xen_dm_op_ioreq_server_range", id => "id",
        pad => "pad", type_ => "type", start => "start", end => "end"),
    layout!(XenDmOpSetIoreqServerState, "struct xen_dm_op_set_ioreq_server_state",
        id => "id", enabled => "enabled", pad => "pad"),
    layout!(XenDmOpDestroyIoreqServer, "struct xen_dm_op_destroy_ioreq_server", id => "id",
        pad => "pad"),
    layout!(XenDmOpSetIrqLevel, "struct xen_dm_op_set_irq_level", irq => "irq",
        level => "level", pad => "pad"),
    layout!(XenDmOpNrVcpus, "struct xen_dm_op_nr_vcpus", vcpus => "vcpus"),
    layout!(XenDmOp, "struct xen_dm_op", op => "op", pad => "pad", u => "u"),
    layout!(XenDmOpBuf, "struct xen_dm_op_buf", h => "h", size => "size"),
    layout!(XsdSockmsg, "struct xsd_sockmsg", type_ => "type", req_id => "req_id",
        tx_id => "tx_id", len => "len"),
    layout!(XenstoreDomainInterface, "struct xenstore_domain_interface", req => "req",
        rsp => "rsp", req_cons => "req_cons", req_prod => "req_prod", rsp_cons => "rsp_cons",
        rsp_prod => "rsp_prod", server_features => "server_features",
        connection => "connection", error => "error"),
    layout!(Ioreq, "struct ioreq", addr => "addr", data => "data", count => "count",
        size => "size", vp_eport => "vp_eport", _pad0 => "_pad0", type_ => "type"),
];

/// Headers the C side includes (their order matters: `xen.h` first).
pub const C_HEADERS: &[&str] = &[
    "xen/xen.h",
    "xen/grant_table.h",
    "xen/event_channel.h",
    "xen/memory.h",
    "xen/sched.h",
    "xen/vcpu.h",
    "xen/hvm/hvm_op.h",
    "xen/hvm/params.h",
    "xen/hvm/dm_op.h",
    "xen/hvm/ioreq.h",
    "xen/arch-x86/hvm/start_info.h",
    "xen/io/xs_wire.h",
];

/// The C program that prints, for every struct in [`TABLE`], one line
/// `struct name|size offset:size ...` in the same format as [`RustLine`].
pub struct CProgram;

impl core::fmt::Display for CProgram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "#define __XEN_TOOLS__ 1")?;
        writeln!(
            f,
            "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>"
        )?;
        for header in C_HEADERS {
            writeln!(f, "#include <{header}>")?;
        }
        writeln!(f, "int main(void) {{")?;
        for s in TABLE {
            write!(f, "  printf(\"{}|%zu", s.c_name)?;
            for _ in s.fields {
                write!(f, " %zu:%zu")?;
            }
            write!(f, "\\n\", sizeof({})", s.c_name)?;
            for field in s.fields {
                let (name, path) = (s.c_name, field.c_path);
                write!(
                    f,
                    ", offsetof({name}, {path}), sizeof((({name} *)0)->{path})"
                )?;
            }
            writeln!(f, ");")?;
        }
        writeln!(f, "  return 0;\n}}")
    }
}

/// The line the C program prints for `s`, computed from the Rust side.
pub struct RustLine<'a>(pub &'a StructLayout);

impl core::fmt::Display for RustLine<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}|{}", self.0.c_name, self.0.size)?;
        for field in self.0.fields {
            write!(f, " {}:{}", field.offset, field.size)?;
        }
        Ok(())
    }
}

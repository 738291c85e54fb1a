//! Nodes of the boot device tree found by what they are, not by path: the `fdt` crate's
//! path lookup (0.1.5) misses every node after one that libfdt's `fdt_nop_node` blanked,
//! and libxl blanks the unused second memory bank of every guest it builds, so in a
//! domain that `xl` created `/hypervisor` "was not there" and stubvirt took itself for
//! bare QEMU. Iterating the nodes skips the blanked ones correctly.

use fdt::node::FdtNode;
use fdt::Fdt;

/// The Xen hypervisor node (`compatible` has `xen,xen`).
pub fn hypervisor<'b, 'a>(fdt: &'b Fdt<'a>) -> Option<FdtNode<'b, 'a>> {
    fdt.all_nodes().find(|node| {
        node.name == "hypervisor"
            && node
                .compatible()
                .is_some_and(|c| c.all().any(|s| s == "xen,xen"))
    })
}

/// Whether PSCI is called with `smc` (else `hvc`).
pub fn psci_uses_smc(fdt: &Fdt<'_>) -> bool {
    fdt.all_nodes()
        .find(|node| node.name == "psci")
        .and_then(|node| node.property("method"))
        .and_then(|method| method.as_str())
        == Some("smc")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest tree as libxl leaves it: a root with /chosen, a memory node, a second
    /// memory node blanked with FDT_NOP tokens (what `fdt_nop_node` does to an unused
    /// bank), then /hypervisor. Made with dtc from a two-bank tree, the second bank's
    /// tokens overwritten with FDT_NOP.
    const XL_GUEST_TREE: &[u8] = include_bytes!("../tests/fixtures/xl-domu-nop-node.dtb");

    #[test]
    fn finds_the_hypervisor_after_a_blanked_node() {
        let fdt = Fdt::new(XL_GUEST_TREE).unwrap();
        assert!(
            fdt.find_node("/hypervisor").is_none(),
            "the crate's path lookup still misses it: this module is still needed"
        );
        let node = hypervisor(&fdt).expect("found by iteration");
        assert_eq!(
            node.reg().unwrap().next().unwrap().starting_address as usize,
            0x3800_0000
        );
        assert!(!psci_uses_smc(&fdt));
    }
}

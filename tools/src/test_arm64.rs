//! The arm64 part of `cargo xtask test`: lint and build the image, boot it under plain QEMU (fast,
//! no Xen), then under real Xen as dom0 and as a dom0less domU with the self-test, then the
//! serve mode: a stubvirt dom0 answering a stubvirt domU frontend over IOREQ.

/// Runs every arm64 image test.
pub fn tests() -> Result<(), String> {
    crate::image_arm64::clippy()?;
    let image = crate::image_arm64::build()?;
    crate::qemu_arm64::run(&image)?;
    crate::boot_arm64::xen_tests(&image, 1)?;
    let xen = crate::xen_arm64::hypervisor()?;
    crate::serve_arm64::serve_test(&image, &xen)
}

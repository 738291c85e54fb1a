//! The arm64 part of `cargo xtask test`: lint and build the image (and check its size
//! budget) and the test image, boot the image under plain QEMU
//! (fast, no Xen), then under real Xen 4.17.5 as dom0 and as a dom0less domU with the
//! self-test, then the serve mode: a stubvirt dom0 answering a stubvirt domU frontend over
//! IOREQ. Where a Xen 4.21+ source is at hand (`xen::source`), the self-test and the serve
//! mode run again with no dom0 at all: stubvirt as a control domU.

use super::sysdt::{Images, Role};
use crate::process::step;
use crate::xen;
use crate::xen::source::XenSource;

/// Runs every arm64 image test.
pub fn tests() -> Result<(), String> {
    super::image::clippy()?;
    let image = super::image::build()?;
    crate::build::check_budget(&image)?;
    // The serve boots' stubvirt frontend and bystander are test modes: the product serves
    // them from the test image.
    let images = Images {
        backend: image.clone(),
        guests: super::image::build_test()?,
    };
    super::qemu::run(&image)?;
    super::boot::xen_tests(&image, 1)?;
    let xen = super::xen::hypervisor()?;
    super::serve::serve_test(&images, &xen)?;
    let Some(path) = xen::source::default_path() else {
        // `cargo xtask test` says so again, and fails under CI, at the end-to-end step.
        step("SKIPPED arm64 tests with no dom0: no Xen 4.21+ source");
        return Ok(());
    };
    let source = XenSource::open(&path)?;
    let xen = source.hypervisor()?;
    step(&format!(
        "arm64 image as control domU1 of Xen {} with no dom0: self-test",
        source.version
    ));
    let (fields, seconds, _) = super::boot::selftest_once(&image, &xen, Role::ControlDomU, 1)?;
    println!("    STUBVIRT-SELFTEST {fields}  ({seconds:.2} s after QEMU start)");
    super::serve::serve_test_without_dom0(&images, &xen)?;
    let policy = crate::xen::flask_policy::policy(&source)?;
    super::serve::serve_test_confined(&images, &xen, &policy)?;
    super::serve_frontends::test(&images, &xen)
}

//! `cargo xtask build`: every bootable image, into `target/images/`, and the size budget
//! of the product images.

use crate::process::step;
use std::path::Path;

/// The size every product image must stay within: the dom0less examples
/// (tools/configs/arm64-*.dts) reserve this much for stubvirt's boot module, and Xen loads
/// no more than a module's `reg` size. The test image (test modes added) has no budget.
pub const IMAGE_BUDGET_BYTES: u64 = 256 * 1024;

/// Builds all images (each arch's module says how).
pub fn run(_args: &[String]) -> Result<(), String> {
    crate::x86::image::build()?;
    crate::arm64::image::build()?;
    crate::arm64::image::build_test()?;
    Ok(())
}

/// Fails unless the product image at `image` fits the budget.
pub fn check_budget(image: &Path) -> Result<(), String> {
    let bytes = std::fs::metadata(image)
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    step(&format!(
        "{}: {bytes} bytes, {:.1} % of the {IMAGE_BUDGET_BYTES}-byte budget",
        image.display(),
        100.0 * bytes as f64 / IMAGE_BUDGET_BYTES as f64
    ));
    within_budget(image, bytes)
}

fn within_budget(image: &Path, bytes: u64) -> Result<(), String> {
    if bytes > IMAGE_BUDGET_BYTES {
        return Err(format!(
            "{} is {bytes} bytes, over the {IMAGE_BUDGET_BYTES}-byte image budget: the \
             dom0less examples' boot module would cut it short",
            image.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_examples_module_size() {
        let image = Path::new("x.img");
        assert!(within_budget(image, IMAGE_BUDGET_BYTES).is_ok());
        assert!(within_budget(image, IMAGE_BUDGET_BYTES + 1).is_err());
        for example in [
            include_str!("../configs/arm64-dom0.dts"),
            include_str!("../configs/arm64-domU.dts"),
        ] {
            assert!(example.contains(&format!("0x0 0x{IMAGE_BUDGET_BYTES:x}>;")));
        }
    }
}

//! `cargo xtask build`: every bootable image, into `target/images/`.

/// Builds all images (each arch's module says how).
pub fn run(_args: &[String]) -> Result<(), String> {
    crate::x86::image::build()?;
    crate::arm64::image::build()?;
    Ok(())
}

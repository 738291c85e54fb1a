//! `target/images/stubvirt-arm64.img`: the kernel linked for `aarch64-unknown-none` as a
//! position-independent ELF (linker/aarch64.ld), flattened with `objcopy -O binary` into an
//! arm64 `Image`, whose 64-byte header is then checked. That is the product; the test
//! image `stubvirt-arm64-test.img` adds the modes only tests boot (kernel feature
//! `test-modes`: a stubvirt frontend, the grant bench, a bystander domain).

use super::toolchain;
use crate::process::{run, step, workspace_root};
use std::path::PathBuf;
use std::process::Command;

const TARGET: &str = "aarch64-unknown-none";
/// Separate from `target/` so the rustup and Debian compilers never share artifacts.
const TARGET_DIR: &str = "target/arm64";
/// Where the image lands, relative to the workspace root.
pub const IMAGE: &str = "target/images/stubvirt-arm64.img";
/// The test image, with the test modes.
pub const TEST_IMAGE: &str = "target/images/stubvirt-arm64-test.img";

/// Which image: the product, or the product with the test modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Product,
    Test,
}

impl Flavour {
    fn features(self) -> &'static str {
        match self {
            Flavour::Product => "image",
            Flavour::Test => "image,test-modes",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Flavour::Product => IMAGE,
            Flavour::Test => TEST_IMAGE,
        }
    }
}

/// Debian's cargo `subcommand` (`build`, `clippy`) for the image crate, with the image's
/// target, flags and target directory.
fn image_cargo(subcommand: &str, flavour: Flavour) -> Command {
    // kernel/build.rs adds `-T linker/aarch64.ld`; the image is a static PIE that
    // relocates itself (boot/aarch64/entry.S).
    let rustflags = [
        "-Clinker=ld.lld",
        "-Crelocation-model=pie",
        "-Clink-arg=--pie",
        "-Clink-arg=-znorelro",
        "-Clink-arg=--no-dynamic-linker",
        // Relative relocations packed: 472 of 24 bytes were 4 % of the image.
        "-Clink-arg=--pack-dyn-relocs=relr",
        "-Clink-arg=-zmax-page-size=4096",
    ]
    .join("\x1f");
    let mut command = toolchain::cargo(subcommand);
    command
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .args([
            "--release",
            "--package",
            "kernel",
            "--features",
            flavour.features(),
        ])
        .args(["--target", TARGET, "--target-dir", TARGET_DIR])
        .args([
            "-Zbuild-std=core,alloc",
            "-Zbuild-std-features=compiler-builtins-mem",
        ]);
    command
}

/// Lints both arm64 image configurations (arch/aarch64 and everything they link) with
/// Debian's clippy: the workspace-wide clippy run never compiles the aarch64 code.
pub fn clippy() -> Result<(), String> {
    toolchain::ensure()?;
    for flavour in [Flavour::Product, Flavour::Test] {
        step(&format!(
            "lints of the arm64 image, {flavour:?} (Debian cargo-clippy, aarch64-unknown-none, \
             -D warnings)"
        ));
        run(image_cargo("clippy", flavour).args(["--", "-D", "warnings"]))?;
    }
    Ok(())
}

/// Builds the product image and returns its path.
pub fn build() -> Result<PathBuf, String> {
    build_flavour(Flavour::Product)
}

/// Builds the test image (the product with the test modes) and returns its path.
pub fn build_test() -> Result<PathBuf, String> {
    build_flavour(Flavour::Test)
}

fn build_flavour(flavour: Flavour) -> Result<PathBuf, String> {
    toolchain::ensure()?;
    let root = workspace_root();
    step(&format!(
        "building the arm64 image, {flavour:?} (Debian rustc-web, -Zbuild-std, \
         aarch64-unknown-none)"
    ));
    run(image_cargo("build", flavour).args(["--bin", "stubvirt"]))?;

    let elf = root.join(TARGET_DIR).join(TARGET).join("release/stubvirt");
    let image = root.join(flavour.path());
    if let Some(dir) = image.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    run(Command::new(toolchain::OBJCOPY)
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(&image))?;
    let bytes = std::fs::read(&image).map_err(|e| format!("{}: {e}", image.display()))?;
    let header = check_header(&bytes)?;
    step(&format!(
        "{}: {} bytes in the file, {} bytes loaded with .bss (image_size)",
        flavour.path(),
        bytes.len(),
        header.image_size
    ));
    Ok(image)
}

/// The fields of the arm64 `Image` header that boot loaders read.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub text_offset: u64,
    pub image_size: u64,
    pub flags: u64,
}

/// Checks the 64-byte arm64 `Image` header (Linux `Documentation/arch/arm64/booting.rst`).
pub fn check_header(image: &[u8]) -> Result<Header, String> {
    let field = |at: usize| -> Result<u64, String> {
        image
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| "image shorter than its 64-byte header".to_string())
    };
    let code0 = field(0)? as u32;
    let header = Header {
        text_offset: field(8)?,
        image_size: field(16)?,
        flags: field(24)?,
    };
    let problem = if image.get(56..60) != Some(b"ARM\x64".as_slice()) {
        Some("no \"ARM\\x64\" magic at offset 56")
    } else if code0 >> 26 != 0b000101 {
        Some("first instruction is not a branch")
    } else if header.text_offset != 0x80000 {
        Some("text_offset is not 0x80000")
    } else if header.flags != 0xa {
        Some("flags are not 0xa (little endian, 4 KiB pages, anywhere)")
    } else if header.image_size < image.len() as u64 {
        Some("image_size is smaller than the file")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("bad arm64 Image header: {problem} ({header:x?})")),
        None => Ok(header),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut bytes = vec![0u8; 128];
        bytes[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes()); // b +0x40
        bytes[8..16].copy_from_slice(&text_offset.to_le_bytes());
        bytes[16..24].copy_from_slice(&image_size.to_le_bytes());
        bytes[24..32].copy_from_slice(&flags.to_le_bytes());
        bytes[56..60].copy_from_slice(b"ARM\x64");
        bytes
    }

    #[test]
    fn accepts_a_valid_header() {
        let parsed = check_header(&header(0x80000, 0x2000, 0xa)).unwrap();
        assert_eq!(parsed.image_size, 0x2000);
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(check_header(&header(0x80000, 0, 0xa)).is_err());
        assert!(check_header(&header(0, 0x2000, 0xa)).is_err());
        assert!(check_header(&header(0x80000, 0x2000, 0)).is_err());
        let mut no_magic = header(0x80000, 0x2000, 0xa);
        no_magic[56] = b'X';
        assert!(check_header(&no_magic).is_err());
        assert!(check_header(&[0u8; 10]).is_err());
    }
}

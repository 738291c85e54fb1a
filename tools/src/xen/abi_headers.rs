//! What the kernel's ABI layout test (kernel/tests/abi_layout.rs) needs on the host:
//! Xen's public C headers from Debian's `libxen-dev`, and a C compiler.

use crate::apt;

pub fn ensure() -> Result<(), String> {
    apt::ensure_installed(
        &["libxen-dev", "gcc", "libc6-dev"],
        "Xen's C headers and a C compiler for the kernel's ABI layout test",
    )
}

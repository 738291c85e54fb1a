//! The bootable image: everything lives in the library; the arch entry code
//! (`boot/<arch>/`) is the ELF entry point and calls `kernel::kernel_main`.
#![no_std]
#![no_main]

// Links the library (entry code, panic handler, allocator) into the image.
extern crate kernel;

//! The console without Xen: QEMU's debug port 0xe9 and the COM1 16550 UART.

use super::cpu::{inb, outb};

const DEBUGCON: u16 = 0xe9;
const COM1: u16 = 0x3f8;
const LINE_STATUS: u16 = 5;
const TX_EMPTY: u8 = 0x20;

/// Programs COM1 for 115200 8N1 without interrupts.
pub fn init() {
    // SAFETY: COM1 register writes only configure the UART.
    unsafe {
        outb(COM1 + 1, 0x00); // no interrupts
        outb(COM1 + 3, 0x80); // DLAB on
        outb(COM1, 0x01); // divisor 1 = 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8N1, DLAB off
        outb(COM1 + 2, 0xc7); // FIFO on, cleared
    }
}

/// Writes to both the debug port and COM1 (LF becomes CRLF on the UART).
pub fn write(bytes: &[u8]) {
    for &byte in bytes {
        if byte == b'\n' {
            put(b'\r');
        }
        put(byte);
    }
}

fn put(byte: u8) {
    // SAFETY: 0xe9 is QEMU's debug console (ignored elsewhere); COM1 is a UART.
    unsafe {
        outb(DEBUGCON, byte);
        // Bounded wait: a missing UART reads 0xff (ready) and a stuck one must not hang us.
        for _ in 0..10_000 {
            if inb(COM1 + LINE_STATUS) & TX_EMPTY != 0 {
                break;
            }
        }
        outb(COM1, byte);
    }
}

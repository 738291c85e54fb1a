//! Copies to and from memory a frontend shares with us (grant mappings): volatile, since
//! the frontend may change it at any time, and a word at a time where aligned (a byte loop
//! costs eight times the accesses: under QEMU TCG, each one a software TLB lookup).

use core::ptr::{read_volatile, write_volatile};

const WORD: usize = core::mem::size_of::<u64>();

/// Bytes before `va` reaches word alignment, at most `len`.
fn head_len(va: usize, len: usize) -> usize {
    (va.wrapping_neg() % WORD).min(len)
}

/// Copies `dst.len()` bytes from `va`.
///
/// # Safety
/// `[va, va + dst.len())` must be mapped readable for the whole call.
pub unsafe fn copy_from(va: usize, dst: &mut [u8]) {
    let (head, rest) = dst.split_at_mut(head_len(va, dst.len()));
    for (i, byte) in head.iter_mut().enumerate() {
        // SAFETY: inside the range the caller vouches for.
        *byte = unsafe { read_volatile((va + i) as *const u8) };
    }
    let body = va + head.len();
    let mut words = rest.chunks_exact_mut(WORD);
    let mut done = 0;
    for chunk in &mut words {
        // SAFETY: word-aligned (head copied first) and inside the range.
        let word = unsafe { read_volatile((body + done) as *const u64) };
        // A fixed-size store: `copy_from_slice` became a call per word at opt-level "s".
        if let Ok(bytes) = <&mut [u8; WORD]>::try_from(chunk) {
            *bytes = word.to_ne_bytes();
        }
        done += WORD;
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        // SAFETY: inside the range.
        *byte = unsafe { read_volatile((body + done + i) as *const u8) };
    }
}

/// Copies `src` to `va`.
///
/// # Safety
/// `[va, va + src.len())` must be mapped writable for the whole call.
pub unsafe fn copy_to(va: usize, src: &[u8]) {
    let (head, rest) = src.split_at(head_len(va, src.len()));
    for (i, byte) in head.iter().enumerate() {
        // SAFETY: inside the range the caller vouches for.
        unsafe { write_volatile((va + i) as *mut u8, *byte) };
    }
    let body = va + head.len();
    let mut words = rest.chunks_exact(WORD);
    let mut done = 0;
    for chunk in &mut words {
        if let Ok(bytes) = <[u8; WORD]>::try_from(chunk) {
            // SAFETY: word-aligned (head copied first) and inside the range.
            unsafe { write_volatile((body + done) as *mut u64, u64::from_ne_bytes(bytes)) };
        }
        done += WORD;
    }
    for (i, byte) in words.remainder().iter().enumerate() {
        // SAFETY: inside the range.
        unsafe { write_volatile((body + done + i) as *mut u8, *byte) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_every_alignment_and_length_both_ways() {
        let source: [u8; 64] = core::array::from_fn(|i| i as u8 ^ 0x5a);
        for start in 0..16 {
            for len in 0..40 {
                let mut out = [0u8; 40];
                let src = &source[start..start + len];
                // SAFETY: reads inside `source`.
                unsafe { copy_from(src.as_ptr() as usize, &mut out[..len]) };
                assert_eq!(&out[..len], src, "read start {start} len {len}");

                let mut target = [0xffu8; 64];
                // SAFETY: writes inside `target`.
                unsafe { copy_to(target.as_mut_ptr() as usize + start, src) };
                assert_eq!(
                    &target[start..start + len],
                    src,
                    "write start {start} len {len}"
                );
                assert!(target[..start].iter().all(|&b| b == 0xff));
                assert!(target[start + len..].iter().all(|&b| b == 0xff));
            }
        }
    }
}

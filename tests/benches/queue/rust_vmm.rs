//! rust-vmm's side of the comparison: `virtio-queue` over vm-memory's
//! `GuestMemoryMmap`, the driver writing the same ring contents into it.

use crate::layout::{make_available, DriverView};
use devices::grant::PAGE_SIZE;
use std::hint::black_box;
use std::time::{Duration, Instant};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend as _, GuestMemoryMmap};

pub struct MmapDriver<'a> {
    pub mem: &'a GuestMemoryMmap,
}

impl DriverView for MmapDriver<'_> {
    fn addr(&self, page: usize, offset: usize) -> u64 {
        (page * PAGE_SIZE + offset) as u64
    }
    fn put(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        self.mem
            .write_slice(bytes, GuestAddress(self.addr(page, offset)))
            .expect("inside guest memory");
    }
}

/// Times `rounds` passes of rust-vmm's queue. Never inlined, so callgrind can find the
/// rounds by name (`instructions.sh`).
#[inline(never)]
pub fn rust_vmm_rounds(
    mem: &GuestMemoryMmap,
    queue: &mut Queue,
    heads: &[u16],
    avail_idx: &mut u16,
    rounds: u64,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut driver = MmapDriver { mem };
    for _ in 0..rounds {
        make_available(&mut driver, heads, avail_idx);
        let start = Instant::now();
        let mut completed = 0;
        loop {
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                let mut status = None;
                let mut first = true;
                for desc in chain {
                    let slice = mem
                        .get_slice(desc.addr(), desc.len() as usize)
                        .expect("descriptor inside guest memory");
                    black_box(slice.len());
                    if first && !desc.is_write_only() && desc.len() >= 16 {
                        let header: [u8; 16] = mem.read_obj(desc.addr()).expect("header");
                        black_box(header);
                    }
                    first = false;
                    if desc.is_write_only() {
                        status = Some(GuestAddress(desc.addr().0 + u64::from(desc.len()) - 1));
                    }
                }
                if let Some(at) = status {
                    mem.write_obj(0u8, at).expect("status byte");
                }
                queue.add_used(mem, head, 1).expect("used entry");
                completed += 1;
            }
            // Re-arm (avail_event) and re-check, as stubvirt does when it finds the ring empty.
            if !queue.enable_notification(mem).expect("avail_event") {
                break;
            }
        }
        black_box(queue.needs_notification(mem).expect("used_event"));
        elapsed += start.elapsed();
        assert_eq!(completed, heads.len());
    }
    elapsed
}

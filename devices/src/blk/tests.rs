//! virtio-blk requests end to end through the device, on a 16-sector RAM disk whose
//! sector n holds the byte n, over the in-crate test memory.

use super::*;
use crate::blk::backend::RamDisk;
use crate::mmio::{reg, MmioDevice};
use crate::test_utils::driver::{self, RING_FEATURES};
use crate::test_utils::{Buffer, TestMemory, TestQueue};
use alloc::vec;
use alloc::vec::Vec;

const SECTORS: u64 = 16;
const IN: u32 = 0;
const OUT: u32 = 1;
const FLUSH: u32 = 4;
const GET_ID: u32 = 8;
const DISCARD: u32 = 11;
const WRITE_ZEROES: u32 = 13;
const R: bool = false;
const W: bool = true;

struct Fixture {
    dev: MmioDevice<BlkDevice<RamDisk>>,
    mem: TestMemory,
    ring: TestQueue,
}

fn fixture(read_only: bool) -> Fixture {
    let bytes = (0..SECTORS * 512).map(|i| (i / 512) as u8).collect();
    let disk = RamDisk::from_bytes(bytes, "unit-serial");
    let disk = if read_only { disk.read_only() } else { disk };
    let mut dev = MmioDevice::new(BlkDevice::new(disk, BlkOptions::default()));
    let mut mem = TestMemory::new();
    let ring = TestQueue::new(&mem, 128);
    driver::bring_up(&mut dev, &mut mem, RING_FEATURES, &[&ring]);
    Fixture { dev, mem, ring }
}

fn header(kind: u32, sector: u64) -> Vec<u8> {
    [&kind.to_le_bytes()[..], &[0; 4], &sector.to_le_bytes()].concat()
}

fn segment(sector: u64, sectors: u32, flags: u32) -> Vec<u8> {
    [
        &sector.to_le_bytes()[..],
        &sectors.to_le_bytes(),
        &flags.to_le_bytes(),
    ]
    .concat()
}

impl Fixture {
    /// Makes a request available: its header, `data` buffers, and a status byte set
    /// to 0xff so that an unwritten status shows.
    fn request(&mut self, kind: u32, sector: u64, data: &[(u32, bool)]) -> u16 {
        let chain = [&[(16, R)], data, &[(1, W)]].concat();
        let head = self.ring.add_chain(&chain);
        let buffers = self.ring.buffers(head);
        self.mem.put(buffers[0].addr, &header(kind, sector));
        self.mem.put(buffers[buffers.len() - 1].addr, &[0xff]);
        head
    }

    /// Data buffer `n` of the request at `head`.
    fn data(&self, head: u16, n: usize) -> Buffer {
        self.ring.buffers(head)[1 + n]
    }

    /// Rings the doorbell and serves: the used entries, (head, len).
    fn serve(&mut self) -> Vec<(u16, u32)> {
        driver::write(&mut self.dev, &mut self.mem, reg::QUEUE_NOTIFY, 0);
        self.dev.process(&mut self.mem, &mut ());
        let used = self.ring.used().into_iter();
        used.map(|(id, len)| (id as u16, len)).collect()
    }

    fn status(&self, head: u16) -> u8 {
        let last = self.ring.buffers(head).last().unwrap();
        self.mem.get(last.addr, 1)[0]
    }

    /// A request served by itself: its status byte and used length.
    fn run(&mut self, kind: u32, sector: u64, data: &[(u32, bool)]) -> (u8, u32) {
        let head = self.request(kind, sector, data);
        let used = self.serve();
        assert_eq!(used.len(), 1);
        assert_eq!(used[0].0, head);
        (self.status(head), used[0].1)
    }

    /// A request with one readable buffer holding `payload`, served by itself.
    fn run_with(&mut self, kind: u32, sector: u64, payload: &[u8]) -> (u8, u32) {
        let head = self.request(kind, sector, &[(payload.len() as u32, R)]);
        self.mem.put(self.data(head, 0).addr, payload);
        let used = self.serve();
        assert_eq!(used, [(head, 1)]);
        (self.status(head), 1)
    }

    fn sector(&self, n: usize) -> &[u8] {
        &self.dev.device().backend().bytes()[n * 512..(n + 1) * 512]
    }
}

#[test]
fn in_reads_sectors_into_the_writable_buffers() {
    let mut f = fixture(false);
    let head = f.request(IN, 2, &[(512, W), (512, W)]);
    assert_eq!(f.serve(), [(head, 1025)]);
    assert_eq!(f.status(head), STATUS_OK);
    assert_eq!(f.mem.get(f.data(head, 0).addr, 512), [2; 512]);
    assert_eq!(f.mem.get(f.data(head, 1).addr, 512), [3; 512]);
    assert_eq!(f.dev.counters().bytes_to_guest, 1024);
}

#[test]
fn out_writes_the_readable_buffers_to_disk() {
    let mut f = fixture(false);
    assert_eq!(f.run_with(OUT, 1, &[0xab; 1024]), (STATUS_OK, 1));
    assert_eq!(
        (f.sector(1), f.sector(2)),
        (&[0xab; 512][..], &[0xab; 512][..])
    );
    assert_eq!(
        (f.sector(0)[0], f.sector(3)[0]),
        (0, 3),
        "neighbours untouched"
    );
}

#[test]
fn flush_and_get_id_answer_ok() {
    let mut f = fixture(false);
    assert_eq!(f.run(FLUSH, 0, &[]), (STATUS_OK, 1));
    let head = f.request(GET_ID, 0, &[(20, W)]);
    assert_eq!(f.serve(), [(head, 21)]);
    let mut id = b"unit-serial".to_vec();
    id.resize(20, 0);
    assert_eq!(f.mem.get(f.data(head, 0).addr, 20), id);
    // A shorter buffer gets what fits.
    let head = f.request(GET_ID, 0, &[(8, W)]);
    assert_eq!(f.serve(), [(head, 9)]);
    assert_eq!(f.mem.get(f.data(head, 0).addr, 8), b"unit-ser");
}

#[test]
fn discard_and_write_zeroes_clear_only_valid_ranges() {
    let mut f = fixture(false);
    assert_eq!(f.run_with(DISCARD, 0, &segment(1, 2, 0)).0, STATUS_OK);
    assert_eq!((f.sector(1), f.sector(2)), (&[0; 512][..], &[0; 512][..]));
    assert_eq!(f.sector(3)[0], 3);
    assert_eq!(f.run_with(WRITE_ZEROES, 0, &segment(4, 1, 1)).0, STATUS_OK);
    assert_eq!(f.sector(4), [0; 512], "UNMAP allowed");

    let overlapping = [segment(5, 2, 0), segment(6, 1, 0)].concat();
    let refused = [
        (WRITE_ZEROES, segment(5, 1, 2), STATUS_UNSUPP),
        (DISCARD, segment(5, 1, 1), STATUS_UNSUPP),
        (DISCARD, overlapping, STATUS_IOERR),
        (DISCARD, segment(5, 1, 0)[..8].to_vec(), STATUS_IOERR),
        (WRITE_ZEROES, segment(15, 2, 0), STATUS_IOERR),
    ];
    for (kind, payload, status) in refused {
        assert_eq!(f.run_with(kind, 0, &payload).0, status, "{payload:?}");
    }
    assert_eq!(
        (f.sector(5)[0], f.sector(6)[0], f.sector(15)[0]),
        (5, 6, 15)
    );
}

#[test]
fn unknown_request_types_answer_unsupp() {
    let mut f = fixture(false);
    for kind in [2, 7, 99, u32::MAX] {
        assert_eq!(f.run(kind, 0, &[(512, W)]), (STATUS_UNSUPP, 1));
    }
    assert_eq!(f.dev.counters().request_errors, 4);
}

#[test]
fn requests_outside_the_disk_or_of_partial_sectors_fail_alone() {
    let mut f = fixture(false);
    assert_eq!(f.run(IN, SECTORS - 1, &[(512, W)]), (STATUS_OK, 513));
    let refused: [(u64, u32); 5] = [
        (SECTORS, 512),
        (SECTORS - 1, 1024),
        (u64::MAX, 512),
        (u64::MAX / 512 + 1, 512),
        (0, 100),
    ];
    for (sector, len) in refused {
        assert_eq!(
            f.run(IN, sector, &[(len, W)]),
            (STATUS_IOERR, 1),
            "{sector}"
        );
    }
    assert_eq!(f.run_with(OUT, 0, &[0xee; 100]), (STATUS_IOERR, 1));
    assert_eq!(f.sector(0), [0; 512], "nothing written");

    // In one pass, a bad request between two good ones fails by itself.
    let heads = [
        f.request(IN, 3, &[(512, W)]),
        f.request(IN, SECTORS, &[(512, W)]),
        f.request(IN, 4, &[(512, W)]),
    ];
    assert_eq!(f.serve(), [(heads[0], 513), (heads[1], 1), (heads[2], 513)]);
    let statuses = heads.map(|h| f.status(h));
    assert_eq!(statuses, [STATUS_OK, STATUS_IOERR, STATUS_OK]);
    assert_eq!(f.mem.get(f.data(heads[2], 0).addr, 1), [4]);
}

#[test]
fn a_read_only_disk_refuses_every_change() {
    let mut f = fixture(true);
    assert_ne!(f.dev.offered_features() & crate::features::blk::RO, 0);
    assert_eq!(f.run_with(OUT, 0, &[1; 512]), (STATUS_IOERR, 1));
    assert_eq!(f.run_with(DISCARD, 0, &segment(1, 1, 0)).0, STATUS_IOERR);
    assert_eq!(
        f.run_with(WRITE_ZEROES, 0, &segment(2, 1, 0)).0,
        STATUS_IOERR
    );
    assert_eq!((f.sector(0)[0], f.sector(1)[0], f.sector(2)[0]), (0, 1, 2));
    assert_eq!(f.run(IN, 1, &[(512, W)]), (STATUS_OK, 513));
}

#[test]
fn a_chain_too_short_for_a_header_or_a_status_fails() {
    let mut f = fixture(false);
    // Half a header.
    let head = f.ring.add_chain(&[(8, R), (1, W)]);
    assert_eq!(f.serve(), [(head, 1)]);
    assert_eq!(f.status(head), STATUS_IOERR);
    // No readable bytes at all.
    let head = f.ring.add_chain(&[(1, W)]);
    assert_eq!(f.serve(), [(head, 1)]);
    assert_eq!(f.status(head), STATUS_IOERR);
    // No status byte: nothing to tell the driver, the chain comes back empty.
    let head = f.ring.add_chain(&[(16, R)]);
    assert_eq!(f.serve(), [(head, 0)]);
    assert_eq!(f.dev.counters().request_errors, 3);
    // A header split over two descriptors is a header.
    let head = f.ring.add_chain(&[(8, R), (8, R), (1, W)]);
    let buffers = f.ring.buffers(head).to_vec();
    let flush = header(FLUSH, 0);
    f.mem.put(buffers[0].addr, &flush[..8]);
    f.mem.put(buffers[1].addr, &flush[8..]);
    f.mem.put(buffers[2].addr, &[0xff]);
    assert_eq!(f.serve(), [(head, 1)]);
    assert_eq!(f.status(head), STATUS_OK);
}

#[test]
fn unusable_buffers_fail_the_request_before_the_disk() {
    let mut f = fixture(false);
    let head = f.request(OUT, 0, &[(512, R)]);
    f.mem.put(f.data(head, 0).addr, &[0x77; 512]);
    f.mem.revoke(f.data(head, 0).addr);
    assert_eq!(f.serve(), [(head, 1)]);
    assert_eq!(f.status(head), STATUS_IOERR);
    assert_eq!(f.sector(0), [0; 512]);
    // The bad page past the first group of pieces the disk would take at once.
    let pieces = [(8, R); 64];
    let head = f.request(OUT, 0, &pieces);
    for n in 0..64 {
        f.mem.put(f.data(head, n).addr, &[0x77; 8]);
    }
    f.mem.revoke(f.data(head, 63).addr);
    assert_eq!(f.serve(), [(head, 1)]);
    assert_eq!(f.status(head), STATUS_IOERR);
    assert_eq!(f.sector(0), [0; 512], "not a byte written");
    // A status byte on a page granted read-only cannot be written: length 0.
    let head = f.request(FLUSH, 0, &[]);
    f.mem.set_read_only(f.ring.buffers(head)[1].addr, true);
    assert_eq!(f.serve(), [(head, 0)]);
    assert_eq!(f.status(head), 0xff);
    assert_eq!(f.mem.live_mappings(), 3);
    assert!(f.mem.violations().is_empty(), "{:?}", f.mem.violations());
}

#[test]
fn requests_are_read_whatever_their_descriptor_boundaries() {
    let mut f = fixture(false);
    // Header and data in one buffer.
    let head = f.ring.add_chain(&[(16 + 512, R), (1, W)]);
    let out = [header(OUT, 6), vec![0x66; 512]].concat();
    f.mem.put(f.ring.buffers(head)[0].addr, &out);
    assert_eq!(f.serve(), [(head, 1)]);
    assert_eq!(f.sector(6), [0x66; 512]);
    // Data cut at an odd place, the status byte at the end of the data's last buffer.
    let head = f.ring.add_chain(&[(16, R), (100, W), (413, W)]);
    let b = f.ring.buffers(head).to_vec();
    f.mem.put(b[0].addr, &header(IN, 6));
    f.mem.put(b[2].addr + 412, &[0xff]);
    assert_eq!(f.serve(), [(head, 513)]);
    assert_eq!(f.mem.get(b[1].addr, 100), [0x66; 100]);
    let tail = [vec![0x66; 412], vec![STATUS_OK]].concat();
    assert_eq!(f.mem.get(b[2].addr, 413), tail);
}

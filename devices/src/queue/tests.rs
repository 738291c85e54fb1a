//! The split ring's own rules, over the in-crate test memory: set-up, pop and push,
//! indices wrapping at `u16::MAX`, and interrupt suppression both ways.

use super::*;
use crate::grant::{GrantAddress, GrantRef};
use crate::test_utils::{TestMemory, TestQueue};
use alloc::vec::Vec;

struct Fixture {
    mem: TestMemory,
    ring: TestQueue,
    queue: SplitQueue,
}

/// Activates a queue on `config` as a device offering the most it can would.
fn activate(
    mem: &TestMemory,
    config: &QueueConfig,
    event_idx: bool,
) -> Result<SplitQueue, QueueSetupError> {
    let mut counters = Counters::default();
    let mut mem = mem.clone();
    SplitQueue::activate(
        &mut mem,
        config,
        QUEUE_SIZE_LIMIT,
        event_idx,
        true,
        &mut counters,
    )
}

fn fixture(size: u16, event_idx: bool) -> Fixture {
    let mem = TestMemory::new();
    let ring = TestQueue::new(&mem, size);
    let queue = activate(&mem, &ring.config(), event_idx).unwrap();
    Fixture { mem, ring, queue }
}

impl Fixture {
    /// Both sides' indices at `idx`, as after `idx` chains came and went.
    fn start_at(&mut self, idx: u16) {
        self.ring.start_at(idx);
        let q = &mut self.queue;
        (q.next_avail, q.seen_avail, q.next_used) = (idx, idx, idx);
        (q.published_used, q.signalled_used) = (idx, idx);
    }

    fn pop(&mut self) -> Result<Option<u16>, QueueError> {
        self.queue.pop(&self.mem)
    }

    /// Answers `head` with `len` bytes and publishes it.
    fn complete(&mut self, head: u16, len: u32) {
        let mut mem = self.mem.clone();
        self.queue.push_used(&mut mem, head, len).unwrap();
        self.queue.publish(&mut mem).unwrap();
    }
}

#[test]
fn rings_are_mapped_with_their_access_and_released_whole() {
    let f = fixture(8, true);
    let config = f.ring.config();
    assert_eq!(f.mem.live_mappings(), 3);
    // Linux grants the table and avail ring read-only: they must map read-only.
    assert_eq!(f.mem.maps_of(config.desc), 1);
    assert_eq!(f.mem.maps_of(config.driver), 1);
    f.queue
        .release(&mut f.mem.clone(), &mut Counters::default());
    assert_eq!(f.mem.live_mappings(), 0);

    // A used ring the device cannot write: refused, the two rings before it let go.
    f.mem.set_read_only(config.device, true);
    assert_eq!(
        activate(&f.mem, &config, true).unwrap_err(),
        QueueSetupError::Map(MapError::PermissionDenied)
    );
    assert_eq!(f.mem.live_mappings(), 0);
    assert!(f.mem.violations().is_empty(), "{:?}", f.mem.violations());
}

#[test]
fn sizes_not_a_power_of_two_or_past_the_limit_are_refused() {
    let mem = TestMemory::new();
    for size in [0, 3, 6, 100, 255, 512] {
        let mut config = TestQueue::new(&mem, 4).config();
        config.size = size;
        let refused = activate(&mem, &config, true).unwrap_err();
        assert_eq!(refused, QueueSetupError::BadSize(size));
    }
    // Within the crate's limit but past what the device offered.
    let config = TestQueue::new(&mem, 128).config();
    let mut counters = Counters::default();
    let refused = SplitQueue::activate(&mut mem.clone(), &config, 64, false, false, &mut counters);
    assert_eq!(refused.unwrap_err(), QueueSetupError::BadSize(128));
    assert_eq!(mem.map_batches(), 0, "refused before mapping anything");
}

#[test]
fn misaligned_or_plain_ring_addresses_are_refused() {
    let mem = TestMemory::new();
    let good = TestQueue::new(&mem, 4).config();
    let plain = 0x4000_0000;
    let cases = [
        QueueConfig {
            desc: good.desc + 8,
            ..good
        },
        QueueConfig {
            driver: good.driver + 1,
            ..good
        },
        QueueConfig {
            device: good.device + 2,
            ..good
        },
        QueueConfig {
            desc: plain,
            ..good
        },
    ];
    for config in cases {
        let refused = activate(&mem, &config, true).unwrap_err();
        assert!(
            matches!(refused, QueueSetupError::BadAddress(_)),
            "{config:?}"
        );
    }
    // A ring on a grant that does not exist: Xen's answer, nothing left mapped.
    let missing = GrantAddress::encode(GrantRef(4000), 0);
    let config = QueueConfig {
        device: missing,
        ..good
    };
    let refused = activate(&mem, &config, true);
    assert_eq!(
        refused.unwrap_err(),
        QueueSetupError::Map(MapError::BadGrantRef)
    );
    assert_eq!(mem.live_mappings(), 0);
}

#[test]
fn pop_takes_heads_in_ring_order_and_push_used_shows_at_publish() {
    let mut f = fixture(8, false);
    assert_eq!(f.pop(), Ok(None));
    let heads = [
        f.ring.add_chain(&[(8, false)]),
        f.ring.add_chain(&[(8, true)]),
    ];
    assert!(f.queue.has_available(&f.mem).unwrap());
    assert_eq!(f.pop(), Ok(Some(heads[0])));
    assert_eq!(f.pop(), Ok(Some(heads[1])));
    assert_eq!(f.pop(), Ok(None));

    let mut mem = f.mem.clone();
    f.queue.push_used(&mut mem, heads[1], 8).unwrap();
    assert_eq!(f.ring.used_idx(), 0, "not visible before publish");
    f.queue.publish(&mut mem).unwrap();
    f.complete(heads[0], 0);
    assert_eq!(
        f.ring.used(),
        [(u32::from(heads[1]), 8), (u32::from(heads[0]), 0)]
    );
}

#[test]
fn indices_wrap_at_u16_max() {
    let mut f = fixture(4, false);
    f.start_at(u16::MAX - 1);
    // Slots 2, 3, then 0, 1 of the ring, while avail.idx goes 65534 -> 2.
    let heads: Vec<u16> = (0..4).map(|_| f.ring.add_chain(&[(4, true)])).collect();
    assert_eq!(f.ring.avail_idx(), 2);
    let mut peeked = [0u16; 8];
    assert_eq!(f.queue.peek_heads(&f.mem, &mut peeked).unwrap(), 4);
    assert_eq!(peeked[..4], heads[..]);
    for _ in 0..4 {
        f.queue.consume();
    }
    assert_eq!(f.pop(), Ok(None));

    // Used entries across the ring's end in one call, used.idx wrapping to 2.
    let answers: Vec<(u16, u32)> = heads.iter().map(|&h| (h, u32::from(h) + 100)).collect();
    let mut mem = f.mem.clone();
    f.queue.push_used_all(&mut mem, &answers).unwrap();
    f.queue.publish(&mut mem).unwrap();
    assert_eq!(f.ring.used_idx(), 2);
    let expected: Vec<(u32, u32)> = answers.iter().map(|&(h, l)| (u32::from(h), l)).collect();
    assert_eq!(f.ring.used(), expected);
}

#[test]
fn an_avail_index_running_ahead_breaks_the_queue() {
    let mut f = fixture(4, false);
    f.start_at(u16::MAX - 1);
    // A full ring's worth ahead, across the wrap, is fine...
    f.ring.set_avail_idx((u16::MAX - 1).wrapping_add(4));
    assert!(f.queue.has_available(&f.mem).unwrap());
    // ...one more is not.
    f.ring.set_avail_idx((u16::MAX - 1).wrapping_add(5));
    let error = QueueError::AvailIndexJump {
        avail: 3,
        consumed: u16::MAX - 1,
    };
    assert_eq!(f.queue.has_available(&f.mem), Err(error));
}

#[test]
fn a_head_outside_the_table_breaks_the_queue() {
    let mut f = fixture(4, false);
    f.ring.make_available(4);
    assert_eq!(f.pop(), Err(QueueError::IndexOutOfRange(4)));
    assert_eq!(
        f.queue.check_head(u16::MAX),
        Err(QueueError::IndexOutOfRange(u16::MAX))
    );
}

#[test]
fn event_idx_publishes_avail_event_and_honours_used_event() {
    let mut f = fixture(8, true);
    for _ in 0..3 {
        f.ring.add_chain(&[(1, true)]);
    }
    let mut mem = f.mem.clone();
    // avail_event names the driver's avail.idx as the device last saw it: before it
    // looked, 0, and the re-check reports the chains, so the caller goes on serving.
    assert!(f.queue.arm_notifications(&mut mem).unwrap());
    assert_eq!(f.ring.avail_event(), 0);
    assert!(f.queue.arm_notifications(&mut mem).unwrap());
    assert_eq!(f.ring.avail_event(), 3);
    // Chains put back (a frame waiting for rx buffers): still avail.idx as seen, not
    // what was consumed, so the driver's next chain is the one that kicks.
    f.pop().unwrap();
    f.queue.unpop(1);
    assert!(f.queue.arm_notifications(&mut mem).unwrap());
    assert_eq!(f.ring.avail_event(), 3);

    // used_event 1: interrupt once used.idx passes it (0 -> 3 covers 1) and not again.
    f.ring.set_used_event(1);
    for _ in 0..3 {
        let head = f.pop().unwrap().unwrap();
        f.queue.push_used(&mut mem, head, 1).unwrap();
    }
    f.queue.publish(&mut mem).unwrap();
    assert!(f.queue.needs_interrupt(&f.mem).unwrap());
    assert!(!f.queue.needs_interrupt(&f.mem).unwrap(), "nothing new");
    let head = f.ring.add_chain(&[(1, true)]);
    assert_eq!(f.pop(), Ok(Some(head)));
    f.complete(head, 1);
    assert!(!f.queue.needs_interrupt(&f.mem).unwrap(), "3 -> 4 skips 1");
    assert!(!f.queue.arm_notifications(&mut mem).unwrap());
    assert_eq!(f.ring.avail_event(), 4);
}

#[test]
fn used_event_is_compared_across_the_wrap() {
    // used.idx goes 65535 -> 1: the driver asked for an interrupt once the entry at
    // used_event is used, so 65535 and 0 want one, 65534 (before) and 1 (after) not.
    for (used_event, wanted) in [
        (u16::MAX, true),
        (0, true),
        (u16::MAX - 1, false),
        (1, false),
    ] {
        let mut f = fixture(4, true);
        f.start_at(u16::MAX);
        f.ring.set_used_event(used_event);
        for _ in 0..2 {
            let head = f.ring.add_chain(&[(1, true)]);
            assert_eq!(f.pop(), Ok(Some(head)));
            f.complete(head, 1);
        }
        assert_eq!(f.ring.used_idx(), 1);
        assert_eq!(
            f.queue.needs_interrupt(&f.mem),
            Ok(wanted),
            "used_event {used_event}"
        );
    }
}

#[test]
fn without_event_idx_the_no_interrupt_flag_decides() {
    let mut f = fixture(4, false);
    assert!(
        !f.queue.needs_interrupt(&f.mem).unwrap(),
        "nothing published"
    );
    f.ring.set_avail_flags(1);
    let head = f.ring.add_chain(&[(1, true)]);
    assert_eq!(f.pop(), Ok(Some(head)));
    f.complete(head, 1);
    assert!(!f.queue.needs_interrupt(&f.mem).unwrap());
    f.ring.set_avail_flags(0);
    let head = f.ring.add_chain(&[(1, true)]);
    assert_eq!(f.pop(), Ok(Some(head)));
    f.complete(head, 1);
    assert!(f.queue.needs_interrupt(&f.mem).unwrap());
    // avail_event is not written without EVENT_IDX.
    assert!(!f.queue.arm_notifications(&mut f.mem.clone()).unwrap());
    assert_eq!(f.ring.avail_event(), 0);
}

#[test]
fn rings_across_a_page_boundary_work_as_any() {
    // Each ring starts 16 bytes before its page's end: descriptors, avail entries, used
    // entries and the event fields all lie in the second page, some across the seam.
    let mem = TestMemory::new();
    let mut ring = TestQueue::at_offset(&mem, 8, 4080);
    let mut queue = activate(&mem, &ring.config(), true).unwrap();
    assert_eq!(mem.live_mappings(), 6);
    let heads: Vec<u16> = (0..5).map(|_| ring.add_chain(&[(4, true)])).collect();
    let mut mem_mut = mem.clone();
    let mut answers = Vec::new();
    while let Some(head) = queue.pop(&mem).unwrap() {
        let desc = queue.descriptor(&mem, head).unwrap();
        assert_eq!((desc.addr, desc.len), (ring.buffers(head)[0].addr, 4));
        answers.push((head, u32::from(head) * 3));
    }
    assert_eq!(answers.iter().map(|a| a.0).collect::<Vec<_>>(), heads);
    queue.push_used_all(&mut mem_mut, &answers).unwrap();
    queue.publish(&mut mem_mut).unwrap();
    let expected: Vec<(u32, u32)> = answers.iter().map(|&(h, l)| (u32::from(h), l)).collect();
    assert_eq!(ring.used(), expected);
    assert!(!queue.arm_notifications(&mut mem_mut).unwrap());
    assert_eq!(ring.avail_event(), 5);
    assert!(mem.violations().is_empty(), "{:?}", mem.violations());
}

//! Backpressure between frontends: a frame for a frontend whose port cannot take it now
//! (backlog full, or holding its share of 64 KiB GSO frames) stays on the sender's tx
//! ring, the queue behind it too, until the receiver drains something; nothing drops
//! and order holds. A receiver that drains nothing for `TX_BLOCK_LIMIT_NS` costs its
//! senders no more than that: the waiting frame drops (counted), frames for it drop at
//! once until it drains again, and the sender's other traffic flows.

use devices::features::net as nf;
use devices::net::TX_BLOCK_LIMIT_NS;
use stubvirt_tests::net_fixture::{ethernet_frame, NetLayout, RawNet, LARGE_RX_AREA, MAC_A, MAC_B};
use stubvirt_tests::scenario::{self, Rng, FRONTEND, OTHER_FRONTEND};
use stubvirt_tests::tcp_packets::{GsoFrame, Ip};

const HOST_TSO: u64 = nf::CSUM | nf::HOST_TSO4 | nf::HOST_TSO6;
/// A receiver that takes GSO frames whole, in merged 8 KiB buffers.
const TSO_RECEIVER: u64 = nf::GUEST_CSUM | nf::GUEST_TSO4 | nf::MRG_RXBUF;
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 1, 0xc];
/// A sender's layout: room for a burst of eight 64 KiB frames from `LARGE_RX_AREA` on.
const SENDER: NetLayout = NetLayout {
    queue_size: 64,
    pages: 256,
};
/// TCP payload of the largest IPv4 GSO packet (see net_gso.rs).
const MAX_PAYLOAD_V4: usize = 65483;
const BURST: usize = devices::net::pool::GSO_FRAMES;

/// A 64 KiB TSO frame from A to `dst`, its payload made from `seed`.
fn tso_frame(dst: [u8; 6], seed: u64) -> GsoFrame {
    let mut payload = vec![0; MAX_PAYLOAD_V4];
    Rng::new(seed).fill(&mut payload);
    GsoFrame::new(Ip::V4, dst, MAC_A, &payload, 1448)
}

/// What a TSO receiver got, without the virtio header.
fn frames_of(got: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    got.into_iter().map(|f| f[12..].to_vec()).collect()
}

fn pair() -> (scenario::Shared, RawNet, RawNet) {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
    let a = RawNet::with_layout(&machine, FRONTEND, HOST_TSO, SENDER);
    let b = RawNet::with_layout(&machine, OTHER_FRONTEND, TSO_RECEIVER, NetLayout::GSO);
    (machine, a, b)
}

/// B drains: every frame A sent arrives whole and in order, A's ring is empty, nothing
/// dropped.
fn receive_all(
    machine: &scenario::Shared,
    a: &RawNet,
    b: &mut RawNet,
    before: u16,
    sent: &[GsoFrame],
) {
    let got = frames_of(b.drain_frames(8192, true));
    assert_eq!(got.len(), sent.len(), "every frame arrives");
    for (i, (got, sent)) in got.iter().zip(sent).enumerate() {
        assert!(got[..] == sent.frame[..], "frame {i} whole and in order");
    }
    assert_eq!(a.tx.used_idx().wrapping_sub(before), sent.len() as u16);
    assert_eq!(port_stats(machine, 1).dropped_backlog_full, 0);
}

fn port_stats(machine: &scenario::Shared, device: usize) -> devices::net::switch::PortStats {
    machine.borrow().backend.port_stats(device).unwrap()
}

fn counters(machine: &scenario::Shared, device: usize) -> devices::counters::Counters {
    machine.borrow().backend.counters(device).unwrap()
}

/// (a) A burst of eight 64 KiB TSO frames in one notification to a receiver with rx
/// buffers posted: all eight arrive, whole and in order; none drops, though the port
/// keeps only `gso_share` (2) of them at a time. (Before backpressure: two arrived.)
#[test]
fn a_burst_of_tso_frames_reaches_a_receiver_with_buffers_whole_and_in_order() {
    let (machine, mut a, mut b) = pair();
    assert!(
        b.drain_frames(8192, true).is_empty(),
        "buffers posted first"
    );
    let sent: Vec<GsoFrame> = (0..BURST as u64).map(|i| tso_frame(MAC_B, i)).collect();
    let burst: Vec<([u8; 12], &[u8])> = sent.iter().map(|g| (g.header, &g.frame[..])).collect();
    let before = a.send_burst(LARGE_RX_AREA, &burst);
    receive_all(&machine, &a, &mut b, before, &sent);
    assert_eq!(counters(&machine, 0).frames_tx, BURST as u64);
    assert_eq!(counters(&machine, 1).frames_rx, BURST as u64);
    assert_eq!(machine.borrow().backend.next_deadline(), None);
    scenario::assert_no_violations();
}

/// (b) The receiver posts its buffers late: the frames it cannot hold wait on the
/// sender's ring, the backend idles meanwhile (a round or two, not a spin, and a
/// deadline for the host), then they arrive in order; none drops.
#[test]
fn frames_wait_for_a_late_receiver_without_spinning_then_arrive_in_order() {
    let (machine, mut a, mut b) = pair();
    let sent: Vec<GsoFrame> = (0..BURST as u64).map(|i| tso_frame(MAC_B, i)).collect();
    let burst: Vec<([u8; 12], &[u8])> = sent.iter().map(|g| (g.header, &g.frame[..])).collect();
    let rounds = machine.borrow().rounds;
    let before = a.send_burst(LARGE_RX_AREA, &burst);
    let share = machine.borrow().backend.switch().gso_share();
    assert_eq!(
        a.tx.used_idx().wrapping_sub(before),
        share as u16,
        "the frames B's port holds are sent; the rest wait on A's ring"
    );
    let spent = machine.borrow().rounds - rounds;
    assert!(spent <= 3, "waiting is idle, not {spent} rounds");
    assert_eq!(
        machine.borrow().backend.next_deadline(),
        Some(TX_BLOCK_LIMIT_NS),
        "the host must wake by the deadline"
    );
    // Time passes, short of the limit, and A notifies again: still nothing moves.
    machine.borrow_mut().advance(TX_BLOCK_LIMIT_NS / 2);
    a.raw.notify(1);
    assert_eq!(a.tx.used_idx().wrapping_sub(before), share as u16);
    assert!(
        !machine.borrow_mut().run_once(),
        "nothing to do while B takes nothing"
    );
    assert_eq!(counters(&machine, 0).frames_tx, share as u64);
    receive_all(&machine, &a, &mut b, before, &sent);
    assert_eq!(machine.borrow().backend.next_deadline(), None);
    scenario::assert_no_violations();
}

/// (c) A receiver that never posts a buffer holds its sender back for at most
/// `TX_BLOCK_LIMIT_NS`: then the frame that waited drops (counted), later frames for it
/// drop at once, and the sender's frames to a third frontend flow. When the receiver
/// drains again, it is waited for again.
#[test]
fn a_receiver_that_takes_nothing_holds_its_sender_back_only_for_the_limit() {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND, 3]);
    for (domain, mac) in [(FRONTEND, MAC_A), (OTHER_FRONTEND, MAC_B), (3, MAC_C)] {
        scenario::add_net(&machine, domain, 0, mac);
    }
    let mut a = RawNet::with_layout(&machine, FRONTEND, HOST_TSO, SENDER);
    let mut b = RawNet::with_layout(&machine, OTHER_FRONTEND, TSO_RECEIVER, NetLayout::GSO);
    let mut c = RawNet::with_layout(&machine, 3, 0, NetLayout::GSO);
    let to_b: Vec<GsoFrame> = (0..4).map(|i| tso_frame(MAC_B, i)).collect();
    let to_c: Vec<Vec<u8>> = (0..2)
        .map(|i| ethernet_frame(MAC_C, MAC_A, 60 + i))
        .collect();
    let mut burst: Vec<([u8; 12], &[u8])> = to_b.iter().map(|g| (g.header, &g.frame[..])).collect();
    burst.extend(to_c.iter().map(|f| ([0; 12], &f[..])));
    let before = a.send_burst(LARGE_RX_AREA, &burst);
    assert!(
        c.drain_frames(2048, false).is_empty(),
        "C's frames wait behind B's"
    );
    machine.borrow_mut().advance(TX_BLOCK_LIMIT_NS - 1);
    assert!(
        c.drain_frames(2048, false).is_empty(),
        "not before the limit"
    );
    assert_eq!(port_stats(&machine, 1).dropped_backlog_full, 0);
    machine.borrow_mut().advance(1);
    let got = c.drain_frames(2048, false);
    assert_eq!(got.len(), 2, "C's frames flow after the limit");
    for (got, sent) in got.iter().zip(&to_c) {
        assert_eq!(&got[12..], &sent[..], "in order");
    }
    assert_eq!(a.tx.used_idx().wrapping_sub(before), 6, "A's ring is empty");
    let share = machine.borrow().backend.switch().gso_share() as u64;
    assert_eq!(
        port_stats(&machine, 1).dropped_backlog_full,
        4 - share,
        "the frame that waited and the one behind it drop, counted"
    );
    assert_eq!(machine.borrow().backend.next_deadline(), None);
    // B is stalled: more for it drops at once; A is not held back again.
    let more = tso_frame(MAC_B, 9);
    let before = a.send_burst(LARGE_RX_AREA, &[(more.header, &more.frame[..])]);
    assert_eq!(a.tx.used_idx().wrapping_sub(before), 1);
    assert_eq!(port_stats(&machine, 1).dropped_backlog_full, 5 - share);
    // B drains at last: the frames its port kept, in order; then it is waited for again.
    let got = frames_of(b.drain_frames(8192, true));
    assert_eq!(got.len(), share as usize);
    for (got, sent) in got.iter().zip(&to_b) {
        assert!(got[..] == sent.frame[..]);
    }
    assert_eq!(counters(&machine, 0).request_errors, 0);
    scenario::assert_no_violations();
}

/// (d) Small and large frames interleaved to one receiver arrive in the order sent,
/// though the small ones would have had room in its backlog while the large ones waited.
#[test]
fn a_senders_frames_keep_their_order_while_it_waits() {
    let (machine, mut a, mut b) = pair();
    let large: Vec<GsoFrame> = (0..6).map(|i| tso_frame(MAC_B, i)).collect();
    let small: Vec<Vec<u8>> = (0..6)
        .map(|i| ethernet_frame(MAC_B, MAC_A, 100 + i))
        .collect();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut burst: Vec<([u8; 12], &[u8])> = Vec::new();
    for (l, s) in large.iter().zip(&small) {
        burst.push((l.header, &l.frame[..]));
        burst.push(([0; 12], &s[..]));
        sent.push(l.frame.clone());
        sent.push(s.clone());
    }
    a.send_burst(LARGE_RX_AREA, &burst);
    let got = frames_of(b.drain_frames(8192, true));
    assert_eq!(got.len(), sent.len());
    for (i, (got, sent)) in got.iter().zip(&sent).enumerate() {
        assert!(got[..] == sent[..], "frame {i} in the order sent");
    }
    assert_eq!(port_stats(&machine, 1).dropped_backlog_full, 0);
    scenario::assert_no_violations();
}

/// A receiver's frontend going away releases a sender waiting for it at once: the frame
/// drops as for any detached port, without waiting for the limit.
#[test]
fn a_receiver_that_goes_away_releases_its_sender() {
    let (machine, mut a, b) = pair();
    let sent: Vec<GsoFrame> = (0..4).map(|i| tso_frame(MAC_B, i)).collect();
    let burst: Vec<([u8; 12], &[u8])> = sent.iter().map(|g| (g.header, &g.frame[..])).collect();
    let before = a.send_burst(LARGE_RX_AREA, &burst);
    assert!(a.tx.used_idx().wrapping_sub(before) < 4);
    machine.borrow_mut().detach_frontend(OTHER_FRONTEND);
    // Its driver is gone with its domain: nothing of it resets the device any more.
    std::mem::forget(b);
    machine.borrow_mut().run_until_idle();
    assert_eq!(a.tx.used_idx().wrapping_sub(before), 4);
    assert_eq!(machine.borrow().backend.next_deadline(), None);
    scenario::assert_no_violations();
}

//! virtio-net against a hostile frontend: error paths that must release what they loaded
//! and leave nothing behind for the next pass or the next reset.

use devices::features::net as nf;
use stubvirt_tests::net_fixture::{RawNet, MAC_A, MAC_B};
use stubvirt_tests::scenario;

fn frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    f
}

fn pages_held(machine: &scenario::Shared, device: usize) -> u64 {
    machine
        .borrow()
        .backend
        .counters(device)
        .unwrap()
        .pages_held()
}

/// A merged frame whose second buffer is an avail entry naming no descriptor: the first
/// rx buffer was loaded (mapped) when the ring turned out broken. It must be released
/// there, not left in the device's scratch for a reset to forget and for the next tx
/// pass to complete into the tx used ring.
#[test]
fn a_failed_merge_releases_its_first_buffer_and_tx_never_completes_it() {
    let (machine, mut a, mut b) = RawNet::pair(0, nf::MRG_RXBUF);
    let rings = pages_held(&machine, 1);
    b.post_rx(0, 512);
    // An avail entry naming descriptor 200 of a 16-entry ring.
    b.rx.push(200);
    b.raw.notify(0);
    a.send([0; 12], &frame(MAC_B, MAC_A, 1000));
    assert_ne!(
        b.raw.status() & devices::mmio::status::NEEDS_RESET,
        0,
        "the broken rx ring is reported"
    );
    // The broken rx queue stopped and unmapped its rings; the rx buffer loaded before the
    // ring broke was released on the error path: only the tx queue's rings (as many
    // pages as rx's, same size) stay mapped.
    assert_eq!(
        pages_held(&machine, 1),
        rings / 2,
        "only tx's rings stay mapped"
    );
    b.raw.write(devices::mmio::reg::STATUS, 0);
    assert_eq!(pages_held(&machine, 1), 0, "reset leaves nothing mapped");

    // After the reset, a tx frame from b completes only its own chain on the tx ring.
    b.restart(nf::MRG_RXBUF);
    a.post_rx(0, 1600);
    let f = frame(MAC_A, MAC_B, 100);
    b.send([0; 12], &f);
    assert_eq!(b.tx.used_idx(), 1);
    assert_eq!(b.tx.used(0), (0, 0), "tx used ring holds the tx head only");
    assert_eq!(a.used_rx(), vec![(0, 12 + 100)]);
    scenario::assert_no_violations();
}

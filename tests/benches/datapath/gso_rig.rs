//! 64 KiB GSO frames between two hand-driven frontends, for the datapath bench's net
//! table: passed whole to a GUEST_TSO4 peer, or cut into segments for a peer without it.

use devices::features::net as nf;
use devices::queue::{DESC_F_NEXT, DESC_F_WRITE};
use stubvirt_tests::net_fixture::{NetLayout, RawNet, LARGE_RX_AREA, MAC_A, MAC_B, TX_AREA};
use stubvirt_tests::tcp_packets::{GsoFrame, Ip};

/// GSO frames A sends per notification: the switch lets a port's backlog hold only its
/// share of the 64 KiB buffers (`Switch::gso_share`, 2 with the test machine's 4 ports),
/// and frames beyond it in one pass are dropped, so a burst of more would measure drops.
pub const FRAMES: u16 = 2;
/// TCP payload of the largest IPv4 GSO packet (total length 65535) and MTU 1500's MSS.
const PAYLOAD: usize = 65483;
const MSS: u16 = 1448;
/// A's tx frames one after another from TX_AREA; B's rx buffers from LARGE_RX_AREA.
const TX_STRIDE: usize = 17 * 4096;
const LAYOUT: NetLayout = NetLayout {
    queue_size: 256,
    pages: 128,
};

/// One way the receiver takes the frames.
#[derive(Clone, Copy)]
pub struct Receiver {
    pub name: &'static str,
    pub features: u64,
    /// Rx buffer size B posts.
    pub buffer: usize,
}

pub const RECEIVERS: [Receiver; 3] = [
    Receiver {
        name: "gso_passthrough",
        features: nf::MRG_RXBUF | nf::GUEST_CSUM | nf::GUEST_TSO4,
        buffer: 4096,
    },
    Receiver {
        name: "gso_segmented_partial_csum",
        features: nf::MRG_RXBUF | nf::GUEST_CSUM,
        buffer: 2048,
    },
    Receiver {
        name: "gso_segmented_full_csum",
        features: 0,
        buffer: 2048,
    },
];

pub struct GsoRig {
    // Dropped before the machine they live in.
    a: RawNet,
    b: RawNet,
    _machine: stubvirt_tests::scenario::Shared,
    frame_len: usize,
    /// Rx buffers B posts per round: enough for every frame or segment.
    buffers: u16,
    buffer: usize,
    /// Used rx entries one round must produce.
    expected: u16,
}

impl GsoRig {
    pub fn new(receiver: Receiver) -> Self {
        let sender = nf::CSUM | nf::HOST_TSO4;
        let (machine, a, b) = RawNet::pair_with(sender, receiver.features, LAYOUT);
        let share = machine.borrow().backend.switch().gso_share();
        assert!(
            usize::from(FRAMES) <= share,
            "FRAMES ({FRAMES}) exceeds the switch's GSO share per port ({share})"
        );
        let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7 % 251) as u8).collect();
        let gso = GsoFrame::new(Ip::V4, MAC_B, MAC_A, &payload, MSS);
        for j in 0..usize::from(FRAMES) {
            let at = TX_AREA + j * TX_STRIDE;
            a.mem.write(at, &gso.header);
            a.mem.write(at + 64, &gso.frame);
        }
        let per_frame = if receiver.features & nf::GUEST_TSO4 != 0 {
            (12 + gso.frame.len()).div_ceil(receiver.buffer)
        } else {
            gso.segment_count()
        } as u16;
        let expected = per_frame * FRAMES;
        Self {
            a,
            b,
            _machine: machine,
            frame_len: gso.frame.len(),
            buffers: expected,
            buffer: receiver.buffer,
            expected,
        }
    }

    /// Bytes of Ethernet frame one GSO frame carries.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// B posts its buffers (one notification), A sends [`FRAMES`] GSO frames (one more).
    pub fn round(&mut self) {
        let (a, b) = (&mut self.a, &mut self.b);
        let rx_base = b.rx.used_idx();
        for i in 0..usize::from(self.buffers) {
            let index = b.next_rx_desc();
            let at = LARGE_RX_AREA + i * self.buffer;
            b.rx.set_desc(index, b.mem.dma(at), self.buffer as u32, DESC_F_WRITE, 0);
            b.rx.push(index);
            b.posted = b.posted.wrapping_add(1);
        }
        b.raw.notify(0);
        for j in 0..FRAMES {
            let at = TX_AREA + usize::from(j) * TX_STRIDE;
            a.tx.set_desc(2 * j, a.mem.dma(at), 12, DESC_F_NEXT, 2 * j + 1);
            a.tx.set_desc(2 * j + 1, a.mem.dma(at + 64), self.frame_len as u32, 0, 0);
            a.tx.push(2 * j);
        }
        a.raw.notify(1);
        let received = b.rx.used_idx().wrapping_sub(rx_base);
        assert_eq!(received, self.expected, "every frame or segment delivered");
    }
}

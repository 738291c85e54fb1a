//! The two frontends of the net targets, kept from one round to the next. Building a
//! machine (the switch's frame pools, two devices, their queues) costs more than most
//! rounds, so a round resets both devices and negotiates again instead, as a driver that
//! is unbound and bound again would. That is only sound if a reset leaves nothing
//! behind, which is checked every time a pair is handed out, and is itself an oracle:
//! once both devices are reset, no page of either frontend is mapped, and no frame waits
//! in the switch.

use crate::net_fixture::{NetLayout, RawNet, MAC_A, MAC_B};
use crate::scenario::{self, Shared, FRONTEND, OTHER_FRONTEND};
use crate::world;
use devices::counters::Counters;
use devices::mmio::reg;
use devices::net::switch::PortStats;
use std::cell::RefCell;
use std::mem::ManuallyDrop;

/// The machine kept between rounds: both devices reset, with the hand-driven frontends
/// built so far, one pair per layout (their granted memory is what a new pair would
/// spend most of its time allocating).
struct Kept {
    machine: Shared,
    generation: u64,
    nets: Vec<(Layout, RawNet, RawNet)>,
}

/// A layout, comparable.
type Layout = (u16, usize);

/// Never dropped: at thread exit the simulated Xen may be gone before it, and the
/// frontends would reset their devices through it; the process is ending anyway.
struct Keeper(ManuallyDrop<Option<Kept>>);

thread_local! {
    static KEPT: RefCell<Keeper> = const { RefCell::new(Keeper(ManuallyDrop::new(None))) };
}

/// A with port 0 (device 0), B with port 1 (device 1), and their counters when the
/// round began.
pub struct Pair {
    pub machine: Shared,
    pub a: RawNet,
    pub b: RawNet,
    layout: Layout,
    generation: u64,
    idle: Vec<(Layout, RawNet, RawNet)>,
    counters_at_start: [Counters; 2],
    ports_at_start: [PortStats; 2],
}

impl Pair {
    /// A pair with A negotiating `extra_a` and B `extra_b` on top of the base features,
    /// request buffers by grant copy if `copy`: on the kept machine when there is one.
    pub fn take(layout: NetLayout, copy: bool, extra_a: u64, extra_b: u64) -> Self {
        let key = (layout.queue_size, layout.pages);
        let generation = world::generation();
        let kept = KEPT
            .with(|k| k.borrow_mut().0.take())
            .filter(|kept| kept.generation == generation);
        let Kept {
            machine,
            generation,
            mut nets,
        } = kept.unwrap_or_else(build);
        for domain in [FRONTEND, OTHER_FRONTEND] {
            let mut machine = machine.borrow_mut();
            if copy {
                machine.frontends.copy_buffers(domain);
            } else {
                machine.frontends.add(domain);
            }
        }
        let (a, b) = match nets.iter().position(|(k, _, _)| *k == key) {
            Some(at) => {
                let (_, mut a, mut b) = nets.swap_remove(at);
                a.restart_in_place(extra_a);
                b.restart_in_place(extra_b);
                (a, b)
            }
            None => (
                RawNet::with_layout(&machine, FRONTEND, extra_a, layout),
                RawNet::with_layout(&machine, OTHER_FRONTEND, extra_b, layout),
            ),
        };
        let mut pair = Self {
            machine,
            a,
            b,
            layout: key,
            generation,
            idle: nets,
            counters_at_start: [Counters::default(); 2],
            ports_at_start: [PortStats::default(); 2],
        };
        pair.counters_at_start = [pair.counters_now(0), pair.counters_now(1)];
        pair.ports_at_start = [pair.ports_now(0), pair.ports_now(1)];
        pair
    }

    fn counters_now(&self, device: usize) -> Counters {
        self.machine
            .borrow()
            .backend
            .counters(device)
            .unwrap_or_default()
    }

    fn ports_now(&self, device: usize) -> PortStats {
        self.machine
            .borrow()
            .backend
            .port_stats(device)
            .unwrap_or_default()
    }

    /// A counter of `device` (0: A, 1: B) since the round began.
    pub fn counted(&self, device: usize, counter: fn(&Counters) -> u64) -> u64 {
        let start = self.counters_at_start.get(device).map_or(0, counter);
        counter(&self.counters_now(device)).wrapping_sub(start)
    }

    /// A switch statistic of `device`'s port since the round began.
    pub fn port_counted(&self, device: usize, stat: fn(&PortStats) -> u64) -> u64 {
        let start = self.ports_at_start.get(device).map_or(0, stat);
        stat(&self.ports_now(device)).wrapping_sub(start)
    }

    /// Ends the round: no grant violation; both devices reset, after which nothing of
    /// either frontend may stay mapped and no frame may wait in the switch. Then the
    /// machine is kept for the next round.
    pub fn finish(self) {
        scenario::assert_no_violations();
        self.a.raw.write(reg::STATUS, 0);
        self.b.raw.write(reg::STATUS, 0);
        for domain in [FRONTEND, OTHER_FRONTEND] {
            let mapped = world::with(|w| w.live_mappings_of(domain));
            assert_eq!(mapped, 0, "dom{domain}'s pages still mapped after a reset");
        }
        let switch_waits = {
            let machine = self.machine.borrow();
            let switch = machine.backend.switch();
            switch.has_frames_for(0) || switch.has_frames_for(1)
        };
        assert!(
            !switch_waits,
            "a frame still waits in the switch after the round"
        );
        let Self {
            machine,
            a,
            b,
            layout,
            generation,
            mut idle,
            ..
        } = self;
        idle.push((layout, a, b));
        let kept = Kept {
            machine,
            generation,
            nets: idle,
        };
        KEPT.with(|k| *k.borrow_mut().0 = Some(kept));
    }
}

/// A new machine with A's and B's NICs, and no frontend driving them yet.
fn build() -> Kept {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
    scenario::add_net(&machine, FRONTEND, 0, MAC_A);
    scenario::add_net(&machine, OTHER_FRONTEND, 0, MAC_B);
    Kept {
        machine,
        generation: world::generation(),
        nets: Vec::new(),
    }
}

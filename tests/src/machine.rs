//! The simulated machine: Xen's ioreq path between frontend vcpus and the backend,
//! interrupt injection, and the backend's event loop, run synchronously.

use crate::world::SimFrontends;
use devices::backend::{Backend, Detached, DomainId, Frontends, Interrupt};
use devices::ioreq::{
    self, Ioreq, IoreqError, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_WRITE, STATE_IOREQ_READY,
    STATE_IORESP_READY,
};
use devices::ioreq_loop::{self, IoreqStats, Vcpu, VcpuChannel};
use std::collections::BTreeMap;

/// Rounds of the backend loop after which a test machine gives up (a livelock).
const MAX_ROUNDS: usize = 10_000;

/// The most one device may move or touch in one round: its pass budget, plus the one
/// request a pass always runs, at most a range request of the default
/// `max_discard_sectors` (32 MiB); a data request is at most 1 MiB.
pub const ROUND_BYTES_PER_DEVICE: u64 = devices::blk::PASS_BYTES + (32 << 20);

pub struct Machine {
    pub backend: Backend,
    pub frontends: SimFrontends,
    /// Per frontend, one ioreq slot per vcpu, as in Xen's shared ioreq page, with the
    /// backend loop's state of each.
    vcpus: BTreeMap<DomainId, Vec<Vcpu<SimVcpu>>>,
    /// Interrupts injected (`XEN_DMOP_set_irq_level` 1 then 0), per (domain, irq).
    pub interrupts: BTreeMap<(DomainId, u32), u64>,
    /// The ioreq loop's counts (accesses, errors, failed notifications).
    pub ioreq_stats: IoreqStats,
    /// Accesses answered with an error.
    pub ioreq_errors: Vec<IoreqError>,
    /// Rounds of the backend's event loop.
    pub rounds: u64,
    /// Fault injection: refuse this many upcoming `set_irq_level` calls.
    pub irq_refusals: u64,
    /// The host's clock as the backend sees it (ns): it moves only when a test moves it.
    pub now_ns: u64,
}

impl Machine {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            frontends: SimFrontends::default(),
            vcpus: BTreeMap::new(),
            interrupts: BTreeMap::new(),
            ioreq_stats: IoreqStats::default(),
            ioreq_errors: Vec::new(),
            rounds: 0,
            irq_refusals: 0,
            now_ns: 0,
        }
    }

    pub fn add_frontend(&mut self, domain: DomainId, vcpus: usize) {
        self.frontends.add(domain);
        let vcpus = (0..vcpus).map(|_| Vcpu::new(SimVcpu::default())).collect();
        self.vcpus.insert(domain, vcpus);
    }

    /// The frontend's domain is gone (crashed, shut down): the backend detaches its
    /// devices, releasing what they held through its memory, then forgets its memory and
    /// ioreq slots, as the kernel does before it destroys the ioreq server.
    pub fn detach_frontend(&mut self, domain: DomainId) -> Option<Detached> {
        let memory = self.frontends.memory(domain)?;
        let detached = self.backend.detach_frontend(domain, memory);
        self.frontends.remove(domain);
        self.vcpus.remove(&domain);
        Some(detached)
    }

    /// A frontend vcpu touches the register window: Xen fills that vcpu's slot, signals
    /// the backend, which serves every ready slot and then runs its queues until idle.
    pub fn trap(
        &mut self,
        domain: DomainId,
        vcpu: usize,
        addr: u64,
        size: u32,
        write: bool,
        data: u64,
    ) -> u64 {
        self.post(domain, vcpu, addr, size, write, data);
        self.serve_slots();
        self.run_until_idle();
        self.collect(domain, vcpu)
    }

    /// Xen's side: put an access in a slot (state READY).
    pub fn post(
        &mut self,
        domain: DomainId,
        vcpu: usize,
        addr: u64,
        size: u32,
        write: bool,
        data: u64,
    ) {
        if let Some(sim) = self.sim_vcpu(domain, vcpu) {
            sim.woken = false;
            sim.slot = Ioreq {
                addr,
                data: if write { data } else { 0 },
                count: 1,
                size,
                state: STATE_IOREQ_READY,
                data_is_ptr: false,
                dir: if write { IOREQ_WRITE } else { IOREQ_READ },
                df: false,
                kind: IOREQ_TYPE_COPY,
            };
        }
    }

    /// Posts a raw slot exactly as given (hostile or unusual ioreqs).
    pub fn post_raw(&mut self, domain: DomainId, vcpu: usize, slot: Ioreq) {
        if let Some(sim) = self.sim_vcpu(domain, vcpu) {
            sim.woken = false;
            sim.slot = slot;
        }
    }

    fn sim_vcpu(&mut self, domain: DomainId, vcpu: usize) -> Option<&mut SimVcpu> {
        self.vcpus
            .get_mut(&domain)
            .and_then(|v| v.get_mut(vcpu))
            .map(|v| &mut v.channel)
    }

    /// Fault injection: the backend's next `count` notifications of this vcpu fail
    /// (`EVTCHNOP_send` returns an error).
    pub fn refuse_notifications(&mut self, domain: DomainId, vcpu: usize, count: u64) {
        if let Some(sim) = self.sim_vcpu(domain, vcpu) {
            sim.refuse_notifies = count;
        }
    }

    /// The backend's loop state of a vcpu (served count, owed notification).
    pub fn vcpu_state(&self, domain: DomainId, vcpu: usize) -> Option<(u64, bool)> {
        let v = self.vcpus.get(&domain)?.get(vcpu)?;
        Some((v.served, v.notify_owed))
    }

    /// The backend's side: one pass of its ioreq loop (the kernel's code path): owed
    /// notifications retried, every vcpu slot in state READY served, answered, notified.
    /// Returns how many accesses were answered.
    pub fn serve_slots(&mut self) -> usize {
        let mut served = 0;
        for (&domain, vcpus) in self.vcpus.iter_mut() {
            let errors = &mut self.ioreq_errors;
            served += ioreq_loop::serve_pass(
                &mut self.backend,
                &mut self.frontends,
                domain,
                vcpus,
                &mut self.ioreq_stats,
                &mut |_, error| errors.push(error),
            );
        }
        served
    }

    /// Xen's side: the response of a vcpu that was answered and woken, if any; the vcpu
    /// resumes. A vcpu whose notification failed stays asleep (`None`).
    pub fn try_collect(&mut self, domain: DomainId, vcpu: usize) -> Option<u64> {
        let sim = self.sim_vcpu(domain, vcpu)?;
        if sim.slot.state != STATE_IORESP_READY || !sim.woken {
            return None;
        }
        sim.slot.state = ioreq::STATE_IOREQ_NONE;
        sim.woken = false;
        Some(sim.slot.data)
    }

    /// [`Self::try_collect`] for an access that must have been answered.
    pub fn collect(&mut self, domain: DomainId, vcpu: usize) -> u64 {
        match self.try_collect(domain, vcpu) {
            Some(data) => data,
            None => panic!(
                "simulated Xen: dom{domain} vcpu{vcpu} has no response or was never woken: \
                 the backend left it waiting"
            ),
        }
    }

    /// Slot state, for tests.
    pub fn slot(&self, domain: DomainId, vcpu: usize) -> Option<Ioreq> {
        self.vcpus
            .get(&domain)
            .and_then(|v| v.get(vcpu))
            .map(|v| v.channel.slot)
    }

    /// Moves the clock on by `ns` and runs the backend until it is idle, as the host
    /// does when its poll times out.
    pub fn advance(&mut self, ns: u64) {
        self.now_ns += ns;
        self.run_until_idle();
    }

    /// Runs the backend's loop until it reports no more work.
    pub fn run_until_idle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if !self.run_once() {
                return;
            }
        }
        panic!("simulated Xen: backend still busy after {MAX_ROUNDS} rounds");
    }

    /// One round of the backend's loop; returns whether it has more work.
    /// Checks that the round stayed within every device's byte budget, in guest bytes
    /// and in bytes the disks touched.
    pub fn run_once(&mut self) -> bool {
        self.rounds += 1;
        let guest_before = self.guest_bytes();
        let storage_before = crate::world::with(|w| w.storage_bytes.clone());
        let interrupts = &mut self.interrupts;
        let refusals = &mut self.irq_refusals;
        let more = self
            .backend
            .run(&mut self.frontends, self.now_ns, &mut |irq: Interrupt| {
                if *refusals > 0 {
                    *refusals -= 1;
                    return false;
                }
                *interrupts.entry((irq.frontend, irq.irq)).or_insert(0) += 1;
                true
            });
        let storage_after = crate::world::with(|w| w.storage_bytes.clone());
        for (disk, (after, before)) in storage_after.iter().zip(storage_before).enumerate() {
            let touched = after.saturating_sub(before);
            assert!(
                touched <= ROUND_BYTES_PER_DEVICE,
                "disk {disk}: one round touched {touched} bytes"
            );
        }
        for (device, (after, before)) in self.guest_bytes().iter().zip(guest_before).enumerate() {
            let moved = after.saturating_sub(before);
            assert!(
                moved <= ROUND_BYTES_PER_DEVICE,
                "device {device}: one round moved {moved} guest bytes"
            );
        }
        more
    }

    /// Bytes each device moved to and from its frontend so far.
    fn guest_bytes(&self) -> Vec<u64> {
        (0..self.backend.device_count())
            .filter_map(|d| self.backend.counters(d))
            .map(|c| c.bytes_from_guest + c.bytes_to_guest)
            .collect()
    }

    pub fn interrupts_for(&self, domain: DomainId, irq: u32) -> u64 {
        self.interrupts.get(&(domain, irq)).copied().unwrap_or(0)
    }
}

/// A vcpu of a simulated frontend: its ioreq slot and whether its event channel woke it.
#[derive(Default)]
pub struct SimVcpu {
    slot: Ioreq,
    /// The backend's notification arrived since the vcpu trapped.
    woken: bool,
    /// Fault injection: notifications still to refuse.
    refuse_notifies: u64,
}

impl VcpuChannel for SimVcpu {
    fn take_ready(&mut self) -> Option<Ioreq> {
        (self.slot.state == STATE_IOREQ_READY).then_some(self.slot)
    }

    fn complete(&mut self, data: u64) {
        self.slot.data = data;
        self.slot.state = STATE_IORESP_READY;
    }

    fn notify(&mut self) -> bool {
        if self.refuse_notifies > 0 {
            self.refuse_notifies -= 1;
            return false;
        }
        self.woken = true;
        true
    }
}

//! The simulated machine: Xen's ioreq path between frontend vcpus and the backend,
//! interrupt injection, and the backend's event loop, run synchronously.

use crate::world::SimFrontends;
use devices::backend::{Backend, DomainId, Interrupt};
use devices::ioreq::{
    self, Ioreq, IoreqError, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_WRITE, STATE_IOREQ_READY,
    STATE_IORESP_READY,
};
use std::collections::BTreeMap;

/// Rounds of the backend loop after which a test machine gives up (a livelock).
const MAX_ROUNDS: usize = 10_000;

pub struct Machine {
    pub backend: Backend,
    pub frontends: SimFrontends,
    /// Per frontend, one ioreq slot per vcpu, as in Xen's shared ioreq page.
    slots: BTreeMap<DomainId, Vec<Ioreq>>,
    /// Interrupts injected (`XEN_DMOP_set_irq_level` 1 then 0), per (domain, irq).
    pub interrupts: BTreeMap<(DomainId, u32), u64>,
    /// Trapped accesses served, and those answered with an error.
    pub ioreqs: u64,
    pub ioreq_errors: Vec<IoreqError>,
    /// Rounds of the backend's event loop.
    pub rounds: u64,
    /// Fault injection: refuse this many upcoming `set_irq_level` calls.
    pub irq_refusals: u64,
}

impl Machine {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            frontends: SimFrontends::default(),
            slots: BTreeMap::new(),
            interrupts: BTreeMap::new(),
            ioreqs: 0,
            ioreq_errors: Vec::new(),
            rounds: 0,
            irq_refusals: 0,
        }
    }

    pub fn add_frontend(&mut self, domain: DomainId, vcpus: usize) {
        self.frontends.add(domain);
        self.slots.insert(domain, vec![Ioreq::default(); vcpus]);
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
        if let Some(slot) = self.slots.get_mut(&domain).and_then(|s| s.get_mut(vcpu)) {
            *slot = Ioreq {
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
        if let Some(s) = self.slots.get_mut(&domain).and_then(|s| s.get_mut(vcpu)) {
            *s = slot;
        }
    }

    /// The backend's side: every vcpu slot in state READY is served and answered.
    pub fn serve_slots(&mut self) {
        for (&domain, slots) in self.slots.iter_mut() {
            for slot in slots.iter_mut().filter(|s| s.state == STATE_IOREQ_READY) {
                let answer = ioreq::serve(&mut self.backend, &mut self.frontends, domain, slot);
                slot.data = answer.data;
                slot.state = STATE_IORESP_READY;
                self.ioreqs += 1;
                if let Some(error) = answer.error {
                    self.ioreq_errors.push(error);
                }
            }
        }
    }

    /// Xen's side: take the response of a slot; the vcpu resumes.
    pub fn collect(&mut self, domain: DomainId, vcpu: usize) -> u64 {
        match self.slots.get_mut(&domain).and_then(|s| s.get_mut(vcpu)) {
            Some(slot) if slot.state == STATE_IORESP_READY => {
                slot.state = ioreq::STATE_IOREQ_NONE;
                slot.data
            }
            _ => panic!("simulated Xen: dom{domain} vcpu{vcpu} has no response: the backend left it waiting"),
        }
    }

    /// Slot state, for tests.
    pub fn slot(&self, domain: DomainId, vcpu: usize) -> Option<Ioreq> {
        self.slots.get(&domain).and_then(|s| s.get(vcpu)).copied()
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
    pub fn run_once(&mut self) -> bool {
        self.rounds += 1;
        let interrupts = &mut self.interrupts;
        let refusals = &mut self.irq_refusals;
        self.backend
            .run(&mut self.frontends, &mut |irq: Interrupt| {
                if *refusals > 0 {
                    *refusals -= 1;
                    return false;
                }
                *interrupts.entry((irq.frontend, irq.irq)).or_insert(0) += 1;
                true
            })
    }

    pub fn interrupts_for(&self, domain: DomainId, irq: u32) -> u64 {
        self.interrupts.get(&(domain, irq)).copied().unwrap_or(0)
    }
}

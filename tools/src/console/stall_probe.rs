//! When a Linux frontend reports an RCU stall, or the console falls silent (stubvirt, which
//! prints its counters every 2 s, stopped), asks Xen what its vcpus are doing, so that
//! every stall or hang seen, in CI too, leaves Xen's view of it in the run's log (issue
//! 19: runnable vcpus left beside idle CPUs, docs/testing.md).
//!
//! Xen's serial input goes to a domain until CTRL-a is typed three times; QEMU's
//! `-nographic` console takes CTRL-a as its own escape, so each one is typed twice. Once
//! Xen says it has the input, its debug keys dump the timer queues (`a`: is the stalled
//! vcpu's timer still queued, and when for), the domains with their vcpus' pending
//! interrupts (`q`), the run queues (`r`) and every cpu's registers (`d`). Xen keeps one
//! pending key for its deferred handlers, so each key is typed once the previous one's
//! dump has begun.

use super::{Next, SILENT_LINE};
use crate::demo::report::STALL_REPORT;

/// CTRL-a three times, each doubled for QEMU's console multiplexer.
const SWITCH_INPUT: &[u8] = &[1; 6];
/// The debug keys, each with the first line of what it prints: timer queues, domains,
/// run queues, registers.
const DEBUG_KEYS: [(&[u8], &str); 4] = [
    (b"a", "Dumping timer queues"),
    (b"q", "'q' pressed -> dumping domain info"),
    (b"r", "sched_smt_power_savings"),
    (b"d", "'d' pressed -> dumping registers"),
];
/// What Xen prints when the input is its own.
const INPUT_TO_XEN: &str = "*** Serial input to Xen";
/// What Xen prints when the input went to a domain instead.
const INPUT_TO_DOMAIN: &str = "*** Serial input to DOM";
/// Xen rotates its input through itself, dom0 and the boot-time domains: more switches
/// than domains mean the input never came to Xen (an older Xen or another console).
const MOST_SWITCHES: u8 = 8;

/// Where the probe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// No stall reported yet.
    Waiting,
    /// Switching Xen's input to Xen (this many switches typed).
    Switching(u8),
    /// Debug key `n` was typed; the next waits for its dump to begin.
    Dumping(usize),
    /// Every key was typed.
    Dumped,
    /// The input never reached Xen.
    GaveUp,
}

/// Decides, line by line, what to type into the console.
#[derive(Debug)]
pub struct StallProbe {
    stage: Stage,
}

impl Default for StallProbe {
    fn default() -> Self {
        Self {
            stage: Stage::Waiting,
        }
    }
}

impl StallProbe {
    /// The keys to type after `line`, if any.
    fn keys_after(&mut self, line: &str) -> Option<&'static [u8]> {
        match self.stage {
            Stage::Waiting
                if line.contains(STALL_REPORT) || line == SILENT_LINE || dump_asked_at(line) =>
            {
                println!("    asking Xen for its timers, domains, run queues and registers");
                self.stage = Stage::Switching(1);
                Some(SWITCH_INPUT)
            }
            Stage::Switching(_) if line.contains(INPUT_TO_XEN) => self.type_key(0),
            Stage::Dumping(typed) => match DEBUG_KEYS.get(typed) {
                Some((_, dump_begins)) if line.contains(dump_begins) => self.type_key(typed + 1),
                _ => None,
            },
            Stage::Switching(typed) if line.contains(INPUT_TO_DOMAIN) => {
                if typed >= MOST_SWITCHES {
                    self.stage = Stage::GaveUp;
                    return None;
                }
                self.stage = Stage::Switching(typed + 1);
                Some(SWITCH_INPUT)
            }
            _ => None,
        }
    }

    /// What the watcher does after `line`: type the keys, if any, and go on.
    pub fn next(&mut self, line: &str) -> Next {
        match self.keys_after(line) {
            Some(keys) => Next::Type(keys.to_vec()),
            None => Next::Go,
        }
    }

    fn type_key(&mut self, n: usize) -> Option<&'static [u8]> {
        let (key, _) = DEBUG_KEYS.get(n)?;
        self.stage = if n + 1 < DEBUG_KEYS.len() {
            Stage::Dumping(n)
        } else {
            Stage::Dumped
        };
        Some(key)
    }
}

/// Whether `STUBVIRT_XEN_DUMP_AT` asks for the dump after this line (a debugging aid:
/// Xen's state at a chosen moment of a run).
fn dump_asked_at(line: &str) -> bool {
    std::env::var(DUMP_AT_VARIABLE).is_ok_and(|at| !at.is_empty() && line.contains(&at))
}

/// The environment variable naming the line to dump Xen's state after.
const DUMP_AT_VARIABLE: &str = "STUBVIRT_XEN_DUMP_AT";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_until_xen_has_the_input_then_types_the_keys_once() {
        let mut probe = StallProbe::default();
        assert_eq!(probe.keys_after("DOM1: [ 3.0] virtio_blk virtio0"), None);
        assert_eq!(
            probe.keys_after("DOM1: [ 55.2] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:"),
            Some(SWITCH_INPUT)
        );
        assert_eq!(
            probe.keys_after("(XEN) *** Serial input to DOM1 (type 'CTRL-a' three times)"),
            Some(SWITCH_INPUT)
        );
        assert_eq!(
            probe.keys_after("(XEN) *** Serial input to Xen (type 'CTRL-a' three times)"),
            Some(&b"a"[..])
        );
        // The next key only once the previous dump began.
        assert_eq!(probe.keys_after("(XEN) DOM1: [ 56.0] something"), None);
        assert_eq!(
            probe.keys_after("(XEN) Dumping timer queues:"),
            Some(&b"q"[..])
        );
        assert_eq!(
            probe.keys_after("(XEN) 'q' pressed -> dumping domain info (now = 1)"),
            Some(&b"r"[..])
        );
        assert_eq!(
            probe.keys_after("(XEN) sched_smt_power_savings: disabled"),
            Some(&b"d"[..])
        );
        assert_eq!(probe.stage, Stage::Dumped);
        assert_eq!(
            probe.keys_after("DOM1: [ 118.2] rcu: INFO: rcu_sched detected stalls"),
            None
        );
        assert_eq!(probe.keys_after("(XEN) *** Serial input to Xen"), None);
    }

    #[test]
    fn a_silent_console_asks_for_the_dump_too() {
        let mut probe = StallProbe::default();
        assert_eq!(probe.keys_after("STUBVIRT-COUNTERS ioreqs=7622"), None);
        assert_eq!(probe.keys_after(SILENT_LINE), Some(SWITCH_INPUT));
    }

    #[test]
    fn gives_up_when_the_input_never_reaches_xen() {
        let mut probe = StallProbe::default();
        probe.keys_after("rcu: INFO: rcu_sched detected stalls on CPUs/tasks:");
        let mut typed = 1;
        while probe.keys_after("(XEN) *** Serial input to DOM2").is_some() {
            typed += 1;
            assert!(typed <= MOST_SWITCHES, "kept switching");
        }
        assert_eq!(typed, MOST_SWITCHES);
        assert_eq!(probe.stage, Stage::GaveUp);
    }
}

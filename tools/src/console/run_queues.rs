//! Reads Xen's run-queue dump (debug key `r`, which the stall probe types) for the one
//! state no guest or backend can cause: a runnable vcpu waiting in a run queue while a
//! physical CPU sits idle. Xen's scheduler must run it; when the dump shows it queued
//! after 30 s of silence, Xen (or the emulated machine under it) lost a wake-up.

/// What the dump shows waiting, if anything is stranded: `d0v0 queued, CPU1 idle`.
pub fn stranded_vcpu<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut idle_cpus = Vec::new();
    // Queued units, with the CPU whose own queue holds them (credit) or None (credit2's
    // queue is shared by the CPUs of the run queue).
    let mut queued: Vec<(Option<u32>, String)> = Vec::new();
    let mut section = Section::Other;
    for line in lines {
        let text = line.trim_start_matches("(XEN)").trim();
        if text == "RUNQ:" {
            section = Section::SharedQueue;
            continue;
        }
        if let Some(cpu) = cpu_of(text) {
            if text.contains("current=d[IDLE]") {
                idle_cpus.push(cpu);
            }
            section = if text.contains("nr_run=") {
                Section::QueueOf(cpu)
            } else {
                Section::Other
            };
            continue;
        }
        if text.ends_with(':') && !text.starts_with(char::is_numeric) {
            section = Section::Other;
            continue;
        }
        let Some(unit) = queued_unit(text) else {
            continue;
        };
        match section {
            Section::SharedQueue => queued.push((None, unit)),
            Section::QueueOf(cpu) => queued.push((Some(cpu), unit)),
            Section::Other => {}
        }
    }
    let (cpu, unit) = queued.into_iter().find_map(|(owner, unit)| {
        let idle = match owner {
            Some(cpu) => idle_cpus.contains(&cpu).then_some(cpu),
            None => idle_cpus.first().copied(),
        }?;
        Some((idle, unit))
    })?;
    Some(format!("{unit} queued, CPU{cpu} idle"))
}

#[derive(Clone, Copy)]
enum Section {
    /// credit2's `RUNQ:` list.
    SharedQueue,
    /// credit's per-CPU list after `CPU[nn] nr_run=...`.
    QueueOf(u32),
    Other,
}

/// `nn` of a line starting `CPU[nn]`.
fn cpu_of(text: &str) -> Option<u32> {
    let rest = text.strip_prefix("CPU[")?;
    rest.get(..rest.find(']')?)?.parse().ok()
}

/// `dXvY` of a queued unit's line (`  1: [1.1] pri=0 ...`); None for the idle domain
/// (32767), the running unit (`run: ...`) and anything else.
fn queued_unit(text: &str) -> Option<String> {
    let (index, rest) = text.split_once(": [")?;
    index.parse::<u32>().ok()?;
    let (domain, vcpu) = rest.get(..rest.find(']')?)?.split_once('.')?;
    let (domain, vcpu): (u32, u32) = (domain.parse().ok()?, vcpu.parse().ok()?);
    (domain != 32767).then(|| format!("d{domain}v{vcpu}"))
}

#[cfg(test)]
mod tests {
    use super::stranded_vcpu;

    /// Xen 4.17.5's credit2 dump in a demo that went silent: stubvirt (dom0) runnable at
    /// the credit floor on CPU1, which is idle.
    const CREDIT2_STRANDED: &str = "(XEN) Runqueue 0:
(XEN) \tidlers: 2
(XEN) Domain info:
(XEN) \tDomain: 0 w 256 c 0 v 1
(XEN) \t  1: [0.0] flags=0 cpu=1 credit=-10000000 [w=256] load=152837 (~58%)
(XEN) \tDomain: 1 w 256 c 0 v 2
(XEN) \t  2: [1.0] flags=0 cpu=0 credit=-10000000 [w=256] load=204601 (~78%)
(XEN) Runqueue 0:
(XEN) CPU[00] runq=0, sibling={0}, core={0}
(XEN) CPU[01] runq=0, sibling={1}, core={1}
(XEN) RUNQ:
(XEN) \t  0: [0.0] flags=0 cpu=1 credit=-10000000 [w=256] load=152837 (~58%)
(XEN) CPUs info:
(XEN) CPU[00] current=d[IDLE]v0, curr=d[IDLE]v0, prev=NULL
(XEN) CPU[01] current=d[IDLE]v1, curr=d[IDLE]v1, prev=NULL";

    /// credit's dump at an RCU stall: the frontend's vcpu 1 waits on idle CPU0's queue.
    const CREDIT_STRANDED: &str = "(XEN) active units:
(XEN) \t  1: [1.0] pri=-1 flags=0 cpu=1 credit=-32 [w=256,cap=0]
(XEN) CPUs info:
(XEN) CPU[00] current=d[IDLE]v0, curr=d[IDLE]v0, prev=NULL
(XEN) CPU[00] nr_run=1, sort=4172, sibling={0}, core={0}
(XEN) \t  1: [1.1] pri=0 flags=0 cpu=0 credit=224 [w=256,cap=0]
(XEN) CPU[01] current=d1v0, curr=d1v0, prev=NULL
(XEN) CPU[01] nr_run=1, sort=4174, sibling={1}, core={1}
(XEN) \trun: [1.0] pri=-1 flags=0 cpu=1 credit=-32 [w=256,cap=0]
(XEN) \t  1: [32767.1] pri=-64 flags=0 cpu=1";

    #[test]
    fn a_runnable_vcpu_queued_beside_an_idle_cpu_is_found_in_both_schedulers_dumps() {
        assert_eq!(
            stranded_vcpu(CREDIT2_STRANDED.lines()).as_deref(),
            Some("d0v0 queued, CPU0 idle")
        );
        assert_eq!(
            stranded_vcpu(CREDIT_STRANDED.lines()).as_deref(),
            Some("d1v1 queued, CPU0 idle")
        );
    }

    #[test]
    fn busy_cpus_or_empty_queues_strand_nothing() {
        // Both CPUs busy: a queued vcpu just waits its turn.
        let busy = CREDIT2_STRANDED.replace("current=d[IDLE]v0", "current=d1v0");
        let busy = busy.replace("current=d[IDLE]v1", "current=d1v1");
        assert_eq!(stranded_vcpu(busy.lines()), None);
        // Nothing queued: idle CPUs are just idle.
        let empty = CREDIT2_STRANDED.replace("\t  0: [0.0] flags=0 cpu=1", "\tnothing");
        assert_eq!(stranded_vcpu(empty.lines()), None);
        // credit: the vcpu waits on a busy CPU's queue, the idle unit on an idle one's.
        let elsewhere = CREDIT_STRANDED.replace("current=d[IDLE]v0", "current=d1v0");
        assert_eq!(stranded_vcpu(elsewhere.lines()), None);
        // Units listed per domain (not queued) do not count.
        let listed = "(XEN) Domain info:\n(XEN) \t  1: [0.0] flags=0 cpu=1\n\
                      (XEN) CPU[01] current=d[IDLE]v1, curr=d[IDLE]v1, prev=NULL";
        assert_eq!(stranded_vcpu(listed.lines()), None);
    }
}

//! The summary's last checks: stages that failed or got stuck, a stalled vcpu, a console
//! that fell silent (with what Xen's run queues showed), an unfinished frontend.

use super::{Results, Summary, STALL_REPORT, XEN_TIMER_DUMP};
use crate::console::Transcript;

/// Failed or stuck stages, a stalled vcpu, an unfinished frontend.
pub(super) fn ends(s: &mut Summary, r: &Results, t: &Transcript) {
    for (stage, fields) in r {
        if let (Some(reason), Some("0")) =
            (fields.get("reason"), fields.get("ok").map(String::as_str))
        {
            s.check(false, "stage", &format!("{stage}: {reason}"));
        }
    }
    if let Some((time, _)) = t.find(STALL_REPORT) {
        let which = t
            .find("Possible timer handling issue")
            .and_then(|(_, l)| l.split("rcu: ").nth(1))
            .unwrap_or("see the log");
        let xen_dump = if t.find(XEN_TIMER_DUMP).is_some() {
            "Xen's timer queues, domains, run queues and registers follow it in the log"
        } else {
            "Xen's state was not dumped"
        };
        s.check(
            false,
            "stall",
            &format!(
                "Linux reported an RCU stall at {:.1} s ({}): a frontend vcpu stopped being \
                 woken; {xen_dump}",
                time.as_secs_f64(),
                which.trim()
            ),
        );
    }
    if let Some((time, _)) = t.find(crate::console::SILENT_LINE) {
        let lines = t.lines.iter().map(|(_, l)| l.as_str());
        let xen_dump = match (
            t.find(XEN_TIMER_DUMP),
            crate::console::run_queues::stranded_vcpu(lines),
        ) {
            (Some(_), Some(stranded)) => {
                format!("Xen's run queues: {stranded} (a wake-up Xen lost); its dump is in the log")
            }
            (Some(_), None) => {
                "Xen's timer queues, domains, run queues and registers follow in the log".into()
            }
            (None, _) => "Xen answered no debug key: QEMU or Xen itself stopped".into(),
        };
        s.info(
            "silent",
            &format!(
                "nothing printed for 30 s from {:.1} s (idle, or stuck); {xen_dump}",
                time.as_secs_f64() - 30.0
            ),
        );
    }
    if !r.contains_key("done") {
        s.check(
            false,
            "finished",
            "the frontend did not finish (no `FRONTEND-RESULT done=1`)",
        );
    }
}

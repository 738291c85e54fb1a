//! What Xen let stubvirt do in a serve boot, read from its transcript: the
//! `STUBVIRT-PRIVILEGE` lines of the privilege self-test against the table expected for
//! the route (docs/privilege.md), and, under the FLASK policy, that Xen denied nothing but
//! what that test provoked.

use crate::guest_console::Transcript;

/// What Xen lets stubvirt do on both routes with no XSM policy (dom0 of 4.17, control
/// domU of 4.22): everything a control domain may, so only the grant check refuses
/// (GNTST_general_error). docs/privilege.md publishes this table.
pub const PRIVILEGES_WITHOUT_POLICY: [(&str, &str); 5] = [
    ("foreign_map", "allowed"),
    ("pause", "allowed"),
    ("read_console", "allowed"),
    ("memory_size", "allowed"),
    ("foreign_grant", "refused"),
];

/// Under the FLASK policy, everything the privilege test tries is refused (`-EACCES`;
/// the foreign grant already by the XSM grant check, `GNTST_permission_denied`).
pub const PRIVILEGES_UNDER_POLICY: [(&str, &str); 5] = [
    ("foreign_map", "refused"),
    ("pause", "refused"),
    ("read_console", "refused"),
    ("memory_size", "refused"),
    ("foreign_grant", "refused"),
];

/// The FLASK denials the privilege test provokes under the policy, as `{ perms } tclass`;
/// any other denial is a gap in the policy (something serving needed and was refused).
const EXPECTED_DENIALS: [&str; 6] = [
    "{ map_read map_write } mmu",
    "{ pause } domain",
    "{ readconsole } xen",
    "{ stat } mmu",
    "{ map_read } grant",
    "{ destroy } domain",
];

/// Xen's `avc:  denied  { perms } ... tclass=C` lines that are not in [`EXPECTED_DENIALS`].
pub fn unexpected_denials(t: &Transcript) -> Vec<String> {
    t.lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = l.split("avc:  denied  ").nth(1)?;
            let perms = rest.split_once(" for ")?.0;
            let class = rest.split("tclass=").nth(1)?.split_whitespace().next()?;
            let denial = format!("{perms} {class}");
            (!EXPECTED_DENIALS.contains(&denial.as_str())).then_some(denial)
        })
        .collect()
}

/// The `STUBVIRT-PRIVILEGE` lines of a run as (op, result) pairs, in order.
pub fn privileges(t: &Transcript) -> Vec<(String, String)> {
    t.lines
        .iter()
        .filter_map(|(_, l)| l.split("STUBVIRT-PRIVILEGE ").nth(1))
        .map(|rest| {
            let word = |key: &str| {
                rest.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap_or("?")
                    .to_string()
            };
            (word("op="), word("result="))
        })
        .collect()
}

/// Whether the run's privilege lines are exactly `expected`.
pub fn privileges_are(t: &Transcript, expected: &[(&str, &str)]) -> bool {
    let seen = privileges(t);
    seen.len() == expected.len()
        && seen
            .iter()
            .zip(expected)
            .all(|((op, result), (want_op, want))| op == want_op && result == want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_console::End;
    use std::time::Duration;

    #[test]
    fn only_the_provoked_denials_are_expected() {
        let t = Transcript {
            lines: [
                "(XEN) avc:  denied  { pause } for source=d1 target=d2 scontext=a tcontext=b tclass=domain",
                "(XEN) avc:  denied  { create } for current=d1 scontext=a tcontext=c tclass=event",
                "(XEN) DOM1: STUBVIRT-READY frontend=2",
            ]
            .iter()
            .map(|l| (Duration::ZERO, l.to_string()))
            .collect(),
            end: End::TimedOut,
            log: "x".into(),
        };
        assert_eq!(unexpected_denials(&t), ["{ create } event"]);
    }
}

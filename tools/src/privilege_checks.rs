//! What Xen let stubvirt do in a serve boot, read from its transcript: the
//! `STUBVIRT-PRIVILEGE` lines of the privilege self-test against the table expected for
//! the route (docs/privilege.md), and, under the FLASK policy, that Xen denied nothing but
//! what that test provoked.

use crate::guest_console::Transcript;

/// What Xen lets stubvirt do on both routes with no XSM policy (dom0 of 4.17, control
/// domU of 4.22): everything a control domain may, so only the grant check refuses
/// (GNTST_general_error). docs/privilege.md publishes this table.
pub const PRIVILEGES_WITHOUT_POLICY: [(&str, &str); 8] = [
    ("foreign_map", "allowed"),
    ("pause", "allowed"),
    ("read_console", "allowed"),
    ("memory_size", "allowed"),
    ("foreign_grant", "refused"),
    ("dm_op_other", "allowed"),
    ("state_other", "allowed"),
    ("foreign_map_other", "allowed"),
];

/// Under the FLASK policy, everything the privilege test tries is refused (`-EACCES`;
/// the foreign grant already by the XSM grant check, `GNTST_permission_denied`).
pub const PRIVILEGES_UNDER_POLICY: [(&str, &str); 8] = [
    ("foreign_map", "refused"),
    ("pause", "refused"),
    ("read_console", "refused"),
    ("memory_size", "refused"),
    ("foreign_grant", "refused"),
    ("dm_op_other", "refused"),
    ("state_other", "refused"),
    ("foreign_map_other", "refused"),
];

/// The FLASK denials the privilege test provokes under the policy, as `{ perms } tclass
/// target-type`; any other denial is a gap in the policy (something serving needed and
/// was refused).
const EXPECTED_DENIALS: [&str; 10] = [
    "{ map_read map_write } mmu stubvirt_frontend_t",
    "{ pause } domain stubvirt_frontend_t",
    "{ readconsole } xen xen_t",
    "{ stat } mmu stubvirt_frontend_t",
    "{ map_read } grant stubvirt_t",
    "{ destroy } domain stubvirt_frontend_t",
    "{ dm } hvm unlabeled_t",
    "{ get_domain_state } domain2 unlabeled_t",
    "{ getdomaininfo } domain unlabeled_t",
    "{ map_read map_write } mmu unlabeled_t",
];

/// Xen's `avc:  denied  { perms } ... tcontext=u:r:TYPE tclass=C` lines, each as
/// `{ perms } C TYPE`.
fn denials(t: &Transcript) -> Vec<String> {
    t.lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = l.split("avc:  denied  ").nth(1)?;
            let perms = rest.split_once(" for ")?.0;
            let class = rest.split("tclass=").nth(1)?.split_whitespace().next()?;
            let context = rest.split("tcontext=").nth(1)?.split_whitespace().next()?;
            let target = context.rsplit(':').next()?;
            Some(format!("{perms} {class} {target}"))
        })
        .collect()
}

/// The denials of a serve boot that are not in [`EXPECTED_DENIALS`].
pub fn unexpected_denials(t: &Transcript) -> Vec<String> {
    let mut all = denials(t);
    all.retain(|d| !EXPECTED_DENIALS.contains(&d.as_str()));
    all
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

/// The stubvirt destroying a crashed frontend, which the policy refuses (`--crash`).
pub const DESTROY_DENIAL: &str = "{ destroy } domain stubvirt_frontend_t";

/// The end-to-end run under the policy: Xen enforced it, stubvirt confined itself and
/// every frontend, and Xen denied nothing but `expected` (the run's checks say serving
/// worked).
pub fn confinement(t: &Transcript, frontends: &[u32], expected: &[&str]) -> (bool, String) {
    let enforcing = t.find("Flask:  Starting in enforcing mode").is_some();
    let confined = t
        .find("STUBVIRT-CONFINED ")
        .and_then(|(_, l)| l.split(" frontends=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|list| list.split(',').map(str::to_string).collect::<Vec<_>>());
    let all = confined.as_ref().is_some_and(|list| {
        frontends.len() == list.len() && frontends.iter().all(|d| list.contains(&d.to_string()))
    });
    let seen = denials(t);
    let unexpected: Vec<&String> = seen
        .iter()
        .filter(|d| !expected.contains(&d.as_str()))
        .collect();
    let passed = enforcing && all && unexpected.is_empty();
    let detail = format!(
        "Xen {} stubvirt's FLASK policy; stubvirt relabelled itself and domains {} \
         (expected {frontends:?}); {} denials in the whole run, unexpected: {unexpected:?}",
        if enforcing {
            "enforced"
        } else {
            "did NOT enforce"
        },
        confined.map_or("none".to_string(), |l| l.join(",")),
        seen.len()
    );
    (passed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_console::End;
    use std::time::Duration;

    fn transcript(lines: &[&str]) -> Transcript {
        Transcript {
            lines: lines
                .iter()
                .map(|l| (Duration::ZERO, l.to_string()))
                .collect(),
            end: End::TimedOut,
            log: "x".into(),
        }
    }

    #[test]
    fn confinement_needs_enforcing_every_frontend_and_no_denial() {
        let good = [
            "(XEN) Flask:  Starting in enforcing mode.",
            "(XEN) DOM1: STUBVIRT-CONFINED backend=stubvirt_t frontends=2,3 frontend_type=x",
        ];
        assert!(confinement(&transcript(&good), &[2, 3], &[]).0);
        assert!(!confinement(&transcript(&good), &[2, 3, 4], &[]).0);
        assert!(!confinement(&transcript(&good[1..]), &[2, 3], &[]).0);
        let denied = [
            good[0],
            good[1],
            "(XEN) avc:  denied  { destroy } for s tcontext=u:r:stubvirt_frontend_t tclass=domain",
        ];
        assert!(!confinement(&transcript(&denied), &[2, 3], &[]).0);
        assert!(confinement(&transcript(&denied), &[2, 3], &[DESTROY_DENIAL]).0);
    }

    #[test]
    fn only_the_provoked_denials_are_expected() {
        let t = Transcript {
            lines: [
                "(XEN) avc:  denied  { pause } for source=d1 target=d2 scontext=a tcontext=u:r:stubvirt_frontend_t tclass=domain",
                "(XEN) avc:  denied  { pause } for source=d1 target=d3 scontext=a tcontext=u:r:dom0_t tclass=domain",
                "(XEN) avc:  denied  { create } for current=d1 scontext=a tcontext=u:r:c tclass=event",
                "(XEN) DOM1: STUBVIRT-READY frontend=2",
            ]
            .iter()
            .map(|l| (Duration::ZERO, l.to_string()))
            .collect(),
            end: End::TimedOut,
            log: "x".into(),
        };
        assert_eq!(
            unexpected_denials(&t),
            ["{ pause } domain dom0_t", "{ create } event c"]
        );
    }
}

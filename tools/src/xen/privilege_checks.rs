//! What Xen let stubvirt do in a serve boot, read from its transcript: the
//! `STUBVIRT-PRIVILEGE` lines of the privilege self-test against the table expected for
//! the route (docs/privilege.md), and, under the FLASK policy, that Xen denied nothing but
//! what that test provoked.

use crate::console::Transcript;

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

/// The FLASK denials the privilege test provokes under the policy against the frontend
/// and Xen, as `{ perms } tclass target-type`.
pub const FRONTEND_DENIALS: [&str; 5] = [
    "{ map_read map_write } mmu stubvirt_frontend_t",
    "{ pause } domain stubvirt_frontend_t",
    "{ readconsole } xen xen_t",
    "{ stat } mmu stubvirt_frontend_t",
    "{ map_read } grant stubvirt_t",
];
/// ... and against the bystander (still `unlabeled_t`).
const BYSTANDER_DENIALS: [&str; 4] = [
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

/// The denials of a serve boot under the policy that the privilege test (against the
/// frontend, Xen and the bystander) and the destroy of the powered-off frontend did not
/// provoke: any is a gap in the policy, something serving needed and was refused.
pub fn unexpected_denials(t: &Transcript) -> Vec<String> {
    let mut all = denials(t);
    all.retain(|d| {
        let d = d.as_str();
        !(FRONTEND_DENIALS.contains(&d) || BYSTANDER_DENIALS.contains(&d) || d == DESTROY_DENIAL)
    });
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

/// The end-to-end run's rows under the policy: `confined` (Xen enforced it, every
/// frontend relabelled, no denial but those the self-test and, with `crash`, the destroy
/// of the crashed frontend provoked: zero from the workload) and `privileges` (every
/// attempt of the self-test refused; there is no bystander in this run).
pub fn confined_run(
    t: &Transcript,
    frontends: &[u32],
    crash: bool,
) -> Vec<(bool, &'static str, String)> {
    let mut expected: Vec<&str> = FRONTEND_DENIALS.to_vec();
    if crash {
        expected.push(DESTROY_DENIAL);
    }
    let (passed, detail) = confinement(t, frontends, &expected);
    // The rows against the frontend and Xen come first, one per provoked denial.
    let mut wanted: Vec<(&str, &str)> = PRIVILEGES_UNDER_POLICY[..FRONTEND_DENIALS.len()].to_vec();
    wanted.push(("bystander", "skipped"));
    let seen = privileges(t);
    let refused = privileges_are(t, &wanted);
    let listed: Vec<String> = seen.iter().map(|(op, r)| format!("{op}={r}")).collect();
    vec![
        (passed, "confined", detail),
        (
            refused,
            "privileges",
            format!("self-test under the policy: {}", listed.join(" ")),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::End;
    use std::time::Duration;

    fn transcript(lines: &[&str]) -> Transcript {
        Transcript::of(lines)
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
    fn a_confined_run_allows_only_the_self_tests_and_the_destroys_denials() {
        let mut lines = vec![
            "(XEN) Flask:  Starting in enforcing mode.".to_string(),
            "(XEN) DOM1: STUBVIRT-CONFINED backend=stubvirt_t frontends=2,3 x=y".to_string(),
        ];
        for (op, _) in &PRIVILEGES_UNDER_POLICY[..5] {
            lines.push(format!(
                "STUBVIRT-PRIVILEGE op={op} target=2 result=refused err=-13"
            ));
        }
        lines.push("STUBVIRT-PRIVILEGE op=bystander target=none result=skipped".into());
        for d in FRONTEND_DENIALS {
            let (perms, rest) = d.rsplit_once("} ").unwrap();
            let (class, target) = rest.split_once(' ').unwrap();
            lines.push(format!(
                "(XEN) avc:  denied  {perms}}} for s tcontext=u:r:{target} tclass={class}"
            ));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let rows = confined_run(&transcript(&refs), &[2, 3], false);
        assert!(rows.iter().all(|r| r.0), "{rows:#?}");
        let mut allowed = refs.clone();
        allowed[3] = "STUBVIRT-PRIVILEGE op=pause target=2 result=allowed";
        assert!(!confined_run(&transcript(&allowed), &[2, 3], false)[1].0);
        let destroy =
            "(XEN) avc:  denied  { destroy } for s tcontext=u:r:stubvirt_frontend_t tclass=domain";
        let mut crashed = refs.clone();
        crashed.push(destroy);
        assert!(!confined_run(&transcript(&crashed), &[2, 3], false)[0].0);
        assert!(confined_run(&transcript(&crashed), &[2, 3], true)[0].0);
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

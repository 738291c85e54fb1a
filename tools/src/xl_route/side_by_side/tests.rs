use super::*;

/// Lines as dom0 prints the frontends' consoles (`console_of`), for both backends.
fn run_lines(tcp_ok: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (round, backends) in [(1, ["stubvirt", "linux"]), (2, ["linux", "stubvirt"])] {
        for b in backends {
            let iops = if b == "stubvirt" { 2000 + round } else { 1000 };
            for key in ROWS
                .iter()
                .map(|r| r.key)
                .filter(|k| k.starts_with("rand") || k.starts_with("seq"))
            {
                lines.push(format!(
                    "XL-FE1 FRONTEND-RESULT stage=bench_blk backend={b} round={round} {key}={iops}"
                ));
            }
            lines.push(format!(
                "XL-FE2 FRONTEND-RESULT stage=bench_tcp backend={b} round={round} from=1 to=2 bytes=9 s=1.00 mbs=10.0 ok={tcp_ok}"
            ));
            lines.push(format!(
                "XL-FE1 FRONTEND-RESULT stage=bench_tcp backend={b} round={round} from=2 to=1 bytes=9 s=1.00 mbs=5.0 ok=1"
            ));
        }
    }
    lines.push(
        "XL-FE1 FRONTEND-RESULT stage=bench_ping backend=stubvirt to=10.0.3.2 avg_ms=2.0".into(),
    );
    lines.push(
        "XL-FE1 FRONTEND-RESULT stage=bench_ping backend=linux to=10.0.4.2 avg_ms=3.0".into(),
    );
    lines
}

#[test]
fn rows_are_the_means_of_the_rounds_with_the_ratio_in_stubvirts_favour_above_one() {
    let samples = samples(&run_lines("1"));
    assert!(samples.problems.is_empty(), "{:?}", samples.problems);
    let (table, missing) = table(&samples);
    assert!(missing.is_empty(), "{missing:?}");
    let row = |label: &str| table.iter().find(|l| l.contains(label)).unwrap().clone();
    // (2001 + 2002) / 2 against 1000.
    assert_eq!(
        row("4 KiB random read, QD 1 |"),
        "| 4 KiB random read, QD 1 | IOPS | 2002 | 1000 | 2.00x | 2 |"
    );
    assert_eq!(
        row("frontend 1 to 2 | MiB/s"),
        "| TCP stream, frontend 1 to 2 | MiB/s | 10.00 | 10.00 | 1.00x | 2 |"
    );
    // Latency: less is better, so Linux's 3 ms over stubvirt's 2 ms.
    assert_eq!(
        row("ping round trip"),
        "| ping round trip, frontend 1 to 2 | ms | 2.00 | 3.00 | 1.50x | 1 |"
    );
}

#[test]
fn a_corrupted_stream_or_a_missing_figure_is_a_problem_not_a_row() {
    let samples = samples(&run_lines("0"));
    assert_eq!(samples.problems.len(), 4, "{:?}", samples.problems);
    let (_, missing) = table(&samples);
    assert_eq!(missing, ["TCP stream, frontend 1 to 2"]);

    let mut lines = run_lines("1");
    lines.retain(|l| !(l.contains("backend=linux") && l.contains("seq1m_read")));
    let (table, missing) = table(&super::samples(&lines));
    assert_eq!(missing, ["1 MiB sequential read"]);
    assert!(table
        .iter()
        .any(|l| l.starts_with("| 1 MiB sequential read | MiB/s | 2002 | - | - | 0 |")));
}

#[test]
fn a_result_without_a_number_is_reported() {
    let lines = [
        "XL-FE1 FRONTEND-RESULT stage=bench_ping backend=linux to=10.0.4.2 avg_ms=none".to_string(),
    ];
    let samples = samples(&lines);
    assert_eq!(samples.problems.len(), 1);
    assert!(samples.figures.is_empty());
}

#[test]
fn every_row_is_something_the_frontends_print() {
    let script = include_str!("../../../frontend/bench.sh");
    let fe_io = include_str!("../../../frontend/fe_io.c");
    for row in ROWS {
        let printed = if row.key.starts_with("tcp_") {
            script.contains("stage=bench_tcp backend=$b round=$round from=$OTHER to=$ME")
        } else if row.key.starts_with("ping_") {
            script.contains("stage=bench_ping backend=$b to=$net.$OTHER avg_ms=")
        } else {
            let (kind, rest) = row.key.split_once('_').unwrap();
            fe_io.contains(&format!("\"{kind}_%s_"))
                && (rest.contains("qd") || rest.ends_with("mbs"))
        };
        assert!(printed, "{}", row.key);
    }
    for backend in BACKENDS {
        assert!(script.contains(backend));
    }
}

#[test]
fn the_check_run_is_short_and_the_full_one_uses_the_scripts_defaults() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (length, rest) = parse(&args(&["--check", "--xen-source", "x.tar.xz"]));
    assert_eq!(length, Length::Check);
    assert_eq!(rest, args(&["--xen-source", "x.tar.xz"]));
    assert!(Length::Check
        .dom0_args()
        .ends_with("dom0_bench=1 dom0_bench_rounds=1 dom0_bench_s=2 dom0_bench_io_s=1"));
    assert!(Length::Full.dom0_args().ends_with(" dom0_bench=1"));
    let dom0 = include_str!("../../../dom0/bench.sh");
    for name in ["dom0_bench_rounds", "dom0_bench_s", "dom0_bench_io_s"] {
        assert!(dom0.contains(&format!("${{{name}:-")), "{name}");
    }
}

//! `meridian sim` as a user runs it: the command-line contract (one JSON line per seed,
//! a summary line with the agreed fields, the exit status) and its refusal of bad input.

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("sim")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("meridian runs")
}

#[test]
fn prints_a_json_line_per_seed_and_a_summary() {
    let out = sim(&[
        "--dcs",
        "3",
        "--seeds",
        "2",
        "--wan-delay-ms",
        "20",
        "--first-seed",
        "5",
        "--faults",
        "--contention",
        "high",
        "--txns",
        "40",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["seed"], 5);
    assert_eq!(lines[1]["seed"], 6);
    let summary = &lines[2];
    for field in [
        "seeds",
        "txns",
        "committed",
        "aborted",
        "violations",
        "stuck",
        "commit_wan_delays_p50",
        "commit_latency_ms_p50",
        "commit_latency_ms_p99",
    ] {
        assert!(
            summary.get(field).is_some(),
            "summary lacks {field}: {summary}"
        );
    }
    assert_eq!(summary["seeds"], 2);
    assert_eq!(summary["txns"], 80);
    assert_eq!(summary["violations"], 0);
    assert_eq!(summary["stuck"], 0);
}

#[test]
fn both_protocols_report_their_delay_counts() {
    for (protocol, placement, delays) in [
        ("meridian", "spread", 3),
        ("meridian", "local", 3),
        ("2pc", "spread", 6),
        ("2pc", "local", 4),
    ] {
        let out = sim(&[
            "--seeds",
            "1",
            "--txns",
            "40",
            "--protocol",
            protocol,
            "--placement",
            placement,
        ]);
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).expect("UTF-8");
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().expect("a summary")).expect("JSON");
        assert_eq!(summary["protocol"], protocol);
        assert_eq!(
            summary["commit_wan_delays_p50"], delays,
            "{protocol} {placement}"
        );
    }
}

#[test]
fn refuses_bad_arguments_with_a_clear_error() {
    for (args, expected) in [
        (&["--dcs", "4"][..], "--dcs must be odd"),
        (
            &["--txns", "0"][..],
            "--txns and --clients-per-dc must be positive",
        ),
        (&["--protocol", "3pc"][..], "invalid value '3pc'"),
        (&["--contention", "medium"][..], "invalid value 'medium'"),
        (
            &["--dcs", "7", "--contention", "high", "--placement", "local"][..],
            "--placement local needs at least one key per DC",
        ),
    ] {
        let out = sim(args);
        assert!(!out.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed results");
    }
}

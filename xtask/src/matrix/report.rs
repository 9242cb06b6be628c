//! Per-kernel results from the logs the guest left, and the summary table. Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How one test ended in one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Ignored,
    /// Expected but never reported (the binary or the VM died first).
    Missing,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Ignored => "ignored",
            Outcome::Missing => "MISSING",
        }
    }
}

/// libtest's per-test lines of one binary's output: `test NAME ... ok`.
pub fn parse_log(log: &str) -> BTreeMap<String, Outcome> {
    log.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, result) = rest.rsplit_once(" ... ")?;
            let outcome = match result.trim() {
                "ok" => Outcome::Passed,
                "FAILED" => Outcome::Failed,
                r if r.starts_with("ignored") => Outcome::Ignored,
                _ => return None,
            };
            Some((name.to_owned(), outcome))
        })
        .collect()
}

/// One kernel's run.
pub struct KernelResult {
    /// What was asked for (`6.1`, a path) and what booted (`uname -r`, None if it never did).
    pub asked: String,
    pub release: Option<String>,
    /// Wall time of the whole VM run, and the part the tests took (guest uptime).
    pub total_s: f64,
    pub tests_s: Option<f64>,
    /// `binary::test` -> outcome.
    pub tests: BTreeMap<String, Outcome>,
    /// Why the run is incomplete beyond failed tests (VM timeout, a binary's non-zero exit
    /// without a failed test).
    pub problems: Vec<String>,
    /// One line from `netpost-bench verifier`: what this kernel's verifier made of the
    /// programs (None if it did not run).
    pub verifier: Option<String>,
    /// Tests known to fail on this kernel (smoke::KNOWN_FAILURES): their failure is reported,
    /// not counted.
    pub known: BTreeMap<String, &'static str>,
}

impl KernelResult {
    /// Tests with this outcome, known failures left out.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.tests
            .iter()
            .filter(|(name, o)| **o == outcome && !self.is_known(name, **o))
            .count()
    }

    fn is_known(&self, name: &str, outcome: Outcome) -> bool {
        outcome == Outcome::Failed && self.known.contains_key(name)
    }

    fn label(&self, name: &str) -> &'static str {
        match self.tests.get(name) {
            None => "-",
            Some(&o) if self.is_known(name, o) => "KNOWN",
            Some(Outcome::Passed) if self.known.contains_key(name) => "ok(!)",
            Some(o) => o.label(),
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty()
            && self.release.is_some()
            && !self.tests.is_empty()
            && self.tests.iter().all(|(name, o)| {
                matches!(o, Outcome::Passed | Outcome::Ignored) || self.is_known(name, *o)
            })
    }

    fn name(&self) -> &str {
        self.release.as_deref().unwrap_or(&self.asked)
    }
}

/// Summarises `netpost-bench verifier`'s JSON: the instructions the verifier processed for
/// the biggest programs (its limit is 1M), and the programs it refused.
pub fn verifier_summary(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let programs = v["programs"].as_array()?;
    let mut loaded: Vec<(&str, u64)> = programs
        .iter()
        .filter(|p| p["loaded"] == true)
        .filter_map(|p| Some((p["name"].as_str()?, p["verified_insns"].as_u64()?)))
        .collect();
    loaded.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    let refused: Vec<&str> = programs
        .iter()
        .filter(|p| p["loaded"] == false)
        .filter_map(|p| p["name"].as_str())
        .collect();
    let top: Vec<String> = loaded
        .iter()
        .take(3)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    let mut line = format!(
        "verifier: {} programs loaded (processed instructions, limit 1000000: {})",
        loaded.len(),
        top.join(", ")
    );
    if !refused.is_empty() {
        let _ = write!(line, "; refused: {}", refused.join(", "));
    }
    Some(line)
}

/// Programs this kernel's verifier refused (a verdict in their log), one problem each: netpost
/// runs without them and says so, so no test would fail for them alone. A program whose type
/// the kernel lacks (netfilter before 6.4: EINVAL, no log) is the kernel's limit, not one.
pub fn verifier_refusals(json: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    v["programs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["loaded"] == false && p["log_file"].is_string())
        .map(|p| {
            let verdict: Vec<&str> = p["log_tail"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .filter(|l| !l.starts_with(';') && !l.contains(": ("))
                .filter(|l| {
                    !["verification time", "stack depth", "processed "]
                        .iter()
                        .any(|stat| l.starts_with(stat))
                })
                .collect();
            format!(
                "{} refused by the verifier, netpost runs without it: {} ({})",
                p["name"].as_str().unwrap_or("?"),
                verdict.join(" / "),
                p["log_file"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn secs(s: f64) -> String {
    format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
}

/// The closing summary: one line per kernel, then one row per test with a column per kernel.
pub fn table(results: &[KernelResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "kernel matrix:");
    let kw = results
        .iter()
        .map(|r| r.name().len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(
        out,
        "  {:kw$}  {:>7}  {:>7}  {:>7}  {:>6}  {:>6}  {:>7}",
        "kernel", "total", "boot", "tests", "passed", "failed", "missing"
    );
    for r in results {
        let boot = r.tests_s.map_or("?".to_owned(), |t| secs(r.total_s - t));
        let tests = r.tests_s.map_or("?".to_owned(), secs);
        let _ = writeln!(
            out,
            "  {:kw$}  {:>7}  {:>7}  {:>7}  {:>6}  {:>6}  {:>7}",
            r.name(),
            secs(r.total_s),
            boot,
            tests,
            r.count(Outcome::Passed),
            r.count(Outcome::Failed),
            r.count(Outcome::Missing),
        );
        if let Some(verifier) = &r.verifier {
            let _ = writeln!(out, "    {}: {verifier}", r.name());
        }
        for problem in &r.problems {
            let _ = writeln!(out, "    {}: {problem}", r.name());
        }
        for (test, why) in &r.known {
            let note = match r.tests.get(test) {
                Some(Outcome::Passed) => "passed: remove it from smoke::KNOWN_FAILURES",
                _ => why,
            };
            let _ = writeln!(out, "    {}: known failure {test}: {note}", r.name());
        }
    }
    let mut names: Vec<&String> = results.iter().flat_map(|r| r.tests.keys()).collect();
    names.sort();
    names.dedup();
    let tw = names.iter().map(|n| n.len()).max().unwrap_or(4);
    let _ = write!(out, "\n  {:tw$}", "test");
    for r in results {
        let _ = write!(out, "  {:>w$}", r.name(), w = r.name().len().max(7));
    }
    out.push('\n');
    for name in names {
        let _ = write!(out, "  {name:tw$}");
        for r in results {
            let label = r.label(name);
            let _ = write!(out, "  {:>w$}", label, w = r.name().len().max(7));
        }
        out.push('\n');
    }
    let passed: usize = results.iter().map(|r| r.count(Outcome::Passed)).sum();
    let failed: usize = results
        .iter()
        .map(|r| r.count(Outcome::Failed) + r.count(Outcome::Missing))
        .sum();
    let known: usize = results
        .iter()
        .map(|r| r.tests.iter().filter(|(n, o)| r.is_known(n, **o)).count())
        .sum();
    if known > 0 {
        let _ = writeln!(
            out,
            "\n{known} known failure(s), not counted (listed above)"
        );
    }
    // The closing line CI logs are read for ("N passed, N failed" after one word).
    let _ = writeln!(out, "\nmatrix: {passed} passed, {failed} failed");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_result_lines() {
        let log = "\nrunning 3 tests\ntest a_test ... ok\ntest b_test ... FAILED\ntest c ... ignored, needs x\nsome output ... ok?\n\nfailures:\n    b_test\n";
        let got = parse_log(log);
        assert_eq!(got.get("a_test"), Some(&Outcome::Passed));
        assert_eq!(got.get("b_test"), Some(&Outcome::Failed));
        assert_eq!(got.get("c"), Some(&Outcome::Ignored));
        assert_eq!(got.len(), 3);
    }

    fn result(release: &str, tests: &[(&str, Outcome)]) -> KernelResult {
        KernelResult {
            asked: "6.1".into(),
            release: Some(release.into()),
            total_s: 125.0,
            tests_s: Some(80.0),
            tests: tests.iter().map(|(n, o)| (n.to_string(), *o)).collect(),
            problems: vec![],
            verifier: None,
            known: BTreeMap::new(),
        }
    }

    #[test]
    fn table_has_a_line_per_kernel_a_row_per_test_and_a_closing_count() {
        let a = result(
            "6.1.0-57-amd64",
            &[
                ("counts::x", Outcome::Passed),
                ("drops::y", Outcome::Failed),
            ],
        );
        let b = result(
            "6.12.117+deb12-amd64",
            &[
                ("counts::x", Outcome::Passed),
                ("drops::y", Outcome::Passed),
            ],
        );
        assert!(!a.ok());
        assert!(b.ok());
        let t = table(&[a, b]);
        assert!(
            t.contains(
                "  6.1.0-57-amd64          2m05s    0m45s    1m20s       1       1        0"
            ),
            "{t}"
        );
        assert!(
            t.contains("  drops::y           FAILED                    ok\n"),
            "{t}"
        );
        assert!(t.ends_with("\nmatrix: 3 passed, 1 failed\n"), "{t}");
    }

    #[test]
    fn summarises_the_verifier_report() {
        let json = r#"{"kernel":"6.1.0-57-amd64","programs":[
            {"name":"netpost_nf_head","loaded":false,"error":"EINVAL"},
            {"name":"netpost_xdp","loaded":true,"verified_insns":12458},
            {"name":"netpost_tc_in","loaded":true,"verified_insns":375449},
            {"name":"netpost_sk_state","loaded":true,"verified_insns":94},
            {"name":"netpost_tc_out","loaded":true,"verified_insns":422424}]}"#;
        assert_eq!(
            verifier_summary(json).as_deref(),
            Some(
                "verifier: 4 programs loaded (processed instructions, limit 1000000: netpost_tc_out 422424, netpost_tc_in 375449, netpost_xdp 12458); refused: netpost_nf_head"
            )
        );
        assert_eq!(verifier_summary("not json"), None);
    }

    #[test]
    fn a_verifier_refusal_is_a_problem_a_missing_program_type_is_not() {
        let json = r#"{"programs":[
            {"name":"netpost_nf_head","loaded":false,"log_file":null,"log_tail":["loading netpost_nf_head: Invalid argument (os error 22)"]},
            {"name":"netpost_tc_after","loaded":false,"log_file":"/m/verifier-logs/netpost_tc_after.log","log_tail":[
                "101: (2d) if r0 > r3 goto pc+160      ; R0=pkt(id=5,off=4,r=0)",
                "; unsafe { crate::intrinsics::copy_nonoverlapping(src, dst, count) }",
                "102: (71) r2 = *(u8 *)(r1 +1)",
                "invalid access to packet, off=1 size=1, R1(id=5,off=1,r=0)",
                "R1 offset is outside of the packet",
                "verification time 3361 usec",
                "stack depth 304",
                "processed 101 insns (limit 1000000) max_states_per_insn 0 total_states 7 peak_states 7 mark_read 3"]},
            {"name":"netpost_xdp","loaded":true,"verified_insns":12458}]}"#;
        assert_eq!(
            verifier_refusals(json),
            [
                "netpost_tc_after refused by the verifier, netpost runs without it: invalid access to packet, off=1 size=1, R1(id=5,off=1,r=0) / R1 offset is outside of the packet (/m/verifier-logs/netpost_tc_after.log)"
            ]
        );
        assert!(verifier_refusals("not json").is_empty());
    }

    #[test]
    fn a_known_failure_is_reported_but_not_counted() {
        let mut r = result(
            "6.1.0-57-amd64",
            &[("a::x", Outcome::Passed), ("b::y", Outcome::Failed)],
        );
        r.known.insert("b::y".into(), "tc filters outlive SIGKILL");
        assert!(r.ok());
        let t = table(&[r]);
        assert!(
            t.contains("known failure b::y: tc filters outlive SIGKILL"),
            "{t}"
        );
        assert!(t.contains("  b::y           KNOWN\n"), "{t}");
        assert!(t.contains("\n1 known failure(s), not counted"), "{t}");
        assert!(t.ends_with("\nmatrix: 1 passed, 0 failed\n"), "{t}");
        let mut fixed = result("6.1.0-57-amd64", &[("b::y", Outcome::Passed)]);
        fixed.known.insert("b::y".into(), "why");
        assert!(table(&[fixed]).contains("passed: remove it from smoke::KNOWN_FAILURES"));
    }

    #[test]
    fn a_kernel_that_never_booted_is_not_ok() {
        let mut r = result("x", &[]);
        r.release = None;
        assert!(!r.ok());
    }
}

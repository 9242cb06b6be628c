//! The smoke set: the integration tests every kernel of the matrix runs (the whole suite is
//! too slow under qemu's TCG; `--full` runs it anyway). The one place that names them;
//! docs/kernels.md explains the choice.

/// Tests of one integration-test binary (tests/tests/<binary>.rs), matched exactly.
pub struct Group {
    pub binary: &'static str,
    pub tests: &'static [&'static str],
}

pub const SMOKE: &[Group] = &[
    Group {
        // Exact UDP and TCP counts at XDP, tc ingress and tc egress, against the device's
        // and TCP's own counters.
        binary: "counts",
        tests: &[
            "udp_ipv4_counts_exactly_at_xdp_and_tc_ingress",
            "udp_ipv6_counts_exactly_with_family_split",
            "tcp_exchange_counts_every_segment_and_exact_payload",
        ],
    },
    Group {
        // Drop reasons from the kfree_skb tracepoint, with the dropping function.
        binary: "drops",
        tests: &["udp_to_a_closed_port_is_no_socket_with_its_function_and_a_sample"],
    },
    Group {
        // The drop recorder's capture inside the drop program (the verifier's heaviest part
        // of it): packets for known reasons, read back with tshark.
        binary: "recorder",
        tests: &["drops_for_known_reasons_are_recorded_one_packet_each_with_why_and_decode"],
    },
    Group {
        // Netfilter hooks counted exactly where the kernel has netfilter links, reported
        // unavailable with the reason (and counting on) where it has not.
        binary: "netfilter",
        tests: &["forwarded_udp_is_counted_at_its_hooks_or_netfilter_is_unavailable_with_a_reason"],
    },
    Group {
        // Nothing attached after SIGKILL (where tc filters outlive it, after the next start
        // and `netpost cleanup`); two netposts on one interface, and the last one cleans up.
        binary: "lifecycle",
        tests: &[
            "sigkill_leaves_nothing_attached",
            "two_netposts_on_one_interface_count_alike_and_the_last_cleans_up",
        ],
    },
];

/// A smoke test that fails on one kernel line for a known reason being fixed elsewhere.
pub struct Known {
    /// A kernel line as `--kernel` takes it ("6.1" matches 6.1.x, not 6.12).
    pub line: &'static str,
    /// `binary::test`.
    pub test: &'static str,
    pub why: &'static str,
}

/// Reported as KNOWN in the table without failing the run, so the matrix can guard
/// everything else meanwhile; a known failure that passes is reported so its entry goes.
pub const KNOWN_FAILURES: &[Known] = &[];

/// The known failures of the kernel `release` (`uname -r`).
pub fn known_failures(release: &str) -> impl Iterator<Item = &'static Known> + '_ {
    KNOWN_FAILURES
        .iter()
        .filter(move |k| crate::kernels::release_in_line(release, k.line))
}

/// The exact test names of `binary` in the smoke set (empty when it has none).
pub fn tests_of(binary: &str) -> &'static [&'static str] {
    SMOKE
        .iter()
        .find(|group| group.binary == binary)
        .map_or(&[], |group| group.tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_tests_exist_in_their_binaries() {
        let root = crate::workspace::root().join("tests/tests");
        for group in SMOKE {
            let path = root.join(format!("{}.rs", group.binary));
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for test in group.tests {
                assert!(
                    source.contains(&format!("#[test]\nfn {test}()")),
                    "{test} is not a #[test] in {}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn known_failures_name_smoke_tests_of_their_line() {
        for known in KNOWN_FAILURES {
            let (binary, test) = known.test.split_once("::").expect("binary::test");
            assert!(
                tests_of(binary).contains(&test),
                "{} is not in the smoke set",
                known.test
            );
        }
        assert_eq!(
            known_failures("6.1.0-57-amd64").count(),
            KNOWN_FAILURES.len()
        );
        assert_eq!(known_failures("6.12.117+deb12-amd64").count(), 0);
    }

    #[test]
    fn finds_a_binarys_tests() {
        assert!(tests_of("counts").len() >= 2);
        assert!(tests_of("no-such-binary").is_empty());
    }
}

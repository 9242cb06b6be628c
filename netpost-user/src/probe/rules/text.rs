//! Rules as people write them: `nft -a -s list table` (nft syntax with handles, without
//! counter values) and `iptables-save -t` (per chain, in rule order). Asked only for rules a
//! hook shows, and kept until the ruleset changes. The parsers are pure.
use std::{collections::HashMap, process::Command};

/// Rule text of one nf_tables table: (chain, handle) -> text.
pub type NftText = HashMap<(String, u64), String>;

/// Rule text of one iptables table: chain -> its `-A` lines in order.
pub type SaveText = HashMap<String, Vec<String>>;

/// Parses `nft -a -s list table F T`: the rules of each chain with the handle nft appends.
pub fn parse_nft(listing: &str) -> NftText {
    let mut out = NftText::new();
    let mut depth = 0i32;
    let mut chain: Option<String> = None;
    for line in listing.lines() {
        let trimmed = line.trim();
        let opens = trimmed.matches('{').count() as i32;
        let closes = trimmed.matches('}').count() as i32;
        if depth == 1
            && let Some(rest) = trimmed.strip_prefix("chain ")
            && opens > closes
        {
            let name = rest.split(" {").next().unwrap_or("").trim().trim_matches('"');
            chain = Some(name.to_string());
        } else if depth == 2
            && let Some(c) = &chain
            && let Some((rule, handle)) = trimmed.rsplit_once(" # handle ")
            && let Ok(handle) = handle.trim().parse::<u64>()
        {
            out.insert((c.clone(), handle), rule.trim().to_string());
        }
        depth += opens - closes;
        if depth < 2 {
            chain = None;
        }
    }
    out
}

/// Parses `iptables-save -t T` (with or without `-c`): each chain's `-A` lines in order,
/// counters (`[p:b] `) removed.
pub fn parse_save(save: &str) -> SaveText {
    let mut out = SaveText::new();
    for line in save.lines() {
        let line = line.trim();
        let line = match line.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r),
            None => line,
        };
        if let Some(rest) = line.strip_prefix("-A ") {
            let chain = rest.split_whitespace().next().unwrap_or("").to_string();
            out.entry(chain).or_default().push(line.to_string());
        }
    }
    out
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The rules of an nf_tables table as nft prints them (None without nft).
pub fn nft_table(family: &str, table: &str) -> Option<NftText> {
    run("nft", &["-a", "-s", "list", "table", family, table]).map(|t| parse_nft(&t))
}

/// A table as `iptables-save` prints it: `ipv6` picks ip6tables, `legacy` the legacy backend.
pub fn iptables_table(ipv6: bool, legacy: bool, table: &str) -> Option<SaveText> {
    let program = match (ipv6, legacy) {
        (false, false) => "iptables-nft-save",
        (true, false) => "ip6tables-nft-save",
        (false, true) => "iptables-legacy-save",
        (true, true) => "ip6tables-legacy-save",
    };
    run(program, &["-t", table]).map(|t| parse_save(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_listing_rules_by_chain_and_handle() {
        let t = parse_nft(include_str!("testdata/nft_list_ruleset.txt"));
        assert_eq!(
            t[&("sub".to_string(), 4)],
            "udp dport 16 drop",
            "{t:#?}"
        );
        assert_eq!(
            t[&("out".to_string(), 6)],
            "ip daddr 127.0.0.1 udp dport 17 counter packets 9 bytes 261 reject with icmp port-unreachable"
        );
        assert_eq!(t[&("blk".to_string(), 5)], "udp dport 13 counter packets 4 bytes 116 drop");
        // Chain and table headers are not rules; the inet and ip6 tables both have `out`.
        assert!(!t.contains_key(&("out".to_string(), 1)));
        assert!(t.contains_key(&("out".to_string(), 2)));
    }

    #[test]
    fn nft_listing_with_sets_and_quoted_chains() {
        let listing = "table inet t { # handle 4\n\tset blocked { # handle 3\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1 }\n\t}\n\n\tchain \"my in\" { # handle 1\n\t\ttype filter hook input priority filter; policy accept;\n\t\tip saddr @blocked counter drop # handle 5\n\t\ttcp dport { 22, 80 } accept # handle 6\n\t}\n}\n";
        let t = parse_nft(listing);
        assert_eq!(t.len(), 2, "{t:#?}");
        assert_eq!(t[&("my in".to_string(), 5)], "ip saddr @blocked counter drop");
        assert_eq!(t[&("my in".to_string(), 6)], "tcp dport { 22, 80 } accept");
    }

    #[test]
    fn iptables_save_lines_by_chain_without_counters() {
        let s = parse_save(include_str!("testdata/iptables_nft_save.txt"));
        assert_eq!(
            s["OUTPUT"],
            [
                "-A OUTPUT -p udp -m udp --dport 9 -j DROP",
                "-A OUTPUT -p udp -m udp --dport 12 -j REJECT --reject-with icmp-port-unreachable",
                "-A OUTPUT -p udp -j blk",
            ]
        );
        assert_eq!(s["blk"], ["-A blk -p udp -m udp --dport 13 -j DROP"]);
        assert!(!s.contains_key("INPUT"));
    }
}

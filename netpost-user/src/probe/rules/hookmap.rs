//! What is registered at each hook, by priority: from the kernel's own hook list where it has
//! one, else composed from what netpost can read (nf_tables base chains, the legacy iptables
//! tables of the namespace, netpost's own programs). Pure.
use super::{hooklist::HookEntry, legacy::BUILTIN_CHAINS, model::Registered, nft};

/// Priorities netpost links its programs at (probe/netfilter/bpf.rs).
pub const NETPOST_HEAD: (i32, &str) = (i32::MIN + 1, "netpost_nf_head");
pub const NETPOST_TAIL: (i32, &str) = (i32::MAX - 1, "netpost_nf_tail");

/// Tables iptables creates, by name.
const IPTABLES_TABLES: [&str; 5] = ["filter", "nat", "mangle", "raw", "security"];

/// Whether an nf_tables table is one iptables-nft manages: an iptables table name in the
/// `ip` or `ip6` family whose base chains all carry the built-in chain name of their hook.
pub fn is_iptables_nft<'a>(
    family: u8,
    table: &str,
    base_chains: impl IntoIterator<Item = (&'a str, u32)>,
) -> bool {
    (family == nft::FAMILY_IPV4 || family == nft::FAMILY_IPV6)
        && IPTABLES_TABLES.contains(&table)
        && base_chains
            .into_iter()
            .all(|(name, hook)| BUILTIN_CHAINS.get(hook as usize) == Some(&name))
}

/// The priority a legacy iptables table registers at, per hook (NF_IP_PRI_*, the same for
/// IPv6): nat's destination NAT comes before routing, its source NAT after.
pub fn legacy_priority(table: &str, hooknum: u32) -> Option<i32> {
    Some(match table {
        "raw" => -300,
        "mangle" => -150,
        "nat" if hooknum == 0 || hooknum == 3 => -100,
        "nat" => 100,
        "filter" => 0,
        "security" => 50,
        _ => return None,
    })
}

/// An nf_tables base chain, for the composed list.
pub struct BaseChainAt<'a> {
    pub family: u8,
    pub table: &'a str,
    pub chain: &'a str,
    pub priority: i32,
    pub iptables_nft: bool,
}

fn nft_owner(iptables_nft: bool) -> &'static str {
    if iptables_nft { "iptables-nft" } else { "nftables" }
}

/// The composed list of one hook: base chains, legacy tables (by name) and netpost's head and
/// tail when linked, ordered by priority (the kernel runs equal priorities in registration
/// order, which netpost cannot see).
pub fn composed(
    hooknum: u32,
    chains: &[BaseChainAt<'_>],
    legacy_tables: &[&str],
    netpost_linked: bool,
) -> Vec<Registered> {
    let mut out: Vec<Registered> = chains
        .iter()
        .map(|c| Registered {
            priority: c.priority,
            owner: nft_owner(c.iptables_nft).into(),
            family: Some(nft::family_name(c.family).into()),
            table: Some(c.table.into()),
            chain: Some(c.chain.into()),
            function: None,
        })
        .collect();
    for table in legacy_tables {
        if let Some(priority) = legacy_priority(table, hooknum) {
            out.push(Registered {
                priority,
                owner: "iptables-legacy".into(),
                family: None,
                table: Some(table.to_string()),
                chain: BUILTIN_CHAINS.get(hooknum as usize).map(|c| c.to_string()),
                function: None,
            });
        }
    }
    if netpost_linked {
        out.extend(netpost_entries());
    }
    out.sort_by_key(|r| r.priority);
    out
}

fn netpost_entries() -> [Registered; 2] {
    [NETPOST_HEAD, NETPOST_TAIL].map(|(priority, program)| Registered {
        priority,
        owner: "netpost".into(),
        chain: Some(program.into()),
        ..Default::default()
    })
}

/// Who registered a kernel hook function, in words.
fn owner_of(e: &HookEntry) -> String {
    let f = e.function.as_str();
    if f.starts_with("nf_nat_") {
        "nat".into()
    } else if f.contains("defrag") {
        "defrag".into()
    } else if f.contains("conntrack") || f.contains("confirm") {
        "conntrack".into()
    } else if f == "ipt_do_table" || f == "ip6t_do_table" {
        "iptables-legacy".into()
    } else if let Some(m) = &e.module {
        m.clone()
    } else if let Some(lsm) = f.split('_').next().filter(|p| ["selinux", "apparmor", "smack"].contains(p))
    {
        lsm.into()
    } else {
        f.into()
    }
}

/// The kernel's list of one hook in netpost's words. Legacy iptables tables are told apart
/// by their priority among the tables of the namespace; netpost's own links by theirs.
pub fn from_kernel(
    hooknum: u32,
    entries: &[HookEntry],
    legacy_tables: &[&str],
    is_iptables_nft: impl Fn(u8, &str) -> bool,
) -> Vec<Registered> {
    entries
        .iter()
        .map(|e| {
            let mut r = Registered {
                priority: e.priority,
                owner: owner_of(e),
                function: Some(e.function.clone()),
                ..Default::default()
            };
            if let Some((family, table, chain)) = &e.chain {
                r.owner = nft_owner(is_iptables_nft(*family, table)).into();
                r.family = Some(nft::family_name(*family).into());
                r.table = Some(table.clone());
                r.chain = Some(chain.clone());
            } else if r.owner == "iptables-legacy" {
                r.table = legacy_tables
                    .iter()
                    .find(|t| legacy_priority(t, hooknum) == Some(e.priority))
                    .map(|t| t.to_string());
                r.chain = BUILTIN_CHAINS.get(hooknum as usize).map(|c| c.to_string());
            } else if let Some(id) = e.bpf_prog_id {
                let ours = [NETPOST_HEAD, NETPOST_TAIL]
                    .iter()
                    .find(|(p, _)| *p == e.priority);
                match ours {
                    Some((_, program)) => {
                        r.owner = "netpost".into();
                        r.chain = Some(program.to_string());
                    }
                    None => {
                        r.owner = "bpf".into();
                        r.chain = Some(format!("prog id {id}"));
                    }
                }
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_nft_tables_are_told_by_name_and_chains() {
        assert!(is_iptables_nft(2, "filter", [("FORWARD", 2), ("INPUT", 1)]));
        assert!(is_iptables_nft(10, "nat", [("POSTROUTING", 4)]));
        assert!(!is_iptables_nft(1, "filter", [("FORWARD", 2)]), "inet");
        assert!(!is_iptables_nft(2, "filter", [("fw", 2)]), "nft-made chain");
        assert!(!is_iptables_nft(2, "t", [("FORWARD", 2)]));
    }

    #[test]
    fn composed_list_is_ordered_by_priority_with_netpost_at_the_ends() {
        let chains = [
            BaseChainAt {
                family: 1,
                table: "t",
                chain: "fw",
                priority: 5,
                iptables_nft: false,
            },
            BaseChainAt {
                family: 2,
                table: "filter",
                chain: "FORWARD",
                priority: 0,
                iptables_nft: true,
            },
        ];
        let list = composed(2, &chains, &["filter", "mangle"], true);
        let got: Vec<_> = list
            .iter()
            .map(|r| (r.priority, r.owner.as_str(), r.table.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                (i32::MIN + 1, "netpost", ""),
                (-150, "iptables-legacy", "mangle"),
                (0, "iptables-nft", "filter"),
                (0, "iptables-legacy", "filter"),
                (5, "nftables", "t"),
                (i32::MAX - 1, "netpost", ""),
            ]
        );
        assert_eq!(list[1].chain.as_deref(), Some("FORWARD"));
        assert_eq!(list[4].family.as_deref(), Some("inet"));
    }

    /// The kernel's list captured on Debian 6.12 with netpost linked (hooklist's fixture), in
    /// netpost's words; the namespace had a legacy `filter` table and iptables-nft's
    /// `ip filter`.
    #[test]
    fn the_kernel_list_in_netpost_s_words() {
        use crate::probe::rules::{
            hooklist,
            netlink::{Reply, messages},
        };
        let path = format!(
            "{}/src/probe/rules/testdata/hooks_ipv4_output_6.12.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let entries: Vec<HookEntry> = messages(&bytes)
            .filter_map(|m| match m.unwrap().reply {
                Reply::Message(m) => Some(hooklist::decode(&m).unwrap()),
                _ => None,
            })
            .collect();
        let list = from_kernel(3, &entries, &["filter"], |family, table| {
            family == 2 && table == "filter"
        });
        let got: Vec<_> = list
            .iter()
            .map(|r| {
                (
                    r.priority,
                    r.owner.as_str(),
                    r.table.as_deref().unwrap_or(""),
                    r.chain.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (i32::MIN + 1, "netpost", "", "netpost_nf_head"),
                (-400, "defrag", "", ""),
                (-200, "conntrack", "", ""),
                (-100, "nat", "", ""),
                (0, "iptables-legacy", "filter", "OUTPUT"),
                (0, "iptables-nft", "filter", "OUTPUT"),
                (5, "nftables", "t", "out"),
                (i32::MAX - 1, "netpost", "", "netpost_nf_tail"),
            ]
        );
        assert_eq!(list[1].function.as_deref(), Some("ipv4_conntrack_defrag"));
        assert_eq!(list[6].family.as_deref(), Some("inet"));
    }
}

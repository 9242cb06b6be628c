//! The kernel's own list of what runs at a netfilter hook (NFNL_SUBSYS_HOOK, what
//! `nft list hooks` prints): every registered function with its priority, the module it
//! comes from, and for nf_tables base chains the table and chain, for BPF links the program.
//! Kernels built without CONFIG_NETFILTER_NETLINK_HOOK (this project's CI kernel among
//! them) answer EINVAL: the caller then composes the list from what it can read itself.
use std::io;

use super::netlink::{Message, NLM_F_DUMP, NLM_F_REQUEST, Request, Socket, attrs};

const NFNL_SUBSYS_HOOK: u8 = 12;
const NFNL_MSG_HOOK_GET: u8 = 0;

const NFNLA_HOOK_HOOKNUM: u16 = 1;
const NFNLA_HOOK_PRIORITY: u16 = 2;
const NFNLA_HOOK_FUNCTION_NAME: u16 = 4;
const NFNLA_HOOK_MODULE_NAME: u16 = 5;
const NFNLA_HOOK_CHAIN_INFO: u16 = 6;
const NFNLA_HOOK_INFO_DESC: u16 = 1;
const NFNLA_HOOK_INFO_TYPE: u16 = 2;
const NFNLA_CHAIN_TABLE: u16 = 1;
const NFNLA_CHAIN_FAMILY: u16 = 2;
const NFNLA_CHAIN_NAME: u16 = 3;
const NFNLA_HOOK_BPF_ID: u16 = 1;
const NFNL_HOOK_TYPE_NFTABLES: u32 = 1;
const NFNL_HOOK_TYPE_BPF: u32 = 2;

/// One function registered at a hook.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookEntry {
    pub priority: i32,
    /// The kernel function (`nft_do_chain_inet`, `ipv4_conntrack_in`, `ipt_do_table`...).
    pub function: String,
    /// The module it belongs to (`nf_conntrack`...); none for built-in code.
    pub module: Option<String>,
    /// nf_tables base chain: (table family, table, chain).
    pub chain: Option<(u8, String, String)>,
    /// BPF link: the program's id.
    pub bpf_prog_id: Option<u32>,
}

pub fn decode(m: &Message<'_>) -> io::Result<HookEntry> {
    let mut e = HookEntry::default();
    for a in attrs(m.attrs) {
        let a = a?;
        match a.kind {
            NFNLA_HOOK_PRIORITY => e.priority = a.be32()? as i32,
            NFNLA_HOOK_FUNCTION_NAME => e.function = a.string()?,
            NFNLA_HOOK_MODULE_NAME => e.module = Some(a.string()?),
            NFNLA_HOOK_CHAIN_INFO => {
                let (mut kind, mut desc) = (None, None);
                for i in a.nested() {
                    let i = i?;
                    match i.kind {
                        NFNLA_HOOK_INFO_TYPE => kind = Some(i.be32()?),
                        NFNLA_HOOK_INFO_DESC => desc = Some(i.payload),
                        _ => {}
                    }
                }
                let Some(desc) = desc else { continue };
                match kind {
                    Some(NFNL_HOOK_TYPE_NFTABLES) => {
                        let (mut family, mut table, mut chain) = (0, String::new(), String::new());
                        for d in attrs(desc) {
                            let d = d?;
                            match d.kind {
                                NFNLA_CHAIN_TABLE => table = d.string()?,
                                NFNLA_CHAIN_NAME => chain = d.string()?,
                                NFNLA_CHAIN_FAMILY => {
                                    family = d.payload.first().copied().unwrap_or(0)
                                }
                                _ => {}
                            }
                        }
                        e.chain = Some((family, table, chain));
                    }
                    Some(NFNL_HOOK_TYPE_BPF) => {
                        for d in attrs(desc) {
                            let d = d?;
                            if d.kind == NFNLA_HOOK_BPF_ID {
                                e.bpf_prog_id = Some(d.be32()?);
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(e)
}

/// The request for what runs at `hooknum` of protocol family `pf`.
pub fn request(pf: u8, hooknum: u32) -> Request {
    Request::new(
        NFNL_SUBSYS_HOOK,
        NFNL_MSG_HOOK_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        pf,
    )
    .attr_be32(NFNLA_HOOK_HOOKNUM, hooknum)
}

/// What runs at one hook, in the kernel's order (by priority). An error of kind
/// `Unsupported` when the kernel has no hook list.
pub fn list(sock: &mut Socket, pf: u8, hooknum: u32) -> io::Result<Vec<HookEntry>> {
    let mut out = Vec::new();
    let result = sock.exchange(request(pf, hooknum), |m| {
        out.push(decode(m)?);
        Ok(())
    });
    match result {
        // nfnetlink's answer for a subsystem it does not have.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel has no netfilter hook list (CONFIG_NETFILTER_NETLINK_HOOK)",
            ))
        }
        Err(e) => Err(e),
        Ok(()) => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::rules::netlink::{Reply, messages};

    fn decode_file(file: &str) -> Vec<HookEntry> {
        let path = format!(
            "{}/src/probe/rules/testdata/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        messages(&bytes)
            .filter_map(|m| match m.unwrap().reply {
                Reply::Message(m) => Some(decode(&m).unwrap()),
                _ => None,
            })
            .collect()
    }

    /// Captured on Debian's 6.12 kernel with netpost running (testdata/README.md); the
    /// oracle is `nft list hooks ip` of the same moment
    /// (testdata/nft_list_hooks_ipv4_output_6.12.txt).
    #[test]
    fn ipv4_output_as_nft_list_hooks_shows_it() {
        let got: Vec<_> = decode_file("hooks_ipv4_output_6.12.bin")
            .into_iter()
            .map(|e| {
                let what = match (&e.chain, e.bpf_prog_id) {
                    (Some((f, t, c)), _) => format!("chain {f} {t} {c}"),
                    (None, Some(id)) => format!("bpf {id}"),
                    (None, None) => String::new(),
                };
                (e.priority, e.function, e.module.unwrap_or_default(), what)
            })
            .collect();
        let s = |x: &str| x.to_string();
        let bpf = |id: u32| (s("nf_hook_run_bpf"), s(""), format!("bpf {id}"));
        let row = |p: i32, (f, m, w): (String, String, String)| (p, f, m, w);
        let plain = |f: &str, m: &str| (s(f), s(m), s(""));
        let ids: Vec<u32> = decode_file("hooks_ipv4_output_6.12.bin")
            .iter()
            .filter_map(|e| e.bpf_prog_id)
            .collect();
        assert_eq!(ids.len(), 2, "netpost's head and tail");
        assert_eq!(
            got,
            [
                row(-2147483647, bpf(ids[0])),
                row(-400, plain("ipv4_conntrack_defrag", "nf_defrag_ipv4")),
                row(-200, plain("ipv4_conntrack_local", "nf_conntrack")),
                row(-100, plain("nf_nat_ipv4_local_fn", "nf_nat")),
                row(0, plain("ipt_do_table", "ip_tables")),
                row(0, (s("nft_do_chain_ipv4"), s("nf_tables"), s("chain 2 filter OUTPUT"))),
                row(5, (s("nft_do_chain_inet"), s("nf_tables"), s("chain 1 t out"))),
                row(2147483646, bpf(ids[1])),
            ]
        );
    }

    /// testdata/nft_list_hooks_ipv6_forward_6.12.txt; an empty hook is an empty dump.
    #[test]
    fn ipv6_forward_and_an_empty_hook() {
        let got: Vec<_> = decode_file("hooks_ipv6_forward_6.12.bin")
            .into_iter()
            .map(|e| (e.priority, e.function, e.chain))
            .collect();
        assert_eq!(
            got,
            [
                (
                    -7,
                    "nft_do_chain_inet".to_string(),
                    Some((1, "t".to_string(), "fw".to_string()))
                ),
                (0, "ip6t_do_table".to_string(), None),
            ]
        );
        assert!(decode_file("hooks_ipv6_prerouting_empty_6.12.bin").is_empty());
    }

    /// This project's kernel (no CONFIG_NETFILTER_NETLINK_HOOK) answers EINVAL.
    #[test]
    fn a_kernel_without_the_hook_list_answers_einval() {
        let path = format!(
            "{}/src/probe/rules/testdata/hooks_unsupported.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let replies: Vec<_> = messages(&bytes).map(|m| m.unwrap().reply).collect();
        assert!(matches!(replies[..], [Reply::Error(libc::EINVAL)]), "{replies:?}");
    }

    #[test]
    fn the_request_names_family_and_hook() {
        let bytes = request(10, 2).bytes(7);
        // nlmsghdr type: subsystem 12, message 0; nfgenmsg family 10; NFNLA_HOOK_HOOKNUM = 2.
        assert_eq!(&bytes[4..6], &0x0c00u16.to_ne_bytes());
        assert_eq!(bytes[16], 10);
        assert_eq!(&bytes[20..28], &[8, 0, 1, 0, 0, 0, 0, 2]);
    }
}

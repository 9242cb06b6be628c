//! nf_tables over netlink: the ruleset generation, tables, chains (base chains with their hook
//! and priority, policy counters) and rules reduced to what attribution needs (the verdict,
//! a counter at the verdict, jumps, an `meta nfproto` restriction). Decoders are pure; the
//! requests go through [`Socket`].
use std::io;

use super::{
    ctstate,
    netlink::{Attr, Message, NLM_F_DUMP, NLM_F_REQUEST, Request, Socket, attrs},
};

const NFNL_SUBSYS_NFTABLES: u8 = 10;
const NFT_MSG_NEWTABLE: u8 = 0;
const NFT_MSG_GETTABLE: u8 = 1;
const NFT_MSG_NEWCHAIN: u8 = 3;
const NFT_MSG_GETCHAIN: u8 = 4;
const NFT_MSG_NEWRULE: u8 = 6;
const NFT_MSG_GETRULE: u8 = 7;
const NFT_MSG_NEWGEN: u8 = 15;
const NFT_MSG_GETGEN: u8 = 16;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_TABLE_HANDLE: u16 = 4;
const NFT_TABLE_F_DORMANT: u32 = 1;

const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HANDLE: u16 = 2;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_COUNTERS: u16 = 8;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_HOOK_DEV: u16 = 3;
const NFTA_COUNTER_PACKETS: u16 = 2;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_TARGET_NAME: u16 = 1;
const NFTA_MATCH_NAME: u16 = 1;
const NFTA_MATCH_REV: u16 = 2;
const NFTA_MATCH_INFO: u16 = 3;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_GEN_ID: u16 = 1;

const NFT_REG_VERDICT: u32 = 0;
const NFT_META_NFPROTO: u32 = 15;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_CT_STATE: u32 = 0;

const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_QUEUE: u32 = 3;
const NFT_JUMP: u32 = -3i32 as u32;
const NFT_GOTO: u32 = -4i32 as u32;

/// nf_tables table families (NFPROTO_*).
pub const FAMILY_INET: u8 = 1;
pub const FAMILY_IPV4: u8 = 2;
pub const FAMILY_IPV6: u8 = 10;

/// The family as nft writes it (`ip`, `ip6`, `inet`...).
pub fn family_name(family: u8) -> &'static str {
    match family {
        FAMILY_INET => "inet",
        FAMILY_IPV4 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        FAMILY_IPV6 => "ip6",
        _ => "unknown",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub family: u8,
    pub name: String,
    pub handle: u64,
    /// A dormant table registers no hooks.
    pub dormant: bool,
}

/// A base chain's hook, priority, policy and (when the kernel keeps one) policy counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    pub hooknum: u32,
    pub priority: i32,
    /// NF_ACCEPT (1) or NF_DROP (0).
    pub policy: u32,
    /// `filter`, `nat`, `route`.
    pub kind: String,
    /// Set for netdev-family and inet ingress chains.
    pub device: Option<String>,
    /// Packets that met the policy, when the chain was created with counters (iptables-nft
    /// asks for them); nft creates base chains without.
    pub policy_packets: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub family: u8,
    pub table: String,
    pub name: String,
    pub handle: u64,
    pub base: Option<BaseChain>,
}

/// What a rule does when all its matches hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    Reject,
    /// Queued to userspace (NFQUEUE): netpost's `dropped` counts it too.
    Queue,
    Jump(String),
    Goto(String),
    Accept,
    /// Return, continue, or no verdict statement.
    Other,
}

impl Verdict {
    /// Whether the packet ends at this hook (what netpost's `dropped` counts).
    pub fn ends_packet(&self) -> bool {
        matches!(self, Verdict::Drop | Verdict::Reject | Verdict::Queue)
    }
}

/// A rule reduced to what attribution needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub verdict: Verdict,
    /// Packets of a `counter` that only statements follow (so it counts exactly the packets
    /// the verdict applies to); None without one.
    pub counter: Option<u64>,
    /// A counter exists but a match follows it: it counts packets the verdict may not see.
    pub counter_before_match: bool,
    /// `meta nfproto ipv4|ipv6` (what nft adds for `ip ...` matches in inet tables).
    pub nfproto: Option<u8>,
    /// The verdict comes from a verdict map (`vmap`): which chain or drop is not static.
    pub verdict_map: bool,
    /// The ESTABLISHED,RELATED accept: a conntrack state match admitting established (not
    /// new) packets, then accept (`ct state established,related accept`, iptables'
    /// `-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`).
    pub established_accept: bool,
}

fn each_attr<'a>(
    buf: &'a [u8],
    mut f: impl FnMut(Attr<'a>) -> io::Result<()>,
) -> io::Result<()> {
    for a in attrs(buf) {
        f(a?)?;
    }
    Ok(())
}

pub fn decode_gen(m: &Message<'_>) -> io::Result<u32> {
    let mut id = None;
    each_attr(m.attrs, |a| {
        if a.kind == NFTA_GEN_ID {
            id = Some(a.be32()?);
        }
        Ok(())
    })?;
    id.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "NEWGEN without its id"))
}

pub fn decode_table(m: &Message<'_>) -> io::Result<Table> {
    let mut t = Table {
        family: m.family,
        name: String::new(),
        handle: 0,
        dormant: false,
    };
    each_attr(m.attrs, |a| {
        match a.kind {
            NFTA_TABLE_NAME => t.name = a.string()?,
            NFTA_TABLE_FLAGS => t.dormant = a.be32()? & NFT_TABLE_F_DORMANT != 0,
            NFTA_TABLE_HANDLE => t.handle = a.be64()?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(t)
}

pub fn decode_chain(m: &Message<'_>) -> io::Result<Chain> {
    let mut c = Chain {
        family: m.family,
        table: String::new(),
        name: String::new(),
        handle: 0,
        base: None,
    };
    let mut hook: Option<(u32, i32, Option<String>)> = None;
    let (mut policy, mut kind, mut packets) = (1, String::new(), None);
    each_attr(m.attrs, |a| {
        match a.kind {
            NFTA_CHAIN_TABLE => c.table = a.string()?,
            NFTA_CHAIN_NAME => c.name = a.string()?,
            NFTA_CHAIN_HANDLE => c.handle = a.be64()?,
            NFTA_CHAIN_POLICY => policy = a.be32()?,
            NFTA_CHAIN_TYPE => kind = a.string()?,
            NFTA_CHAIN_HOOK => {
                let (mut num, mut prio, mut dev) = (None, 0, None);
                each_attr(a.payload, |h| {
                    match h.kind {
                        NFTA_HOOK_HOOKNUM => num = Some(h.be32()?),
                        NFTA_HOOK_PRIORITY => prio = h.be32()? as i32,
                        NFTA_HOOK_DEV => dev = Some(h.string()?),
                        _ => {}
                    }
                    Ok(())
                })?;
                hook = num.map(|n| (n, prio, dev));
            }
            NFTA_CHAIN_COUNTERS => each_attr(a.payload, |k| {
                if k.kind == NFTA_COUNTER_PACKETS {
                    packets = Some(k.be64()?);
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    c.base = hook.map(|(hooknum, priority, device)| BaseChain {
        hooknum,
        priority,
        policy,
        kind,
        device,
        policy_packets: packets,
    });
    Ok(c)
}

/// Expressions that only act (never filter): a counter followed by these alone counts
/// exactly the packets the rule's verdict applies to.
fn is_statement(name: &str) -> bool {
    matches!(
        name,
        "counter" | "immediate" | "reject" | "log" | "queue" | "target" | "notrack"
    )
}

pub fn decode_rule(m: &Message<'_>) -> io::Result<Rule> {
    let mut r = Rule {
        family: m.family,
        table: String::new(),
        chain: String::new(),
        handle: 0,
        verdict: Verdict::Other,
        counter: None,
        counter_before_match: false,
        nfproto: None,
        verdict_map: false,
        established_accept: false,
    };
    let mut exprs = Vec::new();
    each_attr(m.attrs, |a| {
        match a.kind {
            NFTA_RULE_TABLE => r.table = a.string()?,
            NFTA_RULE_CHAIN => r.chain = a.string()?,
            NFTA_RULE_HANDLE => r.handle = a.be64()?,
            NFTA_RULE_EXPRESSIONS => each_attr(a.payload, |e| {
                if e.kind == NFTA_LIST_ELEM {
                    exprs.push(e.payload);
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    // Register loaded by `meta nfproto`, for the cmp that follows it.
    let mut nfproto_reg = None;
    // Register holding the conntrack state (after `ct state`, kept through a bitwise), its
    // mask, and the states the rule's matches admit.
    let mut ct_reg: Option<(u32, u32)> = None;
    let mut states: Option<u32> = None;
    for expr in exprs {
        let (mut name, mut data) = (String::new(), &[][..]);
        each_attr(expr, |a| {
            match a.kind {
                NFTA_EXPR_NAME => name = a.string()?,
                NFTA_EXPR_DATA => data = a.payload,
                _ => {}
            }
            Ok(())
        })?;
        if r.counter.is_some() && !is_statement(&name) {
            r.counter = None;
            r.counter_before_match = true;
        }
        match name.as_str() {
            "counter" => each_attr(data, |a| {
                if a.kind == NFTA_COUNTER_PACKETS {
                    r.counter = Some(a.be64()?);
                }
                Ok(())
            })?,
            "immediate" => {
                if let Some(v) = immediate_verdict(data)? {
                    r.verdict = v;
                }
            }
            "reject" => r.verdict = Verdict::Reject,
            "queue" => r.verdict = Verdict::Queue,
            "target" => {
                // iptables-nft's compat targets; DROP and ACCEPT are native immediates.
                let mut target = String::new();
                each_attr(data, |a| {
                    if a.kind == NFTA_TARGET_NAME {
                        target = a.string()?;
                    }
                    Ok(())
                })?;
                match target.as_str() {
                    "REJECT" => r.verdict = Verdict::Reject,
                    "NFQUEUE" => r.verdict = Verdict::Queue,
                    _ => {}
                }
            }
            "lookup" => each_attr(data, |a| {
                if a.kind == NFTA_LOOKUP_DREG && a.be32()? == NFT_REG_VERDICT {
                    r.verdict_map = true;
                }
                Ok(())
            })?,
            "meta" => {
                let (mut key, mut dreg) = (None, None);
                each_attr(data, |a| {
                    match a.kind {
                        NFTA_META_KEY => key = Some(a.be32()?),
                        NFTA_META_DREG => dreg = Some(a.be32()?),
                        _ => {}
                    }
                    Ok(())
                })?;
                nfproto_reg = dreg.filter(|_| key == Some(NFT_META_NFPROTO));
                continue;
            }
            "ct" => {
                let (mut key, mut dreg) = (None, None);
                each_attr(data, |a| {
                    match a.kind {
                        NFTA_CT_KEY => key = Some(a.be32()?),
                        NFTA_CT_DREG => dreg = Some(a.be32()?),
                        _ => {}
                    }
                    Ok(())
                })?;
                if key == Some(NFT_CT_STATE) {
                    ct_reg = dreg.map(|reg| (reg, u32::MAX));
                }
                continue;
            }
            "bitwise" => {
                if let Some((reg, _)) = ct_reg
                    && let Some((sreg, dreg, mask)) = bitwise_mask(data)?
                    && sreg == reg
                {
                    ct_reg = Some((dreg, mask));
                }
                continue;
            }
            "match" => {
                let (mut m, mut rev, mut info) = (String::new(), 0, &[][..]);
                each_attr(data, |a| {
                    match a.kind {
                        NFTA_MATCH_NAME => m = a.string()?,
                        NFTA_MATCH_REV => rev = a.be32()? as u8,
                        NFTA_MATCH_INFO => info = a.payload,
                        _ => {}
                    }
                    Ok(())
                })?;
                if let Some(s) = ctstate::xt_states(&m, rev, info) {
                    states = Some(s);
                }
            }
            "cmp" => {
                if let Some(reg) = nfproto_reg
                    && let Some(proto) = cmp_eq_byte(data, reg)?
                {
                    r.nfproto = Some(proto);
                }
                if let Some((reg, mask)) = ct_reg.take()
                    && let Some(s) = cmp_states(data, reg, mask)?
                {
                    states = Some(s);
                }
            }
            _ => {}
        }
        nfproto_reg = None;
    }
    r.established_accept =
        r.verdict == Verdict::Accept && states.is_some_and(ctstate::is_established_accept);
    Ok(r)
}

/// A bitwise's source and destination registers and its mask (4 bytes: the ct state).
fn bitwise_mask(data: &[u8]) -> io::Result<Option<(u32, u32, u32)>> {
    let (mut sreg, mut dreg, mut mask) = (None, None, None);
    each_attr(data, |a| {
        match a.kind {
            NFTA_BITWISE_SREG => sreg = Some(a.be32()?),
            NFTA_BITWISE_DREG => dreg = Some(a.be32()?),
            NFTA_BITWISE_MASK => each_attr(a.payload, |d| {
                if d.kind == NFTA_DATA_VALUE && d.payload.len() == 4 {
                    mask = Some(u32::from_ne_bytes(d.payload.try_into().unwrap_or_default()));
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(sreg.zip(dreg).zip(mask).map(|((s, d), m)| (s, d, m)))
}

/// The states a `cmp` on the ct state register admits: `!= 0` after a mask (`ct state
/// established,related`) admits the mask's states, `== V` admits V.
fn cmp_states(data: &[u8], reg: u32, mask: u32) -> io::Result<Option<u32>> {
    let (mut sreg, mut op, mut value) = (None, None, None);
    each_attr(data, |a| {
        match a.kind {
            NFTA_CMP_SREG => sreg = Some(a.be32()?),
            NFTA_CMP_OP => op = Some(a.be32()?),
            NFTA_CMP_DATA => each_attr(a.payload, |d| {
                if d.kind == NFTA_DATA_VALUE && d.payload.len() == 4 {
                    value = Some(u32::from_ne_bytes(d.payload.try_into().unwrap_or_default()));
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    if sreg != Some(reg) {
        return Ok(None);
    }
    Ok(match (op, value) {
        (Some(NFT_CMP_NEQ), Some(0)) => Some(mask),
        (Some(NFT_CMP_EQ), Some(v)) => Some(v & mask),
        _ => None,
    })
}

/// The verdict an `immediate` loads into the verdict register, if it does.
fn immediate_verdict(data: &[u8]) -> io::Result<Option<Verdict>> {
    let (mut dreg, mut verdict) = (None, None);
    each_attr(data, |a| {
        match a.kind {
            NFTA_IMMEDIATE_DREG => dreg = Some(a.be32()?),
            NFTA_IMMEDIATE_DATA => each_attr(a.payload, |d| {
                if d.kind == NFTA_DATA_VERDICT {
                    let (mut code, mut chain) = (None, String::new());
                    each_attr(d.payload, |v| {
                        match v.kind {
                            NFTA_VERDICT_CODE => code = Some(v.be32()?),
                            NFTA_VERDICT_CHAIN => chain = v.string()?,
                            _ => {}
                        }
                        Ok(())
                    })?;
                    verdict = code.map(|code| match code {
                        // NF_DROP_ERR keeps NF_DROP in the low byte.
                        c if c & 0xff == NF_DROP && (c as i32) >= 0 => Verdict::Drop,
                        c if c & 0xff == NF_QUEUE && (c as i32) > 0 => Verdict::Queue,
                        NF_ACCEPT => Verdict::Accept,
                        NFT_JUMP => Verdict::Jump(chain.clone()),
                        NFT_GOTO => Verdict::Goto(chain.clone()),
                        _ => Verdict::Other,
                    });
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(verdict.filter(|_| dreg == Some(NFT_REG_VERDICT)))
}

/// The byte a `cmp eq` on register `reg` compares with, if this is one.
fn cmp_eq_byte(data: &[u8], reg: u32) -> io::Result<Option<u8>> {
    let (mut sreg, mut op, mut value) = (None, None, None);
    each_attr(data, |a| {
        match a.kind {
            NFTA_CMP_SREG => sreg = Some(a.be32()?),
            NFTA_CMP_OP => op = Some(a.be32()?),
            NFTA_CMP_DATA => each_attr(a.payload, |d| {
                if d.kind == NFTA_DATA_VALUE && d.payload.len() == 1 {
                    value = Some(d.payload[0]);
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(value.filter(|_| sreg == Some(reg) && op == Some(NFT_CMP_EQ)))
}

/// The ruleset generation: it changes with every committed change of the nf_tables ruleset
/// (iptables-nft's included), so an unchanged id means nothing needs reading again.
pub fn generation(sock: &mut Socket) -> io::Result<u32> {
    let mut id = None;
    sock.exchange(
        Request::new(NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN, NLM_F_REQUEST, 0),
        |m| {
            if m.msg == NFT_MSG_NEWGEN {
                id = Some(decode_gen(m)?);
            }
            Ok(())
        },
    )?;
    id.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no NEWGEN answer"))
}

fn dump<T>(
    sock: &mut Socket,
    request: Request,
    want: u8,
    decode: fn(&Message<'_>) -> io::Result<T>,
) -> io::Result<Vec<T>> {
    let mut out = Vec::new();
    sock.exchange(request, |m| {
        if m.msg == want {
            out.push(decode(m)?);
        }
        Ok(())
    })?;
    Ok(out)
}

fn dump_request(msg: u8, family: u8) -> Request {
    Request::new(NFNL_SUBSYS_NFTABLES, msg, NLM_F_REQUEST | NLM_F_DUMP, family)
}

/// Every table of every family.
pub fn tables(sock: &mut Socket) -> io::Result<Vec<Table>> {
    dump(
        sock,
        dump_request(NFT_MSG_GETTABLE, 0),
        NFT_MSG_NEWTABLE,
        decode_table,
    )
}

/// Every chain of every family.
pub fn chains(sock: &mut Socket) -> io::Result<Vec<Chain>> {
    dump(
        sock,
        dump_request(NFT_MSG_GETCHAIN, 0),
        NFT_MSG_NEWCHAIN,
        decode_chain,
    )
}

/// Every rule of every family.
pub fn all_rules(sock: &mut Socket) -> io::Result<Vec<Rule>> {
    dump(
        sock,
        dump_request(NFT_MSG_GETRULE, 0),
        NFT_MSG_NEWRULE,
        decode_rule,
    )
}

/// The rules of one chain (the kernel walks only that chain).
pub fn chain_rules(
    sock: &mut Socket,
    family: u8,
    table: &str,
    chain: &str,
) -> io::Result<Vec<Rule>> {
    let request = dump_request(NFT_MSG_GETRULE, family)
        .attr_str(NFTA_RULE_TABLE, table)
        .attr_str(NFTA_RULE_CHAIN, chain);
    dump(sock, request, NFT_MSG_NEWRULE, decode_rule)
}

/// One chain (for its policy counter): a plain request, not a dump.
pub fn chain(sock: &mut Socket, family: u8, table: &str, name: &str) -> io::Result<Chain> {
    let request = Request::new(NFNL_SUBSYS_NFTABLES, NFT_MSG_GETCHAIN, NLM_F_REQUEST, family)
        .attr_str(NFTA_CHAIN_TABLE, table)
        .attr_str(NFTA_CHAIN_NAME, name);
    let chains = dump(sock, request, NFT_MSG_NEWCHAIN, decode_chain)?;
    chains
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such chain"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::rules::netlink::{Reply, messages};

    /// Decodes every message of a captured reply (testdata/, see testdata/README.md).
    fn decode_all<T>(file: &str, decode: fn(&Message<'_>) -> io::Result<T>) -> Vec<T> {
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

    #[test]
    fn generation_and_tables() {
        let gens = decode_all("nft_gen.bin", decode_gen);
        assert_eq!(gens.len(), 1);
        let tables = decode_all("nft_tables.bin", decode_table);
        let got: Vec<_> = tables
            .iter()
            .map(|t| (family_name(t.family), t.name.as_str(), t.handle, t.dormant))
            .collect();
        assert_eq!(
            got,
            [
                ("ip", "filter", 1, false),
                ("inet", "t", 2, false),
                ("ip6", "t6", 3, false)
            ]
        );
    }

    /// Oracle: testdata/nft_list_ruleset.txt (`nft -a list ruleset` of the same ruleset).
    #[test]
    fn chains_with_their_hooks_and_priorities() {
        let chains = decode_all("nft_chains.bin", decode_chain);
        let got: Vec<_> = chains
            .iter()
            .map(|c| {
                (
                    family_name(c.family),
                    c.table.as_str(),
                    c.name.as_str(),
                    c.base.as_ref().map(|b| (b.hooknum, b.priority, b.policy, b.kind.as_str())),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ip", "filter", "OUTPUT", Some((3, 0, 1, "filter"))),
                ("ip", "filter", "blk", None),
                ("inet", "t", "sub", None),
                ("inet", "t", "out", Some((3, 5, 1, "filter"))),
                ("ip6", "t6", "out", Some((3, -5, 1, "filter"))),
            ]
        );
        assert!(chains.iter().all(|c| c
            .base
            .as_ref()
            .is_none_or(|b| b.policy_packets.is_none() && b.device.is_none())));
        let one = decode_all("nft_chain_ip_filter_OUTPUT.bin", decode_chain);
        assert_eq!(one, chains[..1]);
    }

    #[test]
    fn rules_verdicts_counters_jumps_and_nfproto() {
        let rules = decode_all("nft_rules.bin", decode_rule);
        let got: Vec<_> = rules
            .iter()
            .map(|r| {
                (
                    r.table.as_str(),
                    r.chain.as_str(),
                    r.handle,
                    r.verdict.clone(),
                    r.counter,
                    r.nfproto,
                )
            })
            .collect();
        let j = |c: &str| Verdict::Jump(c.into());
        use Verdict::{Drop, Reject};
        assert_eq!(
            got,
            [
                ("filter", "OUTPUT", 2, Drop, Some(6), None),
                ("filter", "OUTPUT", 3, Reject, Some(2), None),
                ("filter", "OUTPUT", 6, j("blk"), Some(64), None),
                ("filter", "blk", 5, Drop, Some(4), None),
                ("t", "sub", 3, Drop, Some(7), None),
                ("t", "sub", 4, Drop, None, None),
                ("t", "out", 5, Drop, Some(5), None),
                ("t", "out", 6, Reject, Some(9), Some(2)),
                ("t", "out", 7, j("sub"), None, None),
                ("t6", "out", 2, Drop, Some(0), None),
            ]
        );
        assert!(rules.iter().all(|r| !r.counter_before_match && !r.verdict_map));
        let sub = decode_all("nft_rules_inet_t_sub.bin", decode_rule);
        assert_eq!(sub, rules[4..6]);
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        v.resize((v.len() + 3) & !3, 0);
        v
    }

    fn expr(name: &str, data: Vec<u8>) -> Vec<u8> {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        attr(
            NFTA_LIST_ELEM,
            &[attr(NFTA_EXPR_NAME, &n), attr(NFTA_EXPR_DATA, &data)].concat(),
        )
    }

    fn rule_of(exprs: &[Vec<u8>]) -> Rule {
        let attrs = attr(NFTA_RULE_EXPRESSIONS, &exprs.concat());
        decode_rule(&Message {
            msg: NFT_MSG_NEWRULE,
            family: 1,
            res_id: 0,
            attrs: &attrs,
        })
        .unwrap()
    }

    fn counter(packets: u64) -> Vec<u8> {
        expr("counter", attr(NFTA_COUNTER_PACKETS, &packets.to_be_bytes()))
    }

    fn verdict(code: u32) -> Vec<u8> {
        let v = attr(NFTA_DATA_VERDICT, &attr(NFTA_VERDICT_CODE, &code.to_be_bytes()));
        expr(
            "immediate",
            [
                attr(NFTA_IMMEDIATE_DREG, &0u32.to_be_bytes()),
                attr(NFTA_IMMEDIATE_DATA, &v),
            ]
            .concat(),
        )
    }

    #[test]
    fn a_counter_before_a_match_does_not_count_the_verdict() {
        let cmp = expr("cmp", attr(NFTA_CMP_SREG, &1u32.to_be_bytes()));
        let r = rule_of(&[counter(9), cmp.clone(), verdict(NF_DROP)]);
        assert_eq!((r.counter, r.counter_before_match), (None, true));
        assert_eq!(r.verdict, Verdict::Drop);
        let r = rule_of(&[cmp, counter(9), expr("log", vec![]), verdict(NF_DROP)]);
        assert_eq!((r.counter, r.counter_before_match), (Some(9), false));
    }

    fn reg_value(kind: u16, v: u32) -> Vec<u8> {
        attr(kind, &v.to_be_bytes())
    }

    fn data_value(kind: u16, v: u32) -> Vec<u8> {
        attr(kind, &attr(NFTA_DATA_VALUE, &v.to_ne_bytes()))
    }

    /// `ct state STATES` as nft compiles it: load, mask, compare with 0.
    fn ct_state(states: u32) -> Vec<Vec<u8>> {
        vec![
            expr(
                "ct",
                [reg_value(NFTA_CT_DREG, 1), reg_value(NFTA_CT_KEY, NFT_CT_STATE)].concat(),
            ),
            expr(
                "bitwise",
                [
                    reg_value(NFTA_BITWISE_SREG, 1),
                    reg_value(NFTA_BITWISE_DREG, 1),
                    data_value(NFTA_BITWISE_MASK, states),
                ]
                .concat(),
            ),
            expr(
                "cmp",
                [
                    reg_value(NFTA_CMP_SREG, 1),
                    reg_value(NFTA_CMP_OP, NFT_CMP_NEQ),
                    data_value(NFTA_CMP_DATA, 0),
                ]
                .concat(),
            ),
        ]
    }

    #[test]
    fn the_established_accept_is_recognised() {
        use ctstate::{ESTABLISHED, NEW, RELATED};
        let rule = |states: u32, code: u32| {
            let mut e = ct_state(states);
            e.push(counter(1));
            e.push(verdict(code));
            rule_of(&e)
        };
        assert!(rule(ESTABLISHED | RELATED, NF_ACCEPT).established_accept);
        assert!(rule(ESTABLISHED, NF_ACCEPT).established_accept);
        assert!(!rule(NEW, NF_ACCEPT).established_accept);
        assert!(!rule(ESTABLISHED | NEW, NF_ACCEPT).established_accept);
        assert!(!rule(ESTABLISHED | RELATED, NF_DROP).established_accept);
        assert!(!rule_of(&[verdict(NF_ACCEPT)]).established_accept);
        // iptables-nft: the x_tables conntrack match (revision 3) inside nf_tables.
        let mut info = vec![0u8; 168];
        info[146] = 1; // XT_CONNTRACK_STATE
        info[150] = (ESTABLISHED | RELATED) as u8;
        let m = expr(
            "match",
            [
                attr(NFTA_MATCH_NAME, b"conntrack\0"),
                reg_value(NFTA_MATCH_REV, 3),
                attr(NFTA_MATCH_INFO, &info),
            ]
            .concat(),
        );
        assert!(rule_of(&[m, counter(0), verdict(NF_ACCEPT)]).established_accept);
    }

    #[test]
    fn queue_accept_and_verdict_maps() {
        assert_eq!(rule_of(&[verdict(NF_QUEUE)]).verdict, Verdict::Queue);
        assert_eq!(rule_of(&[verdict(1)]).verdict, Verdict::Accept);
        let vmap = expr("lookup", attr(NFTA_LOOKUP_DREG, &0u32.to_be_bytes()));
        let r = rule_of(&[counter(1), vmap]);
        assert!(r.verdict_map);
        assert_eq!(r.counter, None);
    }

    #[test]
    fn policy_counters_when_the_chain_has_them() {
        let hook = attr(
            NFTA_CHAIN_HOOK,
            &[
                attr(NFTA_HOOK_HOOKNUM, &2u32.to_be_bytes()),
                attr(NFTA_HOOK_PRIORITY, &(-10i32 as u32).to_be_bytes()),
            ]
            .concat(),
        );
        let counters = attr(
            NFTA_CHAIN_COUNTERS,
            &attr(NFTA_COUNTER_PACKETS, &77u64.to_be_bytes()),
        );
        let attrs = [
            attr(NFTA_CHAIN_NAME, b"fw\0"),
            hook,
            attr(NFTA_CHAIN_POLICY, &NF_DROP.to_be_bytes()),
            counters,
        ]
        .concat();
        let c = decode_chain(&Message {
            msg: NFT_MSG_NEWCHAIN,
            family: 2,
            res_id: 0,
            attrs: &attrs,
        })
        .unwrap();
        let b = c.base.unwrap();
        assert_eq!((b.hooknum, b.priority, b.policy), (2, -10, NF_DROP));
        assert_eq!(b.policy_packets, Some(77));
    }
}

//! iptables with the legacy backend (x_tables): the tables of this namespace with every
//! entry's counters, read with getsockopt(IPT_SO_GET_INFO / IPT_SO_GET_ENTRIES) as
//! `iptables-legacy-save -c` does, and decoded into chains and rules. The decoder is pure and
//! tested against captured tables.
//!
//! Only tables listed in /proc/net/ip_tables_names are read: asking the kernel for another
//! would instantiate it in the namespace (registering its hooks at every packet).
use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use netpost_common::netfilter::NfFamily;

/// IPT_SO_GET_INFO / IP6T_SO_GET_INFO, and the entries.
const SO_GET_INFO: i32 = 64;
const SO_GET_ENTRIES: i32 = 65;
const TABLE_NAME_LEN: usize = 32;
/// `struct ipt_getinfo`: name, valid_hooks, hook_entry[5], underflow[5], num_entries, size.
const GETINFO_LEN: usize = TABLE_NAME_LEN + 4 + 20 + 20 + 4 + 4;
/// `struct ipt_get_entries`: name, size, then the entries (8-aligned: they hold u64s).
const GET_ENTRIES_HDR: usize = 40;
/// `struct xt_entry_target`: target_size, name[29], revision; then its data.
const TARGET_HDR: usize = 32;
const TARGET_NAME_LEN: usize = 29;

/// Where the fields of `struct ipt_entry` / `struct ip6t_entry` sit.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// `ipt_ip.flags` / `ip6t_ip6.flags`.
    flags: usize,
    /// The flag that makes a jump a goto (IPT_F_GOTO 0x02, IP6T_F_GOTO 0x04).
    goto_flag: u8,
    target_offset: usize,
    next_offset: usize,
    comefrom: usize,
    packets: usize,
    /// sizeof the entry (where matches begin).
    size: usize,
}

const LAYOUT_V4: Layout = Layout {
    flags: 82,
    goto_flag: 0x02,
    target_offset: 88,
    next_offset: 90,
    comefrom: 92,
    packets: 96,
    size: 112,
};

const LAYOUT_V6: Layout = Layout {
    flags: 131,
    goto_flag: 0x04,
    target_offset: 140,
    next_offset: 142,
    comefrom: 144,
    packets: 152,
    size: 168,
};

fn layout(family: NfFamily) -> Layout {
    match family {
        NfFamily::Ipv4 => LAYOUT_V4,
        NfFamily::Ipv6 => LAYOUT_V6,
    }
}

/// The built-in chain at each hook, by hook number.
pub const BUILTIN_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// What an entry's target does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Drop,
    Accept,
    Reject,
    Queue,
    Return,
    /// To the chain starting at this offset (a `-g` goto when `goto`).
    Jump {
        offset: u32,
        goto: bool,
    },
    /// Another target module (LOG, MARK...): the packet goes on.
    Other(String),
}

impl Target {
    pub fn ends_packet(&self) -> bool {
        matches!(self, Target::Drop | Target::Reject | Target::Queue)
    }

    /// How iptables names the verdict (`DROP`, `REJECT`...).
    pub fn name(&self) -> &str {
        match self {
            Target::Drop => "DROP",
            Target::Accept => "ACCEPT",
            Target::Reject => "REJECT",
            Target::Queue => "NFQUEUE",
            Target::Return => "RETURN",
            Target::Jump { .. } => "jump",
            Target::Other(name) => name,
        }
    }
}

/// A rule or a built-in chain's policy, with its counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: u32,
    pub chain: String,
    /// 1-based position in the chain (as `iptables -L --line-numbers`); 0 for a policy.
    pub index: u32,
    pub policy: bool,
    pub target: Target,
    pub packets: u64,
    /// The entry's bytes without counters: the same rule keeps it when rules around it
    /// come and go (its index does not).
    pub content: u64,
    /// `-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT` (or `-m state`): see
    /// [`super::ctstate`].
    pub established_accept: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyTable {
    pub family: NfFamily,
    pub name: String,
    /// Bit h set: the table is registered at hook h.
    pub valid_hooks: u32,
    /// Rules and policies, in table order (user chains' implicit RETURN and the chain-head
    /// entries left out).
    pub entries: Vec<Entry>,
    /// Offset of each chain's first entry: built-in chains by name, and user chains (where a
    /// jump lands).
    pub chain_starts: Vec<(u32, String)>,
    /// The built-in chain at each hook the table is registered at.
    pub hooks: Vec<(u32, String)>,
}

impl LegacyTable {
    /// The chain a jump to `offset` lands in.
    pub fn chain_at(&self, offset: u32) -> Option<&str> {
        self.chain_starts
            .iter()
            .find(|(o, _)| *o == offset)
            .map(|(_, c)| c.as_str())
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn u32_at(b: &[u8], at: usize) -> io::Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes(s.try_into().unwrap()))
        .ok_or_else(|| invalid(format!("x_tables entry cut at {at}")))
}

fn u16_at(b: &[u8], at: usize) -> io::Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_ne_bytes(s.try_into().unwrap()))
        .ok_or_else(|| invalid(format!("x_tables entry cut at {at}")))
}

fn u64_at(b: &[u8], at: usize) -> io::Result<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_ne_bytes(s.try_into().unwrap()))
        .ok_or_else(|| invalid(format!("x_tables entry cut at {at}")))
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// What `IPT_SO_GET_INFO` says: (valid hooks, hook entry offsets, underflow offsets, size).
pub fn decode_info(info: &[u8]) -> io::Result<(u32, [u32; 5], [u32; 5], u32)> {
    if info.len() < GETINFO_LEN {
        return Err(invalid("ipt_getinfo too short"));
    }
    let at = |i| u32_at(info, i);
    let mut hook_entry = [0; 5];
    let mut underflow = [0; 5];
    for h in 0..5 {
        hook_entry[h] = at(TABLE_NAME_LEN + 4 + 4 * h)?;
        underflow[h] = at(TABLE_NAME_LEN + 24 + 4 * h)?;
    }
    Ok((
        at(TABLE_NAME_LEN)?,
        hook_entry,
        underflow,
        at(TABLE_NAME_LEN + 48)?,
    ))
}

/// Decodes a table from the answers to GET_INFO and GET_ENTRIES (header included).
pub fn decode(family: NfFamily, info: &[u8], get_entries: &[u8]) -> io::Result<LegacyTable> {
    let l = layout(family);
    let (valid_hooks, hook_entry, underflow, size) = decode_info(info)?;
    let name = cstr(&info[..TABLE_NAME_LEN]);
    let blob = get_entries
        .get(GET_ENTRIES_HDR..GET_ENTRIES_HDR + size as usize)
        .ok_or_else(|| invalid("x_tables entries shorter than the table's size"))?;
    let valid = |h: usize| valid_hooks & (1 << h) != 0;
    let hooks: Vec<(u32, String)> = (0..5)
        .filter(|&h| valid(h))
        .map(|h| (h as u32, BUILTIN_CHAINS[h].to_string()))
        .collect();
    let mut chain_starts: Vec<(u32, String)> = (0..5)
        .filter(|&h| valid(h))
        .map(|h| (hook_entry[h], BUILTIN_CHAINS[h].to_string()))
        .collect();

    // First pass: every entry's offset, size, target.
    struct Raw {
        offset: u32,
        next: u32,
        target: Target,
        error_name: Option<String>,
        packets: u64,
        content: u64,
        plain: bool,
        established_accept: bool,
    }
    let mut raw = Vec::new();
    let mut off = 0usize;
    while off < blob.len() {
        let e = &blob[off..];
        let target_offset = u16_at(e, l.target_offset)? as usize;
        let next = u16_at(e, l.next_offset)? as usize;
        if target_offset < l.size || next < target_offset + TARGET_HDR || next > e.len() {
            return Err(invalid(format!(
                "x_tables entry at {off}: target at {target_offset}, next at {next}"
            )));
        }
        let t = &e[target_offset..next];
        let tname = cstr(&t[2..2 + TARGET_NAME_LEN]);
        let flags = e[l.flags];
        let (target, error_name) = match tname.as_str() {
            "" => {
                let v = u32_at(t, TARGET_HDR)? as i32;
                let target = match v {
                    -1 => Target::Drop,
                    -2 => Target::Accept,
                    -4 => Target::Queue,
                    -5 => Target::Return,
                    v if v >= 0 => Target::Jump {
                        offset: v as u32,
                        goto: flags & l.goto_flag != 0,
                    },
                    v => Target::Other(format!("verdict {v}")),
                };
                (target, None)
            }
            "ERROR" => (
                Target::Other("ERROR".into()),
                Some(cstr(&t[TARGET_HDR..t.len().min(TARGET_HDR + 32)])),
            ),
            "REJECT" => (Target::Reject, None),
            "NFQUEUE" => (Target::Queue, None),
            other => (Target::Other(other.to_string()), None),
        };
        // The rule as bytes, counters and the kernel's bookkeeping zeroed.
        let mut bytes = e[..next].to_vec();
        bytes[l.comefrom..l.comefrom + 4].fill(0);
        bytes[l.packets..l.packets + 16].fill(0);
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let established_accept = target == Target::Accept
            && matches(&e[l.size..target_offset])
                .filter_map(|(name, revision, data)| super::ctstate::xt_states(&name, revision, data))
                .any(super::ctstate::is_established_accept);
        raw.push(Raw {
            offset: off as u32,
            next: next as u32,
            target,
            error_name,
            packets: u64_at(e, l.packets)?,
            content: h.finish(),
            // No match and no address/interface condition: user chains' implicit RETURN.
            plain: target_offset == l.size && e[..l.flags].iter().all(|&b| b == 0),
            established_accept,
        });
        off += next;
    }

    let mut entries = Vec::new();
    let mut chain = String::new();
    let mut index = 0;
    let mut user_chain = false;
    for (i, r) in raw.iter().enumerate() {
        if let Some(h) = (0..5).find(|&h| valid(h) && hook_entry[h] == r.offset) {
            chain = BUILTIN_CHAINS[h].to_string();
            index = 0;
            user_chain = false;
        }
        if let Some(name) = &r.error_name {
            // A user chain starts here (the table ends with one named "ERROR").
            chain = name.clone();
            index = 0;
            user_chain = true;
            chain_starts.push((r.offset + r.next, name.clone()));
            continue;
        }
        let policy = (0..5).any(|h| valid(h) && underflow[h] == r.offset);
        let next_is_head = raw.get(i + 1).is_some_and(|n| n.error_name.is_some());
        if user_chain && next_is_head && r.plain && r.target == Target::Return {
            continue;
        }
        if !policy {
            index += 1;
        }
        entries.push(Entry {
            offset: r.offset,
            chain: chain.clone(),
            index: if policy { 0 } else { index },
            policy,
            target: r.target.clone(),
            packets: r.packets,
            content: r.content,
            established_accept: r.established_accept,
        });
    }
    Ok(LegacyTable {
        family,
        name,
        valid_hooks,
        entries,
        chain_starts,
        hooks,
    })
}

/// An entry's matches (`struct xt_entry_match`: match_size, name[29], revision, data):
/// (name, revision, data) each; stops at a malformed one.
fn matches(mut b: &[u8]) -> impl Iterator<Item = (String, u8, &[u8])> {
    std::iter::from_fn(move || {
        let size = u16_at(b, 0).ok()? as usize;
        if size < TARGET_HDR || size > b.len() {
            return None;
        }
        let (m, rest) = b.split_at(size);
        b = rest;
        Some((cstr(&m[2..2 + TARGET_NAME_LEN]), m[TARGET_HDR - 1], &m[TARGET_HDR..]))
    })
}

/// The legacy tables that exist in this namespace.
pub fn table_names(family: NfFamily) -> Vec<String> {
    let path = match family {
        NfFamily::Ipv4 => "/proc/self/net/ip_tables_names",
        NfFamily::Ipv6 => "/proc/self/net/ip6_tables_names",
    };
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A raw socket to ask x_tables with (nothing is sent or received on it).
pub struct Reader {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
}

fn raw_socket(domain: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned right away.
    let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    // SAFETY: a new descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Reader {
    pub fn new() -> Reader {
        Reader {
            v4: raw_socket(libc::AF_INET),
            v6: raw_socket(libc::AF_INET6),
        }
    }

    fn getsockopt(&self, family: NfFamily, opt: i32, buf: &mut [u8]) -> io::Result<usize> {
        let (fd, level) = match family {
            NfFamily::Ipv4 => (&self.v4, libc::SOL_IP),
            NfFamily::Ipv6 => (&self.v6, libc::SOL_IPV6),
        };
        let fd = fd
            .as_ref()
            .ok_or_else(|| io::Error::other("no raw socket for x_tables"))?;
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: buf is valid for len bytes; the kernel reads the table name from it and
        // writes at most len bytes back.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                level,
                opt,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(len as usize)
    }

    /// One table with its counters (retried when it changes between the two calls).
    pub fn read(&self, family: NfFamily, name: &str) -> io::Result<LegacyTable> {
        if name.len() >= TABLE_NAME_LEN {
            return Err(invalid(format!("table name {name} too long")));
        }
        let mut last = None;
        for _ in 0..3 {
            let mut info = vec![0u8; GETINFO_LEN];
            info[..name.len()].copy_from_slice(name.as_bytes());
            self.getsockopt(family, SO_GET_INFO, &mut info)?;
            let (_, _, _, size) = decode_info(&info)?;
            let mut entries = vec![0u8; GET_ENTRIES_HDR + size as usize];
            entries[..name.len()].copy_from_slice(name.as_bytes());
            entries[TABLE_NAME_LEN..TABLE_NAME_LEN + 4].copy_from_slice(&size.to_ne_bytes());
            match self.getsockopt(family, SO_GET_ENTRIES, &mut entries) {
                Ok(_) => return decode(family, &info, &entries),
                // The table changed size in between: ask again.
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("x_tables kept changing")))
    }
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(family: NfFamily, name: &str) -> LegacyTable {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probe/rules/testdata/");
        let info = std::fs::read(format!("{dir}{name}.info")).unwrap();
        let entries = std::fs::read(format!("{dir}{name}.entries")).unwrap();
        decode(family, &info, &entries).unwrap()
    }

    fn rows(t: &LegacyTable) -> Vec<(String, u32, bool, String, u64)> {
        t.entries
            .iter()
            .map(|e| {
                (
                    e.chain.clone(),
                    e.index,
                    e.policy,
                    e.target.name().to_string(),
                    e.packets,
                )
            })
            .collect()
    }

    /// Oracle: testdata/iptables_legacy_save.txt (`iptables-legacy-save -c` of the same table).
    #[test]
    fn ipv4_filter_table_as_iptables_legacy_save_shows_it() {
        let t = fixture(NfFamily::Ipv4, "legacy4_filter");
        assert_eq!(t.name, "filter");
        let s = |x: &str| x.to_string();
        assert_eq!(
            rows(&t),
            vec![
                (s("INPUT"), 0, true, s("ACCEPT"), 73),
                (s("FORWARD"), 0, true, s("ACCEPT"), 0),
                (s("OUTPUT"), 1, false, s("DROP"), 8),
                (s("OUTPUT"), 2, false, s("jump"), 84),
                (s("OUTPUT"), 0, true, s("ACCEPT"), 114),
                (s("lblk"), 1, false, s("DROP"), 12),
            ]
        );
        let hooks: Vec<u32> = t.hooks.iter().map(|(h, _)| *h).collect();
        assert_eq!(hooks, [1, 2, 3]);
        let Target::Jump { offset, goto } = t.entries[3].target else {
            panic!()
        };
        assert!(!goto);
        assert_eq!(t.chain_at(offset), Some("lblk"));
        let save = include_str!("testdata/iptables_legacy_save.txt");
        assert!(save.contains("[8:232] -A OUTPUT -p udp -m udp --dport 10 -j DROP"));
        assert!(save.contains("[12:348] -A lblk -p udp -m udp --dport 14 -j DROP"));
    }

    /// Oracle: testdata/ip6tables_legacy_save.txt.
    #[test]
    fn ipv6_filter_table_with_a_goto_reject_and_drop_policy() {
        let t = fixture(NfFamily::Ipv6, "legacy6_filter");
        let s = |x: &str| x.to_string();
        assert_eq!(
            rows(&t),
            vec![
                (s("INPUT"), 0, true, s("ACCEPT"), 0),
                (s("FORWARD"), 0, true, s("DROP"), 0),
                (s("OUTPUT"), 1, false, s("DROP"), 3),
                (s("OUTPUT"), 2, false, s("jump"), 0),
                (s("OUTPUT"), 0, true, s("ACCEPT"), 0),
                (s("l6"), 1, false, s("REJECT"), 0),
            ]
        );
        let Target::Jump { offset, goto } = t.entries[3].target else {
            panic!()
        };
        assert!(goto, "-g l6");
        assert_eq!(t.chain_at(offset), Some("l6"));
    }

    /// Oracle: testdata/iptables_legacy_ctstate_save.txt.
    #[test]
    fn the_established_accept_is_marked() {
        let t = fixture(NfFamily::Ipv4, "legacy4_ctstate");
        let forward: Vec<(u32, bool)> = t
            .entries
            .iter()
            .filter(|e| e.chain == "FORWARD" && !e.policy)
            .map(|e| (e.index, e.established_accept))
            .collect();
        // --dport 22; RELATED,ESTABLISHED; -m state ESTABLISHED; NEW,ESTABLISHED (accepts new
        // connections too); ESTABLISHED -j DROP.
        assert_eq!(
            forward,
            [(1, false), (2, true), (3, true), (4, false), (5, false)]
        );
    }

    #[test]
    fn content_ignores_counters_and_differs_between_rules() {
        let t = fixture(NfFamily::Ipv4, "legacy4_filter");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probe/rules/testdata/");
        let info = std::fs::read(format!("{dir}legacy4_filter.info")).unwrap();
        let mut entries = std::fs::read(format!("{dir}legacy4_filter.entries")).unwrap();
        // Bump the first OUTPUT rule's packet counter.
        let off = GET_ENTRIES_HDR + t.entries[2].offset as usize + LAYOUT_V4.packets;
        entries[off] = entries[off].wrapping_add(5);
        let bumped = decode(NfFamily::Ipv4, &info, &entries).unwrap();
        assert_eq!(bumped.entries[2].packets, t.entries[2].packets + 5);
        assert_eq!(bumped.entries[2].content, t.entries[2].content);
        assert_ne!(t.entries[2].content, t.entries[5].content);
    }

    #[test]
    fn truncated_tables_are_errors_not_panics() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/probe/rules/testdata/");
        let info = std::fs::read(format!("{dir}legacy4_filter.info")).unwrap();
        let entries = std::fs::read(format!("{dir}legacy4_filter.entries")).unwrap();
        for cut in [0, 10, 40, 100, 500, entries.len() - 1] {
            assert!(decode(NfFamily::Ipv4, &info, &entries[..cut]).is_err(), "{cut}");
        }
        assert!(decode(NfFamily::Ipv4, &info[..50], &entries).is_err());
        // A next_offset pointing past the end.
        let mut bad = entries.clone();
        bad[GET_ENTRIES_HDR + LAYOUT_V4.next_offset] = 0xff;
        bad[GET_ENTRIES_HDR + LAYOUT_V4.next_offset + 1] = 0xff;
        assert!(decode(NfFamily::Ipv4, &info, &bad).is_err());
    }
}

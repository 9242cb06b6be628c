//! What the doctor reads from the kernel itself, once per interval, in the namespace
//! netpost watches (it runs there after `--netns`): the sysctls the diagnoses depend on,
//! the MIB counters `nstat` shows, the local addresses, and (only after the listen queues
//! overflowed) the listening sockets with full queues. Plain reads of /proc, no programs.
use std::{collections::BTreeMap, net::IpAddr};

use crate::lab::evidence::{parse_snmp_pairs, parse_snmp6};

/// Sysctls read every interval, under their `sysctl` names.
pub const SYSCTLS: [&str; 10] = [
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.conf.all.rp_filter",
];

/// A listening TCP socket with connections waiting to be accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// `ip:port` it listens on.
    pub local: String,
    pub port: u16,
    /// Connections waiting to be accepted (its backlog is not in /proc: `ss -lnt` shows it).
    pub queued: u64,
}

/// One reading.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reading {
    /// Sysctl values as the kernel prints them (`4096 131072 6291456`); absent when
    /// unreadable (IPv6 off, no such key on this kernel).
    pub sysctl: BTreeMap<String, String>,
    /// `net.ipv4.conf.IFACE.rp_filter` of every interface (`all` and `default` too); read
    /// only when the reverse-path filter dropped since the last reading, and at the first
    /// (None: not read; a host with thousands of interfaces pays for it only then).
    pub rp_filter: Option<BTreeMap<String, u64>>,
    /// MIB counters under nstat's names (`IpInAddrErrors`, `TcpExtListenOverflows`,
    /// `Ip6InNoRoutes`).
    pub mib: BTreeMap<String, u64>,
    pub local_addrs: Vec<IpAddr>,
    /// Listening sockets with connections waiting, most first; read only when the listen
    /// queues overflowed since the last reading (None: not read).
    pub full_listeners: Option<Vec<Listener>>,
}

impl Reading {
    /// A sysctl as a number (the first of several).
    pub fn sysctl_num(&self, key: &str) -> Option<u64> {
        self.sysctl
            .get(key)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The last of a sysctl's numbers (`tcp_rmem`'s maximum).
    pub fn sysctl_last(&self, key: &str) -> Option<u64> {
        self.sysctl
            .get(key)?
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    }

    pub fn mib(&self, name: &str) -> u64 {
        self.mib.get(name).copied().unwrap_or(0)
    }

    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.local_addrs.contains(&ip)
    }
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Reads the kernel for the doctor, remembering what it needs to decide the next reading.
#[derive(Debug, Default)]
pub struct Reader {
    overflows: Option<u64>,
    rp_filtered: Option<u64>,
}

impl Reader {
    pub fn read(&mut self) -> Reading {
        let mut r = Reading::default();
        for key in SYSCTLS {
            if let Some(v) = read(&sysctl_path(key)) {
                r.sysctl.insert(key.to_string(), v);
            }
        }
        let net = |f: &str| read(&format!("/proc/thread-self/net/{f}")).unwrap_or_default();
        r.mib.extend(parse_snmp_pairs(&net("snmp")));
        r.mib.extend(parse_snmp_pairs(&net("netstat")));
        r.mib.extend(parse_snmp6(&net("snmp6")));
        let rp_filtered = r.mib("TcpExtIPReversePathFilter");
        if self.rp_filtered.is_none_or(|before| rp_filtered > before) {
            r.rp_filter = Some(rp_filters());
        }
        self.rp_filtered = Some(rp_filtered);
        r.local_addrs = local_addrs();
        let overflows = r.mib("TcpExtListenOverflows") + r.mib("TcpExtListenDrops");
        if self.overflows.is_some_and(|before| overflows > before) {
            let tables = [net("tcp"), net("tcp6")];
            let mut l: Vec<Listener> = tables.iter().flat_map(|t| waiting_listeners(t)).collect();
            l.sort_by_key(|l| std::cmp::Reverse(l.queued));
            r.full_listeners = Some(l);
        }
        self.overflows = Some(overflows);
        r
    }
}

/// Every interface's `rp_filter` (with `all` and `default`).
fn rp_filters() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/sys/net/ipv4/conf") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(v) =
            read(&format!("/proc/sys/net/ipv4/conf/{name}/rp_filter")).and_then(|v| v.parse().ok())
        {
            out.insert(name, v);
        }
    }
    out
}

/// The addresses of this namespace's interfaces.
fn local_addrs() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let a = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(a.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// Listening sockets of a /proc/net/tcp{,6} table with connections in their accept queue
/// (a listener's `rx_queue`).
pub fn waiting_listeners(text: &str) -> Vec<Listener> {
    const LISTEN: &str = "0A";
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if *f.get(3)? != LISTEN {
                return None;
            }
            let (_, rx) = f.get(4)?.split_once(':')?;
            let queued = u64::from_str_radix(rx, 16).ok()?;
            let (addr, port) = f.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = proc_addr(addr)?;
            let local = match ip {
                IpAddr::V4(a) => format!("{a}:{port}"),
                IpAddr::V6(a) => format!("[{a}]:{port}"),
            };
            (queued > 0).then_some(Listener {
                local,
                port,
                queued,
            })
        })
        .collect()
}

/// An address as /proc/net/tcp writes it: the bytes in host order, 32 bits at a time.
fn proc_addr(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_with_waiting_connections_are_found() {
        // Port 7100 (0x1BBC) holding 2; port 7000 with none waiting; a connection.
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0202FE0A:1BBC 00000000:0000 0A 00000001:00000002 00:00000000 00000000     0        0 1 1\n\
   1: 0202FE0A:1B58 00000000:0000 0A 00001000:00000000 00:00000000 00000000     0        0 2 1\n\
   2: 0202FE0A:1B58 0201FE0A:A000 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n";
        let l = waiting_listeners(tcp);
        assert_eq!(
            l,
            [Listener {
                local: "10.254.2.2:7100".into(),
                port: 7100,
                queued: 2,
            }]
        );
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue\n\
   0: 00000000000000000000000000000000:1BBC 00000000000000000000000000000000:0000 0A 00000001:00000003\n";
        assert_eq!(waiting_listeners(tcp6)[0].local, "[::]:7100");
    }

    #[test]
    fn sysctl_numbers() {
        let mut r = Reading::default();
        r.sysctl
            .insert("net.ipv4.tcp_rmem".into(), "4096\t16384\t16384".into());
        r.sysctl.insert("net.ipv4.ip_forward".into(), "0".into());
        assert_eq!(r.sysctl_last("net.ipv4.tcp_rmem"), Some(16384));
        assert_eq!(r.sysctl_num("net.ipv4.ip_forward"), Some(0));
        assert_eq!(r.sysctl_num("net.core.rmem_max"), None);
    }
}

//! Kernel addresses to function names, from /proc/kallsyms (read once, searched by
//! address). Used to name the function that dropped a packet.
use std::collections::HashMap;

/// Sorted (address, name) of kernel text symbols.
pub struct Ksyms {
    syms: Vec<(u64, String)>,
    cache: HashMap<u64, String>,
}

impl Ksyms {
    /// Reads /proc/kallsyms (addresses are zero unless running as root).
    pub fn load() -> Ksyms {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        Ksyms::parse(&text)
    }

    pub fn parse(text: &str) -> Ksyms {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                let kind = f.next()?;
                let name = f.next()?;
                // Text symbols only: a drop location is an instruction address.
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable_by_key(|(addr, _)| *addr);
        Ksyms {
            syms,
            cache: HashMap::new(),
        }
    }

    /// The function containing `addr`, or the address in hex when unknown.
    pub fn name(&mut self, addr: u64) -> String {
        if let Some(name) = self.cache.get(&addr) {
            return name.clone();
        }
        let idx = self.syms.partition_point(|(a, _)| *a <= addr);
        let name = match idx.checked_sub(1).map(|i| &self.syms[i]) {
            Some((_, name)) if addr != 0 => name.clone(),
            _ => format!("{addr:#x}"),
        };
        self.cache.insert(addr, name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_to_the_enclosing_function() {
        let mut k = Ksyms::parse(
            "ffffffff81000100 T udp_queue_rcv_skb\nffffffff81000200 t __udp4_lib_rcv\nffffffff81000300 D some_data\nffffffff81000400 T ip_rcv\n",
        );
        assert_eq!(k.name(0xffffffff81000100), "udp_queue_rcv_skb");
        assert_eq!(k.name(0xffffffff810002a0), "__udp4_lib_rcv");
        assert_eq!(
            k.name(0xffffffff81000350),
            "__udp4_lib_rcv",
            "data symbols skipped"
        );
        assert_eq!(k.name(0x10), "0x10", "below every symbol");
    }
}

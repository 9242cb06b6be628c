//! Kernel addresses to function names, from /proc/kallsyms (read once, searched by
//! address). Used to name the function that dropped a packet.
use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    sync::{Arc, OnceLock},
};

/// Kernel text symbols sorted by address, with a cache of the names asked for. The table is
/// read once per process and shared by every `Ksyms` that [`Ksyms::load`] returns (the
/// drop counters and the drop recorder both name functions).
pub struct Ksyms {
    table: Arc<Table>,
    cache: HashMap<u64, String>,
}

/// The names share one string (about 120k symbols here: a String each would double the
/// memory they take for as long as netpost runs).
struct Table {
    /// (address, start and end of the name in `names`).
    syms: Vec<(u64, u32, u32)>,
    names: String,
}

impl Ksyms {
    /// Reads /proc/kallsyms (addresses are zero unless running as root) line by line, never
    /// holding the whole ~5 MB text; later calls share what the first one read.
    pub fn load() -> Ksyms {
        static SHARED: OnceLock<Arc<Table>> = OnceLock::new();
        let table = SHARED.get_or_init(|| {
            let k = match std::fs::File::open("/proc/kallsyms") {
                Ok(file) => Ksyms::read(BufReader::new(file)),
                Err(_) => Ksyms::parse(""),
            };
            k.table
        });
        Ksyms {
            table: Arc::clone(table),
            cache: HashMap::new(),
        }
    }

    pub fn parse(text: &str) -> Ksyms {
        Ksyms::read(text.as_bytes())
    }

    fn read(mut input: impl BufRead) -> Ksyms {
        let mut syms = Vec::new();
        let mut names = String::new();
        let mut line = String::new();
        while input.read_line(&mut line).is_ok_and(|n| n > 0) {
            let mut f = line.split_whitespace();
            if let (Some(addr), Some(kind), Some(name)) = (f.next(), f.next(), f.next())
                && let Ok(addr) = u64::from_str_radix(addr, 16)
                // Text symbols only: a drop location is an instruction address.
                && addr != 0
                && matches!(kind, "t" | "T")
                && let Ok(end) = u32::try_from(names.len() + name.len())
            {
                syms.push((addr, names.len() as u32, end));
                names.push_str(name);
            }
            line.clear();
        }
        syms.sort_unstable_by_key(|&(addr, _, _)| addr);
        syms.shrink_to_fit();
        names.shrink_to_fit();
        Ksyms {
            table: Arc::new(Table { syms, names }),
            cache: HashMap::new(),
        }
    }

    /// The function containing `addr`, or the address in hex when unknown.
    pub fn name(&mut self, addr: u64) -> String {
        if let Some(name) = self.cache.get(&addr) {
            return name.clone();
        }
        let t = &self.table;
        let idx = t.syms.partition_point(|&(a, _, _)| a <= addr);
        let name = match idx.checked_sub(1).map(|i| t.syms[i]) {
            Some((_, start, end)) if addr != 0 => t.names[start as usize..end as usize].to_string(),
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

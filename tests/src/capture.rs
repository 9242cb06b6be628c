//! tcpdump as a witness: a capture on one interface of a namespace, read back from its pcap
//! file. What tcpdump saw is what the device handed to (or took from) the stack: super-packets
//! on veth stay whole, IP fragments are separate frames.
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::netns::{NetNs, unique_name};

/// Bytes kept of each frame: enough for Ethernet, two VLAN tags, IPv6 with a fragment
/// header and a TCP header with options; `Frame::len` keeps the length on the wire.
const SNAPLEN: &str = "256";

/// One captured frame.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The frame's length as the device had it.
    pub len: u32,
    /// Its first bytes (at most [`SNAPLEN`]).
    pub data: Vec<u8>,
}

/// A running tcpdump, stopped (and its file removed) on drop.
pub struct Capture {
    child: Child,
    path: PathBuf,
    stderr: Arc<Mutex<String>>,
}

impl Capture {
    /// Starts `tcpdump -i IFNAME [FILTER...]` in `ns` and waits until it listens.
    pub fn start(ns: &NetNs, ifname: &str, filter: &[&str]) -> Capture {
        let path = std::env::temp_dir().join(format!("{}.pcap", unique_name("npcap")));
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            ns.name.clone(),
            "tcpdump".into(),
            "-i".into(),
            ifname.into(),
            "-n".into(),
            "-U".into(),
            "--immediate-mode".into(),
            "-B".into(),
            "16384".into(),
            "-s".into(),
            SNAPLEN.into(),
            "-w".into(),
            path.display().to_string(),
        ];
        args.extend(filter.iter().map(|s| s.to_string()));
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let capture = Capture {
            child,
            path,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !capture.stderr().contains("listening on") {
            assert!(
                Instant::now() < deadline,
                "tcpdump did not start: {}",
                capture.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        capture
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Stops tcpdump (SIGINT: it writes out what it has) and returns every frame, asserting
    /// that the kernel dropped none of them on the way to tcpdump.
    pub fn stop(mut self) -> Vec<Frame> {
        // Frames still in the capture ring when tcpdump is interrupted are never written:
        // wait until the file has stopped growing first.
        let mut last = (0, 0);
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
            if len == last.0 {
                last.1 += 1;
                if last.1 == 3 {
                    break;
                }
            } else {
                last = (len, 0);
            }
        }
        // ip netns exec execs tcpdump: the child's pid is tcpdump's.
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait for tcpdump");
        // Its summary lines arrive on stderr as it exits.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.stderr().contains("dropped by kernel") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stderr = self.stderr();
        assert!(status.success(), "tcpdump failed ({status}): {stderr}");
        let dropped = stderr
            .lines()
            .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        assert_eq!(dropped, Some(0), "tcpdump missed frames: {stderr}");
        let count = |suffix: &str| {
            stderr
                .lines()
                .find_map(|l| l.strip_suffix(suffix))
                .and_then(|n| n.trim().parse::<u64>().ok())
        };
        assert_eq!(
            count(" packets captured"),
            count(" packets received by filter"),
            "tcpdump did not write every frame it took: {stderr}"
        );
        let bytes = std::fs::read(&self.path).expect("read pcap");
        parse_pcap(&bytes).unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Frames of a classic pcap file (little-endian, microsecond or nanosecond timestamps,
/// Ethernet link type).
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Frame>, String> {
    let u32_at = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| format!("truncated at {at}"))
    };
    let magic = u32_at(0)?;
    if magic != 0xa1b2_c3d4 && magic != 0xa1b2_3c4d {
        return Err(format!("not a little-endian pcap file (magic {magic:#x})"));
    }
    let link = u32_at(20)?;
    if link != 1 {
        return Err(format!("link type {link}, not Ethernet"));
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let caplen = u32_at(at + 8)? as usize;
        let len = u32_at(at + 12)?;
        let data = bytes
            .get(at + 16..at + 16 + caplen)
            .ok_or_else(|| format!("record at {at} truncated"))?
            .to_vec();
        frames.push(Frame { len, data });
        at += 16 + caplen;
    }
    Ok(frames)
}

/// Where an IPv4 or IPv6 packet's headers are in an Ethernet frame (after up to two VLAN
/// tags): (IP header offset, IP protocol of the transport header, its offset), the
/// transport part absent for a non-first fragment.
fn locate(data: &[u8]) -> Option<(usize, u8, Option<usize>)> {
    let mut l2 = 12;
    let mut ethertype = u16::from_be_bytes([*data.get(l2)?, *data.get(l2 + 1)?]);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        l2 += 4;
        ethertype = u16::from_be_bytes([*data.get(l2)?, *data.get(l2 + 1)?]);
    }
    let ip = l2 + 2;
    match ethertype {
        0x0800 => {
            let ihl = (*data.get(ip)? & 0x0f) as usize * 4;
            let frag = u16::from_be_bytes([*data.get(ip + 6)?, *data.get(ip + 7)?]);
            let l4 = (frag & 0x1fff == 0).then_some(ip + ihl);
            Some((ip, *data.get(ip + 9)?, l4))
        }
        0x86dd => {
            let next = *data.get(ip + 6)?;
            if next == 44 {
                let frag = u16::from_be_bytes([*data.get(ip + 42)?, *data.get(ip + 43)?]);
                let l4 = (frag & 0xfff8 == 0).then_some(ip + 48);
                Some((ip, *data.get(ip + 40)?, l4))
            } else {
                Some((ip, next, Some(ip + 40)))
            }
        }
        _ => None,
    }
}

impl Frame {
    /// The TCP flags byte, for a TCP segment (not a later fragment).
    pub fn tcp_flags(&self) -> Option<u8> {
        match locate(&self.data)? {
            (_, 6, Some(l4)) => self.data.get(l4 + 13).copied(),
            _ => None,
        }
    }

    /// Bytes of TCP data in a TCP segment (not a later fragment), from the IP length fields.
    pub fn tcp_payload_len(&self) -> Option<u32> {
        let (ip, proto, l4) = locate(&self.data)?;
        let l4 = l4.filter(|_| proto == 6)?;
        let be16 = |at: usize| -> Option<u32> {
            Some(u16::from_be_bytes([*self.data.get(at)?, *self.data.get(at + 1)?]) as u32)
        };
        let ip_end = match self.data.get(ip)? >> 4 {
            4 => ip as u32 + be16(ip + 2)?,
            _ => ip as u32 + 40 + be16(ip + 4)?,
        };
        let doff = (*self.data.get(l4 + 12)? >> 4) as u32 * 4;
        ip_end.checked_sub(l4 as u32 + doff)
    }

    /// Whether this is an IPv4 or IPv6 fragment (first or later).
    pub fn is_fragment(&self) -> bool {
        let Some((ip, _, _)) = locate(&self.data) else {
            return false;
        };
        match self.data.get(ip).map(|b| b >> 4) {
            Some(4) => {
                let frag = u16::from_be_bytes([self.data[ip + 6], self.data[ip + 7]]);
                frag & 0x3fff != 0
            }
            Some(6) => self.data.get(ip + 6) == Some(&44),
            _ => false,
        }
    }

    /// The IP protocol number (of the transport header, past an IPv6 fragment header).
    pub fn ip_proto(&self) -> Option<u8> {
        locate(&self.data).map(|(_, proto, _)| proto)
    }
}

/// TCP flag bits.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_records_are_read_with_their_wire_length() {
        let mut file = vec![0u8; 24];
        file[..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        file[20..24].copy_from_slice(&1u32.to_le_bytes());
        for (caplen, len) in [(4u32, 1514u32), (2, 60)] {
            file.extend_from_slice(&[0; 8]);
            file.extend_from_slice(&caplen.to_le_bytes());
            file.extend_from_slice(&len.to_le_bytes());
            file.extend(std::iter::repeat_n(0xab, caplen as usize));
        }
        let frames = parse_pcap(&file).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].len, frames[0].data.len()), (1514, 4));
        assert_eq!((frames[1].len, frames[1].data.len()), (60, 2));
        assert!(parse_pcap(&file[..30]).is_err());
    }

    #[test]
    fn tcp_flags_are_found_behind_vlan_tags_and_not_in_later_fragments() {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .double_vlan(
                etherparse::VlanId::try_new(10).unwrap(),
                etherparse::VlanId::try_new(20).unwrap(),
            )
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(1000, 2000, 7, 100)
            .syn()
            .write(&mut frame, &[])
            .unwrap();
        let f = Frame {
            len: frame.len() as u32,
            data: frame.clone(),
        };
        assert_eq!(f.tcp_flags(), Some(SYN));
        assert_eq!(f.tcp_payload_len(), Some(0));
        assert!(!f.is_fragment());
        // The same datagram as a later fragment (offset 8 bytes): no TCP header to read.
        let ip = 14 + 8;
        frame[ip + 6..ip + 8].copy_from_slice(&1u16.to_be_bytes());
        let later = Frame {
            len: frame.len() as u32,
            data: frame,
        };
        assert_eq!(later.tcp_flags(), None);
        assert!(later.is_fragment());
        assert_eq!(later.ip_proto(), Some(6));
    }
}

//! pcapng files of dropped packets (written with the `pcap-file` crate): one interface block
//! per interface and link type, nanosecond timestamps, a comment on every packet. Files are
//! created private (mode 0600: they may hold payload). `--record-drops` writes through
//! [`RotatingFile`], the dashboard's flight recorder through [`save`].
use std::{
    borrow::Cow,
    fs::{File, OpenOptions, Permissions},
    io::{self, BufWriter, Write},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use pcap_file::{
    DataLink,
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
        },
    },
};

/// What a packet's bytes start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// An Ethernet header (LINKTYPE_ETHERNET).
    Ethernet,
    /// An IPv4 or IPv6 header, told apart by its version (LINKTYPE_RAW).
    Raw,
}

impl Link {
    fn datalink(self) -> DataLink {
        match self {
            Link::Ethernet => DataLink::ETHERNET,
            Link::Raw => DataLink::RAW,
        }
    }
}

/// One packet as it goes into a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The interface block it goes under.
    pub iface: String,
    pub link: Link,
    /// Its length on the wire (`data` may hold only its first bytes).
    pub orig_len: u32,
    pub data: Vec<u8>,
    pub comment: String,
}

/// Bytes of the padding that brings `n` to a multiple of 4.
const fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Bytes of one option holding `len` bytes.
const fn option_len(len: usize) -> usize {
    4 + len + pad4(len)
}

/// Bytes the enhanced packet block of `p` takes.
fn packet_block_len(p: &Packet) -> u64 {
    let options = if p.comment.is_empty() {
        0
    } else {
        option_len(p.comment.len()) + 4
    };
    (12 + 20 + p.data.len() + pad4(p.data.len()) + options) as u64
}

/// Bytes the interface block of `name` takes (its name and timestamp resolution).
fn interface_block_len(name: &str) -> u64 {
    (12 + 8 + option_len(name.len()) + option_len(1) + 4) as u64
}

/// A pcapng section being written: its interface blocks come as packets need them.
pub struct Writer<W: Write> {
    inner: PcapNgWriter<Counting<W>>,
    interfaces: Vec<(String, Link)>,
    /// The interface blocks' snaplen (0: not limited).
    snaplen: u32,
}

/// Counts the bytes written through it.
struct Counting<W> {
    out: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn pcap_error(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        e => io::Error::other(e.to_string()),
    }
}

impl<W: Write> Writer<W> {
    /// Starts a section (writes its header block).
    pub fn new(out: W, snaplen: u32) -> io::Result<Writer<W>> {
        let section = SectionHeaderBlock {
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "netpost {} (dropped packets)",
                env!("CARGO_PKG_VERSION")
            )))],
            ..Default::default()
        };
        let out = Counting { out, bytes: 0 };
        let inner = PcapNgWriter::with_section_header(out, section).map_err(pcap_error)?;
        Ok(Writer {
            inner,
            interfaces: Vec::new(),
            snaplen,
        })
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.inner.get_ref().bytes
    }

    /// Whether any packet went in.
    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty()
    }

    /// Bytes [`Writer::write`] would add for `p`, its interface block included when new.
    pub fn cost(&self, p: &Packet) -> u64 {
        let new_iface = !self
            .interfaces
            .iter()
            .any(|(n, l)| *n == p.iface && *l == p.link);
        packet_block_len(p)
            + if new_iface {
                interface_block_len(&p.iface)
            } else {
                0
            }
    }

    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        let id = match self
            .interfaces
            .iter()
            .position(|(n, l)| *n == p.iface && *l == p.link)
        {
            Some(id) => id,
            None => {
                let block = InterfaceDescriptionBlock {
                    linktype: p.link.datalink(),
                    snaplen: self.snaplen,
                    options: vec![
                        InterfaceDescriptionOption::IfName(Cow::Borrowed(&p.iface)),
                        // Nanoseconds (the default is microseconds).
                        InterfaceDescriptionOption::IfTsResol(9),
                    ],
                };
                self.inner.write_pcapng_block(block).map_err(pcap_error)?;
                self.interfaces.push((p.iface.clone(), p.link));
                self.interfaces.len() - 1
            }
        };
        let mut options = Vec::new();
        if !p.comment.is_empty() {
            options.push(EnhancedPacketOption::Comment(Cow::Borrowed(&p.comment)));
        }
        let block = EnhancedPacketBlock {
            interface_id: id as u32,
            timestamp: Duration::from_nanos(p.ts_ns),
            original_len: p.orig_len.max(p.data.len() as u32),
            data: Cow::Borrowed(&p.data),
            options,
        };
        self.inner.write_pcapng_block(block).map_err(pcap_error)?;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.get_mut().flush()
    }
}

/// Creates (or truncates) `path` for writing with mode 0600, whatever the umask, and also
/// when the file existed with a wider mode.
pub fn create_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Where a full file goes when a new one starts: `drops.pcapng` -> `drops.1.pcapng` (the
/// extension kept, so Wireshark's file dialogs list it), `drops` -> `drops.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rotated = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.1.{ext}"),
        _ => format!("{name}.1"),
    };
    path.with_file_name(rotated)
}

/// The `--record-drops` file: when the next packet would take it past `max_bytes`, it is
/// renamed to [`rotated_path`] (replacing the one before) and a new file starts. At most
/// twice `max_bytes` on disk; the newest drops are always in `path`.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    snaplen: u32,
    writer: Writer<BufWriter<File>>,
    /// Files rotated away.
    pub rotations: u64,
    /// Bytes written into earlier files.
    done_bytes: u64,
}

impl RotatingFile {
    pub fn create(path: &Path, max_bytes: u64, snaplen: u32) -> io::Result<RotatingFile> {
        Ok(RotatingFile {
            writer: Writer::new(BufWriter::new(create_private(path)?), snaplen)?,
            path: path.to_path_buf(),
            max_bytes,
            snaplen,
            rotations: 0,
            done_bytes: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written into every file so far.
    pub fn bytes(&self) -> u64 {
        self.done_bytes + self.writer.bytes()
    }

    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        if !self.writer.is_empty() && self.writer.bytes() + self.writer.cost(p) > self.max_bytes {
            self.rotate()?;
        }
        self.writer.write(p)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        std::fs::rename(&self.path, rotated_path(&self.path))?;
        let next = Writer::new(BufWriter::new(create_private(&self.path)?), self.snaplen)?;
        let full = std::mem::replace(&mut self.writer, next);
        self.done_bytes += full.bytes();
        self.rotations += 1;
        Ok(())
    }

    /// Makes what was written readable by others (tshark) now.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Writes `packets` to a new private file at `path`; returns how many.
pub fn save<'a>(
    path: &Path,
    packets: impl IntoIterator<Item = &'a Packet>,
    snaplen: u32,
) -> io::Result<usize> {
    let mut w = Writer::new(BufWriter::new(create_private(path)?), snaplen)?;
    let mut n = 0;
    for p in packets {
        w.write(p)?;
        n += 1;
    }
    w.flush()?;
    Ok(n)
}

/// `netpost-drops-20261201T101523Z.pcapng` for a save at `unix_secs` (UTC).
pub fn flight_file_name(unix_secs: u64) -> String {
    let (days, secs) = (unix_secs / 86_400, unix_secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "netpost-drops-{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z.pcapng",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

    fn packet(iface: &str, link: Link, len: usize, comment: &str) -> Packet {
        Packet {
            ts_ns: 1_764_584_123_456_789_012,
            iface: iface.into(),
            link,
            orig_len: 1000,
            data: (0..len).map(|i| i as u8).collect(),
            comment: comment.into(),
        }
    }

    fn blocks(bytes: &[u8]) -> Vec<Block<'static>> {
        let mut r = PcapNgReader::new(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(b) = r.next_block() {
            out.push(b.unwrap().into_owned());
        }
        out
    }

    #[test]
    fn packets_round_trip_with_their_interface_comment_and_nanoseconds() {
        let mut w = Writer::new(Vec::new(), 128).unwrap();
        let p1 = packet(
            "veth1",
            Link::Ethernet,
            42,
            "reason=NO_SOCKET location=__udp4_lib_rcv",
        );
        let p2 = packet("veth1", Link::Raw, 28, "reason=NETFILTER_DROP");
        let p3 = packet("veth1", Link::Ethernet, 7, "");
        for p in [&p1, &p2, &p3] {
            let before = w.bytes();
            let cost = w.cost(p);
            w.write(p).unwrap();
            assert_eq!(w.bytes() - before, cost, "cost is exact for {p:?}");
        }
        let bytes = w.inner.get_ref().out.clone();
        assert_eq!(w.bytes(), bytes.len() as u64);
        let blocks = blocks(&bytes);
        let idbs: Vec<_> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::InterfaceDescription(i) => Some(i),
                _ => None,
            })
            .collect();
        assert_eq!(idbs.len(), 2, "one per link type");
        assert_eq!(idbs[0].linktype, DataLink::ETHERNET);
        assert_eq!(idbs[1].linktype, DataLink::RAW);
        assert!(
            idbs[0]
                .options
                .contains(&InterfaceDescriptionOption::IfName("veth1".into()))
        );
        let epbs: Vec<_> = blocks
            .iter()
            .filter_map(|b| match b {
                Block::EnhancedPacket(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(epbs.len(), 3);
        assert_eq!(epbs[1].interface_id, 1);
        assert_eq!(epbs[2].interface_id, 0);
        assert_eq!(epbs[0].timestamp.as_nanos(), 1_764_584_123_456_789_012);
        assert_eq!(epbs[0].data.len(), 42);
        assert_eq!(epbs[0].original_len, 1000);
        assert_eq!(
            epbs[0].options,
            [EnhancedPacketOption::Comment(
                "reason=NO_SOCKET location=__udp4_lib_rcv".into()
            )]
        );
        assert!(epbs[2].options.is_empty());
    }

    #[test]
    fn rotated_names_keep_the_extension() {
        let r = |p: &str| rotated_path(Path::new(p)).display().to_string();
        assert_eq!(r("/tmp/drops.pcapng"), "/tmp/drops.1.pcapng");
        assert_eq!(r("drops"), "drops.1");
        assert_eq!(r("/var/x/a.b.pcapng"), "/var/x/a.b.1.pcapng");
        assert_eq!(r("/tmp/.hidden"), "/tmp/.hidden.1");
    }

    #[test]
    fn flight_files_are_named_by_utc_time() {
        assert_eq!(flight_file_name(0), "netpost-drops-19700101T000000Z.pcapng");
        // 2026-12-01 10:15:23 UTC.
        assert_eq!(
            flight_file_name(1_796_120_123),
            "netpost-drops-20261201T101523Z.pcapng"
        );
        assert_eq!(
            flight_file_name(951_782_400),
            "netpost-drops-20000229T000000Z.pcapng"
        );
    }

    #[test]
    fn a_full_file_rotates_and_stays_under_its_cap() {
        let dir = std::env::temp_dir().join(format!("netpost-rot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("drops.pcapng");
        let cap = 4096;
        let mut f = RotatingFile::create(&path, cap, 128).unwrap();
        for _ in 0..30 {
            f.write(&packet("veth1", Link::Ethernet, 128, "reason=NO_SOCKET"))
                .unwrap();
        }
        f.flush().unwrap();
        assert_eq!(f.rotations, 1, "30 x 184 bytes do not fit 4 KiB");
        let current = std::fs::read(&path).unwrap();
        let previous = std::fs::read(rotated_path(&path)).unwrap();
        assert!(current.len() as u64 <= cap && previous.len() as u64 <= cap);
        assert!(previous.len() as u64 > cap - 200, "filled before rotating");
        let count = |b: &[u8]| {
            blocks(b)
                .iter()
                .filter(|b| matches!(b, Block::EnhancedPacket(_)))
                .count()
        };
        // Each file is complete on its own: section, interface, packets.
        assert!(count(&current) > 0 && count(&previous) > 0);
        assert_eq!(f.bytes(), (current.len() + previous.len()) as u64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_existing_file_becomes_private() {
        let path = std::env::temp_dir().join(format!("netpost-mode-{}", std::process::id()));
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let n = save(&path, [&packet("lo", Link::Raw, 20, "x")], 0).unwrap();
        assert_eq!(n, 1);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            blocks(&std::fs::read(&path).unwrap()).len(),
            2,
            "interface and packet"
        );
        std::fs::remove_file(&path).unwrap();
    }
}

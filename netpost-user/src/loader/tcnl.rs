//! tc over rtnetlink, for what aya 0.14 does not offer: listing the BPF filters on a clsact
//! qdisc with their program names and ids, deleting one filter, deleting the qdisc. Kernels
//! before 6.6 (no TCX) attach tc programs as such filters, which outlive a killed process.
//!
//! Wire format: `nlmsghdr` (16 bytes), `tcmsg` (20 bytes: family, 3 pad bytes, ifindex,
//! handle, parent, info), then attributes `{len: u16, type: u16, payload}` padded to 4 bytes,
//! all in host byte order. The encoder and decoder are pure; only [`Socket`] does I/O.
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const NLMSG_HDRLEN: usize = 16;
const TCMSG_LEN: usize = 20;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;

/// The clsact qdisc's handle and parent (TC_H_CLSACT is TC_H_INGRESS).
const TC_H_CLSACT: u32 = 0xffff_fff1;
const CLSACT_HANDLE: u32 = 0xffff_0000;

const RECV_BUF: usize = 64 * 1024;

/// A side of the clsact qdisc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Ingress,
    Egress,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Ingress, Side::Egress];

    /// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS).
    fn parent(self) -> u32 {
        match self {
            Side::Ingress => 0xffff_fff2,
            Side::Egress => 0xffff_fff3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Side::Ingress => "ingress",
            Side::Egress => "egress",
        }
    }
}

/// One filter on a side of a clsact qdisc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub side: Side,
    /// The `pref` tc shows.
    pub priority: u16,
    /// The protocol in network byte order, as tcm_info carries it.
    pub protocol: u16,
    pub handle: u32,
    /// "bpf", "u32", "flower"...
    pub kind: String,
    /// For a BPF filter: the name it was attached with (aya gives the program's) and the
    /// program's id.
    pub bpf_name: Option<String>,
    pub prog_id: Option<u32>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A request: header, tcmsg, attributes.
fn request(kind: u16, flags: u16, ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    let mut buf = vec![0; NLMSG_HDRLEN];
    buf[4..6].copy_from_slice(&kind.to_ne_bytes());
    buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]); // AF_UNSPEC and padding
    buf.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    buf.extend_from_slice(&handle.to_ne_bytes());
    buf.extend_from_slice(&parent.to_ne_bytes());
    buf.extend_from_slice(&info.to_ne_bytes());
    buf
}

fn with_kind(mut buf: Vec<u8>, kind: &str) -> Vec<u8> {
    let len = NLA_HDRLEN + kind.len() + 1;
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&TCA_KIND.to_ne_bytes());
    buf.extend_from_slice(kind.as_bytes());
    buf.push(0);
    buf.resize(align4(buf.len()), 0);
    buf
}

fn finish(mut buf: Vec<u8>, seq: u32) -> Vec<u8> {
    let len = buf.len() as u32;
    buf[0..4].copy_from_slice(&len.to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    buf
}

/// Asks for every filter on one side of `ifindex`'s clsact qdisc.
pub fn dump_filters_request(ifindex: u32, side: Side, seq: u32) -> Vec<u8> {
    finish(
        request(RTM_GETTFILTER, NLM_F_DUMP, ifindex, 0, side.parent(), 0),
        seq,
    )
}

/// Deletes one filter (by priority, protocol and handle, as listed).
pub fn delete_filter_request(ifindex: u32, f: &Filter, seq: u32) -> Vec<u8> {
    let info = ((f.priority as u32) << 16) | f.protocol as u32;
    let req = request(
        RTM_DELTFILTER,
        NLM_F_ACK,
        ifindex,
        f.handle,
        f.side.parent(),
        info,
    );
    finish(with_kind(req, &f.kind), seq)
}

/// Deletes `ifindex`'s clsact qdisc (and every filter still on it).
pub fn delete_clsact_request(ifindex: u32, seq: u32) -> Vec<u8> {
    let req = request(
        RTM_DELQDISC,
        NLM_F_ACK,
        ifindex,
        CLSACT_HANDLE,
        TC_H_CLSACT,
        0,
    );
    finish(with_kind(req, "clsact"), seq)
}

/// What one netlink message of a reply is.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Filter(Option<Filter>),
    Done,
    /// NLMSG_ERROR's errno (0: an acknowledgement).
    Error(i32),
    Other,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Splits a received buffer into its messages.
fn replies(mut buf: &[u8], side: Side) -> io::Result<Vec<Reply>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(invalid(format!(
                "netlink message of {len} bytes in {} received",
                buf.len()
            )));
        }
        let body = &buf[NLMSG_HDRLEN..len];
        out.push(match u16_at(buf, 4) {
            NLMSG_DONE => Reply::Done,
            NLMSG_ERROR if body.len() >= 4 => Reply::Error(-(u32_at(body, 0) as i32)),
            NLMSG_ERROR => return Err(invalid("netlink error without its code")),
            RTM_NEWTFILTER => Reply::Filter(parse_filter(body, side)?),
            _ => Reply::Other,
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

/// An attribute's type and payload.
type Attr<'a> = (u16, &'a [u8]);

/// One attribute; the rest of the buffer after it.
fn next_attr(buf: &[u8]) -> io::Result<Option<(Attr<'_>, &[u8])>> {
    if buf.len() < NLA_HDRLEN {
        return Ok(None);
    }
    let len = u16_at(buf, 0) as usize;
    let kind = u16_at(buf, 2) & NLA_TYPE_MASK;
    if len < NLA_HDRLEN || len > buf.len() {
        return Err(invalid(format!("attribute {kind} of {len} bytes")));
    }
    Ok(Some((
        (kind, &buf[NLA_HDRLEN..len]),
        &buf[align4(len).min(buf.len())..],
    )))
}

fn attrs(mut buf: &[u8]) -> io::Result<Vec<Attr<'_>>> {
    let mut out = Vec::new();
    while let Some((attr, rest)) = next_attr(buf)? {
        out.push(attr);
        buf = rest;
    }
    Ok(out)
}

fn string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// A filter from an RTM_NEWTFILTER body; None for the entry a dump lists per priority
/// before its filters (handle 0, no options).
fn parse_filter(body: &[u8], side: Side) -> io::Result<Option<Filter>> {
    if body.len() < TCMSG_LEN {
        return Err(invalid("tc message without its tcmsg"));
    }
    let (handle, info) = (u32_at(body, 8), u32_at(body, 16));
    if handle == 0 {
        return Ok(None);
    }
    let mut f = Filter {
        side,
        priority: (info >> 16) as u16,
        protocol: (info & 0xffff) as u16,
        handle,
        kind: String::new(),
        bpf_name: None,
        prog_id: None,
    };
    for (kind, payload) in attrs(&body[TCMSG_LEN..])? {
        match kind {
            TCA_KIND => f.kind = string(payload),
            TCA_OPTIONS => {
                for (kind, payload) in attrs(payload)? {
                    match kind {
                        TCA_BPF_NAME => f.bpf_name = Some(string(payload)),
                        TCA_BPF_ID if payload.len() == 4 => f.prog_id = Some(u32_at(payload, 0)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Some(f))
}

/// A NETLINK_ROUTE socket in the caller's network namespace.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Socket { fd, seq: 0 })
    }

    fn send(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        self.seq += 1;
        let msg = build(self.seq);
        // SAFETY: msg is a valid buffer of msg.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads replies until the dump ends or the request is acknowledged; an error reply
    /// becomes the error.
    fn collect(&mut self, side: Side) -> io::Result<Vec<Filter>> {
        let mut buf = vec![0u8; RECV_BUF];
        let mut filters = Vec::new();
        loop {
            // SAFETY: buf has RECV_BUF writable bytes.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            for reply in replies(&buf[..n as usize], side)? {
                match reply {
                    Reply::Filter(Some(f)) => filters.push(f),
                    Reply::Filter(None) | Reply::Other => {}
                    Reply::Done | Reply::Error(0) => return Ok(filters),
                    Reply::Error(errno) => return Err(io::Error::from_raw_os_error(errno)),
                }
            }
        }
    }

    /// The filters on one side of `ifindex`'s clsact qdisc (none without one).
    pub fn filters(&mut self, ifindex: u32, side: Side) -> io::Result<Vec<Filter>> {
        self.send(|seq| dump_filters_request(ifindex, side, seq))?;
        match self.collect(side) {
            // No clsact (or no qdisc that takes filters there): nothing attached.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                Ok(Vec::new())
            }
            other => other,
        }
    }

    /// The filters on both sides of `ifindex`'s clsact qdisc.
    pub fn all_filters(&mut self, ifindex: u32) -> io::Result<Vec<Filter>> {
        let mut all = self.filters(ifindex, Side::Ingress)?;
        all.extend(self.filters(ifindex, Side::Egress)?);
        Ok(all)
    }

    pub fn delete_filter(&mut self, ifindex: u32, f: &Filter) -> io::Result<()> {
        self.send(|seq| delete_filter_request(ifindex, f, seq))?;
        self.collect(f.side).map(|_| ())
    }

    /// Deletes `ifindex`'s clsact qdisc; Ok(false) when it has none.
    pub fn delete_clsact(&mut self, ifindex: u32) -> io::Result<bool> {
        self.send(|seq| delete_clsact_request(ifindex, seq))?;
        match self.collect(Side::Ingress) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWTFILTER message as the kernel sends it in a dump.
    fn filter_msg(
        handle: u32,
        info: u32,
        kind: &str,
        name: Option<&str>,
        id: Option<u32>,
    ) -> Vec<u8> {
        let mut body = request(RTM_NEWTFILTER, 0, 7, handle, 0xffff_fff2, info);
        body = with_kind(body, kind);
        let mut options = Vec::new();
        if let Some(name) = name {
            let len = NLA_HDRLEN + name.len() + 1;
            options.extend_from_slice(&(len as u16).to_ne_bytes());
            options.extend_from_slice(&TCA_BPF_NAME.to_ne_bytes());
            options.extend_from_slice(name.as_bytes());
            options.push(0);
            options.resize(align4(options.len()), 0);
        }
        if let Some(id) = id {
            options.extend_from_slice(&8u16.to_ne_bytes());
            options.extend_from_slice(&TCA_BPF_ID.to_ne_bytes());
            options.extend_from_slice(&id.to_ne_bytes());
        }
        if !options.is_empty() {
            body.extend_from_slice(&((NLA_HDRLEN + options.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&(TCA_OPTIONS | 0x8000).to_ne_bytes());
            body.extend_from_slice(&options);
        }
        finish(body, 1)
    }

    #[test]
    fn a_dump_yields_its_bpf_filters_with_names_and_ids() {
        // ETH_P_ALL in network order, priority 49152.
        let info = (49152 << 16) | u16::from_be(0x0003) as u32;
        let mut buf = filter_msg(0, info, "bpf", None, None);
        buf.extend(filter_msg(1, info, "bpf", Some("netpost_tc_in"), Some(42)));
        buf.extend(filter_msg(0x800, info - (1 << 16), "u32", None, None));
        buf.extend(finish(request(NLMSG_DONE, 0, 0, 0, 0, 0), 1));
        let got = replies(&buf, Side::Ingress).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Reply::Filter(None), "the per-priority entry");
        assert_eq!(
            got[1],
            Reply::Filter(Some(Filter {
                side: Side::Ingress,
                priority: 49152,
                protocol: u16::from_be(0x0003),
                handle: 1,
                kind: "bpf".into(),
                bpf_name: Some("netpost_tc_in".into()),
                prog_id: Some(42),
            }))
        );
        let Reply::Filter(Some(u32f)) = &got[2] else {
            panic!("{:?}", got[2])
        };
        assert_eq!((u32f.kind.as_str(), u32f.bpf_name.as_ref()), ("u32", None));
        assert_eq!(got[3], Reply::Done);
    }

    #[test]
    fn errors_and_acks_are_told_apart_and_cut_messages_refused() {
        let mut err = request(NLMSG_ERROR, 0, 0, 0, 0, 0);
        err.truncate(NLMSG_HDRLEN);
        err.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let err = finish(err, 1);
        assert_eq!(
            replies(&err, Side::Egress).unwrap(),
            [Reply::Error(libc::EEXIST)]
        );
        let mut ack = request(NLMSG_ERROR, 0, 0, 0, 0, 0);
        ack.truncate(NLMSG_HDRLEN);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        assert_eq!(
            replies(&finish(ack, 1), Side::Egress).unwrap(),
            [Reply::Error(0)]
        );
        let whole = filter_msg(1, 0, "bpf", Some("x"), Some(1));
        assert!(replies(&whole[..whole.len() - 4], Side::Ingress).is_err());
    }

    #[test]
    fn requests_carry_what_the_kernel_matches_on() {
        let f = Filter {
            side: Side::Egress,
            priority: 49151,
            protocol: u16::from_be(0x0003),
            handle: 1,
            kind: "bpf".into(),
            bpf_name: None,
            prog_id: None,
        };
        let req = delete_filter_request(9, &f, 5);
        assert_eq!(u32_at(&req, 0) as usize, req.len());
        assert_eq!(u16_at(&req, 4), RTM_DELTFILTER);
        assert_eq!(u16_at(&req, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(&req, 8), 5, "sequence number");
        let tcm = &req[NLMSG_HDRLEN..];
        assert_eq!(u32_at(tcm, 4), 9, "ifindex");
        assert_eq!(u32_at(tcm, 8), 1, "handle");
        assert_eq!(u32_at(tcm, 12), 0xffff_fff3, "clsact egress");
        assert_eq!(u32_at(tcm, 16), (49151 << 16) | u16::from_be(0x0003) as u32);
        assert_eq!(&tcm[TCMSG_LEN + 4..TCMSG_LEN + 8], b"bpf\0");

        let req = delete_clsact_request(9, 6);
        let tcm = &req[NLMSG_HDRLEN..];
        assert_eq!(
            (u32_at(tcm, 8), u32_at(tcm, 12)),
            (CLSACT_HANDLE, TC_H_CLSACT)
        );
        assert_eq!(&tcm[TCMSG_LEN + 4..TCMSG_LEN + 11], b"clsact\0");

        let req = dump_filters_request(9, Side::Ingress, 7);
        assert_eq!(u16_at(&req, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(req.len(), NLMSG_HDRLEN + TCMSG_LEN);
    }
}

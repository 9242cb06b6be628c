//! Netfilter netlink (NETLINK_NETFILTER): one request at a time on a blocking socket, the reply
//! (a single message or a dump) handed over message by message. The encoder and the decoders
//! are pure and tested against bytes captured from the kernel; only [`Socket`] does I/O.
//!
//! Wire format: `nlmsghdr` (16 bytes, host order), `nfgenmsg` (family, version, res_id: 4
//! bytes), then attributes `{len: u16, type: u16, payload}` padded to 4 bytes. nfnetlink
//! integers are big endian.
use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const NETLINK_NETFILTER: i32 = 12;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
/// NLA_F_NESTED and NLA_F_NET_BYTEORDER: flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// Bigger than any message the kernel puts in one dump skb (at most 32 KiB).
const RECV_BUF: usize = 64 * 1024;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// One request being built: header, nfgenmsg, attributes.
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// `subsys` (NFNL_SUBSYS_*) and `msg` make the message type; `family` is nfgenmsg's.
    pub fn new(subsys: u8, msg: u8, flags: u16, family: u8) -> Request {
        let mut buf = vec![0; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&(((subsys as u16) << 8) | msg as u16).to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[family, 0, 0, 0]);
        Request { buf }
    }

    fn attr(mut self, kind: u16, payload: &[u8]) -> Request {
        let len = NLA_HDRLEN + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(self, kind: u16, value: &str) -> Request {
        let mut payload = value.as_bytes().to_vec();
        payload.push(0);
        self.attr(kind, &payload)
    }

    pub fn attr_be32(self, kind: u16, value: u32) -> Request {
        self.attr(kind, &value.to_be_bytes())
    }

    /// The finished message with its length and sequence number.
    pub fn bytes(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// One netfilter message of a reply.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The message type's low byte (NFT_MSG_*, NFNL_MSG_HOOK_GET).
    pub msg: u8,
    /// nfgenmsg's family.
    pub family: u8,
    /// nfgenmsg's res_id (nf_tables puts the low 16 bits of the generation there).
    pub res_id: u16,
    /// The attributes.
    pub attrs: &'a [u8],
}

/// What one netlink message of a reply is.
#[derive(Debug)]
pub enum Reply<'a> {
    Message(Message<'a>),
    /// NLMSG_DONE: the end of a dump.
    Done,
    /// NLMSG_ERROR with errno (0 is an acknowledgement).
    Error(i32),
}

/// A parsed netlink message with the header fields the reader checks.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub seq: u32,
    pub flags: u16,
    pub reply: Reply<'a>,
}

/// Splits a buffer received from the socket into netlink messages.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = io::Result<Parsed<'_>>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let parsed = parse_one(buf);
        match &parsed {
            Ok((_, rest)) => buf = rest,
            Err(_) => buf = &[],
        }
        Some(parsed.map(|(p, _)| p))
    })
}

fn parse_one(buf: &[u8]) -> io::Result<(Parsed<'_>, &[u8])> {
    if buf.len() < NLMSG_HDRLEN {
        return Err(invalid(format!("netlink header cut at {} bytes", buf.len())));
    }
    let u32_at = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
    let u16_at = |at: usize| u16::from_ne_bytes(buf[at..at + 2].try_into().unwrap());
    let len = u32_at(0) as usize;
    if len < NLMSG_HDRLEN || len > buf.len() {
        return Err(invalid(format!(
            "netlink message of {len} bytes in {} received",
            buf.len()
        )));
    }
    let (kind, flags, seq) = (u16_at(4), u16_at(6), u32_at(8));
    let body = &buf[NLMSG_HDRLEN..len];
    let rest = &buf[align4(len).min(buf.len())..];
    let reply = match kind {
        NLMSG_DONE => Reply::Done,
        NLMSG_ERROR => {
            let errno = body
                .get(..4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                .ok_or_else(|| invalid("netlink error message without its code"))?;
            Reply::Error(-errno)
        }
        _ => {
            if body.len() < NFGENMSG_LEN {
                return Err(invalid("netfilter message without its nfgenmsg"));
            }
            Reply::Message(Message {
                msg: (kind & 0xff) as u8,
                family: body[0],
                res_id: u16::from_be_bytes([body[2], body[3]]),
                attrs: &body[NFGENMSG_LEN..],
            })
        }
    };
    Ok((Parsed { seq, flags, reply }, rest))
}

/// One attribute: its type (flags masked off) and payload.
#[derive(Clone, Copy, Debug)]
pub struct Attr<'a> {
    pub kind: u16,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    pub fn be32(&self) -> io::Result<u32> {
        self.payload
            .get(..4)
            .filter(|_| self.payload.len() == 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
            .ok_or_else(|| invalid(format!("attribute {} is not 4 bytes", self.kind)))
    }

    pub fn be64(&self) -> io::Result<u64> {
        self.payload
            .get(..8)
            .filter(|_| self.payload.len() == 8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
            .ok_or_else(|| invalid(format!("attribute {} is not 8 bytes", self.kind)))
    }

    /// A string up to its first NUL (the kernel terminates most of them).
    pub fn string(&self) -> io::Result<String> {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        std::str::from_utf8(&self.payload[..end])
            .map(str::to_string)
            .map_err(|_| invalid(format!("attribute {} is not UTF-8", self.kind)))
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        attrs(self.payload)
    }
}

/// Iterates over the attributes of a payload; a malformed one ends it with an error.
pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf }
}

pub struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = io::Result<Attr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < NLA_HDRLEN {
            // Trailing padding (< 4 bytes) is not an attribute.
            self.buf = &[];
            return None;
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let kind = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.buf.len() {
            let err = invalid(format!(
                "attribute {kind} of {len} bytes in {} left",
                self.buf.len()
            ));
            self.buf = &[];
            return Some(Err(err));
        }
        let attr = Attr {
            kind,
            payload: &self.buf[NLA_HDRLEN..len],
        };
        self.buf = &self.buf[align4(len).min(self.buf.len())..];
        Some(Ok(attr))
    }
}

/// A NETLINK_NETFILTER socket: one request and its whole reply at a time.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        // SAFETY: plain syscall; the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Socket {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends `request` and hands every message of the reply to `each`, until the dump's
    /// NLMSG_DONE or the single answer of a plain request. An NLMSG_ERROR becomes an error
    /// with its errno.
    pub fn exchange(
        &mut self,
        request: Request,
        mut each: impl FnMut(&Message<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = request.bytes(seq);
        let dump = u16::from_ne_bytes([bytes[6], bytes[7]]) & NLM_F_DUMP == NLM_F_DUMP;
        // SAFETY: bytes is a valid buffer of its length; the kernel fills in our address.
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            // SAFETY: buf is valid for its length; MSG_TRUNC reports the real size.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let n = n as usize;
            if n > self.buf.len() {
                return Err(invalid(format!("netlink reply of {n} bytes was cut")));
            }
            let mut finished = false;
            for parsed in messages(&self.buf[..n]) {
                let parsed = parsed?;
                if parsed.seq != seq {
                    // A late answer to an earlier request this socket gave up on.
                    continue;
                }
                match parsed.reply {
                    Reply::Done => finished = true,
                    Reply::Error(0) => finished = true,
                    Reply::Error(errno) => return Err(io::Error::from_raw_os_error(errno)),
                    Reply::Message(m) => {
                        each(&m)?;
                        if !dump && parsed.flags & NLM_F_MULTI == 0 {
                            finished = true;
                        }
                    }
                }
            }
            if finished {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_header_nfgenmsg_and_padded_attributes() {
        let bytes = Request::new(10, 7, NLM_F_REQUEST | NLM_F_DUMP, 1)
            .attr_str(1, "t")
            .attr_be32(2, 0x0102_0304)
            .bytes(42);
        let mut want = Vec::new();
        want.extend_from_slice(&36u32.to_ne_bytes());
        want.extend_from_slice(&0x0a07u16.to_ne_bytes());
        want.extend_from_slice(&0x0301u16.to_ne_bytes());
        want.extend_from_slice(&42u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&6u16.to_ne_bytes());
        want.extend_from_slice(&1u16.to_ne_bytes());
        want.extend_from_slice(b"t\0\0\0");
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&2u16.to_ne_bytes());
        want.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(bytes, want);
        // And it parses back.
        let parsed: Vec<_> = messages(&bytes).collect::<io::Result<_>>().unwrap();
        let Reply::Message(m) = &parsed[0].reply else {
            panic!("{parsed:?}")
        };
        assert_eq!((m.msg, m.family, parsed[0].seq), (7, 1, 42));
        let a: Vec<_> = attrs(m.attrs).collect::<io::Result<_>>().unwrap();
        assert_eq!(a[0].string().unwrap(), "t");
        assert_eq!(a[1].be32().unwrap(), 0x0102_0304);
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let good = Request::new(10, 4, NLM_F_REQUEST, 0)
            .attr_str(1, "filter")
            .bytes(1);
        for cut in 0..good.len() {
            for parsed in messages(&good[..cut]) {
                if let Ok(Parsed {
                    reply: Reply::Message(m),
                    ..
                }) = parsed
                {
                    for a in attrs(m.attrs).flatten() {
                        let _ = (a.string(), a.be32(), a.be64());
                    }
                }
            }
        }
        // An attribute claiming more than is there.
        let bad = [200u8, 0, 1, 0, b'x', 0, 0, 0];
        let got: Vec<_> = attrs(&bad).collect();
        assert!(got.len() == 1 && got[0].is_err(), "{got:?}");
        // A message length beyond the buffer.
        let mut short = good.clone();
        short[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&short).next().unwrap().is_err());
    }

    #[test]
    fn done_and_error_messages() {
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        let mut err = vec![0u8; 36];
        err[0..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[16..20].copy_from_slice(&(-95i32).to_ne_bytes());
        let both = [done, err].concat();
        let parsed: Vec<_> = messages(&both).collect::<io::Result<_>>().unwrap();
        assert!(matches!(parsed[0].reply, Reply::Done));
        assert!(matches!(parsed[1].reply, Reply::Error(95)));
    }
}

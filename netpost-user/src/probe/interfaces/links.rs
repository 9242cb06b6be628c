//! The kernel's link notifications (rtnetlink group RTNLGRP_LINK): a device created, changed,
//! renamed or deleted in the namespace netpost runs in. One non-blocking NETLINK_ROUTE socket,
//! read when the collection loop sees it readable: nothing is polled per interval. The parser
//! is pure and tested on hand-built messages.
//!
//! Wire format: `nlmsghdr` (16 bytes), `ifinfomsg` (16 bytes: family, pad, type, index,
//! flags, change), then attributes `{len: u16, type: u16, payload}` padded to 4 bytes; host
//! byte order throughout.
use std::{
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
};

use tokio::io::{Interest, unix::AsyncFd};

const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFLA_MTU: u16 = 4;
const IFLA_IFNAME: u16 = 3;
/// Room for the bursts a busy host makes (each message is ~1-2 KiB); more than this between
/// two reads is an overflow, after which the devices are listed again.
const RCVBUF: libc::c_int = 4 << 20;
/// One datagram holds one message; 64 KiB is more than any link message.
const RECV_BUF: usize = 64 * 1024;

/// A link notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Created or changed (also: renamed, moved into this namespace).
    New { ifindex: u32, name: String, mtu: u32 },
    /// Deleted, or moved out of this namespace.
    Del { ifindex: u32 },
}

/// What one read brought.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<LinkEvent>,
    /// The socket overflowed (ENOBUFS): notifications were lost, list the devices again.
    pub lost: bool,
}

/// The subscribed socket.
pub struct LinkWatch {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribes to link notifications in the current network namespace.
    pub fn open() -> io::Result<LinkWatch> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh, valid fd.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero is a valid sockaddr_nl.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = RTMGRP_LINK;
        // SAFETY: addr is a sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // FORCE goes past rmem_max (netpost has CAP_NET_ADMIN); the plain one is the fallback.
        for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: an int option of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    option,
                    (&RCVBUF as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        Ok(LinkWatch {
            fd,
            buf: vec![0; RECV_BUF],
        })
    }

    /// A readiness handle for the collection loop.
    pub fn ready(&self) -> io::Result<LinksReady> {
        let fd = self.fd.as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is our own duplicate, owned by the AsyncFd and closed only with it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(LinksReady(fd))
    }

    /// Every notification waiting, without blocking.
    pub fn read(&mut self) -> io::Result<Batch> {
        let mut batch = Batch::default();
        loop {
            // SAFETY: recv into our buffer, at most its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(batch),
                    Some(libc::EINTR) => continue,
                    // The kernel dropped notifications; reading goes on after it.
                    Some(libc::ENOBUFS) => {
                        batch.lost = true;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            parse(&self.buf[..n as usize], &mut batch.events);
        }
    }
}

/// Readiness of the notification socket.
pub struct LinksReady(AsyncFd<OwnedFd>);

impl LinksReady {
    /// Resolves once notifications may be waiting. Readiness is cleared before returning:
    /// the caller reads until EAGAIN afterwards, so one arriving meanwhile wakes the next wait.
    pub async fn wait(&self) -> io::Result<()> {
        self.0.readable().await?.clear_ready();
        Ok(())
    }
}

/// Appends the link events of one datagram to `out`; other messages and malformed bytes are
/// skipped.
pub fn parse(mut buf: &[u8], out: &mut Vec<LinkEvent>) {
    let u16_at = |b: &[u8], at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
    let u32_at = |b: &[u8], at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return;
        }
        let msg = &buf[..len];
        buf = &buf[align4(len).min(buf.len())..];
        let kind = u16_at(msg, 4);
        if !matches!(kind, RTM_NEWLINK | RTM_DELLINK) || msg.len() < NLMSG_HDRLEN + IFINFOMSG_LEN
        {
            continue;
        }
        let ifindex = u32_at(msg, NLMSG_HDRLEN + 4);
        if kind == RTM_DELLINK {
            out.push(LinkEvent::Del { ifindex });
            continue;
        }
        let mut attrs = &msg[NLMSG_HDRLEN + IFINFOMSG_LEN..];
        let (mut name, mut mtu) = (None, 0);
        while attrs.len() >= 4 {
            let alen = u16_at(attrs, 0) as usize;
            if alen < 4 || alen > attrs.len() {
                break;
            }
            let payload = &attrs[4..alen];
            match u16_at(attrs, 2) {
                IFLA_IFNAME => {
                    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
                    name = Some(String::from_utf8_lossy(&payload[..end]).into_owned());
                }
                IFLA_MTU if payload.len() >= 4 => mtu = u32_at(payload, 0),
                _ => {}
            }
            attrs = &attrs[align4(alen).min(attrs.len())..];
        }
        if let Some(name) = name {
            out.push(LinkEvent::New { ifindex, name, mtu });
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link message as the kernel builds one: header, ifinfomsg, attributes.
    fn message(kind: u16, ifindex: u32, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        let mut info = [0u8; IFINFOMSG_LEN];
        info[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        m.extend_from_slice(&info);
        for (kind, payload) in attrs {
            m.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&kind.to_ne_bytes());
            m.extend_from_slice(payload);
            m.resize(align4(m.len()), 0);
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn new_and_deleted_links_with_name_and_mtu() {
        let mut buf = message(
            RTM_NEWLINK,
            7,
            &[
                (IFLA_MTU, &1500u32.to_ne_bytes()),
                (99, b"\x01\x02\x03"),
                (IFLA_IFNAME, b"veth7\0"),
            ],
        );
        buf.extend(message(RTM_DELLINK, 5, &[(IFLA_IFNAME, b"eth9\0")]));
        let mut out = Vec::new();
        parse(&buf, &mut out);
        assert_eq!(
            out,
            [
                LinkEvent::New {
                    ifindex: 7,
                    name: "veth7".into(),
                    mtu: 1500
                },
                LinkEvent::Del { ifindex: 5 },
            ]
        );
    }

    #[test]
    fn other_messages_and_broken_bytes_are_skipped() {
        let mut out = Vec::new();
        // RTM_NEWADDR (20) is not a link message.
        parse(&message(20, 3, &[(IFLA_IFNAME, b"x\0")]), &mut out);
        // A length past the buffer, a short header, an attribute running over.
        let mut bad = message(RTM_NEWLINK, 3, &[(IFLA_IFNAME, b"x\0")]);
        bad[0] = 200;
        parse(&bad, &mut out);
        parse(&[1, 2, 3], &mut out);
        let mut over = message(RTM_NEWLINK, 4, &[(IFLA_IFNAME, b"y\0")]);
        let at = NLMSG_HDRLEN + IFINFOMSG_LEN;
        over[at] = 60;
        parse(&over, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}

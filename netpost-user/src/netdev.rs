//! Facts about a network device, read through ioctls on a socket so they come from the
//! namespace netpost runs in (sysfs may still show the namespace it was mounted in).
use std::{
    ffi::{CStr, CString},
    io,
    os::fd::AsRawFd,
};

use crate::error::SetupError;

/// What netpost needs to know about an interface before attaching to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub ifindex: u32,
    pub mtu: u32,
    /// Driver name from ethtool (e.g. "veth", "virtio_net", "mlx5_core"); empty if unknown.
    pub driver: String,
    /// Bus address from ethtool; empty for virtual devices.
    pub bus_info: String,
}

impl NetDev {
    /// Virtual devices (veth, bridges, tunnels...) have no bus behind them.
    pub fn is_virtual(&self) -> bool {
        self.bus_info.is_empty() || self.driver == "veth"
    }
}

const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
}

#[repr(C)]
struct IfreqMtu {
    name: [u8; libc::IFNAMSIZ],
    mtu: libc::c_int,
    _pad: [u8; 20],
}

fn ifname_bytes(name: &str) -> io::Result<[u8; libc::IFNAMSIZ]> {
    let mut out = [0u8; libc::IFNAMSIZ];
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a valid interface name",
        ));
    }
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(out)
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The ifindex of `name` in the current network namespace, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Interface name of `ifindex` in this namespace, or its number.
pub fn ifname(ifindex: u32) -> String {
    ifname_of(ifindex).unwrap_or_else(|| format!("if{ifindex}"))
}

/// The name of `ifindex` in this namespace, if a device has it.
pub fn ifname_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success buf holds a NUL-terminated name.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The devices to watch at start: those named with `-i` (each must exist), then those a
/// pattern takes (`matches`, in ifindex order, while there is room: the interfaces probe says
/// which did not fit); with neither names nor patterns, every interface that is up in the
/// namespace except lo (`auto` then true). `ns` is the `--netns` name, for the messages.
pub fn resolve(
    names: &[String],
    patterns: bool,
    matches: &dyn Fn(&str) -> bool,
    ns: Option<&str>,
) -> Result<(Vec<NetDev>, bool), SetupError> {
    let where_ = ns
        .map(|n| format!(" in network namespace '{n}'"))
        .unwrap_or_default();
    let hint = ns.map(|n| format!(" -n {n}")).unwrap_or_default();
    let max = netpost_common::MAX_IFACES;
    let auto = names.is_empty() && !patterns;
    let names: Vec<String> = if auto {
        let up =
            up_interfaces().map_err(|e| SetupError::Load(format!("listing interfaces: {e}")))?;
        if up.is_empty() {
            return Err(SetupError::NoInterfaceUp { where_, hint });
        }
        if up.len() > max as usize {
            return Err(SetupError::TooManyInterfaces {
                max,
                given: up.len(),
                what: "are up",
            });
        }
        up
    } else {
        names.to_vec()
    };
    let mut devs: Vec<NetDev> = Vec::new();
    for name in names {
        if devs.iter().any(|d| d.name == name) {
            return Err(SetupError::DuplicateInterface(name));
        }
        let dev = lookup(&name).map_err(|_| SetupError::NoSuchInterface {
            name: name.clone(),
            where_: where_.clone(),
            hint: hint.clone(),
        })?;
        devs.push(dev);
    }
    if patterns {
        let all =
            all_interfaces().map_err(|e| SetupError::Load(format!("listing interfaces: {e}")))?;
        for (_, name, _) in all {
            if devs.len() >= max as usize {
                break;
            }
            if matches(&name)
                && !devs.iter().any(|d| d.name == name)
                && let Ok(dev) = lookup(&name)
            {
                devs.push(dev);
            }
        }
    }
    Ok((devs, auto))
}

/// Every interface in the current network namespace, `(ifindex, name, mtu)`, in ifindex
/// order.
pub fn all_interfaces() -> io::Result<Vec<(u32, String, u32)>> {
    let sock = socket()?;
    Ok(name_index()?
        .into_iter()
        .map(|(index, name)| {
            let mtu = mtu(&sock, &name).unwrap_or(0);
            (index, name, mtu)
        })
        .collect())
}

/// (ifindex, name) of every interface, in ifindex order.
fn name_index() -> io::Result<Vec<(u32, String)>> {
    // SAFETY: if_nameindex returns an array ending with a zero entry, or null on error.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(io::Error::last_os_error());
    }
    let mut all = Vec::new();
    let mut p = list;
    // SAFETY: walking the array up to its terminating entry, then freeing it once.
    unsafe {
        while (*p).if_index != 0 && !(*p).if_name.is_null() {
            let name = CStr::from_ptr((*p).if_name).to_string_lossy().into_owned();
            all.push(((*p).if_index, name));
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    all.sort();
    Ok(all)
}

/// Names of the interfaces that are up in the current network namespace, loopback aside, in
/// ifindex order: what netpost watches when no `-i` is given.
pub fn up_interfaces() -> io::Result<Vec<String>> {
    let all = name_index()?;
    let sock = socket()?;
    Ok(all
        .into_iter()
        .filter(|(_, name)| {
            flags(&sock, name)
                .is_ok_and(|f| f & libc::IFF_UP as u16 != 0 && f & libc::IFF_LOOPBACK as u16 == 0)
        })
        .map(|(_, name)| name)
        .collect())
}

#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// The interface flags (IFF_UP...) of `name`.
fn flags(sock: &std::os::fd::OwnedFd, name: &str) -> io::Result<u16> {
    let mut req = IfreqFlags {
        name: ifname_bytes(name)?,
        flags: 0,
        _pad: [0; 22],
    };
    // SAFETY: SIOCGIFFLAGS fills the ifreq we pass; the struct is ifreq-sized.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req.flags as u16)
}

/// A datagram socket for interface ioctls.
fn socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sock is a fresh, valid fd.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) })
}

/// The MTU of `name`.
fn mtu(sock: &std::os::fd::OwnedFd, name: &str) -> io::Result<u32> {
    let mut req = IfreqMtu {
        name: ifname_bytes(name)?,
        mtu: 0,
        _pad: [0; 20],
    };
    // SAFETY: SIOCGIFMTU fills the ifreq we pass; the struct is ifreq-sized.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req.mtu as u32)
}

/// Looks `name` up in the current network namespace.
pub fn lookup(name: &str) -> io::Result<NetDev> {
    let ifname = ifname_bytes(name)?;
    let index = ifindex(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    let sock = socket()?;
    let mtu = mtu(&sock, name)?;

    // SAFETY: all-zero is a valid EthtoolDrvinfo.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = IfreqData {
        name: ifname,
        data: (&mut info as *mut EthtoolDrvinfo).cast(),
    };
    // SAFETY: SIOCETHTOOL with GDRVINFO writes into `info`, which outlives the call.
    let ethtool_ok = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCETHTOOL, &mut req) } >= 0;
    let (driver, bus_info) = if ethtool_ok {
        (cstr(&info.driver), cstr(&info.bus_info))
    } else {
        // Devices without ethtool support (lo, some tunnels) are virtual.
        (String::new(), String::new())
    };
    Ok(NetDev {
        name: name.to_string(),
        ifindex: index,
        mtu,
        driver,
        bus_info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_virtual() {
        let lo = lookup("lo").expect("lo exists in every namespace");
        assert_eq!(lo.ifindex, 1);
        assert_eq!(lo.mtu, 65536);
        assert!(lo.is_virtual());
    }

    #[test]
    fn up_interfaces_leave_loopback_out() {
        let up = up_interfaces().expect("interfaces listed");
        assert!(!up.iter().any(|n| n == "lo"), "{up:?}");
    }

    #[test]
    fn unknown_and_invalid_names_are_errors() {
        assert_eq!(
            lookup("netpost-nope0").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(lookup("this-name-is-far-too-long").is_err());
        assert!(lookup("a/b").is_err());
    }
}

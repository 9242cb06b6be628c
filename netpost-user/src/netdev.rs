//! Facts about a network device, read through ioctls on a socket so they come from the
//! namespace netpost runs in (sysfs may still show the namespace it was mounted in).
use std::{ffi::CString, io, os::fd::AsRawFd};

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

/// Looks `name` up in the current network namespace.
pub fn lookup(name: &str) -> io::Result<NetDev> {
    let ifname = ifname_bytes(name)?;
    let index = ifindex(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
    // SAFETY: plain socket(2); the fd is owned right away.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sock is a fresh, valid fd.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };

    let mut mtu_req = IfreqMtu {
        name: ifname,
        mtu: 0,
        _pad: [0; 20],
    };
    // SAFETY: SIOCGIFMTU fills the ifreq we pass; the struct is ifreq-sized.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &mut mtu_req) } < 0 {
        return Err(io::Error::last_os_error());
    }

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
        mtu: mtu_req.mtu as u32,
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
    fn unknown_and_invalid_names_are_errors() {
        assert_eq!(
            lookup("netpost-nope0").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(lookup("this-name-is-far-too-long").is_err());
        assert!(lookup("a/b").is_err());
    }
}

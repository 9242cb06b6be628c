//! The raw bpf(2) syscall, for the commands aya does not wrap: netfilter programs and links,
//! batch map lookups, and test runs of programs aya cannot load (the benchmark).
use std::io;

use aya_obj::generated::{bpf_attr, bpf_cmd};

/// Runs `cmd` with `attr`; the kernel's return value, or the error it set.
pub fn bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<i64> {
    // SAFETY: attr is a fully initialised bpf_attr of the size we pass; the buffers it
    // points at are the caller's and outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            size_of::<bpf_attr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

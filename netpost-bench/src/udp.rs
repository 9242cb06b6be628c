//! Small-packet traffic that can saturate a veth path: iperf3 tops out near 230k packets/s
//! here, one syscall per datagram; `sendmmsg`/`recvmmsg` move a batch per syscall.
use std::{
    io,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::{Value, json};

/// Datagrams per syscall.
pub const BATCH: usize = 64;

/// Pins the calling thread to `cpu`, so sender and receiver do not share a core by chance.
pub fn pin(cpu: usize) -> anyhow::Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error()).context(format!("pinning to CPU {cpu}"));
        }
    }
    Ok(())
}

/// One `mmsghdr` per buffer, each with one iovec over it.
struct Batch {
    _iov: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(bufs: &mut [Vec<u8>]) -> Batch {
        let mut iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let msgs = iov
            .iter_mut()
            .map(|iov| {
                // SAFETY: all-zero is a valid msghdr (no name, no control data).
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                hdr.msg_hdr.msg_iov = iov;
                hdr.msg_hdr.msg_iovlen = 1;
                hdr
            })
            .collect();
        Batch { _iov: iov, msgs }
    }
}

/// Datagrams per syscall and flow when sending from many flows: small, so every flow stays
/// active within a second.
const FLOW_BATCH: usize = 4;

/// Sends `payload`-byte datagrams to `dst` for `secs` from `flows` sockets (so many source
/// ports, many flows) in turn, `BATCH` per syscall with one flow, `FLOW_BATCH` with many.
pub fn generate(dst: SocketAddr, payload: usize, secs: f64, flows: usize) -> anyhow::Result<Value> {
    raise_fd_limit(flows + 64)?;
    let socks = (0..flows.max(1))
        .map(|_| {
            let sock = UdpSocket::bind(("0.0.0.0", 0)).context("binding a sender")?;
            sock.connect(dst)
                .with_context(|| format!("connecting to {dst}"))?;
            Ok(sock)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let per_call = if socks.len() == 1 { BATCH } else { FLOW_BATCH };
    let mut bufs = vec![vec![0x5a_u8; payload]; per_call];
    let mut batch = Batch::new(&mut bufs);
    let (mut sent, mut errors) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    'send: loop {
        for sock in &socks {
            if Instant::now() >= deadline {
                break 'send;
            }
            // SAFETY: msgs points at per_call initialised headers whose buffers outlive the
            // call.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    batch.msgs.as_mut_ptr(),
                    per_call as u32,
                    0,
                )
            };
            if n >= 0 {
                sent += n as u64;
            } else {
                // A full queue (ENOBUFS) or a transient refusal: count it and keep going.
                errors += 1;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(
        json!({"sent": sent, "send_errors": errors, "secs": elapsed, "payload": payload, "flows": socks.len()}),
    )
}

/// Lets this process open `want` descriptors (up to the hard limit).
fn raise_fd_limit(want: usize) -> anyhow::Result<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error()).context("getrlimit");
        }
        if lim.rlim_cur >= want as libc::rlim_t {
            return Ok(());
        }
        if lim.rlim_max < want as libc::rlim_t {
            anyhow::bail!(
                "{want} sockets need {want} file descriptors; the hard limit is {}",
                lim.rlim_max
            );
        }
        lim.rlim_cur = want as libc::rlim_t;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(io::Error::last_os_error()).context("setrlimit");
        }
    }
    Ok(())
}

/// Receives on `bind` until no datagram arrived for `idle_ms` after the first one, or
/// `max_secs` passed; counts datagrams and the time from the first to the last.
pub fn sink(bind: SocketAddr, idle_ms: u64, max_secs: f64) -> anyhow::Result<Value> {
    let sock = UdpSocket::bind(bind).with_context(|| format!("binding {bind}"))?;
    // A large queue, so bursts the sink cannot drain at once are not lost to it.
    set_rcvbuf(&sock, 32 << 20)?;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    // The bench starts the generator once it reads this.
    eprintln!("listening on {bind}");
    let mut bufs = vec![vec![0u8; 2048]; BATCH];
    let mut batch = Batch::new(&mut bufs);
    let start = Instant::now();
    let (mut received, mut first, mut last) = (0u64, None::<Instant>, start);
    loop {
        // SAFETY: msgs points at BATCH initialised headers whose buffers outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                batch.msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        let now = Instant::now();
        if n > 0 {
            received += n as u64;
            first.get_or_insert(now);
            last = now;
        }
        let idle = first.is_some() && now - last > Duration::from_millis(idle_ms);
        if idle || now - start > Duration::from_secs_f64(max_secs) {
            break;
        }
    }
    let active = first.map_or(0.0, |f| (last - f).as_secs_f64());
    Ok(json!({"received": received, "active_secs": active}))
}

fn set_rcvbuf(sock: &UdpSocket, bytes: libc::c_int) -> anyhow::Result<()> {
    // SO_RCVBUFFORCE (root) is not capped by net.core.rmem_max.
    // SAFETY: a valid socket and an int option of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("SO_RCVBUFFORCE");
    }
    Ok(())
}

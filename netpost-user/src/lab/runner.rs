//! `netpost lab scenario NAME`: check, change the lab (recorded), run the traffic until
//! Ctrl-C / SIGTERM / --duration, then stop the traffic and undo every change.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{
    LabError,
    change::{self, Recorder},
    ns,
    scenario::Name,
    setup, state,
    traffic::Traffic,
};

/// What a scenario run did.
#[derive(Debug)]
pub struct Outcome {
    pub changes: Vec<change::Change>,
    pub tally: BTreeMap<String, u64>,
    pub stopped_by: &'static str,
}

pub fn run(
    name: Name,
    duration: Option<Duration>,
    allow_host_changes: bool,
) -> Result<Outcome, LabError> {
    let info = name.info();
    if info.host_changes && !allow_host_changes {
        return Err(LabError::NeedsHostChanges {
            name: name.to_string(),
            what: info
                .changes
                .iter()
                .find(|c| c.starts_with("HOST"))
                .copied()
                .unwrap_or("a host setting")
                .to_string(),
        });
    }
    // Before any thread exists (ns::within spawns some): every thread inherits the mask, so
    // the signals wait for the main thread's sigtimedwait below.
    let signals = Signals::block();
    // Before the lock, which creates the state directory: bad input leaves nothing behind.
    if ns::lab_namespaces().is_empty() {
        return Err(LabError::NotUp);
    }
    let lock = state::Lock::take()?;
    if let Some(r) = state::load()?.scenario
        && r.alive()
    {
        return Err(LabError::Busy {
            name: r.name,
            pid: r.pid,
        });
    }
    setup::recover_dead_scenario()?;
    let problems = setup::problems();
    if !problems.is_empty() {
        return Err(LabError::Unhealthy(problems.join("; ")));
    }
    eprintln!("netpost: lab: scenario {name}: {}", info.pitfall);
    let mut rec = Recorder::start(name.as_str())?;
    if let Err(e) = name.apply(&mut rec) {
        let _ = rec.finish();
        return Err(LabError::Failed(e.context(format!(
            "scenario {name} could not be set up; its changes were undone"
        ))));
    }
    let changes = rec.changes().to_vec();
    drop(lock);

    let mut traffic = Traffic::default();
    name.traffic(&mut traffic);
    eprintln!(
        "netpost: lab: scenario {name} running ({}); {}",
        info.traffic,
        match duration {
            Some(d) => format!("stops after {} s or on Ctrl-C", d.as_secs_f64()),
            None => "Ctrl-C stops it and restores the lab".to_string(),
        }
    );
    for w in &info.witnesses {
        eprintln!("netpost: lab:   witness: {}  ({})", w.command(), w.meaning);
    }
    let stopped_by = signals.wait(duration);
    let tally = traffic.stop(Duration::from_secs(3));

    let _lock = state::Lock::take()?;
    let undone = rec.finish();
    for (what, n) in &tally {
        eprintln!("netpost: lab:   traffic: {what}: {n}");
    }
    undone.map_err(|e| LabError::Failed(e.context("restoring the lab")))?;
    eprintln!("netpost: lab: scenario {name} stopped ({stopped_by}); the lab is restored");
    Ok(Outcome {
        changes,
        tally,
        stopped_by,
    })
}

/// SIGINT, SIGTERM and SIGHUP, blocked and waited for synchronously.
struct Signals(libc::sigset_t);

impl Signals {
    fn block() -> Signals {
        // SAFETY: plain sigset manipulation on a local set; pthread_sigmask changes this
        // thread's mask only (threads spawned later inherit it).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, s);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals(set)
        }
    }

    /// Waits for a signal or the end of `duration`; says which.
    fn wait(&self, duration: Option<Duration>) -> &'static str {
        let end = duration.map(|d| Instant::now() + d);
        loop {
            let left = match end {
                Some(end) => match end.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(Duration::from_secs(1)),
                    _ => return "--duration reached",
                },
                None => Duration::from_secs(1),
            };
            let ts = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            // SAFETY: the set is initialised; no siginfo is asked for.
            let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &ts) };
            match sig {
                libc::SIGINT => return "interrupted",
                libc::SIGTERM => return "terminated",
                libc::SIGHUP => return "hangup",
                _ => {}
            }
        }
    }
}

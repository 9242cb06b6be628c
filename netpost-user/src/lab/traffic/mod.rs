//! Real traffic from real sockets: every generator is a thread that moved into a lab
//! namespace with setns(2) before creating its sockets, and sends only to lab addresses.
//! Generators poll a shared stop flag (their blocking calls have short timeouts), and count
//! what they did in a [`Tally`] printed when the scenario ends.
pub mod tcp;
pub mod udp;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{ns, topology::Node};

/// The flag every generator polls.
#[derive(Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed)
    }

    /// Sleeps up to `d` in short steps; false when stopped meanwhile.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while !self.stopped() {
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(50)));
        }
        false
    }
}

/// Named counts of what the generators did (connections, datagrams, resets...).
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    pub fn add(&self, what: &str, n: u64) {
        if n > 0 {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry(what.to_string()).or_default() += n;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The generators of one scenario.
#[derive(Default)]
pub struct Traffic {
    pub stop: Stop,
    pub tally: Arc<Tally>,
    threads: Vec<(String, JoinHandle<()>)>,
}

/// What a generator gets: the stop flag and the tally.
#[derive(Clone)]
pub struct Ctx {
    pub stop: Stop,
    pub tally: Arc<Tally>,
}

impl Traffic {
    /// Runs `f` on a new thread inside `node`'s namespace.
    pub fn spawn(
        &mut self,
        node: Node,
        name: &str,
        f: impl FnOnce(Ctx) -> anyhow::Result<()> + Send + 'static,
    ) {
        let ctx = Ctx {
            stop: self.stop.clone(),
            tally: self.tally.clone(),
        };
        let label = format!("{name} in {node}");
        let tag = label.clone();
        let handle = std::thread::spawn(move || {
            let result = ns::enter_thread(node.netns())
                .map_err(anyhow::Error::from)
                .and_then(|()| f(ctx.clone()));
            if let Err(e) = result
                && !ctx.stop.stopped()
            {
                eprintln!("netpost: lab: traffic {tag} stopped: {e:#}");
            }
        });
        self.threads.push((label, handle));
    }

    /// Stops every generator and waits up to `grace` for them (a thread stuck past that is
    /// left to end with the process).
    pub fn stop(self, grace: Duration) -> BTreeMap<String, u64> {
        self.stop.stop();
        let end = Instant::now() + grace;
        for (label, handle) in self.threads {
            while !handle.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                eprintln!("netpost: lab: traffic {label} did not stop in time");
            }
        }
        self.tally.snapshot()
    }
}

/// Spreads `per_sec` events evenly: `due()` says how many are due now.
pub struct Pacer {
    start: Instant,
    per_sec: f64,
    done: u64,
}

impl Pacer {
    pub fn new(per_sec: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            per_sec,
            done: 0,
        }
    }

    /// Events due since the last call (waits a tick when none is).
    pub fn due(&mut self, stop: &Stop) -> u64 {
        loop {
            let want = (self.start.elapsed().as_secs_f64() * self.per_sec) as u64;
            if want > self.done {
                let n = want - self.done;
                self.done = want;
                return n;
            }
            if !stop.sleep(Duration::from_millis(5)) {
                return 0;
            }
        }
    }
}

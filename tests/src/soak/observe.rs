//! Watching netpost through a soak: its JSON Lines read from a FIFO as it writes them (a
//! line per second with 64 interfaces is ~0.4 MB: a file would grow by gigabytes), keeping
//! the newest snapshot and a few figures of each; and its memory and CPU time from /proc.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::Value;

/// netpost's newest snapshot, shared with the threads that wait on it.
#[derive(Clone, Default)]
pub struct Latest(Arc<Mutex<Option<Arc<Value>>>>);

impl Latest {
    pub fn get(&self) -> Option<Arc<Value>> {
        self.0.lock().unwrap().clone()
    }

    fn set(&self, v: Value) {
        *self.0.lock().unwrap() = Some(Arc::new(v));
    }

    /// Waits up to `secs` for a snapshot `ok` accepts.
    pub fn wait(&self, secs: u64, ok: impl Fn(&Value) -> bool) -> Option<Arc<Value>> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = self.get().filter(|v| ok(v)) {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A few figures of one snapshot.
#[derive(Clone, Debug, Default)]
pub struct Point {
    pub elapsed_ms: u64,
    pub interfaces: usize,
    pub over_cap: usize,
    pub events_lost: u64,
    pub ct_count: u64,
    pub ct_fill_pct: f64,
    pub collection_us: u64,
}

impl Point {
    fn of(v: &Value) -> Point {
        Point {
            elapsed_ms: v["elapsed_ms"].as_u64().unwrap_or(0),
            interfaces: v["interfaces"].as_object().map_or(0, |m| m.len()),
            over_cap: v["interfaces_over_cap"].as_array().map_or(0, |a| a.len()),
            events_lost: v["events_lost"].as_u64().unwrap_or(0)
                + v["drops"]["events_lost"].as_u64().unwrap_or(0),
            ct_count: v["conntrack"]["count"].as_u64().unwrap_or(0),
            ct_fill_pct: v["conntrack"]["fill_pct"].as_f64().unwrap_or(0.0),
            collection_us: v["collection_us"].as_u64().unwrap_or(0),
        }
    }
}

/// Reads netpost's `--json` FIFO until netpost closes it.
pub struct JsonTail {
    pub path: PathBuf,
    pub latest: Latest,
    thread: JoinHandle<Vec<Point>>,
}

impl JsonTail {
    /// Makes the FIFO at `path` and starts reading it (netpost's open waits for the reader).
    pub fn start(path: &Path) -> JsonTail {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path string.
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(
            rc,
            0,
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        let latest = Latest::default();
        let (fifo, shared) = (path.to_path_buf(), latest.clone());
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&fifo).expect("open the JSON FIFO");
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut points = Vec::new();
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                points.push(Point::of(&v));
                shared.set(v);
            }
            points
        });
        JsonTail {
            path: path.to_path_buf(),
            latest,
            thread,
        }
    }

    /// Waits for netpost to close the FIFO; every snapshot's figures, in order.
    pub fn finish(self) -> Vec<Point> {
        let points = self.thread.join().expect("the JSON reader");
        let _ = std::fs::remove_file(&self.path);
        points
    }
}

/// netpost's memory and CPU time at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub secs: f64,
    pub rss_kib: u64,
    /// User + system CPU time so far, seconds.
    pub cpu_secs: f64,
}

/// Reads `pid`'s resident memory and CPU time.
pub fn usage(pid: i32, secs: f64) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the 14th
    // and 15th of the line, the 12th and 13th after ") ".
    let rest = &stat[stat.rfind(") ")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Usage {
        secs,
        rss_kib,
        cpu_secs: ticks as f64 / hz,
    })
}

/// Samples `pid` every `every` until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Usage>>,
}

impl Sampler {
    pub fn start(pid: i32, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut out = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(u) = usage(pid, start.elapsed().as_secs_f64()) {
                    out.push(u);
                }
                let next = start + every * out.len() as u32;
                while Instant::now() < next && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if let Some(u) = usage(pid, start.elapsed().as_secs_f64()) {
                out.push(u);
            }
            out
        });
        Sampler { stop, thread }
    }

    pub fn finish(self) -> Vec<Usage> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the sampler")
    }
}

/// The pid of the `netpost` process a shell (`parent`, tmux's pane) started, once it runs.
pub fn child_named(parent: i32, comm: &str, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let children = std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
            .unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if name.trim() == comm {
                return Some(pid);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! The recent snapshots (and kernel readings) the diagnoses look at: deltas and rates
//! between the window's start and its newest snapshot.
use std::{collections::VecDeque, sync::Arc};

use super::kernel::Reading;
use crate::model::{SampleView, Snapshot};

/// One interval's snapshot with the kernel reading taken with it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub snap: Arc<Snapshot>,
    pub kernel: Arc<Reading>,
}

/// Snapshots over the last `span_ms`, and the reading taken when counting started.
#[derive(Debug)]
pub struct Window {
    span_ms: u64,
    start: Arc<Reading>,
    entries: VecDeque<Entry>,
}

/// Snapshots kept at most: a short `--interval` thins the older ones out.
const MAX_ENTRIES: usize = 128;

impl Window {
    pub fn new(span_ms: u64, start: Reading) -> Window {
        Window {
            span_ms: span_ms.max(1),
            start: Arc::new(start),
            entries: VecDeque::new(),
        }
    }

    /// Adds the newest entry and forgets what fell out of the window, keeping one entry
    /// at or before its start (the base of its deltas).
    pub fn push(&mut self, e: Entry) {
        let newest = e.snap.elapsed_ms;
        self.entries.push_back(e);
        while self.entries.len() >= 2 && self.entries[1].snap.elapsed_ms + self.span_ms <= newest {
            self.entries.pop_front();
        }
        if self.entries.len() > MAX_ENTRIES {
            // Every other one of the older half goes: the base and the newest stay.
            let half = self.entries.len() / 2;
            let mut i = 0;
            self.entries.retain(|_| {
                i += 1;
                i > half || i == 1 || i % 2 == 0
            });
        }
    }

    /// Takes the newest entry out (to be given back with [`Window::put_back`]).
    ///
    /// # Panics
    /// On an empty window: only call it after a push.
    pub fn take_newest(&mut self) -> Entry {
        self.entries.pop_back().expect("an entry was pushed")
    }

    pub fn put_back(&mut self, e: Entry) {
        self.entries.push_back(e);
    }

    /// The view the diagnoses read (None before the first snapshot).
    pub fn view(&self) -> Option<View<'_>> {
        let last = self.entries.back()?;
        let newest = last.snap.elapsed_ms;
        // The base: the newest entry at or before the window's start, else counting start.
        let based =
            self.entries.len() >= 2 && self.entries[0].snap.elapsed_ms + self.span_ms <= newest;
        let (base, within) = if based {
            (Some(&self.entries[0]), self.entries.range(1..).collect())
        } else {
            (None, self.entries.iter().collect())
        };
        Some(View {
            base_snap: base.map(|b| &*b.snap),
            base_kernel: base.map_or(&*self.start, |b| &*b.kernel),
            within,
        })
    }
}

/// Deltas over the window: from its base (the snapshot before it, or counting start) to
/// its newest snapshot.
pub struct View<'a> {
    /// None: the window reaches back to counting start (counters since start are 0 there).
    pub base_snap: Option<&'a Snapshot>,
    pub base_kernel: &'a Reading,
    /// The window's snapshots, oldest first (never empty).
    pub within: Vec<&'a Entry>,
}

impl<'a> View<'a> {
    pub fn last(&self) -> &'a Snapshot {
        &self.within[self.within.len() - 1].snap
    }

    pub fn kernel(&self) -> &'a Reading {
        &self.within[self.within.len() - 1].kernel
    }

    /// The window's first snapshot.
    pub fn first(&self) -> &'a Snapshot {
        &self.within[0].snap
    }

    /// Seconds the window covers.
    pub fn secs(&self) -> f64 {
        let from = self.base_snap.map_or(0, |b| b.elapsed_ms);
        (self.last().elapsed_ms.saturating_sub(from) as f64 / 1000.0).max(0.001)
    }

    /// The window in seconds, rounded for evidence.
    pub fn window_s(&self) -> f64 {
        (self.secs() * 10.0).round() / 10.0
    }

    /// The growth of a counter netpost keeps since it started (0 at counting start).
    pub fn delta(&self, f: impl Fn(&Snapshot) -> Option<u64>) -> u64 {
        let now = f(self.last()).unwrap_or(0);
        let before = self.base_snap.and_then(&f).unwrap_or(0);
        now.saturating_sub(before)
    }

    /// The growth of a counter the kernel keeps since boot (conntrack's statistics): from
    /// the base, or the window's first snapshot when it reaches back to counting start.
    pub fn kernel_delta(&self, f: impl Fn(&Snapshot) -> Option<u64>) -> u64 {
        let now = f(self.last()).unwrap_or(0);
        let before = f(self.base_snap.unwrap_or(self.first())).unwrap_or(now);
        now.saturating_sub(before)
    }

    /// The growth of a MIB counter.
    pub fn mib(&self, name: &str) -> u64 {
        self.kernel()
            .mib(name)
            .saturating_sub(self.base_kernel.mib(name))
    }

    pub fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.secs()
    }

    /// Drops of `reason` in the window.
    pub fn reason(&self, reason: &str) -> u64 {
        self.delta(|s| s.drops.as_ref()?.reasons.get(reason).map(|r| r.packets))
    }

    /// Every distinct drop sample of the window (a sample stays in several snapshots), with
    /// one of `reasons`.
    pub fn samples(&self, reasons: &[&str]) -> Vec<&'a SampleView> {
        let mut out: Vec<&SampleView> = Vec::new();
        for e in &self.within {
            for s in e.snap.drops.iter().flat_map(|d| d.samples.iter()) {
                if reasons.contains(&s.reason.as_str()) && !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(elapsed_ms: u64, mib: u64) -> Entry {
        let mut k = Reading::default();
        k.mib.insert("X".into(), mib);
        Entry {
            snap: Arc::new(Snapshot {
                elapsed_ms,
                ..Default::default()
            }),
            kernel: Arc::new(k),
        }
    }

    #[test]
    fn the_window_keeps_a_base_before_its_start() {
        let mut start = Reading::default();
        start.mib.insert("X".into(), 100);
        let mut w = Window::new(3000, start);
        w.push(entry(1000, 110));
        w.push(entry(2000, 130));
        let v = w.view().unwrap();
        assert!(v.base_snap.is_none(), "reaches back to counting start");
        assert_eq!((v.mib("X"), v.secs()), (30, 2.0));
        for t in 3..=6 {
            w.push(entry(t * 1000, 130 + t * 10));
        }
        let v = w.view().unwrap();
        assert_eq!(v.base_snap.unwrap().elapsed_ms, 3000);
        assert_eq!(v.within.len(), 3);
        assert_eq!((v.mib("X"), v.secs()), (30, 3.0));
    }

    #[test]
    fn short_intervals_are_thinned_out() {
        let mut w = Window::new(10_000, Reading::default());
        for t in 1..=1000 {
            w.push(entry(t * 10, 0));
        }
        assert!(w.entries.len() <= MAX_ENTRIES);
        let v = w.view().unwrap();
        assert_eq!(v.last().elapsed_ms, 10_000);
        assert!(v.base_snap.is_none());
    }
}

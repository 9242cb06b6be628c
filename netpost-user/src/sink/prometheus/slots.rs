//! Connection slots, and who gives one up when they are all taken.
//!
//! At most `max` connections are open. A connection is *idle* while it waits on its client:
//! for a request head (from its start, or from the end of its previous response: trickled
//! bytes do not make it younger) or for the client to take the response it was handed. When a
//! new connection arrives and every slot is taken, the connection idle the longest is closed
//! to make room, so idle and slow clients, however many, never lock out a new scraper: it is
//! the newest, so the last one they could push out. Only when no slot is idle (every one is
//! producing a response, which takes no client's cooperation) is the newcomer refused.
//!
//! Pure bookkeeping: `C` is whatever closes a connection (the server's is a channel whose
//! drop ends the connection's task); it is handed back to the caller to use.
use std::time::Instant;

pub type SlotId = u64;

#[derive(Debug)]
pub struct Slots<C> {
    max: usize,
    next: SlotId,
    /// At most `max` (a few dozen): linear scans are cheaper than any index.
    open: Vec<Slot<C>>,
}

#[derive(Debug)]
struct Slot<C> {
    id: SlotId,
    /// Since when the connection waits on its client; None while a response is produced.
    idle_since: Option<Instant>,
    closer: C,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Admission<C> {
    /// A free slot, `SlotId`.
    Admitted(SlotId),
    /// The newcomer has slot `id`; `evicted` closes the connection that was idle the longest.
    Evicted { id: SlotId, evicted: C },
    /// Every slot is busy: the newcomer is refused (its closer is handed back).
    Refused(C),
}

impl<C> Slots<C> {
    pub fn new(max: usize) -> Slots<C> {
        Slots {
            max,
            next: 0,
            open: Vec::with_capacity(max),
        }
    }

    /// Gives a connection accepted at `now` a slot, idle (waiting for its first request).
    pub fn admit(&mut self, now: Instant, closer: C) -> Admission<C> {
        let evicted = if self.open.len() < self.max {
            None
        } else {
            let Some(oldest) = self
                .open
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.idle_since.map(|since| (since, s.id, i)))
                .min()
                .map(|(_, _, i)| i)
            else {
                return Admission::Refused(closer);
            };
            Some(self.open.swap_remove(oldest).closer)
        };
        let id = self.next;
        self.next += 1;
        self.open.push(Slot {
            id,
            idle_since: Some(now),
            closer,
        });
        match evicted {
            None => Admission::Admitted(id),
            Some(evicted) => Admission::Evicted { id, evicted },
        }
    }

    /// The connection's request head is complete: its response is being produced.
    pub fn busy(&mut self, id: SlotId) {
        if let Some(slot) = self.slot(id) {
            slot.idle_since = None;
        }
    }

    /// The connection's response is handed over: from `now` on it waits on its client.
    pub fn idle(&mut self, id: SlotId, now: Instant) {
        if let Some(slot) = self.slot(id) {
            slot.idle_since.get_or_insert(now);
        }
    }

    /// The connection ended; frees its slot (nothing when it was evicted already).
    pub fn release(&mut self, id: SlotId) {
        self.open.retain(|s| s.id != id);
    }

    fn slot(&mut self, id: SlotId) -> Option<&mut Slot<C>> {
        self.open.iter_mut().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(ms: u64, t0: Instant) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn free_slots_first_then_the_longest_idle_one_goes() {
        let t0 = Instant::now();
        let mut slots = Slots::new(3);
        assert_eq!(slots.admit(at(0, t0), "a"), Admission::Admitted(0));
        assert_eq!(slots.admit(at(1, t0), "b"), Admission::Admitted(1));
        assert_eq!(slots.admit(at(2, t0), "c"), Admission::Admitted(2));
        // a finished a request at 5 ms: b, waiting for its head since 1 ms, is idle longest.
        slots.busy(0);
        slots.idle(0, at(5, t0));
        assert_eq!(
            slots.admit(at(6, t0), "d"),
            Admission::Evicted {
                id: 3,
                evicted: "b"
            }
        );
        assert_eq!(
            slots.admit(at(7, t0), "e"),
            Admission::Evicted {
                id: 4,
                evicted: "c"
            }
        );
        assert_eq!(
            slots.admit(at(8, t0), "f"),
            Admission::Evicted {
                id: 5,
                evicted: "a"
            }
        );
        assert_eq!(slots.open.len(), 3);
    }

    #[test]
    fn a_flood_of_newcomers_pushes_out_the_old_ones_before_the_newest() {
        let t0 = Instant::now();
        let mut slots = Slots::new(4);
        for i in 0..100u64 {
            slots.admit(at(i, t0), i);
        }
        // The scraper arrives last: it is the one every later newcomer evicts last.
        let Admission::Evicted { id: scraper, .. } = slots.admit(at(100, t0), 1000) else {
            panic!("a slot for the scraper");
        };
        for i in 0..3u64 {
            let Admission::Evicted { evicted, .. } = slots.admit(at(101 + i, t0), 2000 + i) else {
                panic!("evicts");
            };
            assert_ne!(evicted, 1000, "the scraper went before older connections");
        }
        let Admission::Evicted { evicted, .. } = slots.admit(at(104, t0), 3000) else {
            panic!("evicts");
        };
        assert_eq!(evicted, 1000, "now the scraper is the oldest");
        assert!(slots.open.iter().all(|s| s.id != scraper));
    }

    #[test]
    fn busy_slots_are_never_evicted_and_a_full_busy_table_refuses() {
        let t0 = Instant::now();
        let mut slots = Slots::new(2);
        slots.admit(at(0, t0), 'a');
        slots.admit(at(1, t0), 'b');
        slots.busy(0);
        assert_eq!(
            slots.admit(at(2, t0), 'c'),
            Admission::Evicted {
                id: 2,
                evicted: 'b'
            }
        );
        slots.busy(2);
        assert_eq!(slots.admit(at(3, t0), 'd'), Admission::Refused('d'));
        // Done with the response: idle again, and evictable.
        slots.idle(0, at(4, t0));
        assert_eq!(
            slots.admit(at(5, t0), 'e'),
            Admission::Evicted {
                id: 3,
                evicted: 'a'
            }
        );
    }

    #[test]
    fn idle_keeps_the_earliest_time_and_release_frees_the_slot() {
        let t0 = Instant::now();
        let mut slots = Slots::new(2);
        slots.admit(at(0, t0), 'a');
        slots.admit(at(1, t0), 'b');
        // A second `idle` (the body handed over, then dropped) does not make `a` younger.
        slots.idle(0, at(9, t0));
        assert_eq!(
            slots.admit(at(10, t0), 'c'),
            Admission::Evicted {
                id: 2,
                evicted: 'a'
            }
        );
        slots.release(1);
        slots.release(1);
        slots.busy(1);
        assert_eq!(slots.open.len(), 1);
        assert_eq!(slots.admit(at(11, t0), 'd'), Admission::Admitted(3));
    }

    #[test]
    fn equal_times_evict_the_older_connection() {
        let t0 = Instant::now();
        let mut slots = Slots::new(2);
        slots.admit(t0, 'a');
        slots.admit(t0, 'b');
        assert_eq!(
            slots.admit(t0, 'c'),
            Admission::Evicted {
                id: 2,
                evicted: 'a'
            }
        );
    }
}

//! Where a probe stands. Its `Display` is what the JSON's `*_status` keys, the metrics and
//! the startup lines show, so the words are a contract.
use std::fmt;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Nothing has gone wrong yet, nothing is attached yet (loading, or loaded by a caller
    /// that never attaches, as the tests of single programs do).
    #[default]
    Pending,
    /// Its programs run at their tracepoints or devices.
    Attached,
    /// Its netfilter programs are linked at their hooks.
    Linked,
    /// It has no programs of its own: it reads kernel counters, or maps that other probes'
    /// programs fill.
    Reading,
    /// The run does not want it (`--no-netfilter`): nothing of it was loaded.
    Off(String),
    /// Wanted, but it cannot run on this kernel or in this namespace; the other probes go on.
    Unavailable(String),
}

impl Status {
    /// Attached, linked or reading: its part of each sample is collected.
    pub fn is_running(&self) -> bool {
        matches!(self, Status::Attached | Status::Linked | Status::Reading)
    }

    pub fn is_off(&self) -> bool {
        matches!(self, Status::Off(_))
    }

    /// Takes the next step of loading or attaching while nothing has gone wrong (`Pending`);
    /// a step that fails leaves the probe `Unavailable` with the step's reason, and every
    /// later step is skipped.
    pub fn advance(&mut self, step: impl FnOnce() -> Result<Status, String>) {
        if *self == Status::Pending {
            *self = step().unwrap_or_else(Status::Unavailable);
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Pending => f.write_str("pending"),
            Status::Attached => f.write_str("attached"),
            Status::Linked => f.write_str("linked"),
            Status::Reading => f.write_str("reading"),
            Status::Off(why) => write!(f, "off ({why})"),
            Status::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_the_json_always_showed_them() {
        assert_eq!(Status::Attached.to_string(), "attached");
        assert_eq!(Status::Linked.to_string(), "linked");
        assert_eq!(
            Status::Off("--no-netfilter".into()).to_string(),
            "off (--no-netfilter)"
        );
        assert_eq!(
            Status::Unavailable("kfree_skb: EPERM".into()).to_string(),
            "unavailable: kfree_skb: EPERM"
        );
    }

    #[test]
    fn the_first_failing_step_is_the_reason() {
        let mut s = Status::default();
        s.advance(|| Ok(Status::Pending));
        s.advance(|| Err("no BTF".into()));
        s.advance(|| Ok(Status::Attached));
        assert_eq!(s, Status::Unavailable("no BTF".into()));
        let mut off = Status::Off("--no-netfilter".into());
        off.advance(|| Ok(Status::Linked));
        assert!(off.is_off() && !off.is_running());
    }
}

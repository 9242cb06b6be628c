//! What the packet-path diagram shows, folded out of a Snapshot: one figure per stage
//! (XDP and tc summed over the interfaces the filter keeps, netfilter hooks summed over
//! the linked families) and the route most packets take.
use netpost_common::{Hook, netfilter::NfHook};

use crate::model::{AttachInfo, Snapshot};

/// A box of the diagram, in packet-path order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Xdp,
    TcIn,
    PreRouting,
    Input,
    Forward,
    Output,
    PostRouting,
    TcOut,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Xdp,
        Stage::TcIn,
        Stage::PreRouting,
        Stage::Input,
        Stage::Forward,
        Stage::Output,
        Stage::PostRouting,
        Stage::TcOut,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::Xdp => "XDP",
            Stage::TcIn => "tc in",
            Stage::PreRouting => "PREROUTING",
            Stage::Input => "INPUT",
            Stage::Forward => "FORWARD",
            Stage::Output => "OUTPUT",
            Stage::PostRouting => "POSTROUTING",
            Stage::TcOut => "tc out",
        }
    }

    pub const fn is_netfilter(self) -> bool {
        self.nf_hook().is_some()
    }

    const fn nf_hook(self) -> Option<NfHook> {
        match self {
            Stage::PreRouting => Some(NfHook::PreRouting),
            Stage::Input => Some(NfHook::LocalIn),
            Stage::Forward => Some(NfHook::Forward),
            Stage::Output => Some(NfHook::LocalOut),
            Stage::PostRouting => Some(NfHook::PostRouting),
            _ => None,
        }
    }
}

/// The figures of one counted stage.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageStats {
    pub pps: f64,
    /// Wire bits per second (XDP and tc only).
    pub bps: Option<f64>,
    /// Packets since start (entered, for netfilter hooks).
    pub packets: u64,
    pub drop_pps: f64,
    pub dropped: u64,
}

/// A stage is counted, or says why not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StageView {
    Counted(StageStats),
    NotCounted(&'static str),
}

impl StageView {
    pub fn pps(&self) -> f64 {
        match self {
            StageView::Counted(s) => s.pps,
            StageView::NotCounted(_) => 0.0,
        }
    }
}

/// Where most packets go. With netfilter linked the choice is between the three ways
/// through the stack; without it only the direction on the watched interfaces is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// wire → ... → INPUT → local process
    LocalIn,
    /// wire → ... → FORWARD → ... → wire
    Forward,
    /// local process → OUTPUT → ... → wire
    LocalOut,
    /// Netfilter not linked: mostly arriving traffic.
    Receive,
    /// Netfilter not linked: mostly leaving traffic.
    Transmit,
}

impl Route {
    pub fn stages(self) -> &'static [Stage] {
        use Stage::*;
        match self {
            Route::LocalIn => &[Xdp, TcIn, PreRouting, Input],
            Route::Forward => &[Xdp, TcIn, PreRouting, Forward, PostRouting, TcOut],
            Route::LocalOut => &[Output, PostRouting, TcOut],
            Route::Receive => &[Xdp, TcIn],
            Route::Transmit => &[TcOut],
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Route::LocalIn => "wire → INPUT → local process",
            Route::Forward => "wire → FORWARD → wire",
            Route::LocalOut => "local process → OUTPUT → wire",
            Route::Receive => "arriving on the wire",
            Route::Transmit => "leaving to the wire",
        }
    }

    /// Arriving on the wire from outside (the left-hand entry of the diagram).
    pub fn arrives(self) -> bool {
        matches!(self, Route::LocalIn | Route::Forward | Route::Receive)
    }

    /// Leaving to the wire (the left-hand exit).
    pub fn leaves(self) -> bool {
        matches!(self, Route::Forward | Route::LocalOut | Route::Transmit)
    }
}

/// Everything the diagram draws.
#[derive(Clone, Debug, PartialEq)]
pub struct PathStats {
    pub stages: [StageView; 8],
    pub busiest: Option<Route>,
    /// Netfilter is per namespace; XDP and tc per watched interface.
    pub netfilter_linked: bool,
}

impl PathStats {
    pub fn stage(&self, stage: Stage) -> &StageView {
        &self.stages[stage as usize]
    }

    /// Packets per second delivered to local sockets (INPUT survivors).
    pub fn delivered_pps(&self) -> Option<f64> {
        match self.stage(Stage::Input) {
            StageView::Counted(s) => Some((s.pps - s.drop_pps).max(0.0)),
            StageView::NotCounted(_) => None,
        }
    }
}

/// Whether an interface name passes the dashboard filter (case-insensitive substring).
pub fn iface_matches(name: &str, filter: &str) -> bool {
    filter.is_empty() || name.to_lowercase().contains(&filter.to_lowercase())
}

pub fn path_stats(snap: &Snapshot, filter: &str) -> PathStats {
    let ifaces: Vec<_> = snap
        .interfaces
        .iter()
        .filter(|(name, _)| iface_matches(name, filter))
        .collect();
    // Why a hook is counted on none of the shown interfaces: turned off, or unavailable.
    let not_counted = |mode: fn(&AttachInfo) -> (&str, &str)| -> Option<&'static str> {
        let infos: Vec<(&str, &str)> = ifaces
            .iter()
            .map(|(name, _)| snap.attached.get(*name).map_or(("", ""), mode))
            .collect();
        if infos.iter().any(|(mode, _)| *mode != "off") {
            return None;
        }
        Some(if infos.iter().any(|(_, s)| s.starts_with("unavailable")) {
            "unavailable"
        } else {
            "off"
        })
    };
    let xdp_off = not_counted(|a| (&a.xdp_mode, &a.xdp_status));
    let tc_off = not_counted(|a| (&a.tc_mode, &a.tc_status));
    let netfilter_linked = !snap.netfilter.is_empty();
    let stages = Stage::ALL.map(|stage| {
        if let Some(hook) = stage.nf_hook() {
            if !netfilter_linked {
                return StageView::NotCounted("not linked");
            }
            let mut s = StageStats::default();
            for family in snap.netfilter.values() {
                let h = family.hook(hook);
                s.pps += h.pps;
                s.packets += h.entered;
                s.drop_pps += h.dropped_pps;
                s.dropped += h.dropped;
            }
            return StageView::Counted(s);
        }
        if ifaces.is_empty() {
            return StageView::NotCounted("filtered");
        }
        let hook = match stage {
            Stage::Xdp => Hook::Xdp,
            Stage::TcIn => Hook::TcIngress,
            _ => Hook::TcEgress,
        };
        let off = if hook == Hook::Xdp { xdp_off } else { tc_off };
        if let Some(why) = off {
            return StageView::NotCounted(why);
        }
        let mut s = StageStats {
            bps: Some(0.0),
            ..Default::default()
        };
        for (_, iface) in &ifaces {
            let h = iface.hook(hook);
            s.pps += h.pps;
            s.bps = s.bps.map(|b| b + h.bps);
            s.packets += h.packets;
        }
        StageView::Counted(s)
    });
    let pps = |stage: Stage| stages[stage as usize].pps();
    let candidates: &[(Route, f64)] = if netfilter_linked {
        &[
            (Route::LocalIn, pps(Stage::Input)),
            (Route::Forward, pps(Stage::Forward)),
            (Route::LocalOut, pps(Stage::Output)),
        ]
    } else {
        &[
            (Route::Receive, pps(Stage::Xdp).max(pps(Stage::TcIn))),
            (Route::Transmit, pps(Stage::TcOut)),
        ]
    };
    // The first of equal rates wins, so the highlight does not flicker between ties.
    let busiest = candidates
        .iter()
        .filter(|(_, pps)| *pps > 0.0)
        .fold(None::<(Route, f64)>, |best, &(r, p)| match best {
            Some((_, bp)) if bp >= p => best,
            _ => Some((r, p)),
        })
        .map(|(r, _)| r);
    PathStats {
        stages,
        busiest,
        netfilter_linked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IfaceStats, NfFamilyStats};

    fn snap() -> Snapshot {
        let mut a = IfaceStats::default();
        a.xdp.pps = 100.0;
        a.xdp.packets = 1000;
        a.tc_ingress.pps = 100.0;
        a.tc_egress.pps = 5.0;
        let mut b = a;
        b.xdp.pps = 50.0;
        let mut v4 = NfFamilyStats::default();
        v4.prerouting.pps = 150.0;
        v4.input.pps = 20.0;
        v4.forward.pps = 130.0;
        v4.forward.dropped_pps = 30.0;
        v4.forward.dropped = 300;
        let mut v6 = NfFamilyStats::default();
        v6.forward.dropped = 1;
        Snapshot {
            interfaces: [("veth-a".into(), a), ("veth-b".into(), b)].into(),
            netfilter: [("ipv4".into(), v4), ("ipv6".into(), v6)].into(),
            ..Default::default()
        }
    }

    #[test]
    fn stages_sum_interfaces_and_families() {
        let p = path_stats(&snap(), "");
        let StageView::Counted(xdp) = p.stage(Stage::Xdp) else {
            panic!("xdp counted")
        };
        assert_eq!((xdp.pps, xdp.packets), (150.0, 2000));
        let StageView::Counted(fwd) = p.stage(Stage::Forward) else {
            panic!("forward counted")
        };
        assert_eq!((fwd.pps, fwd.drop_pps, fwd.dropped), (130.0, 30.0, 301));
        assert_eq!(p.busiest, Some(Route::Forward));
    }

    #[test]
    fn the_filter_keeps_matching_interfaces_only() {
        let p = path_stats(&snap(), "VETH-B");
        assert_eq!(p.stage(Stage::Xdp).pps(), 50.0);
        assert_eq!(
            path_stats(&snap(), "nomatch").stage(Stage::TcIn),
            &StageView::NotCounted("filtered")
        );
    }

    #[test]
    fn without_netfilter_the_direction_is_the_busiest_route() {
        let mut s = snap();
        s.netfilter.clear();
        let p = path_stats(&s, "");
        assert_eq!(p.busiest, Some(Route::Receive));
        assert_eq!(p.stage(Stage::Input), &StageView::NotCounted("not linked"));
        s.interfaces.clear();
        assert_eq!(path_stats(&s, "").busiest, None);
    }

    #[test]
    fn xdp_off_everywhere_is_not_counted() {
        let mut s = snap();
        for name in ["veth-a", "veth-b"] {
            s.attached.insert(
                name.into(),
                AttachInfo {
                    xdp_mode: "off".into(),
                    ..Default::default()
                },
            );
        }
        assert_eq!(
            path_stats(&s, "").stage(Stage::Xdp),
            &StageView::NotCounted("off")
        );
    }
}

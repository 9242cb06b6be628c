//! One file per family of diagnoses; each check reads a [`View`] and returns a finding only
//! when its evidence passes the thresholds.
mod buffers;
mod conntrack;
mod forwarding;
mod ports;
mod routing;
mod rules;
mod tcp;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use super::{Config, Finding, window::View};

/// Every enabled check, in the order of [`super::IDS`].
pub fn run(view: &View<'_>, c: &Config) -> Vec<Finding> {
    let checks: [(bool, &dyn Fn() -> Option<Finding>); 11] = [
        (c.forwarding_disabled.enabled, &|| {
            forwarding::forwarding_disabled(view, &c.forwarding_disabled)
        }),
        (c.rule_drops.enabled, &|| {
            rules::rule_drops(view, &c.rule_drops)
        }),
        (c.rule_order.enabled, &|| {
            rules::rule_order(view, &c.rule_order)
        }),
        (c.conntrack_pressure.enabled, &|| {
            conntrack::pressure(view, &c.conntrack_pressure)
        }),
        (c.no_route.enabled, &|| routing::no_route(view, &c.no_route)),
        (c.rp_filter.enabled, &|| {
            routing::rp_filter(view, &c.rp_filter)
        }),
        (c.small_buffers.enabled, &|| {
            buffers::small_buffers(view, &c.small_buffers)
        }),
        (c.listen_overflow.enabled, &|| {
            tcp::listen_overflow(view, &c.listen_overflow)
        }),
        (c.syn_flood.enabled, &|| tcp::syn_flood(view, &c.syn_flood)),
        (c.reset_storm.enabled, &|| {
            tcp::reset_storm(view, &c.reset_storm)
        }),
        (c.closed_port.enabled, &|| {
            ports::closed_port(view, &c.closed_port)
        }),
    ];
    checks
        .iter()
        .filter(|(on, _)| *on)
        .filter_map(|(_, check)| check())
        .collect()
}

/// Evidence as a JSON object, `window_s` first in meaning (keys sort anyway).
fn evidence(view: &View<'_>, pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("window_s".into(), view.window_s().into());
    for (k, v) in pairs {
        m.insert(k.into(), v);
    }
    m
}

/// A rate or share rounded for people (and stable JSON).
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// The namespace the fixes run in.
fn netns<'a>(view: &View<'a>) -> Option<&'a str> {
    view.last().netns.as_deref()
}

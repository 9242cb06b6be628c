//! A three-namespace routed topology for tests of the forwarding path (netfilter hooks,
//! forwarding drops): client (C) and server (S) talk through a router (R).
//!
//! ```text
//!   ns_client                  ns_router                   ns_server
//!   client ---- subnet 1 ---- router_client  router_server ---- subnet 2 ---- server
//!   .2                        .1             .1                               .2
//! ```
//!
//! Both links are as silent as [`VethPair`](crate::netns::VethPair)'s: ARP off, permanent
//! neighbours for every next hop (each end knows its peer's IPv4 and IPv6 address), no
//! IPv6 link-local addresses, DAD or router solicitations. C and S route everything (IPv4
//! and IPv6 default routes) via R's address on their subnet.
//!
//! # Noise, and why R's links have multicast off
//!
//! With `net.ipv6.conf.all.forwarding=1` the kernel makes every IFF_MULTICAST interface of
//! R join the all-routers groups ff02::2 and ff05::2 (and ff01::2, which is never
//! reported), and then sends unsolicited MLDv2 reports for them from `::` to ff02::16:
//! ICMPv6 type 143 with two group records, 110-byte frames, two of them (robustness 2)
//! within about a second of the link coming up (or of forwarding being switched on once
//! it is up), so 2-4 frames per link right after setup and none later.
//! Setting forwarding before or after link up, `force_mld_version=1` (then MLDv1 reports
//! per group, ICMPv6 type 131) or a long `mldv2_unsolicited_report_interval` only change
//! how many are sent and when; `net.ipv6.conf.<if>.forwarding=0` on R's links still let
//! one report out. Turning IFF_MULTICAST off on R's two links (before forwarding is
//! switched on and before link up) removes them all: the groups are never joined. The
//! topology then carries nothing at all until a test sends (checked by the
//! `topology_is_silent` test: every end's /proc/net/dev counters stay at 0), so counts of
//! every protocol, ICMPv6 included, can be asserted exactly. Unicast forwarding does not
//! need IFF_MULTICAST; multicast sent out of R's links would not work.
//!
//! IPv4 forwarding makes no noise. With forwarding off ([`Router::new_without_forwarding`])
//! R drops datagrams for S silently: IPv4 counts them in `Ip: InAddrErrors` (no ICMP back,
//! since the kernel only answers when forwarding is on), IPv6 in `Ip6InAddrErrors`.
//!
//! # Counters in R
//!
//! `Ip: ForwDatagrams` and `Ip6OutForwDatagrams` are counted *before* the FORWARD hook
//! since Linux 6.6 (datagrams a netfilter rule drops there are counted too), after it
//! before 6.6. What got through is what R's devices transmitted (/proc/net/dev): R sends
//! nothing of its own, so that is exact on every kernel (`Ip: OutTransmits` says the same
//! from 6.3 on only).
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    sync::atomic::Ordering,
};

use crate::netns::{End, NEXT_ID, NetNs, add_silent_veth, unique_name};

/// Client, router and server namespaces joined by two silent veth pairs.
pub struct Router {
    /// C's end of subnet 1.
    pub client: End,
    /// R's end of subnet 1 (C's gateway).
    pub router_client: End,
    /// R's end of subnet 2 (S's gateway).
    pub router_server: End,
    /// S's end of subnet 2.
    pub server: End,
    /// Whether R forwards (IPv4 and IPv6).
    pub forwarding: bool,
    // Declared last: dropped after the ends' data, removing the namespaces (and veths).
    pub ns_client: NetNs,
    pub ns_router: NetNs,
    pub ns_server: NetNs,
}

impl Router {
    /// A router that forwards IPv4 and IPv6 (`ip_forward=1`, `all.forwarding=1` in R).
    pub fn new() -> Router {
        Router::with_forwarding(true)
    }

    /// A router that does not forward (`ip_forward=0`, `all.forwarding=0` in R, set
    /// explicitly: a new namespace inherits IPv4 settings such as ip_forward from the
    /// host's). Traffic to R's own addresses is still delivered.
    pub fn new_without_forwarding() -> Router {
        Router::with_forwarding(false)
    }

    pub fn with_forwarding(forwarding: bool) -> Router {
        let ns_client = NetNs::new();
        let ns_router = NetNs::new();
        let ns_server = NetNs::new();
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let pid = (std::process::id() % 250) as u8;
        // Subnet 1 is 10.(100+k).pid.0/24, subnet 2 10.(150+k).pid.0/24 (VethPair uses
        // 10.200-249): addresses only exist inside these namespaces, but stay unique per
        // Router for readable captures. MACs and IPv6 follow the same numbers.
        let k = (n % 50) as u8;
        let mk = |ns: &NetNs, prefix: &str, net: u8, host: u8| End {
            ns: ns.name.clone(),
            ifname: unique_name(prefix),
            mac: [0x02, 0x6e, 0x72, pid, net, host],
            ip4: Ipv4Addr::new(10, net, pid, host),
            ip6: Ipv6Addr::new(0xfd00, 0x6e72, pid as u16, net as u16, 0, 0, 0, host as u16),
        };
        let (net1, net2) = (100 + k, 150 + k);
        let client = mk(&ns_client, "nrc", net1, 2);
        let router_client = mk(&ns_router, "nrr", net1, 1);
        let router_server = mk(&ns_router, "nrr", net2, 1);
        let server = mk(&ns_server, "nrs", net2, 2);
        add_silent_veth(&ns_client, &client, &ns_router, &router_client);
        add_silent_veth(&ns_router, &router_server, &ns_server, &server);
        // No IFF_MULTICAST on R's links, so IPv6 forwarding joins no all-routers groups and
        // sends no MLD reports (see the module docs). Must precede forwarding and link up.
        for end in [&router_client, &router_server] {
            ns_router.exec("ip", &["link", "set", &end.ifname, "multicast", "off"]);
        }
        let on = if forwarding { "1" } else { "0" };
        ns_router.exec(
            "sysctl",
            &[
                "-qw",
                &format!("net.ipv4.ip_forward={on}"),
                &format!("net.ipv6.conf.all.forwarding={on}"),
            ],
        );
        for (ns, end) in [
            (&ns_client, &client),
            (&ns_router, &router_client),
            (&ns_router, &router_server),
            (&ns_server, &server),
        ] {
            ns.exec("ip", &["link", "set", &end.ifname, "up"]);
        }
        for (ns, end, gateway) in [
            (&ns_client, &client, &router_client),
            (&ns_server, &server, &router_server),
        ] {
            let dev = end.ifname.as_str();
            let via4 = gateway.ip4.to_string();
            let via6 = gateway.ip6.to_string();
            ns.exec("ip", &["route", "add", "default", "via", &via4, "dev", dev]);
            ns.exec(
                "ip",
                &["-6", "route", "add", "default", "via", &via6, "dev", dev],
            );
        }
        Router {
            client,
            router_client,
            router_server,
            server,
            forwarding,
            ns_client,
            ns_router,
            ns_server,
        }
    }

    /// The four ends with their namespaces, in path order (C, R's client side, R's server
    /// side, S), e.g. to read every device's counters.
    pub fn ends(&self) -> [(&NetNs, &End); 4] {
        [
            (&self.ns_client, &self.client),
            (&self.ns_router, &self.router_client),
            (&self.ns_router, &self.router_server),
            (&self.ns_server, &self.server),
        ]
    }
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

//! The lab's fixed shape: three namespaces, two veth pairs, private addresses only.
//!
//! ```text
//!  npl-client               npl-router                  npl-server
//!  npl-c0 ---- 10.254.1.0/24 ---- npl-r0   npl-r1 ---- 10.254.2.0/24 ---- npl-s0
//!  .2          fd6e:706c:1::/64   .1       .1          fd6e:706c:2::/64    .2
//! ```
//!
//! Names are fixed (one lab per machine) and start with `npl-`, so `down` and `status` find
//! leftovers of a crashed run by name alone. Client and server route everything via the
//! router; the router knows only its two subnets (no default route), so nothing the lab
//! sends can leave it.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// Every namespace and interface the lab creates starts with this.
pub const PREFIX: &str = "npl-";

/// One of the lab's namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Node {
    Client,
    Router,
    Server,
}

impl Node {
    pub const ALL: [Node; 3] = [Node::Client, Node::Router, Node::Server];

    /// The namespace's name (`ip netns` name, /run/netns/NAME).
    pub fn netns(self) -> &'static str {
        match self {
            Node::Client => "npl-client",
            Node::Router => "npl-router",
            Node::Server => "npl-server",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Node::Client => "client",
            Node::Router => "router",
            Node::Server => "server",
        }
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.netns())
    }
}

/// One end of a veth pair with its addresses.
#[derive(Clone, Copy, Debug)]
pub struct End {
    pub node: Node,
    pub ifname: &'static str,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

pub const CLIENT: End = End {
    node: Node::Client,
    ifname: "npl-c0",
    v4: Ipv4Addr::new(10, 254, 1, 2),
    v6: Ipv6Addr::new(0xfd6e, 0x706c, 1, 0, 0, 0, 0, 2),
};
pub const ROUTER_CLIENT_SIDE: End = End {
    node: Node::Router,
    ifname: "npl-r0",
    v4: Ipv4Addr::new(10, 254, 1, 1),
    v6: Ipv6Addr::new(0xfd6e, 0x706c, 1, 0, 0, 0, 0, 1),
};
pub const ROUTER_SERVER_SIDE: End = End {
    node: Node::Router,
    ifname: "npl-r1",
    v4: Ipv4Addr::new(10, 254, 2, 1),
    v6: Ipv6Addr::new(0xfd6e, 0x706c, 2, 0, 0, 0, 0, 1),
};
pub const SERVER: End = End {
    node: Node::Server,
    ifname: "npl-s0",
    v4: Ipv4Addr::new(10, 254, 2, 2),
    v6: Ipv6Addr::new(0xfd6e, 0x706c, 2, 0, 0, 0, 0, 2),
};

/// The two veth pairs, each as (end, peer).
pub const LINKS: [(End, End); 2] = [(CLIENT, ROUTER_CLIENT_SIDE), (ROUTER_SERVER_SIDE, SERVER)];

/// Every end, in path order.
pub const ENDS: [End; 4] = [CLIENT, ROUTER_CLIENT_SIDE, ROUTER_SERVER_SIDE, SERVER];

/// Addresses inside the lab's range that the router has no route for (`no-route`).
pub const NOWHERE_V4: Ipv4Addr = Ipv4Addr::new(10, 254, 99, 1);
pub const NOWHERE_V6: Ipv6Addr = Ipv6Addr::new(0xfd6e, 0x706c, 0x99, 0, 0, 0, 0, 1);

/// The server's addresses, IPv4 first.
pub fn server_addrs() -> [IpAddr; 2] {
    [IpAddr::V4(SERVER.v4), IpAddr::V6(SERVER.v6)]
}

/// Sysctls `up` sets in every namespace: no DAD (addresses usable at once) and no router
/// solicitations (nothing on the wire the lab did not ask for).
pub const QUIET_SYSCTLS: [(&str, &str); 3] = [
    ("net.ipv6.conf.all.accept_dad", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
    ("net.ipv6.conf.default.router_solicitations", "0"),
];

/// The router's healthy settings. Scenarios that change one record and restore it; `status`
/// and [`crate::lab::health`] compare against this list. rp_filter is pinned to 0 (a new
/// namespace inherits the host's IPv4 defaults, which differ between distributions).
pub const ROUTER_SYSCTLS: [(&str, &str); 6] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.npl-r0.rp_filter", "0"),
    ("net.ipv4.conf.npl-r1.rp_filter", "0"),
];

//! Fix commands as a person types them, for the namespace netpost watches.
use std::net::IpAddr;

/// `cmd` run in `netns`: `ip -n NS ...` for `ip` itself, `ip netns exec NS ...` for the
/// rest; as it is without a namespace.
pub fn in_netns(netns: Option<&str>, cmd: &str) -> String {
    match netns {
        None => cmd.to_string(),
        Some(ns) => match cmd.strip_prefix("ip ") {
            Some(rest) => format!("ip -n {ns} {rest}"),
            None => format!("ip netns exec {ns} {cmd}"),
        },
    }
}

/// Several commands in `netns`, one after the other (`a && b`).
pub fn all_in_netns(netns: Option<&str>, cmds: &[String]) -> String {
    cmds.iter()
        .map(|c| in_netns(netns, c))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// `sysctl -w key=value ...` in `netns`, quoting values with spaces.
pub fn sysctl(netns: Option<&str>, pairs: &[(&str, String)]) -> String {
    let args: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            if v.contains(char::is_whitespace) {
                format!("{k}=\"{v}\"")
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    in_netns(netns, &format!("sysctl -w {}", args.join(" ")))
}

/// The address of an endpoint as rows and samples write it: `ip:port`, `[v6]:port` or a
/// bare address.
pub fn ip_of(endpoint: &str) -> Option<IpAddr> {
    if let Ok(ip) = endpoint.parse() {
        return Some(ip);
    }
    let (addr, _) = endpoint.rsplit_once(':')?;
    addr.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The port of an `ip:port` endpoint.
pub fn port_of(endpoint: &str) -> Option<u16> {
    if endpoint.parse::<IpAddr>().is_ok() {
        return None;
    }
    endpoint.rsplit_once(':')?.1.parse().ok()
}

/// The network of `ip` a route would name: /24 for IPv4, /64 for IPv6.
pub fn prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_run_in_the_watched_namespace() {
        assert_eq!(in_netns(None, "sysctl -w a=1"), "sysctl -w a=1");
        assert_eq!(
            in_netns(Some("npl-router"), "sysctl -w a=1"),
            "ip netns exec npl-router sysctl -w a=1"
        );
        assert_eq!(
            in_netns(Some("r"), "ip route add 10.0.0.0/24 via 10.0.1.1"),
            "ip -n r route add 10.0.0.0/24 via 10.0.1.1"
        );
        assert_eq!(
            sysctl(None, &[("net.ipv4.tcp_rmem", "4096 131072 6291456".into())]),
            "sysctl -w net.ipv4.tcp_rmem=\"4096 131072 6291456\""
        );
    }

    #[test]
    fn endpoints_and_prefixes() {
        assert_eq!(ip_of("10.1.2.3:80"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ip_of("[fd00::1]:80"), Some("fd00::1".parse().unwrap()));
        assert_eq!(ip_of("fd00::1"), Some("fd00::1".parse().unwrap()));
        assert_eq!(port_of("[fd00::1]:80"), Some(80));
        assert_eq!(port_of("fd00::1"), None);
        assert_eq!(prefix("10.254.99.1".parse().unwrap()), "10.254.99.0/24");
        assert_eq!(
            prefix("fd6e:706c:99::1".parse().unwrap()),
            "fd6e:706c:99::/64"
        );
    }
}

//! Which rule is the ESTABLISHED,RELATED accept: a conntrack state match that admits
//! established packets (and not new ones) with an accept verdict. The state bits are the
//! kernel's (`NF_CT_STATE_BIT`, the same in nf_tables' `ct state` and x_tables' `conntrack`
//! and `state` matches). Pure.

/// `NF_CT_STATE_INVALID_BIT`.
pub const INVALID: u32 = 1 << 0;
/// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED)`.
pub const ESTABLISHED: u32 = 1 << 1;
/// `NF_CT_STATE_BIT(IP_CT_RELATED)`.
pub const RELATED: u32 = 1 << 2;
/// `NF_CT_STATE_BIT(IP_CT_NEW)`.
pub const NEW: u32 = 1 << 3;

/// A match admitting these states, followed by accept, is the established accept: it lets
/// established packets through and leaves new ones to the rules after it.
pub fn is_established_accept(states: u32) -> bool {
    states & ESTABLISHED != 0 && states & NEW == 0
}

/// `struct xt_conntrack_mtinfo{1,2,3}`: eight addresses and masks (16 bytes each), two
/// expiry bounds, the protocol and four ports, then the flags and the state mask.
const CONNTRACK_MATCH_FLAGS: usize = 146;
const CONNTRACK_INVERT_FLAGS: usize = 148;
const CONNTRACK_STATE_MASK: usize = 150;
/// `XT_CONNTRACK_STATE`.
const XT_CONNTRACK_STATE: u16 = 1 << 0;

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

/// The states an x_tables match admits, when it is a state match that is not negated:
/// `conntrack` (revisions 1-3: `--ctstate`) or `state` (`--state`). None for any other
/// match, a `conntrack` match without `--ctstate`, or `! --ctstate`.
pub fn xt_states(name: &str, revision: u8, data: &[u8]) -> Option<u32> {
    match name {
        "state" => Some(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?)),
        "conntrack" if (1..=3).contains(&revision) => {
            let flags = u16_at(data, CONNTRACK_MATCH_FLAGS)?;
            let invert = u16_at(data, CONNTRACK_INVERT_FLAGS)?;
            if flags & XT_CONNTRACK_STATE == 0 || invert & XT_CONNTRACK_STATE != 0 {
                return None;
            }
            let mask = if revision == 1 {
                *data.get(CONNTRACK_STATE_MASK)? as u32
            } else {
                u16_at(data, CONNTRACK_STATE_MASK)? as u32
            };
            Some(mask)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conntrack(revision: u8, flags: u16, invert: u16, states: u16) -> Vec<u8> {
        let mut d = vec![0u8; 168];
        d[CONNTRACK_MATCH_FLAGS..][..2].copy_from_slice(&flags.to_ne_bytes());
        d[CONNTRACK_INVERT_FLAGS..][..2].copy_from_slice(&invert.to_ne_bytes());
        if revision == 1 {
            d[CONNTRACK_STATE_MASK] = states as u8;
        } else {
            d[CONNTRACK_STATE_MASK..][..2].copy_from_slice(&states.to_ne_bytes());
        }
        d
    }

    #[test]
    fn ctstate_related_established_is_the_established_accept() {
        let rel_est = (ESTABLISHED | RELATED) as u16;
        let s = xt_states("conntrack", 3, &conntrack(3, 1, 0, rel_est)).unwrap();
        assert!(is_established_accept(s));
        let s = xt_states("conntrack", 1, &conntrack(1, 1, 0, rel_est)).unwrap();
        assert!(is_established_accept(s));
        // NEW too: it accepts everything, not only established traffic.
        let s = xt_states("conntrack", 2, &conntrack(2, 1, 0, rel_est | NEW as u16)).unwrap();
        assert!(!is_established_accept(s));
        assert!(!is_established_accept(INVALID));
        // `! --ctstate` and a conntrack match on something else are not state matches.
        assert_eq!(xt_states("conntrack", 3, &conntrack(3, 1, 1, rel_est)), None);
        assert_eq!(xt_states("conntrack", 3, &conntrack(3, 2, 0, rel_est)), None);
        assert_eq!(xt_states("tcp", 0, &[0; 16]), None);
        let state = (ESTABLISHED | RELATED).to_ne_bytes();
        assert!(is_established_accept(xt_states("state", 0, &state).unwrap()));
        assert_eq!(xt_states("conntrack", 3, &[0; 8]), None, "too short");
    }
}

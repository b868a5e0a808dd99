//! Address ranges as hfnetchk's `-r` took them: `10.1.2.0/24` or `10.1.2.10-10.1.2.60` (IPv4).

use std::net::Ipv4Addr;

/// How many addresses a range may hold unless the operator raises the limit (`--max-hosts`,
/// `max_hosts`): a /24. A typo in a prefix (`/8` for `/24`) must not become 16 million probes.
pub const DEFAULT_MAX_HOSTS: usize = 256;

/// Why a range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("range `{range}`: {message}")]
    Syntax { range: String, message: String },
    #[error(
        "range `{range}` holds {count} addresses, more than the limit of {limit}: narrow it or \
         raise the limit (--max-hosts {count}, or max_hosts = {count} in the [[source]])"
    )]
    TooLarge {
        range: String,
        count: u64,
        limit: usize,
    },
}

/// The addresses of a range, in order. A CIDR block leaves out its network and broadcast
/// addresses (no host answers there) except for /31 and /32, which have none.
pub fn expand(range: &str, limit: usize) -> Result<Vec<Ipv4Addr>, RangeError> {
    let text = range.trim();
    let bad = |message: &str| RangeError::Syntax {
        range: text.to_string(),
        message: message.to_string(),
    };
    let (first, last) = if let Some((addr, prefix)) = text.split_once('/') {
        let addr = parse_addr(addr).map_err(|m| bad(&m))?;
        let prefix: u32 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("the prefix length must be a number from 0 to 32"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let network = u32::from(addr) & mask;
        if network != u32::from(addr) {
            return Err(bad(&format!(
                "{addr} is not the first address of a /{prefix} (did you mean {}/{prefix}?)",
                Ipv4Addr::from(network)
            )));
        }
        let broadcast = network | !mask;
        if prefix >= 31 {
            (network, broadcast)
        } else {
            (network + 1, broadcast - 1)
        }
    } else if let Some((a, b)) = text.split_once('-') {
        let a = u32::from(parse_addr(a).map_err(|m| bad(&m))?);
        let b = u32::from(parse_addr(b).map_err(|m| bad(&m))?);
        if b < a {
            return Err(bad("the range ends before it starts"));
        }
        (a, b)
    } else {
        return Err(bad(
            "expected ADDRESS/PREFIX (10.1.2.0/24) or FIRST-LAST (10.1.2.10-10.1.2.60)",
        ));
    };
    let count = u64::from(last - first) + 1;
    if count > limit as u64 {
        return Err(RangeError::TooLarge {
            range: text.to_string(),
            count,
            limit,
        });
    }
    Ok((first..=last).map(Ipv4Addr::from).collect())
}

fn parse_addr(text: &str) -> Result<Ipv4Addr, String> {
    let text = text.trim();
    if text.contains(':') {
        return Err(format!(
            "`{text}` is an IPv6 address: ranges are IPv4 (list IPv6 hosts in a hosts file)"
        ));
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not an IPv4 address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: Vec<Ipv4Addr>) -> Vec<String> {
        v.into_iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn cidr_leaves_out_network_and_broadcast() {
        let v = expand("10.1.2.0/24", 256).unwrap();
        assert_eq!(v.len(), 254);
        assert_eq!(v[0].to_string(), "10.1.2.1");
        assert_eq!(v[253].to_string(), "10.1.2.254");
        assert_eq!(
            strings(expand("10.1.2.4/30", 256).unwrap()),
            ["10.1.2.5", "10.1.2.6"]
        );
        assert_eq!(strings(expand("10.1.2.4/32", 1).unwrap()), ["10.1.2.4"]);
        assert_eq!(
            strings(expand("10.1.2.4/31", 2).unwrap()),
            ["10.1.2.4", "10.1.2.5"]
        );
    }

    #[test]
    fn dash_ranges_are_inclusive_and_may_cross_octets() {
        let v = expand("10.1.2.10-10.1.2.60", 256).unwrap();
        assert_eq!(v.len(), 51);
        assert_eq!(
            strings(expand("10.1.2.254-10.1.3.1", 256).unwrap()),
            ["10.1.2.254", "10.1.2.255", "10.1.3.0", "10.1.3.1"]
        );
    }

    #[test]
    fn too_large_ranges_are_refused_until_the_limit_allows_them() {
        let err = expand("10.0.0.0/8", DEFAULT_MAX_HOSTS).unwrap_err();
        assert_eq!(
            err,
            RangeError::TooLarge {
                range: "10.0.0.0/8".into(),
                count: 16_777_214,
                limit: 256
            }
        );
        assert!(err.to_string().contains("--max-hosts 16777214"), "{err}");
        assert!(expand("10.1.0.0/22", 256).is_err());
        assert_eq!(expand("10.1.0.0/22", 1022).unwrap().len(), 1022);
    }

    #[test]
    fn bad_ranges_say_why() {
        for (range, why) in [
            ("10.1.2.3/24", "did you mean 10.1.2.0/24"),
            ("10.1.2.0/33", "prefix length"),
            ("10.1.2.60-10.1.2.10", "ends before it starts"),
            ("10.1.2.300-10.1.2.301", "not an IPv4 address"),
            ("fe80::1-fe80::9", "IPv6"),
            ("web01", "expected ADDRESS/PREFIX"),
        ] {
            let err = expand(range, 256).unwrap_err().to_string();
            assert!(err.contains(range) && err.contains(why), "{range}: {err}");
        }
    }
}

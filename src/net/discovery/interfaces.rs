//! Which network interfaces discovery speaks on: the LAN ones, not loopback, tunnels or the
//! virtual bridges of containers and VMs (announcing there is what makes other messengers list
//! peers at addresses nobody can reach), unless the user names them with `--iface`.

use std::fmt;
use std::net::Ipv4Addr;

/// An interface discovery uses: an IPv4 address and its subnet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The subnet's broadcast address (none on a point-to-point link).
    pub broadcast: Option<Ipv4Addr>,
}

impl Iface {
    /// `addr` is on this interface's subnet.
    pub fn holds(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(addr) & mask == u32::from(self.ip) & mask
    }
}

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.name, self.ip, self.prefix)
    }
}

/// An interface as the system lists it, with what decides whether it is used.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub iface: Iface,
    pub up: bool,
    pub loopback: bool,
    pub point_to_point: bool,
}

/// The interfaces chosen, and those left out with the reason (for `tern peers` to explain).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choice {
    pub used: Vec<Iface>,
    pub skipped: Vec<(String, &'static str)>,
}

/// Names of tunnels and VPNs: never the LAN.
const TUNNELS: [(&str, &str); 5] = [
    ("tun", "a tunnel"),
    ("utun", "a tunnel"),
    ("wg", "a WireGuard tunnel"),
    ("tailscale", "a VPN"),
    ("zt", "a VPN"),
];

/// Names of the bridges and pairs of containers and VMs: not the LAN on a machine that has
/// one, but the only network of a container (or a namespace) that has nothing else.
const VIRTUAL: [(&str, &str); 5] = [
    ("docker", "a container bridge"),
    ("veth", "a container's virtual pair"),
    ("br-", "a container bridge"),
    ("virbr", "a VM bridge"),
    ("vmnet", "a VM bridge"),
];

/// The system's IPv4 interfaces, as candidates.
pub fn candidates() -> std::io::Result<Vec<Candidate>> {
    let all = if_addrs::get_if_addrs()?;
    Ok(all
        .into_iter()
        .filter_map(|i| {
            let if_addrs::IfAddr::V4(v4) = &i.addr else {
                return None;
            };
            Some(Candidate {
                up: i.is_oper_up(),
                loopback: i.is_loopback(),
                point_to_point: i.is_p2p(),
                iface: Iface {
                    name: i.name.clone(),
                    ip: v4.ip,
                    prefix: v4.prefixlen,
                    broadcast: v4.broadcast,
                },
            })
        })
        .collect())
}

/// The interfaces to use among `all`: those named in `wanted` when it is not empty (an error
/// names one that does not exist), else every one that looks like the LAN.
pub fn choose(all: &[Candidate], wanted: &[String]) -> Result<Choice, String> {
    let mut choice = Choice::default();
    if !wanted.is_empty() {
        for name in wanted {
            let found: Vec<&Candidate> = all.iter().filter(|c| &c.iface.name == name).collect();
            if found.is_empty() {
                let mut names: Vec<&str> = all.iter().map(|c| c.iface.name.as_str()).collect();
                names.dedup();
                return Err(format!(
                    "no interface named {name} has an IPv4 address (there are: {})",
                    names.join(", ")
                ));
            }
            for c in found {
                if !choice.used.contains(&c.iface) {
                    choice.used.push(c.iface.clone());
                }
            }
        }
        return Ok(choice);
    }
    let named = |table: &[(&str, &'static str)], c: &Candidate| {
        table
            .iter()
            .find(|(prefix, _)| c.iface.name.starts_with(prefix))
            .map(|&(_, why)| why)
    };
    let mut virtual_ones = Vec::new();
    for c in all {
        let why = if c.loopback {
            Some("loopback")
        } else if !c.up {
            Some("down")
        } else if c.point_to_point {
            Some("a point-to-point link")
        } else {
            named(&TUNNELS, c)
        };
        let why = match why {
            Some(why) => why,
            None => match named(&VIRTUAL, c) {
                Some(why) => {
                    virtual_ones.push((c.iface.clone(), why));
                    continue;
                }
                None => {
                    choice.used.push(c.iface.clone());
                    continue;
                }
            },
        };
        if !choice.skipped.iter().any(|(n, _)| n == &c.iface.name) {
            choice.skipped.push((c.iface.name.clone(), why));
        }
    }
    if choice.used.is_empty() {
        choice.used = virtual_ones.into_iter().map(|(iface, _)| iface).collect();
    } else {
        for (iface, why) in virtual_ones {
            if !choice.skipped.iter().any(|(n, _)| n == &iface.name) {
                choice.skipped.push((iface.name, why));
            }
        }
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, ip: [u8; 4], prefix: u8) -> Candidate {
        Candidate {
            iface: Iface {
                name: name.into(),
                ip: ip.into(),
                prefix,
                broadcast: None,
            },
            up: true,
            loopback: false,
            point_to_point: false,
        }
    }

    fn host() -> Vec<Candidate> {
        let mut lo = candidate("lo", [127, 0, 0, 1], 8);
        lo.loopback = true;
        let mut down = candidate("eth1", [10, 9, 0, 2], 24);
        down.up = false;
        let mut ppp = candidate("ppp0", [10, 64, 0, 1], 32);
        ppp.point_to_point = true;
        vec![
            lo,
            candidate("eth0", [192, 168, 1, 20], 24),
            down,
            ppp,
            candidate("wg0", [10, 8, 0, 2], 24),
            candidate("tun0", [10, 7, 0, 2], 24),
            candidate("docker0", [172, 17, 0, 1], 16),
            candidate("br-5e1f", [172, 18, 0, 1], 16),
            candidate("veth12ab", [169, 254, 3, 3], 16),
            candidate("wlan0", [10, 0, 0, 5], 16),
        ]
    }

    #[test]
    fn by_default_only_the_lan_is_used_and_the_rest_says_why() {
        let choice = choose(&host(), &[]).expect("no names asked for");
        let used: Vec<&str> = choice.used.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(used, ["eth0", "wlan0"]);
        let skipped: Vec<(&str, &str)> = choice
            .skipped
            .iter()
            .map(|(n, why)| (n.as_str(), *why))
            .collect();
        assert_eq!(
            skipped,
            [
                ("lo", "loopback"),
                ("eth1", "down"),
                ("ppp0", "a point-to-point link"),
                ("wg0", "a WireGuard tunnel"),
                ("tun0", "a tunnel"),
                ("docker0", "a container bridge"),
                ("br-5e1f", "a container bridge"),
                ("veth12ab", "a container's virtual pair"),
            ]
        );
    }

    #[test]
    fn a_machine_with_only_container_links_uses_them_but_never_a_tunnel() {
        let only: Vec<Candidate> = host()
            .into_iter()
            .filter(|c| !["eth0", "wlan0"].contains(&c.iface.name.as_str()))
            .collect();
        let choice = choose(&only, &[]).expect("no names asked for");
        let used: Vec<&str> = choice.used.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(used, ["docker0", "br-5e1f", "veth12ab"]);
        let skipped: Vec<&str> = choice.skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(skipped, ["lo", "eth1", "ppp0", "wg0", "tun0"]);
    }

    #[test]
    fn interfaces_named_are_used_whatever_they_are_and_an_unknown_name_is_an_error() {
        let choice = choose(&host(), &["docker0".into(), "lo".into()]).expect("both exist");
        let used: Vec<&str> = choice.used.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(used, ["docker0", "lo"]);
        let e = choose(&host(), &["eth9".into()]).expect_err("no eth9");
        assert!(e.contains("eth9") && e.contains("eth0, "), "{e}");
    }

    #[test]
    fn a_subnet_holds_its_addresses_only() {
        let wlan = &host()[9].iface;
        assert!(wlan.holds([10, 0, 200, 1].into()));
        assert!(!wlan.holds([10, 1, 0, 1].into()));
        let any = Iface {
            prefix: 0,
            ..wlan.clone()
        };
        assert!(any.holds([8, 8, 8, 8].into()));
        let one = Iface {
            prefix: 32,
            ..wlan.clone()
        };
        assert!(one.holds([10, 0, 0, 5].into()) && !one.holds([10, 0, 0, 6].into()));
    }
}

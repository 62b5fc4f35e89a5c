//! The peers heard on the LAN, each until it says goodbye or its announces stop. Time is a
//! parameter: nothing here reads a clock.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::protocol::discovery::{Announce, Instance};

/// A peer is gone once this many of its announce intervals pass without one.
const MISSED: u32 = 3;
/// The longest interval believed: a peer cannot make itself outlive this many of ours.
const LONGEST_INTERVAL: u16 = 300;
/// Peers kept at most; announces from more are ignored until some leave (a flood of made-up
/// instances cannot grow the table).
pub const MAX_PEERS: usize = 256;

/// A tern heard on the LAN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub instance: Instance,
    /// As it announced it; not cleaned (whoever shows it does).
    pub name: String,
    /// Where its announce came from.
    pub addr: Ipv4Addr,
    pub port: u16,
    pub fingerprint: String,
    pub version: u16,
    pub caps: u32,
}

impl Found {
    /// `IP:PORT`, as a dial target.
    pub fn target(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }
}

/// What hearing something changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sighting {
    /// A peer not known before.
    Found(Found),
    /// A known peer announced a new name, port or capabilities.
    Changed(Found),
    /// It said goodbye, its announces stopped, or it restarted (its successor is `Found`).
    Gone(Instance),
}

#[derive(Default)]
pub struct Table {
    peers: HashMap<Instance, (Found, Instant)>,
}

impl Table {
    /// An announce from `addr`, heard at `now`.
    pub fn heard(&mut self, a: &Announce, addr: Ipv4Addr, now: Instant) -> Vec<Sighting> {
        let interval = a.interval.clamp(1, LONGEST_INTERVAL);
        let until = now + Duration::from_secs(u64::from(interval)) * MISSED;
        if let Some((found, deadline)) = self.peers.get_mut(&a.instance) {
            *deadline = until;
            // The address first heard stays: a peer heard on two of our interfaces would
            // otherwise flip between them.
            let now_found = Found {
                addr: found.addr,
                ..from_announce(a, addr)
            };
            if *found == now_found {
                return Vec::new();
            }
            *found = now_found.clone();
            return vec![Sighting::Changed(now_found)];
        }
        let mut out = Vec::new();
        // The same tern under a new instance: it restarted.
        let restarted: Vec<Instance> = self
            .peers
            .values()
            .filter(|(f, _)| f.addr == addr && f.port == a.port)
            .map(|(f, _)| f.instance)
            .collect();
        for instance in restarted {
            self.peers.remove(&instance);
            out.push(Sighting::Gone(instance));
        }
        if self.peers.len() >= MAX_PEERS {
            return out;
        }
        let found = from_announce(a, addr);
        self.peers.insert(a.instance, (found.clone(), until));
        out.push(Sighting::Found(found));
        out
    }

    pub fn goodbye(&mut self, instance: Instance) -> Option<Sighting> {
        self.peers
            .remove(&instance)
            .map(|_| Sighting::Gone(instance))
    }

    /// Peers whose time ran out by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Sighting> {
        let gone: Vec<Instance> = self
            .peers
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(&i, _)| i)
            .collect();
        for i in &gone {
            self.peers.remove(i);
        }
        gone.into_iter().map(Sighting::Gone).collect()
    }

    /// When the next peer runs out of time, if any is known.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers.values().map(|(_, d)| *d).min()
    }
}

fn from_announce(a: &Announce, addr: Ipv4Addr) -> Found {
    Found {
        instance: a.instance,
        name: a.name.clone(),
        addr,
        port: a.port,
        fingerprint: a.fingerprint.clone(),
        version: a.version,
        caps: a.caps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(instance: Instance, name: &str, interval: u16) -> Announce {
        Announce {
            instance,
            port: 8989,
            version: 2,
            caps: 0,
            interval,
            fingerprint: String::new(),
            name: name.into(),
        }
    }

    const ANA: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const BO: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    #[test]
    fn a_peer_is_found_once_changes_are_said_and_silence_expires_it() {
        let t0 = Instant::now();
        let mut table = Table::default();
        let seen = table.heard(&announce(1, "ana", 10), ANA, t0);
        assert!(matches!(&seen[..], [Sighting::Found(f)] if f.name == "ana" && f.addr == ANA));
        assert_eq!(table.heard(&announce(1, "ana", 10), ANA, t0), []);
        let renamed = table.heard(&announce(1, "ana b", 10), ANA, t0 + Duration::from_secs(5));
        assert!(matches!(&renamed[..], [Sighting::Changed(f)] if f.name == "ana b"));
        // Three intervals after the last announce, not the first.
        assert_eq!(table.expire(t0 + Duration::from_secs(34)), []);
        assert_eq!(table.next_deadline(), Some(t0 + Duration::from_secs(35)));
        assert_eq!(
            table.expire(t0 + Duration::from_secs(35)),
            [Sighting::Gone(1)]
        );
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn a_goodbye_forgets_at_once_and_a_restart_replaces_the_old_instance() {
        let t0 = Instant::now();
        let mut table = Table::default();
        table.heard(&announce(1, "ana", 30), ANA, t0);
        table.heard(&announce(2, "bo", 30), BO, t0);
        assert_eq!(table.goodbye(2), Some(Sighting::Gone(2)));
        assert_eq!(table.goodbye(2), None);
        let restarted = table.heard(&announce(3, "ana", 30), ANA, t0);
        assert!(
            matches!(&restarted[..], [Sighting::Gone(1), Sighting::Found(f)] if f.instance == 3)
        );
    }

    #[test]
    fn the_first_address_stays_and_a_long_interval_is_capped() {
        let t0 = Instant::now();
        let mut table = Table::default();
        table.heard(&announce(1, "ana", u16::MAX), ANA, t0);
        assert_eq!(table.heard(&announce(1, "ana", u16::MAX), BO, t0), []);
        assert_eq!(
            table.next_deadline(),
            Some(t0 + Duration::from_secs(u64::from(LONGEST_INTERVAL) * 3))
        );
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood() {
        let t0 = Instant::now();
        let mut table = Table::default();
        for i in 0..(MAX_PEERS as u64 + 100) {
            let addr = Ipv4Addr::from(0x0a00_0000 + i as u32);
            table.heard(&announce(i, "x", 30), addr, t0);
        }
        assert_eq!(table.peers.len(), MAX_PEERS);
    }
}

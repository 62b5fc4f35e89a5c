//! The task that owns discovery's sockets: it announces on a timer and in bursts, answers
//! probes, keeps the table of who was heard, and says goodbye when stopped.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::interfaces::Iface;
use super::table::{self, Sighting};
use super::{Settings, Tried, sleep_until, sockets};
use crate::protocol::discovery::{self as wire, Announce, Datagram, Instance};

/// On start and on a refresh, datagrams go out at these times (after the first): one lost
/// datagram on a busy Wi-Fi does not hide anyone.
const BURST: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];
/// A probe from one address is answered at most this often.
const ANSWER_GAP: Duration = Duration::from_millis(250);
/// Addresses whose last answer is remembered, at most.
const ANSWERED_MAX: usize = 256;

pub(super) struct Actor {
    pub(super) settings: Settings,
    pub(super) instance: Instance,
    pub(super) ifaces: Vec<Iface>,
    pub(super) shared: Option<UdpSocket>,
    pub(super) own: UdpSocket,
    pub(super) sightings: Option<mpsc::Sender<Sighting>>,
    /// Probes go out with our announces: when we look, unless hidden and not asked to.
    pub(super) probing: bool,
    pub(super) table: table::Table,
    /// When each address last had an answer to its probe.
    pub(super) answered: std::collections::HashMap<SocketAddrV4, Instant>,
    /// State of the generator that spreads announces out.
    pub(super) jitter: u64,
    /// What is tried, for whoever explains an empty look.
    pub(super) tried: watch::Sender<Tried>,
}

impl Actor {
    pub(super) async fn run(
        mut self,
        mut refresh: mpsc::Receiver<Option<String>>,
        stop: CancellationToken,
    ) {
        let mut shared_buf = [0u8; 2 * wire::MAX_DATAGRAM];
        let mut own_buf = [0u8; 2 * wire::MAX_DATAGRAM];
        let start = Instant::now();
        let mut burst: Vec<Instant> = BURST.iter().map(|d| start + *d).collect();
        self.speak().await;
        let mut next_announce = start + self.next_gap();
        loop {
            let next_burst = burst.first().copied();
            let expiry = self.table.next_deadline().map(Instant::from_std);
            tokio::select! {
                () = stop.cancelled() => break,
                asked = refresh.recv() => {
                    let Some(asked) = asked else { break };
                    if let (Some(name), Some(me)) = (asked, self.settings.me.as_mut()) {
                        me.name = name;
                    }
                    // Asked: a hidden tern probes too now.
                    self.probing = self.sightings.is_some();
                    self.rescan();
                    self.speak().await;
                    let now = Instant::now();
                    burst = BURST.iter().map(|d| now + *d).collect();
                }
                received = recv(self.shared.as_ref(), &mut shared_buf) => {
                    self.on_datagram(received, &shared_buf).await;
                }
                received = self.own.recv_from(&mut own_buf) => {
                    self.on_datagram(received, &own_buf).await;
                }
                () = sleep_until(next_burst) => {
                    burst.remove(0);
                    self.speak().await;
                }
                () = tokio::time::sleep_until(next_announce), if self.settings.me.is_some() => {
                    self.rescan();
                    self.announce().await;
                    next_announce = Instant::now() + self.next_gap();
                }
                () = sleep_until(expiry) => {
                    let gone = self.table.expire(std::time::Instant::now());
                    self.report(gone).await;
                }
            }
        }
        if self.settings.me.is_some() {
            let bye = Datagram::Goodbye {
                instance: self.instance,
            }
            .encode();
            for iface in &self.ifaces {
                sockets::to_link(
                    &self.own,
                    &bye,
                    iface,
                    self.settings.group,
                    self.settings.port,
                )
                .await;
            }
        }
    }

    /// Take the interfaces as they are now (a Wi-Fi joined, a cable plugged in, a new address
    /// from DHCP since we started), joining the group on new ones.
    fn rescan(&mut self) {
        let Ok(choice) = self.settings.interfaces() else {
            return;
        };
        if choice.used == self.ifaces {
            return;
        }
        let mut unjoined = Vec::new();
        if let Some(shared) = &self.shared {
            let group = self.settings.group;
            for gone in self.ifaces.iter().filter(|i| !choice.used.contains(i)) {
                let _ = shared.leave_multicast_v4(group, gone.ip);
            }
            let new = choice.used.iter().filter(|i| !self.ifaces.contains(i));
            unjoined.extend(new.filter_map(|i| sockets::join(shared, group, i)));
        }
        tracing::info!(
            ifaces = ?choice.used.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
            "discovery interfaces changed"
        );
        self.tried.send_modify(|tried| {
            // What failed on an interface still in use stays true.
            tried
                .unjoined
                .retain(|(name, _)| choice.used.iter().any(|i| &i.name == name));
            tried.unjoined.extend(unjoined);
            tried.choice = choice.clone();
        });
        self.ifaces = choice.used;
    }

    /// Until the next periodic announce: between two thirds of the interval and all of it.
    fn next_gap(&mut self) -> Duration {
        // xorshift: spread, not secret.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let third = self.settings.interval.as_millis() as u64 / 3;
        self.settings.interval - Duration::from_millis(self.jitter % (third + 1))
    }

    /// What this tern says of itself, if it announces.
    fn announce_datagram(&self) -> Option<Vec<u8>> {
        let me = self.settings.me.as_ref()?;
        // The longest wait before our next announce, in whole seconds rounded up.
        let interval = self.settings.interval.as_millis().div_ceil(1000);
        Some(
            Datagram::Announce(Announce {
                instance: self.instance,
                port: me.port,
                version: me.version,
                caps: me.caps,
                interval: u16::try_from(interval).unwrap_or(u16::MAX),
                fingerprint: me.fingerprint.clone(),
                name: me.name.clone(),
            })
            .encode(),
        )
    }

    async fn announce(&self) {
        if let Some(bytes) = self.announce_datagram() {
            self.to_every_link(&bytes).await;
        }
    }

    /// Announce (if we do) and probe (if we look).
    async fn speak(&self) {
        self.announce().await;
        if self.probing {
            let probe = Datagram::Probe {
                instance: self.instance,
            }
            .encode();
            self.to_every_link(&probe).await;
        }
    }

    async fn to_every_link(&self, bytes: &[u8]) {
        for iface in &self.ifaces {
            sockets::to_link(
                &self.own,
                bytes,
                iface,
                self.settings.group,
                self.settings.port,
            )
            .await;
        }
    }

    async fn on_datagram(&mut self, received: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        let (n, from) = match received {
            Ok(received) => received,
            Err(e) => {
                // Windows reports an earlier datagram's ICMP "port unreachable" here; anything
                // else is as passing. A short pause keeps a lasting error from spinning.
                tracing::debug!(error = %e, "discovery receive");
                if e.kind() != std::io::ErrorKind::ConnectionReset {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                return;
            }
        };
        let SocketAddr::V4(from) = from else {
            return;
        };
        // Only from the subnets we speak on: not from a container bridge or a VPN left out.
        if !self.ifaces.iter().any(|i| i.holds(*from.ip())) {
            tracing::trace!(%from, "discovery datagram from outside our subnets");
            return;
        }
        let datagram = match Datagram::decode(&buf[..n.min(buf.len())]) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(%from, error = %e, "not a discovery datagram");
                return;
            }
        };
        if datagram.instance() == self.instance {
            return;
        }
        match datagram {
            Datagram::Announce(a) => {
                // Another tern of ours on this machine: our key, from one of our addresses.
                // (Machines that share one key, copied or in a test, are still each other's
                // peers.)
                let ours = self.settings.mine.as_deref();
                if !a.fingerprint.is_empty()
                    && ours == Some(a.fingerprint.as_str())
                    && self.ifaces.iter().any(|i| i.ip == *from.ip())
                {
                    return;
                }
                let heard = self.table.heard(&a, *from.ip(), std::time::Instant::now());
                self.report(heard).await;
            }
            Datagram::Goodbye { instance } => {
                let gone = self.table.goodbye(instance);
                self.report(gone.into_iter().collect()).await;
            }
            Datagram::Probe { .. } => self.answer(from).await,
        }
    }

    /// Answer a probe from `from` with our announce, to it alone.
    async fn answer(&mut self, from: SocketAddrV4) {
        let Some(bytes) = self.announce_datagram() else {
            return;
        };
        let now = Instant::now();
        if self
            .answered
            .get(&from)
            .is_some_and(|at| now.duration_since(*at) < ANSWER_GAP)
        {
            return;
        }
        if self.answered.len() >= ANSWERED_MAX {
            self.answered
                .retain(|_, at| now.duration_since(*at) < ANSWER_GAP);
        }
        if self.answered.len() < ANSWERED_MAX {
            self.answered.insert(from, now);
        }
        sockets::send(&self.own, &bytes, from, "").await;
    }

    async fn report(&self, sightings: Vec<Sighting>) {
        let Some(tx) = &self.sightings else {
            return;
        };
        for s in sightings {
            tracing::debug!(sighting = ?s, "discovery");
            if tx.send(s).await.is_err() {
                return;
            }
        }
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

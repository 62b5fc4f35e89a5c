//! LAN discovery: a listening tern announces itself on UDP (multicast to a link-local group,
//! and broadcast on each interface's subnet), answers probes, and hears the others. One task
//! owns the sockets; a UI asks it to refresh and reads [`Sighting`]s. Discovery never opens a
//! connection: it only says who is there.

pub mod interfaces;
mod lookup;
mod sockets;
pub mod table;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::protocol::discovery::{self as wire, Announce, Datagram, Instance};
use crate::session::{OfferPolicy, SessionConfig};
pub use interfaces::{Choice, Iface};
pub use lookup::{NAME_WAIT, line, look, named, target};
pub use table::{Found, Sighting};

/// The longest wait between announces; each waits between two thirds of it and all of it (so
/// peers that started together do not stay in step): 30 to 45 s.
pub const INTERVAL: Duration = Duration::from_secs(45);
/// The announce interval for this run, when set (tests, or a network that wants it quieter).
pub const INTERVAL_VAR: &str = "TERN_ANNOUNCE_INTERVAL";
/// Another UDP port for discovery in this run: tests that run side by side on one host and
/// must not list each other.
pub const PORT_VAR: &str = "TERN_DISCOVERY_PORT";
/// On start and on a refresh, datagrams go out at these times (after the first): one lost
/// datagram on a busy Wi-Fi does not hide anyone.
const BURST: [Duration; 2] = [Duration::from_millis(500), Duration::from_millis(1500)];
/// A probe from one address is answered at most this often.
const ANSWER_GAP: Duration = Duration::from_millis(250);
/// Addresses whose last answer is remembered, at most.
const ANSWERED_MAX: usize = 256;
/// Sightings waiting for the UI.
const SIGHTINGS: usize = 64;
/// How long a goodbye may take when discovery stops.
const GOODBYE: Duration = Duration::from_secs(1);

/// How this tern shows itself to others.
#[derive(Clone, Debug)]
pub struct Me {
    pub name: String,
    /// The TCP port its listener serves.
    pub port: u16,
    pub version: u16,
    pub caps: u32,
    pub fingerprint: String,
}

impl Me {
    /// A listener on `port` serving sessions made from `config`; `None` for a raw listener
    /// (nc's peer, not a tern's).
    pub fn listener(config: &SessionConfig, port: u16, caps: u32) -> Option<Me> {
        if config.raw {
            return None;
        }
        let (version, fingerprint) = match config.security.identity() {
            Some(identity) => (crate::protocol::VERSION, identity.fingerprint().to_string()),
            None => (crate::protocol::PLAIN_VERSION, String::new()),
        };
        let files = match config.offers {
            OfferPolicy::DeclineAll(_) => 0,
            _ => wire::caps::FILES,
        };
        Some(Me {
            name: config.name.clone(),
            port,
            version,
            caps: caps | files,
            fingerprint,
        })
    }
}

/// What the command line asks of discovery: `--iface`, and whether to announce
/// (`--no-announce` says not).
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    pub ifaces: Vec<String>,
    pub announce: bool,
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// Interfaces named with `--iface`; empty: every one that looks like the LAN.
    pub ifaces: Vec<String>,
    /// `None`: never announce nor answer probes (`tern peers`, `--no-announce`, a tern that
    /// does not listen).
    pub me: Option<Me>,
    /// Probe on start and report what is heard; false for a tern that only announces.
    pub looking: bool,
    /// This machine's fingerprint: terns with our own key (another of our processes) are not
    /// listed.
    pub mine: Option<String>,
    pub interval: Duration,
    pub port: u16,
    pub group: Ipv4Addr,
}

impl Settings {
    pub fn new(ifaces: Vec<String>, me: Option<Me>, looking: bool) -> Self {
        Self {
            mine: me.as_ref().map(|m| m.fingerprint.clone()),
            ifaces,
            me,
            looking,
            interval: interval_from_env(),
            port: std::env::var(PORT_VAR)
                .ok()
                .and_then(|v| v.trim().parse::<u16>().ok())
                .filter(|&p| p > 0)
                .unwrap_or(wire::PORT),
            group: wire::GROUP,
        }
    }
}

impl Wanted {
    /// Discovery for a listener on `port` serving `config`'s sessions: announcing unless told
    /// not to (or raw), and `looking` for others when someone will read what it hears.
    pub fn listener(
        &self,
        config: &SessionConfig,
        port: u16,
        caps: u32,
        looking: bool,
    ) -> Settings {
        let me = if self.announce {
            Me::listener(config, port, caps)
        } else {
            None
        };
        Settings::new(self.ifaces.clone(), me, looking)
    }
}

/// [`INTERVAL`], or whole seconds from [`INTERVAL_VAR`].
fn interval_from_env() -> Duration {
    std::env::var(INTERVAL_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| (1..=3600).contains(&s))
        .map_or(INTERVAL, Duration::from_secs)
}

/// What was tried, for saying why nobody was found.
#[derive(Clone, Debug)]
pub struct Tried {
    pub choice: Choice,
    pub group: Ipv4Addr,
    pub port: u16,
    pub problems: Vec<String>,
}

impl Tried {
    /// Why nobody may have answered, and what works without discovery: several lines.
    pub fn explain(&self) -> String {
        let used = if self.choice.used.is_empty() {
            "none (no interface looks like a LAN; name one with --iface NAME)".to_string()
        } else {
            self.choice
                .used
                .iter()
                .map(|i| match i.broadcast {
                    Some(b) => format!("{i}, broadcast {b}"),
                    None => i.to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let mut out = format!(
            "  interfaces tried: {used}\n  multicast group {}, UDP port {}",
            self.group, self.port
        );
        if !self.choice.skipped.is_empty() {
            let skipped: Vec<String> = self
                .choice
                .skipped
                .iter()
                .map(|(name, why)| format!("{name} ({why})"))
                .collect();
            out.push_str(&format!(
                "\n  skipped: {}; --iface NAME uses one anyway",
                skipped.join(", ")
            ));
        }
        for problem in &self.problems {
            out.push_str(&format!("\n  problem: {problem}"));
        }
        out.push_str(&format!(
            "\nUsual causes:\n  \
             - the Wi-Fi access point isolates clients from each other (guest networks often do);\n  \
             - a firewall drops UDP port {} here or on the other machine;\n  \
             - the other tern is on another subnet, or runs with --no-announce.\n\
             Discovery is only a convenience: `tern connect HOST` and `tern send HOST` work \
             without it, by address or host name.",
            self.port
        ));
        out
    }
}

/// The running discovery: ask it to refresh, read what it hears, stop it (saying goodbye).
pub struct Discovery {
    refresh: mpsc::Sender<Option<String>>,
    pub sightings: mpsc::Receiver<Sighting>,
    pub tried: Tried,
    stop: CancellationToken,
    /// Dropped without `stop`, it ends all the same.
    _ends: tokio_util::sync::DropGuard,
    task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    /// Open the sockets and start. An error: an `--iface` that does not exist, or no UDP
    /// socket at all.
    pub fn start(settings: Settings) -> Result<Discovery, String> {
        let candidates = interfaces::candidates()
            .map_err(|e| format!("cannot list the network interfaces: {e}"))?;
        let choice = interfaces::choose(&candidates, &settings.ifaces)?;
        let sockets = sockets::open(settings.port, settings.group, &choice.used)
            .map_err(|e| format!("cannot open a UDP socket for discovery: {e}"))?;
        let tried = Tried {
            choice: choice.clone(),
            group: settings.group,
            port: settings.port,
            problems: sockets.problems,
        };
        let (refresh_tx, refresh_rx) = mpsc::channel(4);
        let (sightings_tx, sightings_rx) = mpsc::channel(SIGHTINGS);
        let stop = CancellationToken::new();
        let instance = random_instance();
        tracing::info!(
            instance = format!("{instance:016x}"),
            ifaces = ?choice.used.iter().map(|i| &i.name).collect::<Vec<_>>(),
            announcing = settings.me.is_some(),
            "discovery started"
        );
        let actor = Actor {
            instance,
            ifaces: choice.used,
            shared: sockets.shared,
            own: sockets.own,
            sightings: settings.looking.then_some(sightings_tx),
            table: table::Table::default(),
            answered: std::collections::HashMap::new(),
            jitter: instance,
            settings,
        };
        let task = tokio::spawn(actor.run(refresh_rx, stop.clone()));
        Ok(Discovery {
            refresh: refresh_tx,
            sightings: sightings_rx,
            tried,
            _ends: stop.clone().drop_guard(),
            stop,
            task,
        })
    }

    /// As `start`, but only an `--iface` that does not exist is an error: tern works without
    /// discovery, so any other failure is handed to `say` (with what it means) and gives
    /// `None`.
    pub fn start_or_say(
        settings: Settings,
        say: impl FnOnce(String),
    ) -> Result<Option<Discovery>, String> {
        let explicit = !settings.ifaces.is_empty();
        match Discovery::start(settings) {
            Ok(discovery) => Ok(Some(discovery)),
            Err(e) if explicit => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "no discovery");
                say(format!("{e}; discovery is off (peers connect by address)"));
                Ok(None)
            }
        }
    }

    /// Probe and announce again now (and in a short burst after).
    pub fn refresh(&self) {
        let _ = self.refresh.try_send(None);
    }

    /// Announce under a new name from now on (and at once).
    pub fn rename(&self, name: String) {
        let _ = self.refresh.try_send(Some(name));
    }

    /// Say goodbye (when announcing) and end.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(GOODBYE, self.task).await;
    }
}

fn random_instance() -> Instance {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    // The system's generator failing is not a reason to stay hidden: the clock and the
    // process id still differ between runs and hosts.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return nanos ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_be_bytes(bytes)
}

struct Actor {
    settings: Settings,
    instance: Instance,
    ifaces: Vec<Iface>,
    shared: Option<UdpSocket>,
    own: UdpSocket,
    sightings: Option<mpsc::Sender<Sighting>>,
    table: table::Table,
    /// When each address last had an answer to its probe.
    answered: std::collections::HashMap<SocketAddrV4, Instant>,
    /// State of the generator that spreads announces out.
    jitter: u64,
}

impl Actor {
    async fn run(mut self, mut refresh: mpsc::Receiver<Option<String>>, stop: CancellationToken) {
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
        if self.sightings.is_some() {
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
                let ours = self.settings.mine.as_deref();
                if !a.fingerprint.is_empty() && ours == Some(a.fingerprint.as_str()) {
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

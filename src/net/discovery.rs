//! LAN discovery: a listening tern announces itself on UDP (multicast to a link-local group,
//! and broadcast on each interface's subnet), answers probes, and hears the others. One task
//! owns the sockets; a UI asks it to refresh and reads [`Sighting`]s. Discovery never opens a
//! connection: it only says who is there.

mod actor;
pub mod interfaces;
mod lookup;
mod sockets;
pub mod table;

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::protocol::discovery::{self as wire, Instance};
use crate::session::{OfferPolicy, SessionConfig};
pub use interfaces::{Choice, Iface};
pub use lookup::{LOOK, line, look, named, target};
pub use table::{Found, Sighting};

/// The longest wait between announces; each waits between two thirds of it and all of it (so
/// peers that started together do not stay in step): 30 to 45 s.
pub const INTERVAL: Duration = Duration::from_secs(45);
/// The announce interval for this run, when set (tests, or a network that wants it quieter).
pub const INTERVAL_VAR: &str = "TERN_ANNOUNCE_INTERVAL";
/// Another UDP port for discovery in this run: tests that run side by side on one host and
/// must not list each other.
pub const PORT_VAR: &str = "TERN_DISCOVERY_PORT";
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
    /// Send nothing until asked (`--no-announce`): others are heard when they announce, and
    /// probed only on a refresh.
    pub hidden: bool,
    /// The one address the listener serves (`--bind`): only its interface is used.
    pub bound: Option<std::net::IpAddr>,
    /// This machine's fingerprint: a tern on this machine with our own key (another of our
    /// processes) is not listed.
    pub mine: Option<String>,
    pub interval: Duration,
    pub port: u16,
    pub group: Ipv4Addr,
}

impl Settings {
    pub fn new(ifaces: Vec<String>, me: Option<Me>, looking: bool) -> Self {
        Self {
            mine: None,
            ifaces,
            me,
            looking,
            hidden: false,
            bound: None,
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

/// The fingerprint of the identity `config`'s sessions speak as (none under `--insecure`).
pub fn fingerprint_of(config: &SessionConfig) -> Option<String> {
    config
        .security
        .identity()
        .map(|i| i.fingerprint().to_string())
}

impl Wanted {
    /// Discovery for a listener on `port` serving `config`'s sessions: announcing unless told
    /// not to (or raw), and `looking` for others when someone will read what it hears.
    pub fn listener(
        &self,
        config: &SessionConfig,
        listening: std::net::SocketAddr,
        caps: u32,
        looking: bool,
    ) -> Settings {
        let me = if self.announce {
            Me::listener(config, listening.port(), caps)
        } else {
            None
        };
        let mut settings = Settings::new(self.ifaces.clone(), me, looking);
        // Bound to one address (`--bind`): peers can reach us only there.
        if !listening.ip().is_unspecified() {
            settings.bound = Some(listening.ip());
        }
        settings.hidden = !self.announce;
        settings.mine = fingerprint_of(config);
        settings
    }
}

impl Settings {
    /// The interfaces to use now: those `--iface` names or the LAN's, and of those only the
    /// one holding the address a `--bind` listener serves.
    pub(crate) fn interfaces(&self) -> Result<Choice, String> {
        let candidates = interfaces::candidates()
            .map_err(|e| format!("cannot list the network interfaces: {e}"))?;
        let mut choice = interfaces::choose(&candidates, &self.ifaces)?;
        if let Some(bound) = self.bound {
            let (used, elsewhere): (Vec<Iface>, Vec<Iface>) = choice
                .used
                .into_iter()
                .partition(|i| std::net::IpAddr::V4(i.ip) == bound);
            choice.used = used;
            for iface in elsewhere {
                choice
                    .skipped
                    .push((iface.name, "not the address tern listens on (--bind)"));
            }
        }
        Ok(choice)
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

/// At `at`; never, without it (a timer that may be off, in a `select!`).
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What was tried, for saying why nobody was found.
#[derive(Clone, Debug)]
pub struct Tried {
    pub choice: Choice,
    pub group: Ipv4Addr,
    pub port: u16,
    pub problems: Vec<String>,
    /// Interfaces in use on which the group could not be joined, and why.
    pub unjoined: Vec<(String, String)>,
}

impl Tried {
    /// Why nobody may have answered, and what works without discovery: several lines.
    pub fn explain(&self) -> String {
        self.explain_then(
            "Discovery is only a convenience: `tern connect HOST` and `tern send HOST` work \
             without it, by address or host name.",
        )
    }

    /// As [`Self::explain`], ending with `without`: what works without discovery, in the
    /// words of where it is read.
    pub fn explain_then(&self, without: &str) -> String {
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
        for (iface, why) in &self.unjoined {
            out.push_str(&format!(
                "\n  problem: {iface} could not join {}: {why}",
                self.group
            ));
        }
        out.push_str(&format!(
            "\nUsual causes:\n  \
             - the Wi-Fi access point isolates clients from each other (guest networks often do);\n  \
             - a firewall drops UDP port {} here or on the other machine;\n  \
             - the other tern is on another subnet, or runs with --no-announce.\n\
             {without}",
            self.port
        ));
        out
    }
}

/// The running discovery: ask it to refresh, read what it hears, stop it (saying goodbye).
pub struct Discovery {
    refresh: mpsc::Sender<Option<String>>,
    pub sightings: mpsc::Receiver<Sighting>,
    /// What is tried now: the actor updates it when the interfaces change.
    tried: watch::Receiver<Tried>,
    stop: CancellationToken,
    /// Dropped without `stop`, it ends all the same.
    _ends: tokio_util::sync::DropGuard,
    task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    /// Open the sockets and start. An error: an `--iface` that does not exist, or no UDP
    /// socket at all.
    pub fn start(settings: Settings) -> Result<Discovery, String> {
        let choice = settings.interfaces()?;
        let sockets = sockets::open(settings.port, settings.group, &choice.used)
            .map_err(|e| format!("cannot open a UDP socket for discovery: {e}"))?;
        let (tried_tx, tried) = watch::channel(Tried {
            choice: choice.clone(),
            group: settings.group,
            port: settings.port,
            problems: sockets.problems,
            unjoined: sockets.unjoined,
        });
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
        let actor = actor::Actor {
            instance,
            ifaces: choice.used,
            shared: sockets.shared,
            own: sockets.own,
            sightings: settings.looking.then_some(sightings_tx),
            probing: settings.looking && !settings.hidden,
            table: table::Table::default(),
            answered: std::collections::HashMap::new(),
            jitter: instance,
            tried: tried_tx,
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

    /// What is tried now, for saying why nobody was found.
    pub fn tried(&self) -> Tried {
        self.tried.borrow().clone()
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

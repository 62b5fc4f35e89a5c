//! The command-line contract. Later issues and outside checks rely on these exact names.
//!
//! Each command takes only the options that do something there, so its `--help` lists no
//! dead ones. Options written before the command (`tern --yes recv`) are still accepted when
//! the command takes them, and refused with a clear error when it does not.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::crypto::ExpectedFingerprint;
use crate::text::Encoding;

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 8989;

/// Default address to listen on.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[derive(Debug, Parser)]
#[command(
    name = "tern",
    version,
    about = "Chat and move files between two machines over one TCP connection.",
    long_about = "Chat and move files between two machines over one TCP connection.\n\n\
        With no command, tern opens its terminal UI and waits for a peer on 0.0.0.0:8989 \
        (like `tern listen`). `tern send` and `tern recv` are headless and scriptable, like \
        netcat: each line on stdin (a pipe, a file, or typed at the terminal until Ctrl-D) is \
        sent as one message, each incoming message is printed to stdout as one line, and \
        progress, offers and errors go to stderr. With --raw, tern talks to plain TCP peers \
        such as nc or a Python socket. Each command's --help lists the options it takes.",
    after_help = "Examples:\n  \
        tern recv --yes --download-dir ~/inbox        receive files, accepting every offer\n  \
        tern send 192.168.1.20 photos/ notes.txt      send a folder and a file\n  \
        echo hello | tern send 192.168.1.20           send one chat line\n  \
        printf '你好\\n' | tern send --raw --encoding gbk 10.0.0.5:9000   talk GBK to a plain socket"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Mode>,

    #[command(flatten)]
    pub before: BareOptions,
}

/// The options of bare `tern` (the UI, listening), which may also be written before a command
/// that takes them.
#[derive(Debug, Clone, Default, Args)]
pub struct BareOptions {
    #[command(flatten)]
    pub listen: ListenArgs,

    #[command(flatten)]
    pub talk: TalkOptions,

    #[command(flatten)]
    pub raw: RawOption,

    #[command(flatten)]
    pub receive: ReceiveOptions,

    #[command(flatten)]
    pub iface: IfaceOption,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Open the terminal UI and serve any number of peers (up to 64 at once).
    Listen {
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        talk: TalkOptions,
        #[command(flatten)]
        raw: RawOption,
        #[command(flatten)]
        receive: ReceiveOptions,
        #[command(flatten)]
        iface: IfaceOption,
    },
    /// Open the terminal UI connected to a peer.
    Connect {
        /// The peer, as HOST or HOST:PORT (default port 8989), or the display name of a tern
        /// found on the LAN.
        target: String,
        #[command(flatten)]
        talk: TalkOptions,
        #[command(flatten)]
        raw: RawOption,
        #[command(flatten)]
        receive: ReceiveOptions,
        #[command(flatten)]
        iface: IfaceOption,
    },
    /// Open the terminal UI connected to a built-in demo peer: try every feature alone.
    ///
    /// The demo peer speaks tern (it chats and offers files), so there is no --raw here.
    Demo {
        #[command(flatten)]
        talk: TalkOptions,
        #[command(flatten)]
        receive: ReceiveOptions,
    },
    /// Headless: connect, send the files and folders (folders recursively), chat from stdin;
    /// exit 0 once stdin has ended and the receiver has verified every file.
    ///
    /// Files the peer offers back are declined (use `tern recv` to receive). With --raw, the
    /// end of stdin half-closes the connection and tern exits once the peer closes.
    Send {
        /// The peer, as HOST or HOST:PORT (default port 8989), or the display name of a tern
        /// found on the LAN.
        target: String,
        /// Files and folders to send; folders keep their relative paths.
        paths: Vec<PathBuf>,
        /// Reconnect this many times when the connection is refused, reset or drops; each
        /// file resumes from what the receiver already has.
        #[arg(long, default_value_t = 3, value_name = "N")]
        retries: u32,
        /// Print every event on stdout as one JSON object per line (see README).
        #[arg(long)]
        json: bool,
        /// Talk only to the peer whose key has this fingerprint (as `tern id` prints it);
        /// any other: exit non-zero, having sent nothing.
        #[arg(long, value_name = "FP")]
        peer_fingerprint: Option<ExpectedFingerprint>,
        #[command(flatten)]
        talk: TalkOptions,
        #[command(flatten)]
        raw: RawOption,
        #[command(flatten)]
        iface: IfaceOption,
    },
    /// Headless: wait for peers, any number at once; print their messages, save their files
    /// (with --yes), say each line of stdin to every connected peer. Without --yes every offer
    /// is declined and the sender is told why.
    Recv {
        #[command(flatten)]
        listen: ListenArgs,
        /// Exit once the first peer to connect has left and no other is connected (0 if
        /// nothing failed).
        #[arg(long)]
        once: bool,
        /// Print every event on stdout as one JSON object per line (see README).
        #[arg(long)]
        json: bool,
        /// Accept only the peer whose key has this fingerprint (as `tern id` prints it); any
        /// other is turned away with nothing sent, and tern exits non-zero.
        #[arg(long, value_name = "FP")]
        peer_fingerprint: Option<ExpectedFingerprint>,
        #[command(flatten)]
        talk: TalkOptions,
        #[command(flatten)]
        raw: RawOption,
        #[command(flatten)]
        receive: ReceiveOptions,
        #[command(flatten)]
        iface: IfaceOption,
    },
    /// List the terns on the LAN that answer within a moment: `NAME  IP:PORT  FINGERPRINT`,
    /// one per line, as each answers. Exit 0 even when none does (stderr then says what was
    /// tried and why nobody may have answered).
    Peers {
        /// Listen this many seconds for answers.
        #[arg(long, value_name = "SECS", default_value = "2", value_parser = parse_wait)]
        wait: std::time::Duration,
        /// One JSON object per line: {"name","addr","port","fingerprint","version"}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        iface: IfaceOption,
    },
    /// Print the stored conversations, oldest first: time, direction, peer, text (and file
    /// events). Only PEER's when given.
    History {
        /// A peer's display name.
        peer: Option<String>,
        /// The last N entries only.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only messages matching TEXT (words, "a phrase", prefix*).
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// One JSON object per line (see README).
        #[arg(long)]
        json: bool,
    },
    /// Print this machine's fingerprint (made on first use) on the first line, then where its
    /// key is kept.
    Id,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ListenArgs {
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// Port to listen on [default: 8989].
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Stay off the LAN's lists: do not announce this tern, answer discovery probes nor probe
    /// by itself (peers can still connect by address).
    #[arg(long)]
    pub no_announce: bool,
}

/// Which network interfaces discovery uses: every command that finds or announces peers.
#[derive(Debug, Clone, Default, Args)]
pub struct IfaceOption {
    /// Use this interface for discovery (repeatable), even one skipped by default (loopback,
    /// tunnels, VPNs, container and VM bridges) [default: every LAN interface].
    #[arg(long = "iface", value_name = "NAME")]
    pub ifaces: Vec<String>,
}

/// Who we are to the peer and how our text is encoded: every command that talks takes these.
#[derive(Debug, Clone, Default, Args)]
pub struct TalkOptions {
    /// Display name sent to the peer [default: user@host].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// How outgoing text is encoded: utf-8 (default) or gbk. With a raw peer and no
    /// --encoding, tern answers in the encoding it detects from the peer.
    #[arg(long, value_name = "ENC")]
    pub encoding: Option<Encoding>,

    /// Keep no history of this run (messages and transfers are not stored).
    #[arg(long)]
    pub no_history: bool,
}

/// How the peer is spoken to; not for the demo, whose peer is a tern like this one.
#[derive(Debug, Clone, Default, Args)]
pub struct RawOption {
    /// No framing: plain bytes both ways, for nc or a Python socket peer.
    #[arg(long)]
    pub raw: bool,

    /// Speak tern's protocol without encryption (version 1), to a tern also run with
    /// --insecure: for benchmarks, debugging and old hardware. Anyone on the network can read
    /// and alter such a session.
    #[arg(long)]
    pub insecure: bool,
}

/// What to do with files the peer offers: only for commands that receive files.
#[derive(Debug, Clone, Default, Args)]
pub struct ReceiveOptions {
    /// Where received files go [default: the user's download folder].
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,

    /// Accept every file offer without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Refuse offered files larger than SIZE (e.g. 500M, 2G, 1.5GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,

    /// Refuse offers once SIZE in total has been accepted in one session.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_total: Option<u64>,
}

/// What to run, once the command line is parsed and the options written before the command
/// have joined the command's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The UI, waiting for a peer (`tern`, `tern listen`).
    Listen(SocketAddr),
    Connect(String),
    Demo,
    Send {
        target: String,
        paths: Vec<PathBuf>,
        retries: u32,
        json: bool,
        peer_fingerprint: Option<ExpectedFingerprint>,
    },
    Recv {
        bind: SocketAddr,
        once: bool,
        json: bool,
        peer_fingerprint: Option<ExpectedFingerprint>,
    },
    History {
        peer: Option<String>,
        limit: Option<usize>,
        search: Option<String>,
        json: bool,
    },
    Peers {
        wait: std::time::Duration,
        json: bool,
    },
    Id,
}

/// Every session option of one invocation, whatever command it came with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub name: Option<String>,
    pub encoding: Option<Encoding>,
    pub no_history: bool,
    pub raw: bool,
    pub insecure: bool,
    pub download_dir: Option<PathBuf>,
    pub yes: bool,
    pub max_file_size: Option<u64>,
    pub max_total: Option<u64>,
    /// `--iface`: the interfaces discovery uses (empty: every LAN one).
    pub ifaces: Vec<String>,
    pub no_announce: bool,
}

impl Options {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(default_name)
    }

    pub fn download_dir(&self) -> PathBuf {
        self.download_dir
            .clone()
            .unwrap_or_else(default_download_dir)
    }

    /// The command's own options, with those written before the command filling the gaps.
    fn new(
        talk: TalkOptions,
        raw: RawOption,
        receive: ReceiveOptions,
        iface: IfaceOption,
        before: BareOptions,
    ) -> Self {
        let ifaces = if iface.ifaces.is_empty() {
            before.iface.ifaces
        } else {
            iface.ifaces
        };
        Self {
            ifaces,
            no_announce: before.listen.no_announce,
            name: talk.name.or(before.talk.name),
            encoding: talk.encoding.or(before.talk.encoding),
            no_history: talk.no_history || before.talk.no_history,
            raw: raw.raw || before.raw.raw,
            insecure: raw.insecure || before.raw.insecure,
            download_dir: receive.download_dir.or(before.receive.download_dir),
            yes: receive.yes || before.receive.yes,
            max_file_size: receive.max_file_size.or(before.receive.max_file_size),
            max_total: receive.max_total.or(before.receive.max_total),
        }
    }
}

impl Options {
    /// A listener's `--no-announce`, written before or after its command.
    fn announce(mut self, listen: &ListenArgs) -> Self {
        self.no_announce |= listen.no_announce;
        self
    }
}

impl ListenArgs {
    fn addr(&self, before: &ListenArgs) -> SocketAddr {
        SocketAddr::new(
            self.bind.or(before.bind).unwrap_or(DEFAULT_BIND),
            self.port.or(before.port).unwrap_or(DEFAULT_PORT),
        )
    }
}

impl BareOptions {
    /// The first option given here that a command taking `takes` does not take.
    fn misplaced(&self, takes: Takes) -> Option<&'static str> {
        let given = [
            ("--name", self.talk.name.is_some(), takes.talk),
            ("--encoding", self.talk.encoding.is_some(), takes.talk),
            ("--no-history", self.talk.no_history, takes.talk),
            ("--bind", self.listen.bind.is_some(), takes.listen),
            ("--port", self.listen.port.is_some(), takes.listen),
            ("--no-announce", self.listen.no_announce, takes.listen),
            ("--iface", !self.iface.ifaces.is_empty(), takes.iface),
            ("--raw", self.raw.raw, takes.raw),
            ("--insecure", self.raw.insecure, takes.raw),
            (
                "--download-dir",
                self.receive.download_dir.is_some(),
                takes.receive,
            ),
            ("--yes", self.receive.yes, takes.receive),
            (
                "--max-file-size",
                self.receive.max_file_size.is_some(),
                takes.receive,
            ),
            (
                "--max-total",
                self.receive.max_total.is_some(),
                takes.receive,
            ),
        ];
        given
            .into_iter()
            .find(|&(_, given, taken)| given && !taken)
            .map(|(flag, ..)| flag)
    }
}

/// Which groups of options a command takes (`talk`: `--name`, `--encoding`, `--no-history`,
/// which every command that talks to a peer takes).
#[derive(Clone, Copy)]
struct Takes {
    talk: bool,
    listen: bool,
    raw: bool,
    receive: bool,
    iface: bool,
}

impl Cli {
    /// What to run, and with which options. An option written before a command that does not
    /// take it is a usage error, as it is after the command: silently ignoring the `--yes` of
    /// `tern --yes send` would mislead.
    pub fn into_action(self) -> Result<(Action, Options), clap::Error> {
        let Cli { command, before } = self;
        let Some(command) = command else {
            let action = Action::Listen(before.listen.addr(&ListenArgs::default()));
            let no_announce = before.listen.no_announce;
            let BareOptions {
                talk,
                raw,
                receive,
                iface,
                ..
            } = before;
            let mut options = Options::new(talk, raw, receive, iface, BareOptions::default());
            options.no_announce = no_announce;
            return Ok((action, options));
        };
        let (name, takes) = match &command {
            Mode::Listen { .. } => (
                "listen",
                Takes {
                    talk: true,
                    listen: true,
                    raw: true,
                    receive: true,
                    iface: true,
                },
            ),
            Mode::Recv { .. } => (
                "recv",
                Takes {
                    talk: true,
                    listen: true,
                    raw: true,
                    receive: true,
                    iface: true,
                },
            ),
            Mode::Connect { .. } => (
                "connect",
                Takes {
                    talk: true,
                    listen: false,
                    raw: true,
                    receive: true,
                    iface: true,
                },
            ),
            Mode::Demo { .. } => (
                "demo",
                Takes {
                    talk: true,
                    listen: false,
                    raw: false,
                    receive: true,
                    iface: false,
                },
            ),
            Mode::Send { .. } => (
                "send",
                Takes {
                    talk: true,
                    listen: false,
                    raw: true,
                    receive: false,
                    iface: true,
                },
            ),
            Mode::History { .. } => (
                "history",
                Takes {
                    talk: false,
                    listen: false,
                    raw: false,
                    receive: false,
                    iface: false,
                },
            ),
            Mode::Peers { .. } => (
                "peers",
                Takes {
                    talk: false,
                    listen: false,
                    raw: false,
                    receive: false,
                    iface: true,
                },
            ),
            Mode::Id => (
                "id",
                Takes {
                    talk: false,
                    listen: false,
                    raw: false,
                    receive: false,
                    iface: false,
                },
            ),
        };
        if let Some(flag) = before.misplaced(takes) {
            return Err(Cli::command().error(
                ErrorKind::ArgumentConflict,
                format!("{flag} does not apply to `tern {name}` (see `tern {name} --help`)"),
            ));
        }
        let resolved = match command {
            Mode::Listen {
                listen,
                talk,
                raw,
                receive,
                iface,
            } => (
                Action::Listen(listen.addr(&before.listen)),
                Options::new(talk, raw, receive, iface, before).announce(&listen),
            ),
            Mode::Recv {
                listen,
                once,
                json,
                peer_fingerprint,
                talk,
                raw,
                receive,
                iface,
            } => (
                Action::Recv {
                    bind: listen.addr(&before.listen),
                    once,
                    json,
                    peer_fingerprint,
                },
                Options::new(talk, raw, receive, iface, before).announce(&listen),
            ),
            Mode::Connect {
                target,
                talk,
                raw,
                receive,
                iface,
            } => (
                Action::Connect(target),
                Options::new(talk, raw, receive, iface, before),
            ),
            Mode::Demo { talk, receive } => (
                Action::Demo,
                Options::new(
                    talk,
                    RawOption::default(),
                    receive,
                    IfaceOption::default(),
                    before,
                ),
            ),
            Mode::Peers { wait, json, iface } => (
                Action::Peers { wait, json },
                Options::new(
                    TalkOptions::default(),
                    RawOption::default(),
                    ReceiveOptions::default(),
                    iface,
                    before,
                ),
            ),
            Mode::History {
                peer,
                limit,
                search,
                json,
            } => (
                Action::History {
                    peer,
                    limit,
                    search,
                    json,
                },
                Options::default(),
            ),
            Mode::Id => (Action::Id, Options::default()),
            Mode::Send {
                target,
                paths,
                retries,
                json,
                peer_fingerprint,
                talk,
                raw,
                iface,
            } => (
                Action::Send {
                    target,
                    paths,
                    retries,
                    json,
                    peer_fingerprint,
                },
                Options::new(talk, raw, ReceiveOptions::default(), iface, before),
            ),
        };
        Ok(resolved)
    }
}

/// Seconds, whole or not, up to an hour: how long `tern peers` listens.
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{text} seconds: give 0 to 3600"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `123`, `10K`, `5M`, `2G`, `1.5GiB`, `1T`: binary units, case-insensitive, `B`/`iB` optional.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 500M or 2G)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches('b').trim_end_matches('i');
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("{text:?}: unknown size unit (use K, M, G or T)")),
    };
    let bytes = value * factor as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// `user@host`, from the environment and the kernel's host name.
pub fn default_name() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// The user's download folder, else `~/Downloads`, else the current folder.
pub fn default_download_dir() -> PathBuf {
    directories::UserDirs::new()
        .and_then(|dirs| {
            dirs.download_dir()
                .map(PathBuf::from)
                .or_else(|| Some(dirs.home_dir().join("Downloads")))
        })
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn action(args: &[&str]) -> Result<(Action, Options), clap::Error> {
        Cli::try_parse_from(args)?.into_action()
    }

    #[test]
    fn options_a_command_takes_go_before_or_after_it() -> anyhow::Result<()> {
        let (run, options) = action(&["tern", "--yes", "recv", "--port", "9000", "--once"])?;
        assert!(options.yes);
        assert_eq!(
            run,
            Action::Recv {
                bind: SocketAddr::new(DEFAULT_BIND, 9000),
                once: true,
                json: false,
                peer_fingerprint: None,
            }
        );
        let (run, _) = action(&["tern", "recv", "--json"])?;
        assert!(matches!(run, Action::Recv { json: true, .. }));
        let (run, _) = action(&["tern", "send", "--json", "h"])?;
        assert!(matches!(run, Action::Send { json: true, .. }));
        let (run, options) = action(&["tern", "send", "h:1", "a", "b", "--encoding", "gbk"])?;
        assert_eq!(options.encoding, Some(Encoding::Gbk));
        match run {
            Action::Send { target, paths, .. } => {
                assert_eq!(target, "h:1");
                assert_eq!(paths.len(), 2);
            }
            other => anyhow::bail!("parsed as {other:?}"),
        }
        let (_, options) = action(&["tern", "--raw", "--name", "n", "send", "h"])?;
        assert!(options.raw);
        assert_eq!(options.name.as_deref(), Some("n"));
        let (run, _) = action(&["tern", "--port", "7", "listen", "--bind", "127.0.0.1"])?;
        assert_eq!(run, Action::Listen(SocketAddr::from(([127, 0, 0, 1], 7))));
        Ok(())
    }

    #[test]
    fn options_a_command_does_not_take_are_refused_before_it_too() {
        for args in [
            &["tern", "--yes", "send", "h"][..],
            &["tern", "--download-dir", "d", "send", "h"],
            &["tern", "--raw", "demo"],
            &["tern", "--port", "1", "connect", "h"],
            &["tern", "send", "--yes", "h"],
            &["tern", "demo", "--raw"],
        ] {
            assert!(action(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn bare_tern_listens_on_the_default_port() -> anyhow::Result<()> {
        let (run, _) = action(&["tern"])?;
        assert_eq!(run, Action::Listen(SocketAddr::new(DEFAULT_BIND, 8989)));
        Ok(())
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("10K"), Ok(10 * 1024));
        assert_eq!(parse_size("5m"), Ok(5 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
    }

    #[test]
    fn unknown_encodings_are_refused() {
        assert!(action(&["tern", "--encoding", "latin1", "recv"]).is_err());
    }
}

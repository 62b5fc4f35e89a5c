//! The command-line contract. Later issues and outside checks rely on these exact names.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::text::Encoding;

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 8989;

#[derive(Debug, Parser)]
#[command(
    name = "tern",
    version,
    about = "Chat and move files between two machines over one TCP connection.",
    long_about = "Chat and move files between two machines over one TCP connection.\n\n\
        With no command, tern opens its terminal UI and waits for a peer on 0.0.0.0:8989 \
        (like `tern listen`). `tern send` and `tern recv` are headless and scriptable, like \
        netcat: each line on stdin (when stdin is not a terminal) is sent as one message, each \
        incoming message is printed to stdout as one line, and progress, offers and errors go \
        to stderr. With --raw, tern talks to plain TCP peers such as nc or a Python socket.",
    after_help = "Examples:\n  \
        tern recv --yes --download-dir ~/inbox        receive files, accepting every offer\n  \
        tern send 192.168.1.20 photos/ notes.txt      send a folder and a file\n  \
        echo hello | tern send 192.168.1.20           send one chat line\n  \
        printf '你好\\n' | tern send --raw --encoding gbk 10.0.0.5:9000   talk GBK to a plain socket"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Mode>,

    /// Address to listen on when no command is given.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Port to listen on when no command is given.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,

    #[command(flatten)]
    pub common: CommonOptions,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Open the terminal UI and wait for one peer.
    Listen(ListenArgs),
    /// Open the terminal UI connected to a peer.
    Connect {
        /// The peer, as HOST or HOST:PORT (default port 8989).
        target: String,
    },
    /// Open the terminal UI connected to a built-in demo peer: try every feature alone.
    Demo,
    /// Headless: connect, send the files and folders (folders recursively), chat from stdin;
    /// exit 0 once stdin has ended and the receiver has verified every file.
    Send {
        /// The peer, as HOST or HOST:PORT (default port 8989).
        target: String,
        /// Files and folders to send; folders keep their relative paths.
        paths: Vec<PathBuf>,
        /// Reconnect this many times when the connection fails or drops; each file resumes
        /// from what the receiver already has.
        #[arg(long, default_value_t = 3, value_name = "N")]
        retries: u32,
    },
    /// Headless: wait for a peer, print its messages, save its files (with --yes), chat from
    /// stdin. Without --yes every offer is declined and the sender is told why.
    Recv {
        #[command(flatten)]
        listen: ListenArgs,
        /// Exit when the first peer leaves (0 if nothing failed).
        #[arg(long)]
        once: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
}

/// Options every mode takes, before or after the command.
#[derive(Debug, Clone, Args)]
pub struct CommonOptions {
    /// Display name sent to the peer [default: user@host].
    #[arg(long, global = true, value_name = "NAME")]
    pub name: Option<String>,

    /// How outgoing text is encoded: utf-8 (default) or gbk. With a raw peer and no
    /// --encoding, tern answers in the encoding it detects from the peer.
    #[arg(long, global = true, value_name = "ENC")]
    pub encoding: Option<Encoding>,

    /// Where received files go [default: the user's download folder].
    #[arg(long, global = true, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,

    /// Accept every file offer without asking.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// No framing: plain bytes both ways, for nc or a Python socket peer.
    #[arg(long, global = true)]
    pub raw: bool,

    /// Refuse offered files larger than SIZE (e.g. 500M, 2G, 1.5GiB).
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_file_size: Option<u64>,

    /// Refuse offers once SIZE in total has been accepted in one session.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_total: Option<u64>,
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

impl CommonOptions {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(default_name)
    }

    pub fn download_dir(&self) -> PathBuf {
        self.download_dir
            .clone()
            .unwrap_or_else(default_download_dir)
    }
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

    #[test]
    fn common_options_go_before_or_after_the_command() -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(["tern", "--yes", "recv", "--port", "9000", "--once"])?;
        assert!(cli.common.yes);
        let cli = Cli::try_parse_from(["tern", "send", "h:1", "a", "b", "--encoding", "gbk"])?;
        assert_eq!(cli.common.encoding, Some(Encoding::Gbk));
        match cli.command {
            Some(Mode::Send { target, paths, .. }) => {
                assert_eq!(target, "h:1");
                assert_eq!(paths.len(), 2);
            }
            other => anyhow::bail!("parsed as {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn bare_tern_listens_on_the_default_port() -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(["tern"])?;
        assert!(cli.command.is_none());
        assert_eq!(cli.port, 8989);
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
        assert!(Cli::try_parse_from(["tern", "--encoding", "latin1", "recv"]).is_err());
    }
}

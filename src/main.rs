//! `tern`: parse the command line, start logging, run the chosen mode.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;

use tern::cli::{Action, Cli, Options};
use tern::net::discovery::Wanted;
use tern::session::{OfferPolicy, Security, SessionConfig};
use tern::tui::{Start, TuiOptions};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let (action, options) = match Cli::parse().into_action() {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    };
    tern::platform::process::ignore_file_size_signal();
    tern::platform::sched::interactive_thread();
    let _log = tern::logging::init();
    // One thread: the session actor and the stdin/stdout or UI loop hand events to each other
    // constantly, and on one thread that costs no cross-thread wake-up.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tern: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(action, options)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("tern: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(action: Action, options: Options) -> anyhow::Result<ExitCode> {
    if matches!(action, Action::Id | Action::History { .. }) {
        return run_local(action);
    }
    if let Action::Peers { wait, json } = action {
        return tern::headless::peers(options.ifaces, own_fingerprint(), wait, json).await;
    }
    let mut config = session_config(&action, &options)?;
    config.encoding = options.encoding;
    config.raw = options.raw;
    config.max_file_size = options.max_file_size;
    config.max_total = options.max_total;
    config.offers = if options.yes {
        OfferPolicy::AcceptAll
    } else {
        OfferPolicy::Ask
    };
    // Opened before any session; written off the session thread from then on. Not for the
    // demo's made-up peer.
    let (mut history, writer) = match (&action, options.no_history) {
        (Action::History { .. } | Action::Demo | Action::Id, _) | (_, true) => (None, None),
        _ => open_history(),
    };
    let code = match action {
        local @ (Action::Id | Action::History { .. } | Action::Peers { .. }) => run_local(local),
        Action::Send {
            target,
            paths,
            retries,
            json,
            ..
        } => {
            // Nobody would answer an offer here, and the session would wait for that answer.
            config.offers =
                OfferPolicy::DeclineAll("tern send does not receive files; use tern recv".into());
            let history = history.take().map(|(history, _)| history);
            let target = find(target, &options, &config).await?;
            tern::headless::send(&target, paths, config, retries, json, history).await
        }
        Action::Recv {
            bind, once, json, ..
        } => {
            if options.yes {
                create_download_dir(&config.download_dir)?;
            } else {
                config.offers = OfferPolicy::DeclineAll(
                    "the receiver runs headless without --yes and does not accept files".into(),
                );
            }
            let history = history.take().map(|(history, _)| history);
            tern::headless::recv(bind, once, json, config, history, wanted(&options)).await
        }
        Action::Listen(addr) => {
            let listener = bind(addr).await?;
            let local = listener.local_addr()?;
            let settings = wanted(&options).listener(
                &config,
                local,
                tern::protocol::discovery::caps::UI,
                true,
            );
            let discovery = discover(settings)?;
            tui(Start::Listen(listener), config, history.take(), discovery).await
        }
        Action::Connect(target) => {
            let target = find(target, &options, &config).await?;
            // Not listening: nothing to announce, but others are listed.
            let mut settings =
                tern::net::discovery::Settings::new(options.ifaces.clone(), None, true);
            settings.mine = tern::net::discovery::fingerprint_of(&config);
            let discovery = discover(settings)?;
            tui(Start::Connect(target), config, history.take(), discovery).await
        }
        Action::Demo => {
            let dir = std::env::temp_dir().join(format!("tern-demo-{}", std::process::id()));
            let cancel = CancellationToken::new();
            let peer =
                tern::demo::start(dir.join("peer"), config.security.clone(), &cancel).await?;
            if options.download_dir.is_none() {
                config.download_dir = dir.join("downloads");
            }
            let result = tui(Start::Connect(peer.addr.to_string()), config, None, None).await;
            cancel.cancel();
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
    };
    // What is queued for the history is written before tern exits.
    drop(history);
    if let Some(writer) = writer {
        writer.finish();
    }
    code
}

/// What the command line asks of discovery.
fn wanted(options: &Options) -> Wanted {
    Wanted {
        ifaces: options.ifaces.clone(),
        announce: !options.no_announce,
    }
}

/// Discovery for the UI; a failure other than a wrong `--iface` is said, and tern goes on.
fn discover(
    settings: tern::net::discovery::Settings,
) -> anyhow::Result<Option<tern::net::discovery::Discovery>> {
    tern::net::discovery::Discovery::start_or_say(settings, |e| eprintln!("tern: {e}"))
        .map_err(anyhow::Error::msg)
}

/// `target`, or when it is no address nor host name, the address of the tern on the LAN
/// that has it as its display name.
async fn find(target: String, options: &Options, config: &SessionConfig) -> anyhow::Result<String> {
    let mine = tern::net::discovery::fingerprint_of(config);
    tern::net::discovery::target(&target, options.ifaces.clone(), mine)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {e}"))
}

/// The commands that talk to no peer.
fn run_local(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Id => {
            let dir = identity_dir()?;
            let (identity, made) = tern::crypto::Identity::load_or_create(&dir)?;
            let path = dir.join(tern::crypto::identity::FILE_NAME);
            println!("{}", identity.fingerprint());
            if made {
                println!("identity: {} (made now)", path.display());
            } else {
                println!("identity: {}", path.display());
            }
        }
        Action::History {
            peer,
            limit,
            search,
            json,
        } => {
            let path = tern::history::default_path()
                .ok_or_else(|| anyhow::anyhow!("no data folder for the history here"))?;
            let query = tern::history::Query {
                peer,
                limit,
                search,
                json,
            };
            tern::history::show(&path, &query)?;
        }
        _ => anyhow::bail!("not a command without a peer"),
    }
    Ok(ExitCode::SUCCESS)
}

/// This machine's fingerprint, if it has an identity (none is made for this: `tern peers`
/// talks to no one).
fn own_fingerprint() -> Option<String> {
    let dir = identity_dir().ok()?;
    let identity = tern::crypto::Identity::load(&dir).ok()??;
    Some(identity.fingerprint().to_string())
}

fn identity_dir() -> anyhow::Result<PathBuf> {
    tern::crypto::identity::default_dir()
        .ok_or_else(|| anyhow::anyhow!("no config folder for the identity here"))
}

/// The session settings of a command that talks: encrypted as this machine's identity,
/// remembering the peers met (not the demo's made-up one), unless `--insecure`.
fn session_config(action: &Action, options: &Options) -> anyhow::Result<SessionConfig> {
    let dir = identity_dir()?;
    let (identity, _) = tern::crypto::Identity::load_or_create(&dir)?;
    let mut config = SessionConfig::new(
        options.display_name(),
        options.download_dir(),
        Arc::new(identity),
    );
    if options.insecure {
        config.security = Security::Insecure;
    }
    if let Action::Send {
        peer_fingerprint, ..
    }
    | Action::Recv {
        peer_fingerprint, ..
    } = action
    {
        config.trust.only = peer_fingerprint.clone();
    }
    if !matches!(action, Action::Demo) {
        let path = dir.join(tern::crypto::known::FILE_NAME);
        let known = tern::crypto::known::KnownPeers::open(&path)?;
        config.trust.known = Some(Arc::new(Mutex::new(known)));
    }
    Ok(config)
}

/// The history and its file, unless it cannot be opened: then tern runs without one, and says
/// so once.
fn open_history() -> (
    Option<(tern::history::History, PathBuf)>,
    Option<tern::history::Writer>,
) {
    let Some(path) = tern::history::default_path() else {
        return (None, None);
    };
    match tern::history::History::open(&path) {
        Ok((history, writer)) => (Some((history, path)), Some(writer)),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "no history");
            eprintln!("tern: {e:#}; this run keeps no history");
            (None, None)
        }
    }
}

/// The terminal UI needs a terminal; say so plainly instead of drawing into a pipe.
async fn tui(
    start: Start,
    config: SessionConfig,
    history: Option<(tern::history::History, PathBuf)>,
    discovery: Option<tern::net::discovery::Discovery>,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the terminal UI needs a terminal; for scripts use `tern send` / `tern recv` (see tern --help)"
        );
    }
    create_download_dir(&config.download_dir)?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tern::tui::run(TuiOptions {
        start,
        config,
        color,
        history,
        discovery,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Make the download folder, or say plainly why it cannot be one.
fn create_download_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        // "File exists" would not say which file, nor that it is in the way.
        let in_the_way = dir
            .ancestors()
            .find(|p| p.symlink_metadata().is_ok())
            .filter(|p| !p.is_dir());
        match in_the_way {
            Some(file) if file == dir => {
                anyhow::anyhow!("the download folder {} is not a folder", dir.display())
            }
            Some(file) => anyhow::anyhow!(
                "cannot create the download folder {}: {} is not a folder",
                dir.display(),
                file.display()
            ),
            None => anyhow::anyhow!("cannot create the download folder {}: {e}", dir.display()),
        }
    })
}

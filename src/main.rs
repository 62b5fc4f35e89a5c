//! `tern`: parse the command line, start logging, run the chosen mode.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

use tern::cli::{Cli, Mode};
use tern::session::{OfferPolicy, SessionConfig};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = tern::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tern: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("tern: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = &cli.common;
    let mut config = SessionConfig::new(common.display_name(), common.download_dir());
    config.encoding = common.encoding;
    config.raw = common.raw;
    config.offers = if common.yes {
        OfferPolicy::AcceptAll
    } else {
        OfferPolicy::Ask
    };
    match cli.command {
        Some(Mode::Send { target, paths }) => tern::headless::send(&target, paths, config).await,
        Some(Mode::Recv { listen, once }) => {
            if !common.yes {
                config.offers = OfferPolicy::DeclineAll(
                    "the receiver runs headless without --yes and does not accept files".into(),
                );
            } else {
                std::fs::create_dir_all(&config.download_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot create the download folder {}: {e}",
                        config.download_dir.display()
                    )
                })?;
            }
            let bind = SocketAddr::new(listen.bind, listen.port);
            tern::headless::recv(bind, once, config).await
        }
        Some(Mode::Listen(_)) | Some(Mode::Connect { .. }) | None => {
            anyhow::bail!(
                "the terminal UI is not built yet; use `tern send` and `tern recv` (see tern --help)"
            )
        }
    }
}

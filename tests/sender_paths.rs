//! What a sender tells its peer about its own files: the names it offered, never where the
//! files are on its disk.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tern::session::{Command, OfferPolicy, Role, Session, SessionConfig, SessionEvent};
use tern::transfer::TransferState;
use tern::transfer::outgoing::collect_files;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// The first transfer update of `session` that `pick` maps to `Some`.
async fn wait_for<T>(
    session: &mut Session,
    mut pick: impl FnMut(&TransferState, tern::transfer::TransferId) -> Option<T>,
) -> Result<T> {
    let found = timeout(WAIT, async {
        while let Some(event) = session.events.recv().await {
            if let SessionEvent::Transfer(u) = &event
                && let Some(found) = pick(&u.state, u.id)
            {
                return Some(found);
            }
        }
        None
    })
    .await
    .context("timed out waiting for a transfer update")?;
    found.context("the session ended first")
}

#[tokio::test]
async fn a_file_the_sender_cannot_read_is_cancelled_without_its_local_path() -> Result<()> {
    let rx_dir = tempfile::tempdir()?;
    let tx_dir = tempfile::tempdir()?;
    let file = tx_dir.path().join("vanishing.txt");
    std::fs::write(&file, b"here when offered, gone when accepted")?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    let root = CancellationToken::new();
    let mut rx = Session::start(
        server,
        Role::Listener,
        SessionConfig::new("rx", rx_dir.path().to_path_buf(), tern::harness::identity()),
        &root,
    );
    let mut tx_config =
        SessionConfig::new("tx", tx_dir.path().to_path_buf(), tern::harness::identity());
    tx_config.offers = OfferPolicy::Ask;
    let tx = Session::start(client, Role::Connector, tx_config, &root);

    tx.handle
        .send(Command::Offer(collect_files(std::slice::from_ref(&file))?))
        .await?;
    let id = wait_for(&mut rx, |state, id| {
        (*state == TransferState::AwaitingDecision).then_some(id)
    })
    .await?;
    // Offered, and then it cannot be read any more.
    std::fs::remove_file(&file)?;
    rx.handle.send(Command::Accept(id)).await?;

    let ended = wait_for(&mut rx, |state, _| state.is_final().then(|| state.clone())).await?;
    let TransferState::Cancelled(reason) = &ended else {
        bail!("expected the sender to cancel, got {ended:?}");
    };
    let local = tx_dir.path().display().to_string();
    if reason.contains(&local) {
        bail!("the receiver was shown the sender's folder {local}: {reason:?}");
    }
    if !reason.contains("vanishing.txt") {
        bail!("the reason does not name the offered file: {reason:?}");
    }
    Ok(())
}

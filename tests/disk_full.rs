//! The receiving disk cannot hold the file: the transfer fails with the disk's own error, what
//! arrived stays in the `.part` for a later resume, and the session goes on. Its own test
//! binary, because the fallback (a file-size limit) applies to the whole process.
//!
//! On a real small disk (tmpfs) the receiver sets the file's space aside before writing, so
//! the failure comes at once and leaves no empty `.part`; under the fallback the space is not
//! checked up front and the disk "fills" at the limit, mid-transfer.
#![cfg(unix)] // a file-size limit (setrlimit) and SIGXFSZ: Unix only

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tern::session::{Command, OfferPolicy, Role, Session, SessionConfig, SessionEvent};
use tern::transfer::incoming::partial_name;
use tern::transfer::outgoing::collect_files;
use tern::transfer::{Direction, TransferState};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const LIMIT: u64 = 4 << 20;

/// A folder that holds at most LIMIT bytes, and the error text a write past it gives.
enum SmallDisk {
    Tmpfs(PathBuf),
    FileSizeLimit(PathBuf),
}

impl SmallDisk {
    fn new(base: &Path) -> Self {
        let dir = base.join("small");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // TERN_TEST_NO_MOUNT exercises the fallback where mounting is allowed.
        let mounted = std::env::var_os("TERN_TEST_NO_MOUNT").is_none()
            && std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={LIMIT}")])
                .arg("tmpfs")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
        if mounted {
            return SmallDisk::Tmpfs(dir);
        }
        // No permission to mount: a per-process file-size limit instead.
        // SAFETY: plain libc calls with valid arguments; SIG_IGN installs no handler code.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: LIMIT as libc::rlim_t,
                rlim_max: libc::RLIM_INFINITY,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
        SmallDisk::FileSizeLimit(dir)
    }

    fn dir(&self) -> &Path {
        match self {
            SmallDisk::Tmpfs(d) | SmallDisk::FileSizeLimit(d) => d,
        }
    }

    /// The disk says so before any data is written.
    fn fails_up_front(&self) -> bool {
        matches!(self, SmallDisk::Tmpfs(_))
    }

    fn expected_error(&self) -> &'static str {
        match self {
            SmallDisk::Tmpfs(_) => "No space left on device",
            SmallDisk::FileSizeLimit(_) => "File too large",
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let SmallDisk::Tmpfs(dir) = self {
            let _ = std::process::Command::new("umount").arg(dir).status();
        }
    }
}

/// The files to send, written before any test sets the fallback's limit (which would stop
/// their writes too): `big.bin`, twice the disk, and `patterned.bin`, see [`patterned`].
fn sources() -> &'static Path {
    static SOURCES: OnceLock<PathBuf> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("disk_full-sources");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("big.bin"), vec![0x5a; (LIMIT * 2) as usize]).expect("write");
        std::fs::write(dir.join("patterned.bin"), patterned()).expect("write");
        dir
    })
}

/// Twice the disk, each byte telling where it is.
fn patterned() -> Vec<u8> {
    (0..LIMIT * 2).map(|i| (i % 251) as u8).collect()
}

async fn wait_for<T>(s: &mut Session, mut pick: impl FnMut(&SessionEvent) -> Option<T>) -> T {
    timeout(Duration::from_secs(30), async {
        loop {
            match s.events.recv().await {
                Some(e) => {
                    if let Some(found) = pick(&e) {
                        return found;
                    }
                }
                None => panic!("session ended early"),
            }
        }
    })
    .await
    .expect("event in time")
}

/// Two sessions on a loopback connection; the receiver accepts everything into `dir`.
async fn connect(dir: &Path, src: &Path) -> (Session, Session) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let root = CancellationToken::new();
    let mut rx_cfg = SessionConfig::new("rx", dir.to_path_buf(), tern::harness::identity());
    rx_cfg.offers = OfferPolicy::AcceptAll;
    let rx = Session::start(server, Role::Listener, rx_cfg, &root);
    let tx_cfg = SessionConfig::new("tx", src.to_path_buf(), tern::harness::identity());
    let tx = Session::start(client, Role::Connector, tx_cfg, &root);
    (rx, tx)
}

/// Offer `file` and wait for both ends to settle it: the receiver's final state and progress.
async fn send_and_settle(rx: &mut Session, tx: &mut Session, file: &Path) -> (TransferState, u64) {
    tx.handle
        .send(Command::Offer(
            collect_files(&[file.to_path_buf()]).expect("collect"),
        ))
        .await
        .expect("offer");
    let (state, done) = wait_for(rx, |e| match e {
        SessionEvent::Transfer(u)
            if u.id.direction == Direction::Incoming && u.state.is_final() =>
        {
            Some((u.state.clone(), u.progress.done))
        }
        _ => None,
    })
    .await;
    let sender_state = wait_for(tx, |e| match e {
        SessionEvent::Transfer(u) if u.state.is_final() => Some(u.state.clone()),
        _ => None,
    })
    .await;
    assert!(!sender_state.is_success(), "{sender_state:?}");
    (state, done)
}

/// The session is still up: chat goes through.
async fn still_talking(rx: &mut Session, tx: &mut Session) {
    tx.handle
        .send(Command::Text("still here?".into()))
        .await
        .expect("text");
    let text = wait_for(rx, |e| match e {
        SessionEvent::Text { text, .. } => Some(text.raw().to_string()),
        SessionEvent::Closed { error } => panic!("session closed: {error:?}"),
        _ => None,
    })
    .await;
    assert_eq!(text, "still here?");
}

#[tokio::test]
async fn a_full_disk_fails_the_transfer_keeps_what_arrived_and_the_session() {
    let big = sources().join("big.bin");
    let base = tempfile::tempdir().expect("tmp");
    let disk = SmallDisk::new(base.path());
    let (mut rx, mut tx) = connect(disk.dir(), sources()).await;

    let (state, done) = send_and_settle(&mut rx, &mut tx, &big).await;
    match &state {
        TransferState::Failed(why) => assert!(why.contains(disk.expected_error()), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let size = std::fs::metadata(&big).expect("size").len();
    let part = disk.dir().join(partial_name("big.bin", size, 0));
    if disk.fails_up_front() {
        assert_eq!(done, 0, "the failure came before any data");
        assert!(!part.exists(), "no empty .part left behind");
    } else {
        assert!(part.exists(), ".part kept for a later resume");
    }
    assert!(!disk.dir().join("big.bin").exists());
    still_talking(&mut rx, &mut tx).await;
    drop(std::fs::remove_file(part));
}

#[tokio::test]
async fn a_resumed_file_the_disk_cannot_finish_keeps_its_part_intact() {
    let file = sources().join("patterned.bin");
    let content = patterned();
    let base = tempfile::tempdir().expect("tmp");
    let disk = SmallDisk::new(base.path());
    // Half the disk already holds the first half of the file, from an earlier attempt.
    let kept = (LIMIT / 2) as usize;
    let part = disk
        .dir()
        .join(partial_name("patterned.bin", content.len() as u64, 0));
    std::fs::write(&part, &content[..kept]).expect("write the earlier .part");
    let (mut rx, mut tx) = connect(disk.dir(), sources()).await;

    let (state, _) = send_and_settle(&mut rx, &mut tx, &file).await;
    match &state {
        TransferState::Failed(why) => assert!(why.contains(disk.expected_error()), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let left = std::fs::read(&part).expect("the .part is kept");
    if disk.fails_up_front() {
        assert_eq!(left.len(), kept, "nothing written past what was kept");
    }
    assert!(
        left.len() >= kept && content.starts_with(&left),
        "a true prefix, {} bytes",
        left.len()
    );
    still_talking(&mut rx, &mut tx).await;
    drop(std::fs::remove_file(part));
}

//! The receiving disk fills up mid-transfer: the transfer fails with the disk's own error, the
//! `.part` stays for a later resume, and the session goes on. Its own test binary, because the
//! fallback (a file-size limit) applies to the whole process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tern::session::{Command, OfferPolicy, Role, Session, SessionConfig, SessionEvent};
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

#[tokio::test]
async fn a_full_disk_fails_the_transfer_keeps_the_part_and_the_session() {
    let base = tempfile::tempdir().expect("tmp");
    // The source first: the fallback limit applies to every file this process writes.
    let src = base.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let big = src.join("big.bin");
    std::fs::write(&big, vec![0x5a; (LIMIT * 2) as usize]).expect("write source");
    let disk = SmallDisk::new(base.path());

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let root = CancellationToken::new();
    let mut rx_cfg = SessionConfig::new("rx", disk.dir().to_path_buf());
    rx_cfg.offers = OfferPolicy::AcceptAll;
    let mut rx = Session::start(server, Role::Listener, rx_cfg, &root);
    let mut tx = Session::start(
        client,
        Role::Connector,
        SessionConfig::new("tx", src.clone()),
        &root,
    );
    tx.handle
        .send(Command::Offer(collect_files(&[big]).expect("collect")))
        .await
        .expect("offer");

    let state = wait_for(&mut rx, |e| match e {
        SessionEvent::Transfer(u)
            if u.id.direction == Direction::Incoming && u.state.is_final() =>
        {
            Some(u.state.clone())
        }
        _ => None,
    })
    .await;
    match &state {
        TransferState::Failed(why) => assert!(why.contains(disk.expected_error()), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    let sender_state = wait_for(&mut tx, |e| match e {
        SessionEvent::Transfer(u) if u.state.is_final() => Some(u.state.clone()),
        _ => None,
    })
    .await;
    assert!(!sender_state.is_success(), "{sender_state:?}");
    let part = disk.dir().join("big.bin.part");
    assert!(part.exists(), ".part kept for a later resume");
    assert!(!disk.dir().join("big.bin").exists());

    // The session is still up: chat goes through.
    tx.handle
        .send(Command::Text("still here?".into()))
        .await
        .expect("text");
    let text = wait_for(&mut rx, |e| match e {
        SessionEvent::Text { text, .. } => Some(text.clone()),
        SessionEvent::Closed { error } => panic!("session closed: {error:?}"),
        _ => None,
    })
    .await;
    assert_eq!(text, "still here?");
    drop(std::fs::remove_file(part));
}

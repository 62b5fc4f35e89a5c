//! tern's Windows build (`tern.exe`, run under wine) and this build, talking over 127.0.0.1:
//! a folder with a CJK name and chat lines in GBK and UTF-8, each way; the names Windows
//! cannot hold, sent to the Windows receiver, which must refuse each with its reason, let
//! nothing out of its download dir and overwrite nothing; a transfer to it cut and resumed;
//! the tutorial's raw GBK peers; and discovery, each build finding the other's listener.
//!
//! Needs wine, a prefix made by `.ci/wine/setup.sh PREFIX` in `WINEPREFIX`, and the path of
//! tern.exe (`cargo build --target x86_64-pc-windows-gnu`) in `TERN_WINDOWS_EXE`. Without them
//! each test writes a `SKIPPED:` line on stderr and passes; CI fails a run with such a line.
//!
//! Only the Linux side of the pair makes sense here: wine runs the other. The Windows build
//! also meets the tutorial's Python GBK peers here, which wine cannot start with pipes from
//! the Windows build of `tests/raw_interop.rs`.
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tern::transfer::incoming::PARTIAL_SUFFIX;

use common::tutorial::{GREETING, ensure_greeting_answered, gbk_server, hex, line_value};
use common::{
    DISCOVERY_PORT_VAR, Proc, TIMEOUT, ensure_same_file, list_files, list_tree,
    lonely_discovery_port, peers_dir, spawn_logged, spawn_python, spawn_recv, spawn_recv_with,
    spawn_tern, tern_command, write_file, write_random_file,
};

/// Wine starts a process in one to three seconds; a session with one also runs slower.
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);

const SETUP_HINT: &str = "(run .ci/wine/setup.sh and set TERN_WINDOWS_EXE; see README)";

/// How to run tern.exe: wine, its prefix, and the program.
struct Wine {
    exe: PathBuf,
    prefix: OsString,
}

impl Wine {
    /// The Windows tern named by the environment, or `None` once `test` has been reported
    /// skipped (with why). A setting that is there but wrong fails the test instead.
    fn from_env(test: &str) -> anyhow::Result<Option<Self>> {
        let exe = std::env::var_os("TERN_WINDOWS_EXE").filter(|v| !v.is_empty());
        let prefix = std::env::var_os("WINEPREFIX").filter(|v| !v.is_empty());
        let why = match (exe, prefix) {
            (None, _) => "TERN_WINDOWS_EXE is not set",
            (Some(_), None) => "WINEPREFIX is not set",
            (Some(_), Some(_)) if !on_path("wine") => "wine is not on PATH",
            (Some(exe), Some(prefix)) => {
                let exe = PathBuf::from(exe);
                ensure!(
                    exe.is_file(),
                    "TERN_WINDOWS_EXE={} is not a file",
                    exe.display()
                );
                // Without it, Rust's std (1.78 and later) dies before main under wine 8, and
                // with WINEDEBUG=-all it says nothing about why.
                let dll = Path::new(&prefix).join("drive_c/windows/system32/bcryptprimitives.dll");
                ensure!(
                    dll.is_file(),
                    "WINEPREFIX={} has no {}: make the prefix with .ci/wine/setup.sh",
                    Path::new(&prefix).display(),
                    dll.display()
                );
                start_wine(&prefix, &exe);
                return Ok(Some(Self { exe, prefix }));
            }
        };
        common::skip(test, &format!("{why} {SETUP_HINT}"));
        Ok(None)
    }

    /// `wine tern.exe ARGS`, its log in `log_dir`.
    fn command(&self, log_dir: &Path, args: &[&OsStr]) -> Command {
        let mut cmd = Command::new("wine");
        cmd.arg(&self.exe)
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // Wine turns the arguments and file names into UTF-16 by the locale's encoding:
            // in the C locale a CJK one fails with "Invalid name".
            .env("LC_ALL", "C.UTF-8")
            // No dialog offering to install .NET or Gecko.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env("TERN_LOG_DIR", windows_path(log_dir))
            // A machine of its own each time, as for the Linux processes (tern_command).
            .env("TERN_CONFIG_DIR", windows_path(log_dir))
            .env("TERN_DATA_DIR", windows_path(log_dir))
            .env(DISCOVERY_PORT_VAR, lonely_discovery_port())
            .env_remove("TERN_LOG");
        cmd
    }

    fn spawn(&self, name: &str, args: &[&OsStr]) -> anyhow::Result<Proc> {
        spawn_logged(name, |log_dir| self.command(log_dir, args))
    }

    /// `tern.exe recv --once` on a free port, listening.
    fn spawn_recv(&self, name: &str, extra: &[&OsStr]) -> anyhow::Result<(Proc, u16)> {
        spawn_recv_with(name, extra, |name, args| self.spawn(name, args))
    }
}

/// Start the prefix's wine server, and the services wine starts with the first program of a
/// session, ourselves, once, their output going nowhere. Otherwise the first `wine` of the run
/// starts them, and they, which outlive that process, keep the test's stdout and stderr pipes
/// open: that process's output never ends.
fn start_wine(prefix: &OsStr, exe: &Path) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let quiet = |program: &str| {
            let mut cmd = Command::new(program);
            cmd.env("WINEPREFIX", prefix)
                .env("WINEDEBUG", "-all")
                .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            cmd
        };
        // Kept two minutes past its last client; an already running server stays as it is.
        let _ = quiet("wineserver").arg("-p120").status();
        let _ = quiet("wine").arg(exe).arg("--version").status();
    });
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// How the Windows program names `path`: wine's drive Z: is the root of this file system.
fn windows_path(path: &Path) -> OsString {
    format!("Z:{}", path.to_string_lossy().replace('/', "\\")).into()
}

/// The path here of `Z:\...`, a path the Windows program printed.
fn linux_path(windows: &str) -> anyhow::Result<PathBuf> {
    let rest = windows
        .strip_prefix("Z:")
        .with_context(|| format!("{windows} is not on drive Z:"))?;
    Ok(PathBuf::from(rest.replace('\\', "/")))
}

fn gbk(text: &str) -> anyhow::Result<Vec<u8>> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    ensure!(!unmappable, "{text:?} has characters GBK lacks");
    Ok(bytes.into_owned())
}

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// One side's part in a chat: its name, and the lines it types, one in UTF-8 and one in GBK
/// (tern reads stdin as UTF-8 when it is, else as GBK).
struct Side {
    name: &'static str,
    utf8_line: &'static str,
    gbk_line: &'static str,
}

impl Side {
    fn stdin(&self) -> anyhow::Result<Vec<u8>> {
        let mut bytes = format!("{}\n", self.utf8_line).into_bytes();
        bytes.extend(gbk(self.gbk_line)?);
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// What the other side prints: both lines, in UTF-8, whatever they were sent in.
    fn printed(&self) -> String {
        format!("{}\n{}\n", self.utf8_line, self.gbk_line)
    }
}

const LINUX: Side = Side {
    name: "企鹅",
    utf8_line: "企鹅 types 你好 in UTF-8",
    gbk_line: "企鹅 types 早上好 in GBK",
};

const WINDOWS: Side = Side {
    name: "视窗",
    utf8_line: "视窗 types 你好 in UTF-8",
    gbk_line: "视窗 types 晚上好 in GBK",
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum WindowsIs {
    Receiver,
    Sender,
}

/// `照片 2024/` with a few files of random content, one of them empty, and a nested folder.
fn make_photo_folder(parent: &Path) -> anyhow::Result<PathBuf> {
    let folder = parent.join("照片 2024");
    write_random_file(&folder.join("春节 001.jpg"), 300_001, 1)?;
    write_file(
        &folder.join("说明.txt"),
        "第一行\r\nsecond line, 第二行\n".as_bytes(),
    )?;
    write_file(&folder.join("空.txt"), b"")?;
    write_random_file(&folder.join("视频").join("clip 1.bin"), (2 << 20) + 3, 2)?;
    write_random_file(&folder.join("视频").join("原片").join("leaf.bin"), 4097, 3)?;
    Ok(folder)
}

/// `tern send` of `照片 2024/` with chat both ways, from one side to the other: the folder
/// arrives byte for byte and alone, each side prints exactly the other's lines, and each sees
/// the other's CJK name. GBK goes on the wire towards Windows when it receives and from it
/// when it sends, so the Windows build both encodes and decodes it.
fn folder_and_chat(wine: &Wine, windows_is: WindowsIs) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let src = work.path().join("src");
    let folder = make_photo_folder(&src)?;
    let inbox = work.path().join("inbox");
    std::fs::create_dir(&inbox)?;

    let (receiver, sender) = match windows_is {
        WindowsIs::Receiver => (&WINDOWS, &LINUX),
        WindowsIs::Sender => (&LINUX, &WINDOWS),
    };
    let encoding_option: &[&OsStr] = &[OsStr::new("--encoding"), OsStr::new("gbk")];
    let (recv_encoding, send_encoding) = match windows_is {
        WindowsIs::Receiver => (&[][..], encoding_option),
        WindowsIs::Sender => (encoding_option, &[][..]),
    };

    let inbox_arg = match windows_is {
        WindowsIs::Receiver => windows_path(&inbox),
        WindowsIs::Sender => inbox.clone().into_os_string(),
    };
    let mut recv_args: Vec<&OsStr> = vec![
        OsStr::new("--yes"),
        OsStr::new("--download-dir"),
        inbox_arg.as_os_str(),
        OsStr::new("--name"),
        OsStr::new(receiver.name),
    ];
    recv_args.extend_from_slice(recv_encoding);
    let (mut recv, port) = match windows_is {
        WindowsIs::Receiver => wine.spawn_recv("tern.exe recv", &recv_args)?,
        WindowsIs::Sender => spawn_recv("tern recv", &recv_args)?,
    };
    recv.write_stdin(&receiver.stdin()?)?;
    recv.close_stdin();

    let folder_arg = match windows_is {
        WindowsIs::Receiver => folder.clone().into_os_string(),
        WindowsIs::Sender => windows_path(&folder),
    };
    let target = target(port);
    let mut send_args: Vec<&OsStr> = vec![
        OsStr::new("send"),
        OsStr::new("--retries"),
        OsStr::new("0"),
        OsStr::new("--name"),
        OsStr::new(sender.name),
    ];
    send_args.extend_from_slice(send_encoding);
    send_args.extend([OsStr::new(&target), folder_arg.as_os_str()]);
    let mut send = match windows_is {
        WindowsIs::Receiver => spawn_tern("tern send", &send_args)?,
        WindowsIs::Sender => wine.spawn("tern.exe send", &send_args)?,
    };
    send.write_stdin(&sender.stdin()?)?;
    // The sender closes once its stdin has ended and the folder is through: keep stdin open
    // until the receiver's lines have come back.
    send.wait_stdout("the receiver's UTF-8 line", TIMEOUT, |l| {
        l == receiver.utf8_line
    })?;
    send.wait_stdout("the receiver's GBK line", TIMEOUT, |l| {
        l == receiver.gbk_line
    })?;
    let send = send.finish(SESSION_TIMEOUT)?;
    let recv = recv.finish(SESSION_TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;

    ensure!(
        send.stdout_text()? == receiver.printed(),
        "the sender did not print exactly the receiver's lines\n{send}"
    );
    ensure!(
        recv.stdout_text()? == sender.printed(),
        "the receiver did not print exactly the sender's lines\n{recv}"
    );
    for (out, peer) in [(&send, receiver), (&recv, sender)] {
        ensure!(
            out.stderr
                .contains(&format!("connected to {} (", peer.name)),
            "{} does not name its peer {}\n{out}",
            out.name,
            peer.name
        );
    }

    // Exactly the folder, files and folders alike, and nothing else (no partial file).
    let sent = list_tree(&src)?;
    let landed = list_tree(&inbox)?;
    ensure!(
        landed == sent,
        "the download dir holds {landed:?}, expected {sent:?}\n{recv}"
    );
    for rel in list_files(&src)?.keys() {
        ensure_same_file(&src.join(rel), &inbox.join(rel))
            .with_context(|| format!("file {rel}"))?;
    }
    if windows_is == WindowsIs::Receiver {
        // The receiver reports where it saved a file as Windows names it.
        let clip = windows_path(&inbox.join("照片 2024").join("视频").join("clip 1.bin"));
        ensure!(
            recv.stderr
                .contains(&format!("saved as {}\n", clip.to_string_lossy())),
            "the Windows receiver does not report {}\n{recv}",
            clip.to_string_lossy()
        );
    }
    Ok(())
}

#[test]
fn linux_sends_a_cjk_folder_to_windows_and_they_chat_in_gbk_and_utf8() -> anyhow::Result<()> {
    let Some(wine) =
        Wine::from_env("linux_sends_a_cjk_folder_to_windows_and_they_chat_in_gbk_and_utf8")?
    else {
        return Ok(());
    };
    folder_and_chat(&wine, WindowsIs::Receiver)
}

#[test]
fn windows_sends_a_cjk_folder_to_linux_and_they_chat_in_gbk_and_utf8() -> anyhow::Result<()> {
    let Some(wine) =
        Wine::from_env("windows_sends_a_cjk_folder_to_linux_and_they_chat_in_gbk_and_utf8")?
    else {
        return Ok(());
    };
    folder_and_chat(&wine, WindowsIs::Sender)
}

/// The tutorial's GBK client (plain socket, no tern protocol) connects to the Windows build,
/// which takes it for a raw peer, prints its greeting in UTF-8 and answers it in GBK. (Wine
/// cannot start the Linux python3 with pipes, so this runs here rather than in the Windows
/// build of `tests/raw_interop.rs`.)
#[test]
fn the_tutorial_gbk_client_gets_a_gbk_answer_from_windows() -> anyhow::Result<()> {
    let Some(wine) = Wine::from_env("the_tutorial_gbk_client_gets_a_gbk_answer_from_windows")?
    else {
        return Ok(());
    };
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = wine.spawn_recv(
        "tern.exe recv",
        &[
            OsStr::new("--download-dir"),
            windows_path(inbox.path()).as_os_str(),
        ],
    )?;
    recv.write_stdin("问题已收到\n".as_bytes())?;
    recv.close_stdin();
    let mut client = spawn_python(
        "gbk_client.py",
        [
            peers_dir().join("gbk_client.py").into_os_string(),
            port.to_string().into(),
        ],
    )?;
    let client = client.finish(SESSION_TIMEOUT)?;
    let recv = recv.finish(SESSION_TIMEOUT)?;
    client.ensure_success()?;
    recv.ensure_success()?;

    let client_out = client.stdout_text()?;
    ensure!(
        line_value(&client_out, "HEX:")? == hex(&gbk("问题已收到\n")?),
        "the Windows build's answer is not 问题已收到\\n in GBK\n{client}\n{recv}"
    );
    ensure!(
        recv.stdout_text()? == format!("{GREETING}\n"),
        "the Windows build did not print exactly the greeting\n{recv}"
    );
    Ok(())
}

/// The Windows build's `send --raw --encoding gbk` talks to the tutorial's GBK server: the
/// server reads the greeting in GBK, and the Windows build prints its GBK reply in UTF-8
/// after a half-close (the end of its stdin) and the server's close.
#[test]
fn windows_send_raw_gbk_talks_to_the_tutorial_gbk_server() -> anyhow::Result<()> {
    let Some(wine) = Wine::from_env("windows_send_raw_gbk_talks_to_the_tutorial_gbk_server")?
    else {
        return Ok(());
    };
    let reply = "你好客户端,我是服务端小白!";
    let (server, port) = gbk_server(reply, TIMEOUT)?;
    let target = target(port);
    let send = wine.spawn(
        "tern.exe send --raw",
        &[
            OsStr::new("send"),
            OsStr::new("--raw"),
            OsStr::new("--encoding"),
            OsStr::new("gbk"),
            OsStr::new(&target),
        ],
    )?;
    ensure_greeting_answered(server, send, reply, SESSION_TIMEOUT)
}

/// The longest whole path tern on Windows accepts: 259 (`MAX_PATH` less its NUL) less room
/// for a " (999)" the name may get.
const LONGEST_WINDOWS_PATH: usize = 259 - " (999)".len();

/// A relative path `长路径/目录…/d…/NAME.bin`, exactly `units` UTF-16 units long, whose
/// file name is made of `fill`. Its 63 CJK characters take one unit each but three bytes:
/// counted in bytes it would be far longer.
fn long_relative_path(units: usize, fill: char) -> anyhow::Result<String> {
    let mut components = vec!["长路径".to_string(), "目录".repeat(30)];
    // Each component with its separator; every character here is one UTF-16 unit.
    let taken = |c: &[String]| c.iter().map(|s| s.chars().count() + 1).sum::<usize>();
    ensure!(
        units >= taken(&components) + 8,
        "the download dir's path is too long to make a {units}-character relative path in"
    );
    while units - taken(&components) > 120 {
        components.push("d".repeat(100));
    }
    let left = units - taken(&components);
    components.push(format!(
        "{}.bin",
        fill.to_string().repeat(left - ".bin".len())
    ));
    let path = components.join("/");
    ensure!(path.encode_utf16().count() == units, "{path} miscounted");
    Ok(path)
}

/// The "[PEER: ]received PATH (SIZE), verified, saved as WHERE" lines of a receiver: PATH to
/// WHERE.
fn saved_as(stderr: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut saved = BTreeMap::new();
    for line in stderr.lines() {
        // `tern: received ...`, or `tern: PEER: received ...` from a recv.
        let Some(note) = line.strip_prefix("tern: ") else {
            continue;
        };
        let Some(rest) = note
            .strip_prefix("received ")
            .or_else(|| note.split_once(": received ").map(|(_, rest)| rest))
        else {
            continue;
        };
        let Some((what, place)) = rest.split_once(", verified, saved as ") else {
            bail!("unexpected line {line:?}");
        };
        let Some((path, _size)) = what.rsplit_once(" (") else {
            bail!("no size in {line:?}");
        };
        saved.insert(path.to_string(), place.to_string());
    }
    Ok(saved)
}

/// Every name a Windows program could not hold, or would take to mean something else, sent
/// by the Linux build to the Windows one: each is refused with its reason, nothing lands
/// outside the download dir, and a file already there under another case is not overwritten.
#[test]
fn a_windows_receiver_refuses_names_windows_cannot_hold_and_overwrites_nothing()
-> anyhow::Result<()> {
    let Some(wine) = Wine::from_env(
        "a_windows_receiver_refuses_names_windows_cannot_hold_and_overwrites_nothing",
    )?
    else {
        return Ok(());
    };
    let work = tempfile::tempdir()?;
    // The Windows side's folder: its download dir, and a sibling nothing may reach.
    let windows_side = work.path().join("windows side");
    let inbox = windows_side.join("inbox");
    let outside = windows_side.join("outside");
    let first_report = b"the report that was here first\n";
    write_file(&inbox.join("Report.pdf"), first_report)?;
    write_file(&outside.join("keep.txt"), b"outside the download dir\n")?;
    let src = work.path().join("src");
    std::fs::create_dir(&src)?;

    // Valid names on Linux, each a real file sent by its own path.
    let device = "is a reserved device name on Windows";
    let character = "contains a character Windows does not allow in file names";
    let trailing = "ends in a dot or a space, which Windows drops from file names";
    let parent = "path component \"..\" is not allowed";
    let mut refused: Vec<(String, String)> = [
        ("CON", device),
        ("nul.txt", device),
        ("COM1.log", device),
        ("trailing.", trailing),
        ("trailing ", trailing),
        (
            "a.txt:evil",
            "contains ':' (a drive letter, or an NTFS alternate data stream",
        ),
        ("C:\\escaped.txt", "contains ':' (a drive letter"),
        ("a<b>.txt", character),
        ("what?.txt", character),
        ("pipe|x", character),
        ("star*", character),
        ("say \"hi\".txt", character),
        // A backslash separates folders on Windows.
        ("..\\outside\\escaped.txt", parent),
        ("sub\\..\\..\\outside\\escaped.txt", parent),
        ("\\escaped.txt", "absolute path"),
    ]
    .into_iter()
    .map(|(name, why)| (name.to_string(), why.to_string()))
    .collect();
    let mut paths: Vec<PathBuf> = Vec::new();
    for (i, (name, _)) in refused.iter().enumerate() {
        let path = src.join(name);
        write_file(&path, format!("hostile file {i}\n").as_bytes())?;
        paths.push(path);
    }
    // The same rules for folders: no folder is made for a file refused for its folder's name.
    let folder = src.join("bad folders");
    for (rel, why) in [("dir./x.txt", trailing), ("aux/y.txt", device)] {
        write_file(&folder.join(rel), b"in a folder Windows cannot have\n")?;
        refused.push((format!("bad folders/{rel}"), why.to_string()));
    }
    paths.push(folder);

    // Paths as long as Windows programs can open, and longer, counted the way Windows does.
    let root_units = windows_path(&inbox)
        .to_string_lossy()
        .encode_utf16()
        .count();
    let relative = |whole: usize, fill| long_relative_path(whole - root_units - 1, fill);
    let fits = relative(LONGEST_WINDOWS_PATH, 'f')?;
    for (whole, fill) in [(LONGEST_WINDOWS_PATH + 1, 'o'), (300, 'x')] {
        let rel = relative(whole, fill)?;
        write_random_file(&src.join(&rel), 1000, whole as u64)?;
        let why = format!("saved here the path would be {whole} characters long");
        refused.push((rel, why));
    }
    write_random_file(&src.join(&fits), 5000, 253)?;
    paths.push(src.join("长路径"));

    // The name of the file already there, in other cases: both are kept, numbered.
    for (name, body) in [
        ("report.pdf", "lower case\n"),
        ("REPORT.PDF", "UPPER CASE\n"),
    ] {
        write_file(&src.join(name), body.as_bytes())?;
        paths.push(src.join(name));
    }

    let (mut recv, port) = wine.spawn_recv(
        "tern.exe recv",
        &[
            OsStr::new("--yes"),
            OsStr::new("--download-dir"),
            windows_path(&inbox).as_os_str(),
        ],
    )?;
    recv.close_stdin();
    let target = target(port);
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("send"),
        OsStr::new("--retries"),
        OsStr::new("0"),
        OsStr::new(&target),
    ];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let mut send = spawn_tern("tern send", &args)?;
    let send = send.finish(SESSION_TIMEOUT)?;
    let recv = recv.finish(SESSION_TIMEOUT)?;

    // Each refusal reaches the sender, with its reason; nothing else is refused.
    send.ensure_failure()?;
    for (name, why) in &refused {
        let said = format!("tern: the receiver declined {name}: unsafe file name: ");
        ensure!(
            send.stderr
                .lines()
                .any(|line| line.starts_with(&said) && line.contains(why.as_str())),
            "the sender was not told that {name:?} was refused because it {why:?}\n{send}"
        );
    }
    let declines = send.stderr.matches("tern: the receiver declined ").count();
    ensure!(
        declines == refused.len(),
        "{declines} refusals for {} refused names\n{send}",
        refused.len()
    );
    ensure!(
        send.stderr.contains(&format!(
            "tern: {} file(s) were not delivered",
            refused.len()
        )),
        "the sender does not count what was not delivered\n{send}"
    );
    recv.ensure_success()?;
    // `tern: PEER: declined NAME: ...`: recv names the peer a note is about.
    let declined_here = recv
        .stderr
        .lines()
        .filter(|l| l.starts_with("tern: ") && l.contains(": declined "))
        .count();
    ensure!(
        declined_here == refused.len(),
        "the receiver says it declined {declined_here} offers, not {}\n{recv}",
        refused.len()
    );

    // What was saved, and where, as the receiver reports it: each file byte for byte.
    let saved = saved_as(&recv.stderr)?;
    let expected_sources: BTreeSet<&str> = ["REPORT.PDF", "report.pdf", fits.as_str()].into();
    ensure!(
        saved.keys().map(String::as_str).collect::<BTreeSet<_>>() == expected_sources,
        "received {:?}, expected {expected_sources:?}\n{recv}",
        saved.keys().collect::<Vec<_>>()
    );
    for (rel, place) in &saved {
        ensure_same_file(&src.join(rel), &linux_path(place)?)
            .with_context(|| format!("{rel}, saved as {place}"))?;
    }
    // The two new reports take the numbers 1 and 2, in the order they finished.
    let numbered: BTreeSet<String> = ["report.pdf", "REPORT.PDF"]
        .iter()
        .map(|rel| {
            saved[*rel]
                .rsplit('\\')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let either = [
        BTreeSet::from(["report (1).pdf".to_string(), "REPORT (2).PDF".to_string()]),
        BTreeSet::from(["REPORT (1).PDF".to_string(), "report (2).pdf".to_string()]),
    ];
    ensure!(
        either.contains(&numbered),
        "the reports were saved as {numbered:?}, expected numbered names beside Report.pdf\n{recv}"
    );
    ensure!(
        std::fs::read(inbox.join("Report.pdf"))? == first_report,
        "Report.pdf, there first, was changed"
    );

    // The Windows side's folder holds exactly that: nothing outside the download dir, no
    // partial file, no folder made for a refused name.
    let mut expected: BTreeSet<String> =
        ["inbox/", "inbox/Report.pdf", "outside/", "outside/keep.txt"]
            .into_iter()
            .map(String::from)
            .collect();
    expected.extend(numbered.iter().map(|name| format!("inbox/{name}")));
    let mut folder = String::from("inbox/");
    for component in fits.split('/') {
        folder.push_str(component);
        folder.push('/');
        expected.insert(folder.clone());
    }
    expected.remove(&folder);
    expected.insert(format!("inbox/{fits}"));
    let found = list_tree(&windows_side)?;
    ensure!(
        found == expected,
        "the Windows side holds {:?}\nnot expected: {:?}\nmissing: {:?}\n{recv}",
        found,
        found.difference(&expected).collect::<Vec<_>>(),
        expected.difference(&found).collect::<Vec<_>>()
    );
    ensure!(
        std::fs::read(outside.join("keep.txt"))? == b"outside the download dir\n",
        "outside/keep.txt was changed"
    );
    Ok(())
}

/// Bytes in the partial files below `dir` (tern's `NAME.TAG.tern-part`).
fn partial_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for path in list_files(dir)?.into_values() {
        if path.to_string_lossy().ends_with(PARTIAL_SUFFIX) {
            total += std::fs::metadata(&path)?.len();
        }
    }
    Ok(total)
}

/// A transfer to the Windows build cut part way (the sending process killed) is taken up by
/// the next Windows process from the partial file the first one kept, and arrives whole:
/// the partial is found, reopened for appending, hashed and given its name on Windows.
#[test]
fn a_cut_transfer_to_windows_resumes_in_the_next_process() -> anyhow::Result<()> {
    let Some(wine) = Wine::from_env("a_cut_transfer_to_windows_resumes_in_the_next_process")?
    else {
        return Ok(());
    };
    const SIZE: usize = 96 << 20;
    // Cut early: the whole file takes a second or so to cross.
    const CUT_AT: u64 = 4 << 20;
    let work = tempfile::tempdir()?;
    let file = work.path().join("src").join("整段录像.bin");
    write_random_file(&file, SIZE, 96)?;
    let inbox = work.path().join("inbox");
    std::fs::create_dir(&inbox)?;
    let inbox_arg = windows_path(&inbox);
    let recv_args = [
        OsStr::new("--yes"),
        OsStr::new("--download-dir"),
        &inbox_arg,
    ];
    let send = |name: &str, port: u16| {
        spawn_tern(
            name,
            [
                OsStr::new("send"),
                OsStr::new("--retries"),
                OsStr::new("0"),
                OsStr::new(&target(port)),
                file.as_os_str(),
            ],
        )
    };

    let (mut recv, port) = wine.spawn_recv("tern.exe recv (cut)", &recv_args)?;
    recv.close_stdin();
    let mut cut = send("tern send (killed)", port)?;
    let deadline = Instant::now() + TIMEOUT;
    while partial_bytes(&inbox)? < CUT_AT {
        ensure!(
            list_files(&inbox)?.len() <= 1,
            "the file arrived whole before it could be cut: {:?}",
            list_files(&inbox)?.keys()
        );
        if Instant::now() >= deadline {
            bail!(
                "the partial file did not reach {CUT_AT} bytes within {TIMEOUT:?}\n{}\n{}",
                cut.describe(),
                recv.describe()
            );
        }
        // Polling the file's size: the receiver says nothing while it writes.
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(cut);
    let first = recv.finish(SESSION_TIMEOUT)?;
    ensure!(
        first.stderr.contains("connection lost"),
        "the Windows receiver does not say the connection was lost\n{first}"
    );
    let kept = partial_bytes(&inbox)?;
    ensure!(
        (CUT_AT..SIZE as u64).contains(&kept),
        "{kept} bytes kept in the partial file\n{first}"
    );

    let (mut recv, port) = wine.spawn_recv("tern.exe recv (resumes)", &recv_args)?;
    recv.close_stdin();
    let send = send("tern send (again)", port)?.finish(SESSION_TIMEOUT)?;
    let recv = recv.finish(SESSION_TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;
    ensure!(
        send.stderr
            .contains("整段录像.bin: the receiver already has")
            && send.stderr.contains("resuming"),
        "the sender was not told the receiver resumes\n{send}"
    );
    ensure!(
        recv.stderr
            .contains("already here from an earlier attempt; resuming"),
        "the Windows receiver did not resume\n{recv}"
    );
    let landed = list_tree(&inbox)?;
    ensure!(
        landed.iter().eq(["整段录像.bin"].iter()),
        "the download dir holds {landed:?}\n{recv}"
    );
    ensure_same_file(&file, &inbox.join("整段录像.bin"))
}

/// `tern peers --json --wait 3 --iface lo` run by `make`: the objects it printed.
fn peers_listed(
    name: &str,
    make: impl FnOnce(&Path) -> Command,
) -> anyhow::Result<(Vec<serde_json::Value>, common::Finished)> {
    let out = spawn_logged(name, make)?.finish(SESSION_TIMEOUT)?;
    out.ensure_success()?;
    let listed = out
        .stdout_text()?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<serde_json::Value>, _>>()
        .with_context(|| format!("{name} printed something that is not JSON\n{out}"))?;
    Ok((listed, out))
}

/// Discovery between the two builds, on loopback (named with `--iface`, so no LAN is needed):
/// each lists the other's listener with its name, TCP port and protocol version, as Windows'
/// sockets (shared port, multicast out of a chosen interface) see them.
#[test]
fn windows_and_linux_find_each_other_by_discovery() -> anyhow::Result<()> {
    let Some(wine) = Wine::from_env("windows_and_linux_find_each_other_by_discovery")? else {
        return Ok(());
    };
    // One discovery port for this test's terns alone.
    let lan = lonely_discovery_port();
    let on_lan = |mut cmd: Command| {
        cmd.env(DISCOVERY_PORT_VAR, &lan);
        cmd
    };
    let lo = ["--iface", "lo"].map(OsStr::new);
    let named = |name: &'static str| [[OsStr::new("--name"), OsStr::new(name)], lo].concat();
    let (_windows, windows_port) =
        spawn_recv_with("tern.exe recv", &named(WINDOWS.name), |name, args| {
            spawn_logged(name, |log| on_lan(wine.command(log, args)))
        })?;
    let (_linux, linux_port) = spawn_recv_with("tern recv", &named(LINUX.name), |name, args| {
        spawn_logged(name, |log| on_lan(tern_command(log, args)))
    })?;
    let looking = ["peers", "--json", "--wait", "3", "--iface", "lo"].map(OsStr::new);
    let (by_linux, linux_out) =
        peers_listed("tern peers", |log| on_lan(tern_command(log, looking)))?;
    let (by_windows, windows_out) =
        peers_listed("tern.exe peers", |log| on_lan(wine.command(log, &looking)))?;
    for (listed, side, port, out) in [
        (&by_linux, WINDOWS.name, windows_port, &linux_out),
        (&by_windows, LINUX.name, linux_port, &windows_out),
    ] {
        let found = listed.iter().any(|p| {
            p["name"] == side
                && p["addr"] == "127.0.0.1"
                && p["port"] == u64::from(port)
                && p["version"] == 2
                && p["fingerprint"].as_str().is_some_and(|f| f.len() == 24)
        });
        ensure!(found, "{side} on port {port} was not listed\n{out}");
    }
    Ok(())
}

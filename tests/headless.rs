//! Real `tern send` / `tern recv` processes talking over 127.0.0.1.

mod common;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use anyhow::{Context, ensure};

use common::{
    TIMEOUT, ensure_same_file, free_port, list_files, run_tern, spawn_recv, spawn_recv_into,
    spawn_tern, write_file, write_random_file,
};

/// The big file is 64 MiB; allow a slow (debug, shared, two-core) machine more time.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

#[test]
fn a_folder_with_nested_cjk_empty_and_large_files_arrives_byte_identical() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let folder = src.path().join("album");
    write_file(&folder.join("top.txt"), b"top level\n")?;
    write_file(&folder.join("empty.txt"), b"")?;
    write_file(
        &folder.join("sub").join("报告 2024.txt"),
        "季度报告\n第二行 with spaces\n".as_bytes(),
    )?;
    write_random_file(
        &folder.join("sub").join("deeper").join("leaf.bin"),
        300_001,
        7,
    )?;
    write_random_file(&folder.join("big.bin"), 64 << 20, 0x5eed)?;
    let sent = list_files(&folder)?;
    ensure!(sent.len() == 5, "the fixture has 5 files: {sent:?}");

    let (mut recv, port) = spawn_recv_into("recv", inbox.path())?;
    recv.close_stdin();
    let mut send = spawn_tern(
        "send",
        [
            OsStr::new("send"),
            OsStr::new(&target(port)),
            folder.as_os_str(),
        ],
    )?;
    let send = send.finish(TRANSFER_TIMEOUT)?;
    let recv = recv.finish(TRANSFER_TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;

    let landed = list_files(&inbox.path().join("album"))?;
    let parts: Vec<_> = list_files(inbox.path())?
        .into_keys()
        .filter(|name| name.ends_with(".tern-part"))
        .collect();
    ensure!(parts.is_empty(), "partial files left behind: {parts:?}");
    ensure!(
        landed.keys().eq(sent.keys()),
        "received files {:?} differ from sent files {:?}\n{recv}",
        landed.keys().collect::<Vec<_>>(),
        sent.keys().collect::<Vec<_>>()
    );
    for (rel, original) in &sent {
        ensure_same_file(original, &inbox.path().join("album").join(rel))
            .with_context(|| format!("file {rel}"))?;
    }
    let everything = list_files(inbox.path())?;
    ensure!(
        everything.len() == sent.len(),
        "unexpected files in the download folder: {:?}",
        everything.keys().collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn chat_lines_cross_both_ways_and_print_exactly() -> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let from_recv = "hello from recv, 你好，世界！";
    let from_send = "greetings from send: 早上好 🌅 with  two spaces";

    let (mut recv, port) = spawn_recv(
        "recv",
        &[OsStr::new("--download-dir"), inbox.path().as_os_str()],
    )?;
    recv.write_stdin(format!("{from_recv}\n").as_bytes())?;
    recv.close_stdin();

    let mut send = spawn_tern("send", ["send", &target(port)])?;
    send.write_stdin(format!("{from_send}\n").as_bytes())?;
    // Keep send's stdin open until the receiver's line has come back.
    send.wait_stdout("the receiver's line", TIMEOUT, |line| line == from_recv)?;
    let send = send.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;

    ensure!(
        send.stdout_text()? == format!("{from_recv}\n"),
        "send's stdout is not exactly the receiver's line\n{send}"
    );
    ensure!(
        recv.stdout_text()? == format!("{from_send}\n"),
        "recv's stdout is not exactly the sender's line\n{recv}"
    );
    Ok(())
}

#[test]
fn recv_without_yes_declines_files_and_the_sender_fails() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let file = src.path().join("secret.txt");
    write_file(&file, b"not for you\n")?;

    let (mut recv, port) = spawn_recv(
        "recv",
        &[OsStr::new("--download-dir"), inbox.path().as_os_str()],
    )?;
    recv.close_stdin();
    let mut send = spawn_tern(
        "send",
        [
            OsStr::new("send"),
            OsStr::new(&target(port)),
            file.as_os_str(),
        ],
    )?;
    let send = send.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;

    send.ensure_failure()?;
    ensure!(
        send.stderr.contains("declined") && send.stderr.contains("--yes"),
        "send's stderr does not give the decline and its --yes reason\n{send}"
    );
    let written = list_files(inbox.path())?;
    ensure!(
        written.is_empty(),
        "files written without --yes: {:?}\n{recv}",
        written.keys().collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn a_second_file_with_a_taken_name_is_numbered_and_the_first_untouched() -> anyhow::Result<()> {
    let first_src = tempfile::tempdir()?;
    let second_src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let first = first_src.path().join("notes.txt");
    let second = second_src.path().join("notes.txt");
    write_file(&first, b"the first notes\n")?;
    write_file(&second, b"the second notes, longer than the first\n")?;

    for file in [&first, &second] {
        let (mut recv, port) = spawn_recv_into("recv", inbox.path())?;
        recv.close_stdin();
        let mut send = spawn_tern(
            "send",
            [
                OsStr::new("send"),
                OsStr::new(&target(port)),
                file.as_os_str(),
            ],
        )?;
        let send = send.finish(TIMEOUT)?;
        let recv = recv.finish(TIMEOUT)?;
        send.ensure_success()?;
        recv.ensure_success()?;
    }

    let landed = list_files(inbox.path())?;
    ensure!(
        landed
            .keys()
            .map(String::as_str)
            .eq(["notes (1).txt", "notes.txt"]),
        "download folder holds {:?}",
        landed.keys().collect::<Vec<_>>()
    );
    ensure_same_file(&first, &inbox.path().join("notes.txt"))?;
    ensure_same_file(&second, &inbox.path().join("notes (1).txt"))?;
    Ok(())
}

#[test]
fn send_to_a_port_where_nothing_listens_fails_clearly() -> anyhow::Result<()> {
    let port = free_port()?;
    let out = run_tern(["send", &target(port)], b"", TIMEOUT)?;
    out.ensure_failure()?;
    ensure!(
        out.stderr.contains("cannot connect") && out.stderr.contains(&target(port)),
        "stderr does not say it cannot connect to {}\n{out}",
        target(port)
    );
    ensure!(out.stdout.is_empty(), "stdout should be empty\n{out}");
    Ok(())
}

#[test]
fn send_of_a_missing_path_fails_and_names_the_path() -> anyhow::Result<()> {
    // A real listener, so the only thing wrong is the path.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("no such file.txt");
    let out = run_tern(
        [
            OsStr::new("send"),
            OsStr::new(&target(port)),
            missing.as_os_str(),
        ],
        b"",
        TIMEOUT,
    )?;
    out.ensure_failure()?;
    ensure!(
        out.stderr.contains(&missing.display().to_string()),
        "stderr does not name {}\n{out}",
        missing.display()
    );
    // The system's own words for it ("No such file or directory" on Unix).
    let cause = std::fs::metadata(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    ensure!(!cause.is_empty(), "{} exists", missing.display());
    ensure!(
        count(&out.stderr, &cause) == 1,
        "the cause ({cause}) is not said exactly once\n{out}"
    );
    Ok(())
}

/// The options a command's `--help` lists: `--long` names at the start of an option line.
fn listed_options(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-y, ").unwrap_or(line);
            let name = line.strip_prefix("--")?;
            let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
            Some(format!("--{}", &name[..end.unwrap_or(name.len())]))
        })
        .collect()
}

#[test]
fn each_help_lists_exactly_the_options_its_command_takes() -> anyhow::Result<()> {
    let talk = ["--name", "--encoding", "--no-history"];
    let receive = ["--download-dir", "--yes", "--max-file-size", "--max-total"];
    let listen = ["--bind", "--port", "--no-announce"];
    let wire = ["--raw", "--insecure"];
    let iface = ["--iface"];
    let cases: [(&[&str], Vec<&str>); 9] = [
        (
            &["--help"],
            [&listen[..], &talk, &wire, &receive, &iface].concat(),
        ),
        (
            &["listen", "--help"],
            [&listen[..], &talk, &wire, &receive, &iface].concat(),
        ),
        (
            &["connect", "--help"],
            [&talk[..], &wire, &receive, &iface].concat(),
        ),
        (&["demo", "--help"], [&talk[..], &receive].concat()),
        (
            &["send", "--help"],
            [
                &["--retries", "--json", "--peer-fingerprint"][..],
                &talk,
                &wire,
                &iface,
            ]
            .concat(),
        ),
        (
            &["recv", "--help"],
            [
                &listen[..],
                &["--once", "--json", "--peer-fingerprint"],
                &talk,
                &wire,
                &receive,
                &iface,
            ]
            .concat(),
        ),
        (
            &["history", "--help"],
            vec!["--limit", "--search", "--json"],
        ),
        (
            &["peers", "--help"],
            [&["--wait", "--json"][..], &iface].concat(),
        ),
        (&["id", "--help"], vec![]),
    ];
    for (args, expected) in cases {
        let out = run_tern(args, b"", TIMEOUT)?;
        out.ensure_success()?;
        let mut listed = listed_options(&out.stdout_text()?);
        listed.retain(|o| o != "--help" && o != "--version");
        let mut expected: Vec<String> = expected.iter().map(|o| o.to_string()).collect();
        listed.sort();
        expected.sort();
        ensure!(
            listed == expected,
            "`tern {}` lists {listed:?}, expected {expected:?}\n{out}",
            args.join(" ")
        );
    }
    Ok(())
}

#[test]
fn options_before_a_command_apply_to_it_or_are_refused() -> anyhow::Result<()> {
    for args in [
        &["demo", "--raw"][..],
        &["--raw", "demo"],
        &["send", "--yes", "127.0.0.1:9"],
        &["--yes", "send", "127.0.0.1:9"],
        &["send", "--download-dir", "/tmp", "127.0.0.1:9"],
        &["--download-dir", "/tmp", "send", "127.0.0.1:9"],
    ] {
        let out = run_tern(args, b"", TIMEOUT)?;
        ensure!(
            out.status.code() == Some(2) && out.stderr.contains("--"),
            "`tern {}` was not refused as a usage error\n{out}",
            args.join(" ")
        );
    }

    // Options written before a command that takes them are its options, as they always were.
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = spawn_recv(
        "recv",
        &[OsStr::new("--download-dir"), inbox.path().as_os_str()],
    )?;
    recv.close_stdin();
    let mut send = spawn_tern(
        "send",
        ["--encoding", "gbk", "send", "--name", "小黑", &target(port)],
    )?;
    send.write_stdin("你好\n".as_bytes())?;
    let send = send.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;
    ensure!(
        recv.stdout == "你好\n".as_bytes() && recv.stderr.contains("connected to 小黑"),
        "the name or the GBK encoding given before `send` did not apply\n{recv}"
    );
    Ok(())
}

#[test]
fn a_download_dir_that_is_a_file_is_said_to_be_no_folder() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("inbox");
    write_file(&file, b"a file, not a folder\n")?;
    let out = run_tern(
        [
            OsStr::new("recv"),
            OsStr::new("--yes"),
            OsStr::new("--port"),
            OsStr::new("0"),
            OsStr::new("--download-dir"),
            file.as_os_str(),
        ],
        b"",
        TIMEOUT,
    )?;
    out.ensure_failure()?;
    ensure!(
        out.stderr
            .contains(&format!("{} is not a folder", file.display()))
            && !out.stderr.contains("File exists"),
        "stderr does not say the download dir is not a folder\n{out}"
    );
    Ok(())
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn only_connection_errors_a_retry_can_fix_are_retried() -> anyhow::Result<()> {
    // `.invalid` never resolves (RFC 6761).
    for (target, says) in [
        ("127.0.0.1:99999", "is not a port"),
        ("127.0.0.1:0", "is not a port"),
        ("no-such-host.invalid", "no-such-host.invalid:8989"),
    ] {
        let out = run_tern(["send", "--retries", "3", target], b"", TIMEOUT)?;
        out.ensure_failure()?;
        ensure!(
            out.stderr.contains(says) && !out.stderr.contains("retry"),
            "`tern send {target}`: expected one clear error mentioning {says:?}, no retry\n{out}"
        );
        ensure!(
            count(&out.stderr, "cannot connect to") == 1,
            "`tern send {target}`: the context is not said exactly once\n{out}"
        );
    }

    // Nobody listening yet: worth another try.
    let port = free_port()?;
    let out = run_tern(["send", "--retries", "1", &target(port)], b"", TIMEOUT)?;
    out.ensure_failure()?;
    ensure!(
        count(&out.stderr, "retry 1/1") == 1
            && count(&out.stderr, "cannot connect to") == 2
            && count(&out.stderr, &target(port)) == 2,
        "expected one retry and each attempt's error said once\n{out}"
    );
    Ok(())
}

#[cfg(unix)]
/// A file this process cannot open for reading, whoever runs the tests: mode 000 keeps out
/// everyone but root, and root is refused reading a write-only sysctl (a link to one).
fn unreadable_file(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("secret.txt");
    write_file(&file, b"private\n")?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000))?;
    if std::fs::File::open(&file).is_ok() {
        std::fs::remove_file(&file)?;
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", &file)?;
    }
    ensure!(
        std::fs::File::open(&file).is_err(),
        "cannot make an unreadable file here"
    );
    Ok(file)
}

#[cfg(unix)]
#[test]
fn an_unreadable_file_fails_before_connecting_and_is_named() -> anyhow::Result<()> {
    let src = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    let readable = src.path().join("fine.txt");
    write_file(&readable, b"fine\n")?;
    let unreadable = unreadable_file(src.path())?;
    let (mut recv, port) = spawn_recv_into("recv", inbox.path())?;
    let out = run_tern(
        [
            OsStr::new("send"),
            OsStr::new(&target(port)),
            readable.as_os_str(),
            unreadable.as_os_str(),
        ],
        b"",
        TIMEOUT,
    )?;
    out.ensure_failure()?;
    let named = unreadable.display().to_string();
    ensure!(
        out.stderr.contains(&named) && count(&out.stderr, "Permission denied") == 1,
        "stderr does not name the unreadable file once, with why\n{out}"
    );
    ensure!(
        !out.stderr.contains("retry") && !out.stderr.contains("connected"),
        "tern send connected or retried\n{out}"
    );
    let seen = recv.describe();
    ensure!(
        !seen.contains("connected") && !seen.contains(&named),
        "the receiver was contacted\n{seen}"
    );
    Ok(())
}

#[test]
fn a_gbk_chat_line_arrives_as_utf8() -> anyhow::Result<()> {
    let inbox = tempfile::tempdir()?;
    let (mut recv, port) = spawn_recv(
        "recv",
        &[OsStr::new("--download-dir"), inbox.path().as_os_str()],
    )?;
    recv.close_stdin();
    let mut send = spawn_tern("send", ["send", "--encoding", "gbk", &target(port)])?;
    send.write_stdin("你好\n".as_bytes())?;
    let send = send.finish(TIMEOUT)?;
    let recv = recv.finish(TIMEOUT)?;
    send.ensure_success()?;
    recv.ensure_success()?;
    ensure!(
        recv.stdout == "你好\n".as_bytes(),
        "recv's stdout is not exactly 你好 in UTF-8 ({:02x?})\n{recv}",
        recv.stdout
    );
    Ok(())
}

/// One protocol frame (PROTOCOL.md section 2): `len:u32 tag:u8 body`.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len() + 1).expect("small frame");
    let mut out = len.to_be_bytes().to_vec();
    out.push(tag);
    out.extend_from_slice(body);
    out
}

/// A listener's first frames may reach the connector in the same read as its `Hello` (here they
/// are written in one go, as a busy listener's kernel may well deliver them). The connector must
/// still show them at once, not when the next bytes happen to arrive (the 15 s ping) or never
/// (if it closes first).
#[test]
fn a_message_arriving_with_the_hello_is_printed_at_once() -> anyhow::Result<()> {
    const MAGIC: &[u8] = b"\x89TERN\r\n\x1a";
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    // Bytes written by hand: the plaintext protocol (the same frames travel in records).
    let mut send = spawn_tern("send", ["send", "--insecure", &target(port)])?;
    let (mut peer, _) = listener.accept()?;
    peer.set_read_timeout(Some(TIMEOUT))?;

    // The connector's preamble and Hello.
    let mut preamble = [0u8; 10];
    peer.read_exact(&mut preamble)?;
    ensure!(
        preamble[..8] == *MAGIC && preamble[8..] == 1u16.to_be_bytes(),
        "unexpected preamble {preamble:02x?}"
    );
    let mut len = [0u8; 4];
    peer.read_exact(&mut len)?;
    let mut hello = vec![0u8; u32::from_be_bytes(len) as usize];
    peer.read_exact(&mut hello)?;
    ensure!(
        hello.first() == Some(&0x01),
        "expected Hello, got {hello:02x?}"
    );

    // Our preamble, Hello and a Text frame, in one write.
    let line = "sent with the Hello, 一起到达";
    let name = b"scripted listener";
    let mut reply = MAGIC.to_vec();
    reply.extend_from_slice(&1u16.to_be_bytes());
    let mut hello_body = 1u32.to_be_bytes().to_vec();
    hello_body.extend_from_slice(&u16::try_from(name.len())?.to_be_bytes());
    hello_body.extend_from_slice(name);
    reply.extend(frame(0x01, &hello_body));
    let mut text_body = vec![0u8];
    text_body.extend_from_slice(line.as_bytes());
    reply.extend(frame(0x02, &text_body));
    peer.write_all(&reply)?;

    // The connection stays open and quiet: nothing else can push the message out.
    let printed = send.wait_stdout("the message", Duration::from_secs(5), |l| l == line);

    // Let send say goodbye, then close our side.
    send.close_stdin();
    let mut rest = Vec::new();
    let _ = peer.read_to_end(&mut rest);
    drop(peer);
    let send = send.finish(TIMEOUT)?;
    printed.with_context(|| format!("after the session ended:\n{send}"))?;
    send.ensure_success()?;
    Ok(())
}

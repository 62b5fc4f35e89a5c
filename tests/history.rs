//! The history as a real SQLite file: written by real `tern recv` and `tern send` processes,
//! read back by `tern history` after they exit, across restarts, and after a `kill -9` in the
//! middle of a transfer.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::Value;

use common::{
    Finished, Proc, TIMEOUT, free_port, is_listening_line, spawn_logged, tern_command,
    write_random_file,
};

/// `tern ARGS` keeping its history in `data`.
fn tern_in(data: &Path, name: &str, args: &[&OsStr]) -> anyhow::Result<Proc> {
    spawn_logged(name, |log| {
        let mut cmd = tern_command(log, args);
        cmd.env("TERN_DATA_DIR", data);
        cmd
    })
}

/// `tern recv --yes` on a free port, its history in `data`.
fn recv_in(data: &Path, inbox: &Path, once: bool) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let port_arg = port.to_string();
    let mut args = vec![
        OsStr::new("recv"),
        OsStr::new("--name"),
        OsStr::new("inbox"),
        OsStr::new("--yes"),
        OsStr::new("--bind"),
        OsStr::new("127.0.0.1"),
        OsStr::new("--port"),
        OsStr::new(&port_arg),
        OsStr::new("--download-dir"),
        inbox.as_os_str(),
    ];
    if once {
        args.push(OsStr::new("--once"));
    }
    let mut recv = tern_in(data, "recv", &args)?;
    recv.wait_stderr("the listening line", TIMEOUT, is_listening_line)?;
    Ok((recv, port))
}

/// `tern history ARGS --json`, parsed.
fn history(data: &Path, args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut all: Vec<&OsStr> = vec![OsStr::new("history"), OsStr::new("--json")];
    all.extend(args.iter().map(OsStr::new));
    let out = tern_in(data, "history", &all)?.finish(TIMEOUT)?;
    out.ensure_success()?;
    parse(&out)
}

fn parse(out: &Finished) -> anyhow::Result<Vec<Value>> {
    out.stdout_text()?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("{l:?}\n{out}")))
        .collect()
}

#[test]
fn a_conversation_is_kept_and_read_back_after_both_sides_exit() -> anyhow::Result<()> {
    let (recv_data, send_data) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (src, inbox) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let file = src.path().join("report.pdf");
    write_random_file(&file, 200_000, 5)?;

    let (mut recv, port) = recv_in(recv_data.path(), inbox.path(), true)?;
    recv.write_stdin("got it, 谢谢\n".as_bytes())?;
    let target = format!("127.0.0.1:{port}");
    let mut send = tern_in(
        send_data.path(),
        "send",
        &[
            OsStr::new("send"),
            OsStr::new("--name"),
            OsStr::new("ana"),
            OsStr::new(&target),
            file.as_os_str(),
        ],
    )?;
    send.write_stdin("here is the report\n".as_bytes())?;
    send.wait_stdout("the receiver's line", TIMEOUT, |l| l == "got it, 谢谢")?;
    send.finish(TIMEOUT)?.ensure_success()?;
    recv.finish(TIMEOUT)?.ensure_success()?;

    // The receiver's side: the peer, a message each way, the file.
    let kept = history(recv_data.path(), &[])?;
    let messages: Vec<(&Value, &Value, &Value)> = kept
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| (&e["peer"], &e["direction"], &e["text"]))
        .collect();
    ensure!(
        messages.contains(&(&"ana".into(), &"in".into(), &"here is the report".into()))
            && messages.contains(&(&"ana".into(), &"out".into(), &"got it, 谢谢".into())),
        "{kept:#?}"
    );
    let files: Vec<&Value> = kept.iter().filter(|e| e["kind"] == "file").collect();
    ensure!(files.len() == 1, "{kept:#?}");
    ensure!(
        files[0]["name"] == "report.pdf"
            && files[0]["size"] == 200_000
            && files[0]["direction"] == "in"
            && files[0]["outcome"] == "verified"
            && files[0]["peer"] == "ana",
        "{:#?}",
        files[0]
    );
    let saved = files[0]["path"].as_str().context("a saved path")?;
    common::ensure_same_file(&file, Path::new(saved))?;
    for entry in &kept {
        let time = entry["time"].as_str().context("a time")?;
        ensure!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok(),
            "{time} is not ISO 8601"
        );
    }
    // The sender's side names the receiver, and its file went out.
    let sent = history(send_data.path(), &["inbox"])?;
    ensure!(
        sent.iter()
            .any(|e| e["kind"] == "file" && e["direction"] == "out" && e["outcome"] == "verified"),
        "{sent:#?}"
    );
    ensure!(history(send_data.path(), &["nobody"])?.is_empty());
    Ok(())
}

#[test]
fn history_grows_across_restarts_and_reads_in_order_with_a_limit() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let inbox = tempfile::tempdir()?;
    for round in 1..=3 {
        let (recv, port) = recv_in(data.path(), inbox.path(), true)?;
        let mut recv = recv;
        let out = common::run_tern(
            ["send", "--name", "bo", &format!("127.0.0.1:{port}")],
            format!("line {round}\n").as_bytes(),
            TIMEOUT,
        )?;
        out.ensure_success()?;
        recv.finish(TIMEOUT)?.ensure_success()?;
    }
    let texts = |entries: &[Value]| -> Vec<String> {
        entries
            .iter()
            .filter_map(|e| e["text"].as_str().map(str::to_string))
            .collect()
    };
    let all = history(data.path(), &["bo"])?;
    ensure!(texts(&all) == ["line 1", "line 2", "line 3"], "{all:#?}");
    let last = history(data.path(), &["--limit", "2"])?;
    ensure!(texts(&last) == ["line 2", "line 3"], "{last:#?}");
    let found = history(data.path(), &["--search", "2"])?;
    ensure!(texts(&found) == ["line 2"], "{found:#?}");
    // The plain form: one line per entry, time first.
    let plain = tern_in(data.path(), "history", &[OsStr::new("history")])?.finish(TIMEOUT)?;
    plain.ensure_success()?;
    let text = plain.stdout_text()?;
    ensure!(
        text.lines().count() == 3 && text.lines().all(|l| l.contains("<- bo  line ")),
        "{plain}"
    );
    Ok(())
}

#[test]
fn a_kill_in_the_middle_of_a_transfer_loses_nothing_committed() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let (src, inbox) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let big = src.path().join("big.bin");
    write_random_file(&big, 256 << 20, 9)?;
    let (mut recv, port) = recv_in(data.path(), inbox.path(), false)?;
    let target = format!("127.0.0.1:{port}");
    let mut send = common::spawn_tern(
        "send",
        [
            OsStr::new("send"),
            OsStr::new("--name"),
            OsStr::new("chen"),
            OsStr::new(&target),
            big.as_os_str(),
        ],
    )?;
    send.write_stdin(b"before the crash\n")?;
    // Committed: `tern history` (another process) reads it.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let kept = history(data.path(), &[])?;
        if kept.iter().any(|e| e["text"] == "before the crash") {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the message never reached the history"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mid-transfer: part of the file is on the receiver's disk.
    recv.wait_stderr("the transfer starting", TIMEOUT, |l| {
        l.contains("receiving big.bin")
    })?;
    recv.kill9()?;
    drop(send);
    // The file opens, passes SQLite's own check, and holds what was committed.
    let db = rusqlite::Connection::open(data.path().join("history.sqlite3"))?;
    let check: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    ensure!(check == "ok", "integrity_check: {check}");
    let kept = history(data.path(), &[])?;
    ensure!(
        kept.iter()
            .any(|e| e["text"] == "before the crash" && e["peer"] == "chen"),
        "{kept:#?}"
    );
    // And the next run writes to it as before.
    let (mut recv, port) = recv_in(data.path(), inbox.path(), true)?;
    common::run_tern(
        ["send", "--name", "chen", &format!("127.0.0.1:{port}")],
        b"after the crash\n",
        TIMEOUT,
    )?
    .ensure_success()?;
    recv.finish(TIMEOUT)?.ensure_success()?;
    let kept = history(data.path(), &["chen"])?;
    let texts: Vec<&str> = kept.iter().filter_map(|e| e["text"].as_str()).collect();
    ensure!(
        texts == ["before the crash", "after the crash"],
        "{kept:#?}"
    );
    Ok(())
}

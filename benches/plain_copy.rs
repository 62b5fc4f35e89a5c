//! A reference for benches/compare.sh: the plainest copy over TCP that verifies like tern does.
//! One thread per end, 1 MiB buffers, BLAKE3 over the data on both ends, the sender's hash
//! sent after the data and checked by the receiver. No framing, no chat, no other files: what
//! a hashing transfer costs on this machine, and so the practical limit for tern's bulk case.
//!
//!   plain_copy recv PORT OUT        listen on 127.0.0.1:PORT, write the data to OUT
//!   plain_copy send FILE HOST:PORT
//!
//! The receiver prints "listening" on stderr once bound, and exits 1 on a hash mismatch.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

const BUF: usize = 1 << 20;
const HASH_LEN: usize = 32;

fn send(path: &str, to: &str) -> std::io::Result<()> {
    let mut file = File::open(path)?;
    let mut sock = TcpStream::connect(to)?;
    let mut buf = vec![0u8; BUF];
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sock.write_all(&buf[..n])?;
    }
    sock.write_all(hasher.finalize().as_bytes())
}

fn recv(port: &str, out: &str) -> std::io::Result<bool> {
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    eprintln!("listening");
    let (mut sock, _) = listener.accept()?;
    let mut file = File::create(out)?;
    let mut buf = vec![0u8; BUF];
    let mut hasher = blake3::Hasher::new();
    // The stream ends with the hash: the last HASH_LEN bytes seen are held back, at the front.
    let mut held = 0;
    loop {
        let n = sock.read(&mut buf[held..])?;
        if n == 0 {
            break;
        }
        let have = held + n;
        if have > HASH_LEN {
            let data = have - HASH_LEN;
            hasher.update(&buf[..data]);
            file.write_all(&buf[..data])?;
            buf.copy_within(data..have, 0);
            held = HASH_LEN;
        } else {
            held = have;
        }
    }
    Ok(&buf[..held] == hasher.finalize().as_bytes())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["send", file, to] => send(file, to).map(|()| true),
        ["recv", port, out] => recv(port, out),
        _ => {
            eprintln!("usage: plain_copy recv PORT OUT | plain_copy send FILE HOST:PORT");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("plain_copy: BLAKE3 mismatch");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("plain_copy: {e}");
            ExitCode::FAILURE
        }
    }
}

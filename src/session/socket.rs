//! The TCP options a session sets on its socket, for chat that shares the connection with
//! bulk data. Best effort: a system without them still works, with more latency under load.

use socket2::{SockRef, Socket};
use tokio::net::TcpStream;

/// Unsent bytes the kernel may hold while messages flow: small, so a message queued behind
/// file data waits for little more than one chunk, yet enough to keep the link busy.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
const CHAT_UNSENT: u32 = 128 * 1024;
/// Unsent bytes the kernel may hold while only files flow. With the chat figure the sending
/// session was woken for every chunk the kernel took; with this one it writes several per
/// wake-up. Measured on 2 cores, 1 GiB to disk, 10 shuffled rounds against socat: median
/// 1,347 ms per GiB with 128 KiB, 1,209 ms with 1 MiB, CPU of both ends 2.01 → 1.84 s. The
/// first message after a quiet spell waits behind at most this much; the ones after it,
/// behind `CHAT_UNSENT`.
const BULK_UNSENT: u32 = 1024 * 1024;
/// Receive buffer: bounds how much file data can sit unread ahead of a message on the
/// receiving side, far above what a LAN needs in flight (bandwidth × round trip).
const RECV_BUFFER: usize = 1024 * 1024;

/// Set the options that hold for the whole session.
pub(super) fn tune(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    let socket = SockRef::from(stream);
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "SO_RCVBUF");
    }
    // Windows has no TCP_NOTSENT_LOWAT (below). What stands in: a fixed send buffer of the
    // bulk figure, which turns off Windows' send-buffer auto-tuning (it grows to several MiB
    // on a fast link), so a message waits behind at most that much file data, in chat and
    // bulk alike. Order and delivery are the same as anywhere.
    #[cfg(windows)]
    if let Err(e) = socket.set_send_buffer_size(BULK_UNSENT as usize) {
        tracing::debug!(error = %e, "SO_SNDBUF");
    }
}

/// How much unsent data the kernel keeps for us: little while people chat, more while only
/// files flow (`TCP_NOTSENT_LOWAT`, on Linux and macOS).
pub(super) struct UnsentLimit {
    /// The session's socket, by a descriptor of its own (so no lifetime ties it to the
    /// stream the actor owns); `None` for a transport that is not a socket.
    socket: Option<Socket>,
    chatting: Option<bool>,
}

impl UnsentLimit {
    pub(super) fn of(stream: &TcpStream) -> Self {
        let socket = SockRef::from(stream)
            .try_clone()
            .map_err(|e| tracing::debug!(error = %e, "no socket for TCP_NOTSENT_LOWAT"))
            .ok();
        Self {
            socket,
            chatting: None,
        }
    }

    /// For a transport that is not a socket: nothing to set.
    pub(super) fn none() -> Self {
        Self {
            socket: None,
            chatting: None,
        }
    }

    /// Set the limit for a connection that is, or is not, carrying a conversation; a system
    /// call only when that changes.
    pub(super) fn follow(&mut self, chatting: bool) {
        if self.chatting == Some(chatting) {
            return;
        }
        self.chatting = Some(chatting);
        if let Some(socket) = &self.socket
            && let Err(e) = set_unsent_limit(socket, chatting)
        {
            tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT");
        }
    }

    /// The limit last set: `Some(true)` for the chat one.
    #[cfg(test)]
    pub(super) fn chatting(&self) -> Option<bool> {
        self.chatting
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_unsent_limit(socket: &Socket, chatting: bool) -> std::io::Result<()> {
    socket.set_tcp_notsent_lowat(if chatting { CHAT_UNSENT } else { BULK_UNSENT })
}

/// macOS has the option, but socket2 and rustix only offer it for Linux: the one
/// `setsockopt` written by hand.
#[cfg(target_vendor = "apple")]
fn set_unsent_limit(socket: &Socket, chatting: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    /// From macOS's `<netinet/tcp.h>` (since 10.9); the libc crate lacks it for Apple.
    const TCP_NOTSENT_LOWAT: libc::c_int = 0x201;
    let value: libc::c_int = if chatting { CHAT_UNSENT } else { BULK_UNSENT } as libc::c_int;
    // SAFETY: no memory but `value`, a live c_int whose size is passed alongside it, and a
    // descriptor `socket` owns for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_NOTSENT_LOWAT,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Windows: the fixed send buffer set in [`tune`] stands in for both limits.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn set_unsent_limit(_socket: &Socket, _chatting: bool) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn the_unsent_limit_follows_the_conversation() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let stream = TcpStream::connect(listener.local_addr()?).await?;
        let unsent_limit = || SockRef::from(&stream).tcp_notsent_lowat();
        let mut limit = UnsentLimit::of(&stream);
        assert_eq!(limit.chatting(), None);

        limit.follow(false);
        assert_eq!(unsent_limit()?, BULK_UNSENT);
        limit.follow(true);
        assert_eq!(unsent_limit()?, CHAT_UNSENT);
        assert_eq!(limit.chatting(), Some(true));
        limit.follow(false);
        assert_eq!(unsent_limit()?, BULK_UNSENT);
        Ok(())
    }

    #[test]
    fn a_transport_without_a_socket_has_nothing_to_set() {
        let mut limit = UnsentLimit::none();
        limit.follow(true);
        assert_eq!(limit.chatting(), Some(true));
    }
}

//! The TCP options a session sets on its socket, for chat that shares the connection with
//! bulk data. Best effort: a system without them still works, with more latency under load.

use tokio::net::TcpStream;

/// Unsent bytes the kernel may hold while messages flow: small, so a message queued behind
/// file data waits for little more than one chunk, yet enough to keep the link busy.
const CHAT_UNSENT: libc::c_int = 128 * 1024;
/// Unsent bytes the kernel may hold while only files flow. With the chat figure the sending
/// session was woken for every chunk the kernel took; with this one it writes several per
/// wake-up. Measured on 2 cores, 1 GiB to disk, 10 shuffled rounds against socat: median
/// 1,347 ms per GiB with 128 KiB, 1,209 ms with 1 MiB, CPU of both ends 2.01 → 1.84 s. The
/// first message after a quiet spell waits behind at most this much; the ones after it,
/// behind `CHAT_UNSENT`.
const BULK_UNSENT: libc::c_int = 1024 * 1024;
/// Receive buffer: bounds how much file data can sit unread ahead of a message on the
/// receiving side, far above what a LAN needs in flight (bandwidth × round trip).
const RECV_BUFFER: libc::c_int = 1024 * 1024;

/// Set the options that hold for the whole session.
pub(super) fn tune(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY");
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        set(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            RECV_BUFFER,
            "SO_RCVBUF",
        );
    }
}

/// How much unsent data the kernel keeps for us: little while people chat, more while only
/// files flow (`TCP_NOTSENT_LOWAT`).
pub(super) struct UnsentLimit {
    #[cfg(target_os = "linux")]
    fd: Option<std::os::fd::RawFd>,
    chatting: Option<bool>,
}

impl UnsentLimit {
    /// For `stream`, which must outlive every call of [`UnsentLimit::follow`]: the actor that
    /// owns the stream owns this too.
    pub(super) fn of(stream: &TcpStream) -> Self {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            Self {
                fd: Some(stream.as_raw_fd()),
                chatting: None,
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = stream;
            Self { chatting: None }
        }
    }

    /// For a transport that is not a socket: nothing to set.
    pub(super) fn none() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            fd: None,
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
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.fd {
            let bytes = if chatting { CHAT_UNSENT } else { BULK_UNSENT };
            set(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                bytes,
                "TCP_NOTSENT_LOWAT",
            );
        }
    }

    /// The limit last set: `Some(true)` for the chat one.
    #[cfg(test)]
    pub(super) fn chatting(&self) -> Option<bool> {
        self.chatting
    }
}

#[cfg(target_os = "linux")]
fn set(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) {
    // SAFETY: no memory but `value`, a live c_int whose size is passed alongside it; a stale
    // descriptor could only make the call fail.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), what, "setsockopt");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn unsent_limit_of(stream: &TcpStream) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are live locals of the sizes the call is told.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                std::ptr::from_mut(&mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        value
    }

    #[tokio::test]
    async fn the_unsent_limit_follows_the_conversation() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let stream = TcpStream::connect(listener.local_addr()?).await?;
        let mut limit = UnsentLimit::of(&stream);
        assert_eq!(limit.chatting(), None);

        limit.follow(false);
        assert_eq!(unsent_limit_of(&stream), BULK_UNSENT);
        limit.follow(true);
        assert_eq!(unsent_limit_of(&stream), CHAT_UNSENT);
        assert_eq!(limit.chatting(), Some(true));
        limit.follow(false);
        assert_eq!(unsent_limit_of(&stream), BULK_UNSENT);
        Ok(())
    }

    #[test]
    fn a_transport_without_a_socket_has_nothing_to_set() {
        let mut limit = UnsentLimit::none();
        limit.follow(true);
        assert_eq!(limit.chatting(), Some(true));
    }
}

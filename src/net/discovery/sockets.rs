//! Discovery's two UDP sockets. `shared` listens on the discovery port beside any other tern on
//! this machine (each gets every multicast and broadcast datagram) and is joined to the group on
//! each interface used; `own` has a port of its own and sends everything, so answers to our
//! probes come back to us alone.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::interfaces::Iface;

pub struct Sockets {
    /// `None` when the discovery port could not be had: announces are then missed, answers to
    /// our probes still arrive.
    pub shared: Option<UdpSocket>,
    pub own: UdpSocket,
    /// What did not work, in words for `tern peers` to explain.
    pub problems: Vec<String>,
    /// Interfaces on which the group could not be joined, and why.
    pub unjoined: Vec<(String, String)>,
}

fn udp() -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.set_broadcast(true)?;
    Ok(socket)
}

/// Open both sockets; `shared` on `port`, in `group` on each of `ifaces`.
pub fn open(port: u16, group: Ipv4Addr, ifaces: &[Iface]) -> std::io::Result<Sockets> {
    let mut problems = Vec::new();
    let mut unjoined = Vec::new();
    let own = udp()?;
    // Nothing discovery sends is for another network.
    own.set_ttl_v4(1)?;
    own.set_multicast_ttl_v4(1)?;
    // Other terns on this machine hear us too.
    own.set_multicast_loop_v4(true)?;
    own.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    let own = UdpSocket::from_std(own.into())?;
    let shared = match shared(port) {
        Ok(socket) => {
            let socket = UdpSocket::from_std(socket.into())?;
            unjoined.extend(ifaces.iter().filter_map(|i| join(&socket, group, i)));
            Some(socket)
        }
        Err(e) => {
            tracing::warn!(port, error = %e, "cannot listen for announces");
            problems.push(format!(
                "UDP port {port} is taken by another program ({e}): only answers to probes are heard"
            ));
            None
        }
    };
    Ok(Sockets {
        shared,
        own,
        problems,
        unjoined,
    })
}

/// Join `group` on `iface`; what failed, for saying why nobody was found.
pub fn join(shared: &UdpSocket, group: Ipv4Addr, iface: &Iface) -> Option<(String, String)> {
    let e = shared.join_multicast_v4(group, iface.ip).err()?;
    tracing::warn!(iface = %iface.name, error = %e, "cannot join the discovery group");
    Some((iface.name.clone(), e.to_string()))
}

/// The discovery port, shared with other terns here.
fn shared(port: u16) -> std::io::Result<Socket> {
    let socket = udp()?;
    socket.set_reuse_address(true)?;
    // On Linux and macOS several sockets may hold one port only with SO_REUSEPORT as well;
    // Windows' SO_REUSEADDR alone lets them.
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())?;
    Ok(socket)
}

/// Send `bytes` to `group` out of `iface` (and to its subnet's broadcast address): to
/// everyone on that link, whichever of the two their network lets through.
pub async fn to_link(own: &UdpSocket, bytes: &[u8], iface: &Iface, group: Ipv4Addr, port: u16) {
    let socket = socket2::SockRef::from(own);
    match socket.set_multicast_if_v4(&iface.ip) {
        Ok(()) => send(own, bytes, SocketAddrV4::new(group, port), &iface.name).await,
        Err(e) => tracing::debug!(iface = %iface.name, error = %e, "IP_MULTICAST_IF"),
    }
    if let Some(broadcast) = iface.broadcast {
        send(own, bytes, SocketAddrV4::new(broadcast, port), &iface.name).await;
    }
}

/// One datagram; a failure (a link gone down, a firewall) is logged, not fatal.
pub async fn send(own: &UdpSocket, bytes: &[u8], to: SocketAddrV4, iface: &str) {
    if let Err(e) = own.send_to(bytes, to).await {
        tracing::debug!(%to, iface, error = %e, "discovery datagram not sent");
    }
}

//! Listening sockets, TCP or Unix-domain, that register a handler per
//! accepted connection.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::sys::syscall;
use crate::{Context, Handler, Readiness};

/// How many connections one readiness report may accept.
const ACCEPT_BATCH: usize = 64;

/// Where a connection came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client's address.
    Tcp(SocketAddr),
    /// A Unix-domain client (they are usually unnamed).
    Unix,
}

/// Where a listener listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP address, with the port the kernel chose if 0 was asked for.
    Tcp(SocketAddr),
    /// A Unix-domain socket file.
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// What a listener does with each connection it accepts.
type OnAccept = Box<dyn FnMut(OwnedFd, Peer, &mut Context) -> io::Result<()>>;

/// Accepts connections and hands each one's descriptor (non-blocking,
/// `CLOEXEC`) to a closure: with the [`Context`]
/// ([`tcp_accept`](Listener::tcp_accept), [`unix_accept`](Listener::unix_accept)),
/// which may register a [`Connection`](crate::sources::Connection) or
/// anything else; or to a factory whose handler the listener registers
/// ([`tcp`](Listener::tcp), [`unix`](Listener::unix)). An error for one
/// connection is logged and closes that connection; the listener goes on.
///
/// The backlog is `SOMAXCONN`. When the process runs out of descriptors
/// (`EMFILE`, `ENFILE`), a level-triggered listener would be woken for ever
/// by the connection it cannot accept; this one keeps a spare descriptor
/// (open on `/dev/null`) for that moment, closes it to accept and close the
/// waiting connections, logs, and takes the spare back. Clients see their
/// connection closed instead of hanging, and accepting resumes by itself as
/// soon as descriptors are free.
///
/// A Unix-domain listener removes its socket file when it is dropped.
///
/// A listener that cannot start says so with its address (`cannot listen
/// on unix:/run/app.sock: ...`); an address in use (`AddrInUse`) also says
/// what holds it and what to do: a program listening there (stop it, or
/// choose another port or path), or a file that is not a socket at the path
/// (remove it). A socket file whose listener died is replaced.
pub struct Listener {
    fd: OwnedFd,
    addr: ListenAddr,
    name: String,
    spare: Option<File>,
    on_accept: OnAccept,
    shed_log: ShedLog,
}

/// How often running out of descriptors is logged: the first time at
/// once, then at most once a second, with a count of what was closed
/// meanwhile (a burst of 500 connections is a few lines, not 500).
#[derive(Debug, Default)]
struct ShedLog {
    last: Option<std::time::Instant>,
    unreported: u64,
}

impl ShedLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    fn closed(&mut self, name: &str, closed: u64) {
        self.unreported += closed;
        if self.unreported == 0 || self.last.is_some_and(|last| last.elapsed() < Self::EVERY) {
            return;
        }
        self.last = Some(std::time::Instant::now());
        self.report(name, "out of file descriptors");
    }

    /// Logs what was closed and not yet said, if anything.
    fn report(&mut self, name: &str, why: &str) {
        if self.unreported > 0 {
            log::warn!("{name}: {why}; closed {} incoming connection(s)", self.unreported);
            self.unreported = 0;
        }
    }
}

impl Listener {
    /// Listens on a TCP address (`SO_REUSEADDR`; port 0 picks a free port)
    /// and registers the handler `factory` makes for each connection.
    pub fn tcp(
        addr: SocketAddr,
        factory: impl FnMut(OwnedFd, Peer) -> Box<dyn Handler> + 'static,
    ) -> io::Result<Listener> {
        Listener::tcp_accept(addr, registering(factory))
    }

    /// Listens on a TCP address (`SO_REUSEADDR`; port 0 picks a free port)
    /// and calls `on_accept` with each connection and the `Context`.
    pub fn tcp_accept(
        addr: SocketAddr,
        on_accept: impl FnMut(OwnedFd, Peer, &mut Context) -> io::Result<()> + 'static,
    ) -> io::Result<Listener> {
        let (fd, local) = bind_tcp(addr).map_err(|e| cannot_listen(&ListenAddr::Tcp(addr), e))?;
        Listener::listen(fd, ListenAddr::Tcp(local), Box::new(on_accept))
    }

    /// Listens on a Unix-domain socket file and registers the handler
    /// `factory` makes for each connection. A socket file left by a dead
    /// process (nobody accepts on it) is replaced; a live one is not.
    pub fn unix(
        path: impl AsRef<Path>,
        factory: impl FnMut(OwnedFd, Peer) -> Box<dyn Handler> + 'static,
    ) -> io::Result<Listener> {
        Listener::unix_accept(path, registering(factory))
    }

    /// Listens on a Unix-domain socket file, as [`unix`](Listener::unix),
    /// and calls `on_accept` with each connection and the `Context`.
    pub fn unix_accept(
        path: impl AsRef<Path>,
        on_accept: impl FnMut(OwnedFd, Peer, &mut Context) -> io::Result<()> + 'static,
    ) -> io::Result<Listener> {
        let path = path.as_ref();
        let fd = bind_unix(path).map_err(|e| cannot_listen(&ListenAddr::Unix(path.to_path_buf()), e))?;
        // From here on, dropping the listener removes the file.
        Listener::listen(fd, ListenAddr::Unix(path.to_path_buf()), Box::new(on_accept))
    }

    fn listen(fd: OwnedFd, addr: ListenAddr, on_accept: OnAccept) -> io::Result<Listener> {
        // Built first, so that a failure below drops it: a Unix socket file goes with it.
        let mut listener = Listener {
            name: format!("listener {addr}"),
            spare: None,
            fd,
            addr,
            on_accept,
            shed_log: ShedLog::default(),
        };
        let listening = spare().and_then(|spare| {
            listener.spare = Some(spare);
            // SAFETY: integer arguments only, on the socket we own.
            syscall!(listen(listener.fd.as_raw_fd(), libc::SOMAXCONN))
        });
        match listening {
            Ok(_) => Ok(listener),
            Err(e) => Err(cannot_listen(&listener.addr, e)),
        }
    }

    /// The address it listens on (with the actual port for TCP port 0).
    ///
    /// ```
    /// use std::io::Write;
    /// use std::net::TcpStream;
    /// use reactor::sources::{ListenAddr, Listener, LineReader};
    /// use reactor::Reactor;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let mut reactor = Reactor::new()?;
    /// // One line reader per connection; the first line stops the loop.
    /// let listener = Listener::tcp("127.0.0.1:0".parse().unwrap(), |fd, _peer| {
    ///     Box::new(LineReader::new(fd, 1024, |line, ctx| {
    ///         assert_eq!(line, b"hello");
    ///         ctx.stop();
    ///     }))
    /// })?;
    /// let ListenAddr::Tcp(addr) = listener.local_addr().clone() else { unreachable!() };
    /// reactor.register(listener)?;
    /// TcpStream::connect(addr)?.write_all(b"hello\n")?;
    /// reactor.run()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn local_addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Accepts one connection, or `None` when none is waiting.
    fn accept(&self) -> io::Result<Option<(OwnedFd, Peer)>> {
        // SAFETY: `sockaddr_storage` is a plain C struct; all-zero is valid.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let addr = (&mut storage as *mut libc::sockaddr_storage).cast();
        // SAFETY: `addr` points to `storage`, writable for `len` bytes.
        match syscall!(accept4(self.fd.as_raw_fd(), addr, &mut len, flags)) {
            Ok(raw) => {
                // SAFETY: `accept4` just returned this descriptor; nobody else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                let peer = match &self.addr {
                    ListenAddr::Tcp(_) => Peer::Tcp(inet_addr_of(&storage)?),
                    ListenAddr::Unix(_) => Peer::Unix,
                };
                Ok(Some((fd, peer)))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Out of descriptors: give up the spare one, use it to accept and close
    /// what is waiting, then take it back.
    fn shed(&mut self) -> io::Result<()> {
        self.spare = None;
        let mut closed = 0;
        while closed < ACCEPT_BATCH {
            match self.accept() {
                Ok(Some(_dropped)) => closed += 1,
                Ok(None) => break,
                Err(e) if is_out_of_fds(&e) => break,
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.spare = Some(spare()?);
        self.shed_log.closed(&self.name, closed as u64);
        Ok(())
    }
}

impl Handler for Listener {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn on_ready(&mut self, _: Readiness, ctx: &mut Context) -> io::Result<()> {
        for _ in 0..ACCEPT_BATCH {
            match self.accept() {
                Ok(Some((fd, peer))) => {
                    self.shed_log.report(&self.name, "was out of file descriptors");
                    if let Err(e) = (self.on_accept)(fd, peer, ctx) {
                        log::error!("{}: {e}", self.name);
                    }
                }
                Ok(None) => break,
                Err(e) if is_out_of_fds(&e) => return self.shed(),
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shed_log.report(&self.name, "was out of file descriptors");
        if let ListenAddr::Unix(path) = &self.addr {
            if let Err(e) = std::fs::remove_file(path) {
                log::warn!("{}: cannot remove {}: {e}", self.name, path.display());
            }
        }
    }
}

/// A factory as an accept closure: registers what it makes.
fn registering(
    mut factory: impl FnMut(OwnedFd, Peer) -> Box<dyn Handler> + 'static,
) -> impl FnMut(OwnedFd, Peer, &mut Context) -> io::Result<()> + 'static {
    move |fd, peer, ctx| ctx.register_boxed(factory(fd, peer)).map(drop).map_err(io::Error::from)
}

/// A TCP socket bound to `addr` (`SO_REUSEADDR`), and the address it got.
fn bind_tcp(addr: SocketAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    let fd = socket(if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 })?;
    let one: libc::c_int = 1;
    // SAFETY: `one` is a live `c_int` of the size given.
    syscall!(setsockopt(
        fd.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        (&one as *const libc::c_int).cast(),
        mem::size_of::<libc::c_int>() as libc::socklen_t
    ))?;
    let (storage, len) = inet_sockaddr(&addr);
    // SAFETY: `storage` holds an address of `len` bytes.
    syscall!(bind(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len))?;
    let local = local_inet_addr(fd.as_raw_fd())?;
    Ok((fd, local))
}

/// A Unix-domain socket bound to `path`, which replaces a socket file
/// left by a dead process.
fn bind_unix(path: &Path) -> io::Result<OwnedFd> {
    let (addr, len) = unix_sockaddr(path)?;
    let fd = socket(libc::AF_UNIX)?;
    // SAFETY: `addr` holds a Unix address of `len` bytes.
    let bind = || syscall!(bind(fd.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len));
    match bind() {
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) && is_stale_socket(path) => {
            std::fs::remove_file(path)?;
            bind()?;
        }
        result => {
            result?;
        }
    }
    Ok(fd)
}

/// Why a listener could not start, naming its address, and for an address
/// in use what to do.
fn cannot_listen(addr: &ListenAddr, e: io::Error) -> io::Error {
    let in_use = e.raw_os_error() == Some(libc::EADDRINUSE);
    let remedy = match addr {
        _ if !in_use => "",
        ListenAddr::Tcp(_) => {
            "; another program listens there: stop it, or choose another port (0 picks a free one)"
        }
        ListenAddr::Unix(path) if is_socket(path) => {
            "; a running program listens on this socket: stop it, or choose another path"
        }
        ListenAddr::Unix(_) => {
            "; something that is not a socket is at this path: remove it, or choose another path"
        }
    };
    io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}{remedy}"))
}

fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// Errors that concern one connection, not the listener (see `accept(2)`:
/// network errors are reported by `accept4` on Linux and should be retried).
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EINTR
                | libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
        )
    )
}

fn spare() -> io::Result<File> {
    // std opens with O_CLOEXEC.
    File::open("/dev/null")
}

pub(crate) fn socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; returns a new descriptor or -1.
    let raw = syscall!(socket(domain, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0))?;
    // SAFETY: `socket` just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Whether `path` is a socket file that nobody listens on any more.
fn is_stale_socket(path: &Path) -> bool {
    is_socket(path)
        && matches!(
            std::os::unix::net::UnixStream::connect(path),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
        )
}

pub(crate) fn inet_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: `sockaddr_storage` is a plain C struct; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_in`.
            let sin =
                unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_in6`.
            let sin6 =
                unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn inet_addr_of(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a `sockaddr_in6`.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
        }
        family => Err(io::Error::other(format!("unexpected address family {family}"))),
    }
}

fn local_inet_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: `sockaddr_storage` is a plain C struct; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes.
    syscall!(getsockname(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len))?;
    inet_addr_of(&storage)
}

pub(crate) fn unix_sockaddr(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: `sockaddr_un` is a plain C struct; all-zero is valid.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // Keep room for the terminating NUL; reject NULs inside.
    if bytes.len() >= addr.sun_path.len() || CString::new(bytes).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a socket path is under {} bytes, without NUL", addr.sun_path.len()),
        ));
    }
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("fd", &self.fd).field("addr", &self.addr).finish_non_exhaustive()
    }
}

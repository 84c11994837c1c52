//! A TCP proxy on 127.0.0.1 between one `weft serve` node and PostgreSQL,
//! which a test can cut and restore: a network partition between that node
//! and the database, while the node stays up and reachable over HTTP.
//!
//! Two ways to cut ([`Cut`]):
//!
//! - [`Cut::Stall`], what a real partition does: no byte moves in either
//!   direction on the open connections, and new connections are accepted
//!   but go nowhere. Nobody is told; each side notices only by its own
//!   timeouts. On [`Proxy::restore`] the stalled connections carry on with
//!   what they held (as TCP does when a partition heals before either side
//!   gave up), unless an end closed its socket meanwhile.
//! - [`Cut::Reset`]: every open connection is shut down (FIN both ways) and
//!   new ones are closed as soon as they are accepted, until restored: the
//!   database going away, which the node notices at once.
//! - [`Cut::StallAtCommit`]: forwards until a client sends `COMMIT`, then
//!   stalls as [`Cut::Stall`] does, holding that `COMMIT`: the partition
//!   at its worst moment, with a transaction open and its rows locked.
//!
//! Plain threads, not tasks: the proxy must keep forwarding while a test's
//! runtime thread is blocked, and it is dropped from synchronous code.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// How a link is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Forward nothing and tell nobody (a partition).
    Stall,
    /// Close every connection and refuse new ones (a dead peer).
    Reset,
    /// Forward until a client sends `COMMIT`, then stall, holding it.
    StallAtCommit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    Cut(Cut),
}

/// A proxy listening on 127.0.0.1 that forwards to `upstream`; stops and
/// closes every connection when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    /// Signalled whenever `link` changes or the proxy closes.
    changed: Condvar,
}

struct State {
    link: Link,
    closing: bool,
    /// Both ends of every open connection (clones, to shut them down).
    open: HashMap<u64, (TcpStream, Option<TcpStream>)>,
    next_id: u64,
    /// Connections accepted since the start, cut or not.
    accepted: u64,
}

impl Proxy {
    /// A proxy to `upstream` on a free port of 127.0.0.1.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy to 127.0.0.1:0");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State {
                link: Link::Up,
                closing: false,
                open: HashMap::new(),
                next_id: 0,
                accepted: 0,
            }),
            changed: Condvar::new(),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("proxy {addr} accept"))
                .spawn(move || accept_loop(&shared, &listener))
                .expect("spawning the proxy's accept thread")
        };
        Proxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// A proxy to the host and port of a `postgres://` URL, and the same URL
    /// pointing at the proxy instead.
    pub fn for_url(url: &str) -> (Proxy, String) {
        let (host, port) = host_port(url);
        let upstream: SocketAddr = format!("{host}:{port}")
            .parse()
            .unwrap_or_else(|e| panic!("the proxy needs a numeric host in {url:?}: {e}"));
        let proxy = Proxy::start(upstream);
        let via = url.replacen(&format!("{host}:{port}"), &proxy.addr.to_string(), 1);
        (proxy, via)
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts the link as `how` says, until [`Proxy::restore`].
    pub fn cut(&self, how: Cut) {
        let mut state = self.shared.lock();
        state.link = Link::Cut(how);
        if how == Cut::Reset {
            for (client, upstream) in state.open.values() {
                close(client, upstream.as_ref());
            }
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Forwards again: stalled connections carry on, new ones go through.
    pub fn restore(&self) {
        self.shared.lock().link = Link::Up;
        self.shared.changed.notify_all();
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        self.shared.lock().link != Link::Up
    }

    /// Whether the link stalls now (a [`Cut::StallAtCommit`] has met its
    /// `COMMIT`, or a [`Cut::Stall`]).
    pub fn is_stalled(&self) -> bool {
        self.shared.lock().link == Link::Cut(Cut::Stall)
    }

    /// Connections open now (stalled ones included).
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open.len()
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> u64 {
        self.shared.lock().accepted
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closing = true;
        for (client, upstream) in state.open.values() {
            close(client, upstream.as_ref());
        }
        drop(state);
        self.shared.changed.notify_all();
        // Wake the accept loop, which then sees `closing`.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits while the link is stalled; `false` when the connection is to
    /// end instead (the proxy closes, or the link was reset).
    fn wait_up(&self) -> bool {
        let mut state = self.lock();
        loop {
            if state.closing {
                return false;
            }
            match state.link {
                Link::Up | Link::Cut(Cut::StallAtCommit) => return true,
                Link::Cut(Cut::Reset) => return false,
                Link::Cut(Cut::Stall) => {
                    state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Turns an armed [`Cut::StallAtCommit`] into a stall.
    fn stall_if_armed(&self) {
        let mut state = self.lock();
        if state.link == Link::Cut(Cut::StallAtCommit) {
            state.link = Link::Cut(Cut::Stall);
            drop(state);
            self.changed.notify_all();
        }
    }

    fn forget(&self, id: u64) {
        self.lock().open.remove(&id);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for client in listener.incoming() {
        let mut state = shared.lock();
        if state.closing {
            return;
        }
        let Ok(client) = client else { continue };
        state.accepted += 1;
        if state.link == Link::Cut(Cut::Reset) {
            drop(state);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let id = state.next_id;
        state.next_id += 1;
        match client.try_clone() {
            Ok(clone) => state.open.insert(id, (clone, None)),
            Err(_) => continue,
        };
        drop(state);
        let for_thread = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(format!("proxy conn {id}"))
            .spawn(move || connection(&for_thread, id, client));
        if spawned.is_err() {
            // Out of threads: dropping the closure closed the client.
            shared.forget(id);
        }
    }
}

/// One proxied connection: connects upstream once the link is up, then
/// pumps both ways until both directions end.
fn connection(shared: &Arc<Shared>, id: u64, client: TcpStream) {
    // A connection accepted during a stall waits, as a SYN into a partition
    // would (the client's connect succeeded, but nothing answers).
    if !shared.wait_up() {
        let _ = client.shutdown(Shutdown::Both);
        shared.forget(id);
        return;
    }
    let Ok(upstream) = TcpStream::connect(shared.upstream) else {
        let _ = client.shutdown(Shutdown::Both);
        shared.forget(id);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let clones = (client.try_clone(), upstream.try_clone());
    let (Ok(client_back), Ok(upstream_back)) = clones else {
        close(&client, Some(&upstream));
        shared.forget(id);
        return;
    };
    {
        let mut state = shared.lock();
        match upstream.try_clone() {
            Ok(clone) if !state.closing => {
                if let Some(entry) = state.open.get_mut(&id) {
                    entry.1 = Some(clone);
                }
            }
            _ => {
                drop(state);
                close(&client, Some(&upstream));
                shared.forget(id);
                return;
            }
        }
    }
    let back = {
        let shared = Arc::clone(shared);
        std::thread::Builder::new()
            .name(format!("proxy conn {id} back"))
            .spawn(move || pump(&shared, upstream_back, client_back, false))
    };
    pump(shared, client, upstream, true);
    if let Ok(back) = back {
        let _ = back.join();
    }
    shared.forget(id);
}

/// Copies `from` to `to` while the link is up, holding whatever it read
/// while the link is stalled; on EOF passes the half-close on. `to_server`:
/// this is the client's direction, where an armed cut looks for `COMMIT`.
fn pump(shared: &Shared, mut from: TcpStream, mut to: TcpStream, to_server: bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !shared.wait_up() {
            close(&from, Some(&to));
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to_server && buf[..n].windows(6).any(|w| w == b"COMMIT") {
            shared.stall_if_armed();
        }
        // Bytes read just as the link was cut are held, not delivered.
        if !shared.wait_up() || to.write_all(&buf[..n]).is_err() {
            close(&from, Some(&to));
            return;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn close(a: &TcpStream, b: Option<&TcpStream>) {
    let _ = a.shutdown(Shutdown::Both);
    if let Some(b) = b {
        let _ = b.shutdown(Shutdown::Both);
    }
}

/// The host and port of a `postgres://[user[:password]@]host:port/...` URL.
fn host_port(url: &str) -> (&str, u16) {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("{url:?} is not a URL"));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = host_port
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{url:?} names no port"));
    (host, port.parse().unwrap_or_else(|e| panic!("{url:?}: bad port: {e}")))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(
            host_port("postgres://postgres@127.0.0.1:5432/weft"),
            ("127.0.0.1", 5432)
        );
        assert_eq!(
            host_port("postgres://u:p@127.0.0.1:1/db?sslmode=disable"),
            ("127.0.0.1", 1)
        );
        assert_eq!(host_port("postgresql://127.0.0.1:7"), ("127.0.0.1", 7));
    }
}

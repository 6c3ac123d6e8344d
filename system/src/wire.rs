//! paylab's datagram network: madsim's datagram semantics, step for step, without its
//! per-message overheads.
//!
//! madsim's `Endpoint::send_to_raw` formats the destination address into a `String` for its
//! virtual-server table (which paylab never uses), hashes node ids under a global lock, and
//! boxes every payload twice: 6 % of a default run's instructions and 9 % of a payment's went
//! to the formatting alone. This module keeps everything that decides a run, in the same
//! order, so that every trace stays the same:
//!
//! - the same draws from madsim's global random stream (the 0–5 µs jitter before a send, after
//!   a receive and before a bind; the loss draw and the latency draw of each send that reaches
//!   a known node over an uncut link);
//! - the same timers (the jitter sleeps, with madsim's 1 ms floor; each delivery registered as
//!   one timer at exactly `now + latency`, when madsim's own network registers it);
//! - the same mailbox (receivers waiting by tag, messages queued by tag, in madsim's order).
//!
//! What madsim's network held is kept here ([`Wire`], one per simulation): the link conditions
//! (loss rate and latency range, madsim's defaults to start with), the cut links, which
//! addresses are bound, and which IPs belong to a node. The harness makes every network change
//! here (a crash resets a node's sockets, a partition cuts links, a loss or latency window sets
//! the conditions); madsim's own network carries nothing of a run's.

use madsim::net::NetSim;
use madsim::rand::GlobalRng;
use madsim::time::TimeHandle;
use rand::Rng;
use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use tokio::sync::oneshot;

/// A message's body, as madsim carries it.
pub type Payload = Box<dyn Any + Send + Sync>;

/// madsim's default datagram latency, which a run starts with.
pub const DEFAULT_LATENCY: Range<Duration> = Duration::from_millis(1)..Duration::from_millis(10);

/// One simulation's network: link conditions, cut links, bound sockets.
#[derive(Clone)]
pub struct Wire {
    state: Arc<Mutex<WireState>>,
    /// madsim's global stream, which every draw of the network comes from.
    rng: GlobalRng,
    /// madsim's clock, which every jitter and delivery is timed by.
    time: TimeHandle,
}

/// An IP as a number (IPv4 mapped into IPv6): the wire's tables compare integers.
type Ip = u128;

fn ip(addr: IpAddr) -> Ip {
    match addr {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn key(addr: SocketAddr) -> (Ip, u16) {
    (ip(addr.ip()), addr.port())
}

struct WireState {
    loss: f64,
    latency: Range<Duration>,
    /// Links cut one way: (from, to).
    cut: BTreeSet<(Ip, Ip)>,
    /// Every IP a node was created with (madsim resolves a destination by it).
    nodes: BTreeSet<Ip>,
    sockets: BTreeMap<(Ip, u16), Arc<Socket>>,
}

thread_local! {
    /// The wire of the simulation running on this thread, by its madsim network.
    static CURRENT: RefCell<Option<(Weak<NetSim>, Wire)>> = const { RefCell::new(None) };
}

impl Wire {
    fn new() -> Self {
        Wire {
            state: Arc::new(Mutex::new(WireState {
                loss: 0.0,
                latency: DEFAULT_LATENCY,
                cut: BTreeSet::new(),
                nodes: BTreeSet::new(),
                sockets: BTreeMap::new(),
            })),
            rng: madsim::rand::thread_rng(),
            time: TimeHandle::current(),
        }
    }

    /// The wire of the current simulation (one per madsim runtime, created on first use).
    pub fn current() -> Wire {
        let net = NetSim::current();
        CURRENT.with(|current| {
            let mut current = current.borrow_mut();
            if let Some((weak, wire)) = current.as_ref() {
                if weak.upgrade().is_some_and(|n| Arc::ptr_eq(&n, &net)) {
                    return wire.clone();
                }
            }
            let wire = Wire::new();
            *current = Some((Arc::downgrade(&net), wire.clone()));
            wire
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WireState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A node was created with `ip`: datagrams to it now reach the link (madsim's resolution),
    /// even while it has no socket bound.
    pub fn add_node(&self, ip: IpAddr) {
        self.lock().nodes.insert(self::ip(ip));
    }

    /// A node was killed: every socket it had bound is closed at once (madsim's reset).
    pub fn reset(&self, ip: IpAddr) {
        let ip = self::ip(ip);
        self.lock().sockets.retain(|(at, _), _| *at != ip);
    }

    /// Cuts (or restores) the link from `from` to `to`, one way.
    pub fn set_link(&self, from: IpAddr, to: IpAddr, cut: bool) {
        let mut s = self.lock();
        let link = (ip(from), ip(to));
        if cut {
            s.cut.insert(link);
        } else {
            s.cut.remove(&link);
        }
    }

    /// The loss rate and latency range every datagram is sent under from now on.
    pub fn set_conditions(&self, loss: f64, latency: Range<Duration>) {
        let mut s = self.lock();
        s.loss = loss;
        s.latency = latency;
    }

    /// The socket a datagram from `from` to `dst` is delivered to, and its latency; `None`
    /// if it is lost. Draws exactly what madsim's network draws: nothing for an unknown
    /// destination or a cut link, else the loss draw, then (if not lost) the latency draw.
    fn route(&self, from: SocketAddr, dst: SocketAddr) -> Option<(Arc<Socket>, Duration)> {
        let s = self.lock();
        let (to, at) = (key(dst), ip(from.ip()));
        let socket = s.sockets.get(&to);
        let local = socket.is_some() && to.0 == at;
        if !local && !s.nodes.contains(&to.0) {
            return None;
        }
        if !s.cut.is_empty() && s.cut.contains(&(at, to.0)) {
            return None;
        }
        let mut rng = self.rng.clone();
        if rng.gen_bool(s.loss) {
            return None;
        }
        let latency = rng.gen_range(s.latency.clone());
        Some((socket?.clone(), latency))
    }
}

/// madsim's jitter: a 0–5 µs sleep, drawn from the global stream (a sleep lasts at least a
/// millisecond in madsim).
async fn jitter(wire: &Wire) {
    let micros: u64 = wire.rng.clone().gen_range(0..5);
    wire.time.sleep(Duration::from_micros(micros)).await;
}

/// A message in a mailbox.
struct Message {
    tag: u64,
    data: Payload,
    from: SocketAddr,
}

/// One bound address's mailbox: receivers waiting by tag, and messages no receiver took yet.
#[derive(Default)]
struct Socket {
    mailbox: Mutex<Mailbox>,
}

/// A list whose entries carry a tag, kept in madsim's order (a removal swaps the last entry
/// into the hole), with an index from tag to positions: finding the first entry of a tag
/// costs a look-up instead of a scan, however many entries no one will ever take (a reply
/// that came after its caller gave up stays queued, as in madsim).
struct Tagged<T> {
    entries: Vec<(u64, T)>,
    index: BTreeSet<(u64, usize)>,
}

impl<T> Default for Tagged<T> {
    fn default() -> Self {
        Tagged {
            entries: Vec::new(),
            index: BTreeSet::new(),
        }
    }
}

impl<T> Tagged<T> {
    fn push(&mut self, tag: u64, value: T) {
        self.index.insert((tag, self.entries.len()));
        self.entries.push((tag, value));
    }

    /// The position of the first entry with `tag`.
    fn first(&self, tag: u64) -> Option<usize> {
        let (t, i) = self.index.range((tag, 0)..).next()?;
        (*t == tag).then_some(*i)
    }

    /// Takes the entry at `i` out, the last entry taking its place.
    fn swap_remove(&mut self, i: usize) -> T {
        let last = self.entries.len() - 1;
        let (tag, value) = self.entries.swap_remove(i);
        self.index.remove(&(tag, i));
        if i != last {
            let moved = self.entries[i].0;
            self.index.remove(&(moved, last));
            self.index.insert((moved, i));
        }
        value
    }
}

#[derive(Default)]
struct Mailbox {
    waiting: Tagged<oneshot::Sender<Message>>,
    queued: Tagged<Message>,
}

impl Socket {
    fn mailbox(&self) -> std::sync::MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Mailbox {
    /// Hands `msg` to the first live receiver waiting for its tag (a receiver is taken out
    /// by swapping the last one into its place), or queues it.
    fn deliver(&mut self, mut msg: Message) {
        while let Some(i) = self.waiting.first(msg.tag) {
            match self.waiting.swap_remove(i).send(msg) {
                Ok(()) => return,
                Err(m) => msg = m,
            }
        }
        self.queued.push(msg.tag, msg);
    }

    /// A receiver for `tag`: the first queued message with it (the last queued one takes its
    /// place), or a place in the waiting list.
    fn receive(&mut self, tag: u64) -> oneshot::Receiver<Message> {
        let (tx, rx) = oneshot::channel();
        match self.queued.first(tag) {
            Some(i) => {
                let _ = tx.send(self.queued.swap_remove(i));
            }
            None => self.waiting.push(tag, tx),
        }
        rx
    }
}

/// A datagram in flight: the timer madsim would have registered wakes this, which delivers.
struct InFlight {
    to: Arc<Socket>,
    message: Mutex<Option<Message>>,
}

impl Wake for InFlight {
    fn wake(self: Arc<Self>) {
        let message = self
            .message
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(m) = message {
            self.to.mailbox().deliver(m);
        }
    }
}

/// Registers one timer at exactly `now + latency` that delivers `message` to `to`.
fn deliver_after(time: &TimeHandle, latency: Duration, to: Arc<Socket>, message: Message) {
    let now = time.now_instant();
    let mut timer = time.sleep_until(now);
    // `sleep` rounds up to a millisecond; a datagram's latency is exact, as in madsim.
    let deadline = now + latency.max(Duration::from_nanos(1));
    Pin::new(&mut timer).reset(deadline);
    let in_flight = Arc::new(InFlight {
        to,
        message: Mutex::new(Some(message)),
    });
    let waker = Waker::from(in_flight.clone());
    if Pin::new(&mut timer)
        .poll(&mut Context::from_waker(&waker))
        .is_ready()
    {
        in_flight.wake();
    }
}

/// Closes its address when the last handle of an endpoint goes (madsim's bind guard), unless
/// its node was killed since: the address may be a restarted node's by then.
struct Binding {
    wire: Wire,
    addr: SocketAddr,
    socket: Arc<Socket>,
}

impl Drop for Binding {
    fn drop(&mut self) {
        let mut s = self.wire.lock();
        let at = key(self.addr);
        if s.sockets
            .get(&at)
            .is_some_and(|x| Arc::ptr_eq(x, &self.socket))
        {
            s.sockets.remove(&at);
        }
    }
}

/// A bound address: sends and receives tagged datagrams. Clones share the address.
#[derive(Clone)]
pub struct WireEndpoint {
    socket: Arc<Socket>,
    binding: Arc<Binding>,
}

impl WireEndpoint {
    /// Binds `addr` on the current simulation's wire (after madsim's jitter, as its bind).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let wire = Wire::current();
        jitter(&wire).await;
        let socket = Arc::new(Socket::default());
        {
            let mut s = wire.lock();
            if s.sockets.contains_key(&key(addr)) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("address already in use: {addr}"),
                ));
            }
            s.sockets.insert(key(addr), socket.clone());
            // A node that binds exists, even where the harness did not announce it.
            s.nodes.insert(ip(addr.ip()));
        }
        Ok(WireEndpoint {
            socket: socket.clone(),
            binding: Arc::new(Binding { wire, addr, socket }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.binding.addr
    }

    /// Sends `data` under `tag` to `dst`. A datagram that is lost, cut or sent nowhere is
    /// dropped silently, as on a real network.
    pub async fn send_to(&self, dst: SocketAddr, tag: u64, data: Payload) {
        jitter(&self.binding.wire).await;
        let from = self.binding.addr;
        if let Some((to, latency)) = self.binding.wire.route(from, dst) {
            let time = &self.binding.wire.time;
            deliver_after(time, latency, to, Message { tag, data, from });
        }
    }

    /// The next datagram under `tag`, and who sent it. Fails only if this address was closed
    /// (its node was killed) while waiting.
    pub async fn recv_from(&self, tag: u64) -> io::Result<(Payload, SocketAddr)> {
        let receiver = self.socket.mailbox().receive(tag);
        let message = receiver
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "network is down"))?;
        jitter(&self.binding.wire).await;
        Ok((message.data, message.from))
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;

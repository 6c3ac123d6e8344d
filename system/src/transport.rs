//! Typed request/response RPC over the simulation's datagram network ([`crate::wire`]:
//! madsim's datagram semantics without its per-message overheads).
//!
//! Built on [`WireEndpoint`], so the run's packet loss, latency and cut links (partitions)
//! apply to every request and every reply. On top of what the wire offers,
//! the harness can make the transport deliver a request twice or hold it back for a while
//! ([`NetFaults`]); both fire on the sending side so they compose with madsim's own faults.
//! Every call has a timeout: a call that times out returns [`RpcError::Timeout`], which callers
//! must read as "unknown", never as "not applied".
//!
//! Every random draw (a request's transport fault, the start of the reply tags) comes from the
//! node's own streams (`transport.faults`, `transport.tags`, see [`NodeEnv::rng`]), created once
//! per transport: one more RPC elsewhere never shifts them. Every reply a node sends is folded
//! into the run's platform digest ([`Probes::digest_reply`]).

use crate::node::{stream_seed, NodeEnv};
use crate::probes::{names, origin_key, HashWriter, Probes};
use crate::wire::WireEndpoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

/// A request type and its response. `TAG` must be unique across the platform.
/// The response is serializable so that the reply's bytes can be hashed into the run's
/// platform digest.
pub trait Rpc: Send + Sync + Clone + Debug + 'static {
    type Response: Send + Sync + Debug + Serialize + 'static;
    const TAG: u64;
}

/// Why a call produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// No reply within the timeout: the request may or may not have been applied.
    #[error("no reply within {0:?} (outcome unknown)")]
    Timeout(Duration),
    /// The local send failed (e.g. the node's network was reset by a crash).
    #[error("send failed: {0}")]
    Io(String),
}

/// Transport-level faults the harness can switch on, shared by every node of a run.
#[derive(Debug, Clone, Default)]
pub struct NetFaults {
    state: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Clone, Default)]
struct FaultState {
    duplicate_rate: f64,
    delay_rate: f64,
    delay: Range<Duration>,
}

impl NetFaults {
    pub fn new() -> Self {
        Self::default()
    }

    /// Each request is delivered twice with probability `rate`.
    pub fn set_duplicate_rate(&self, rate: f64) {
        self.lock().duplicate_rate = rate.clamp(0.0, 1.0);
    }

    /// Each request is held back for a time drawn from `delay` with probability `rate`.
    pub fn set_delay(&self, rate: f64, delay: Range<Duration>) {
        let mut s = self.lock();
        s.delay_rate = rate.clamp(0.0, 1.0);
        s.delay = delay;
    }

    /// Removes every transport fault (the healed phase).
    pub fn heal(&self) {
        *self.lock() = FaultState::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Draws this request's fate from the sender's own stream: (deliver twice?, delay before
    /// sending). Nothing is drawn while no transport fault is on.
    fn draw(&self, rng: &mut impl Rng) -> (bool, Option<Duration>) {
        let s = self.lock().clone();
        if s.duplicate_rate == 0.0 && s.delay_rate == 0.0 {
            return (false, None);
        }
        let dup = s.duplicate_rate > 0.0 && rng.gen_bool(s.duplicate_rate);
        let delay = (s.delay_rate > 0.0 && rng.gen_bool(s.delay_rate) && !s.delay.is_empty())
            .then(|| rng.gen_range(s.delay.clone()));
        (dup, delay)
    }
}

/// The purposes of a transport's two streams (see [`NodeEnv::rng`]).
const FAULT_STREAM: &str = "transport.faults";
const TAG_STREAM: &str = "transport.tags";

/// Simulated nanoseconds since the simulation started: what tells two incarnations of one node
/// apart when their transports are bound.
/// The simulated time since the run began, in nanoseconds: distinct for every start of a
/// node (a restart comes later), so it tells one incarnation from the next.
pub fn bind_instant() -> u64 {
    let elapsed = madsim::time::TimeHandle::current().elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// A hash of a reply's bytes (bincode), computed without allocating them.
fn reply_hash<T: Serialize>(reply: &T) -> u64 {
    let mut w = HashWriter::default();
    bincode::serialize_into(&mut w, reply).expect("replies always serialize");
    w.finish()
}

/// A request on the wire: where to send the reply, and the request itself.
struct Envelope<R> {
    reply_tag: u64,
    request: R,
}

/// One node's network endpoint with typed calls and handlers.
#[derive(Clone)]
pub struct Transport {
    endpoint: WireEndpoint,
    /// Reply tags: unique per endpoint, from a random start so that a restarted node never
    /// reuses a tag a late reply to its previous life might still carry.
    next_tag: Arc<AtomicU64>,
    faults: NetFaults,
    /// The stream this transport draws its requests' transport faults from.
    fault_rng: Arc<Mutex<ChaCha8Rng>>,
    probes: Probes,
    /// The [`origin_key`] of this transport's node, for the replies it folds into the digest.
    origin: u64,
    /// Receiving loops per served request type ([`NodeEnv::serve_loops`]).
    serve_loops: u32,
}

/// The random streams of one transport.
struct Streams {
    faults: ChaCha8Rng,
    tags: ChaCha8Rng,
}

impl Transport {
    /// Binds a node's endpoint at its address, with its run's transport faults and probes,
    /// drawing from the node's own streams. The tag stream mixes in the simulated time of the
    /// bind, so a restarted node (bound later) starts its tags elsewhere than its previous life.
    pub async fn for_node(env: &NodeEnv) -> io::Result<Self> {
        let streams = Streams {
            faults: env.rng(FAULT_STREAM),
            tags: env.rng_with(TAG_STREAM, bind_instant()),
        };
        let (faults, probes) = (env.faults.clone(), env.probes.clone());
        let t = Self::bind_with(env.addr, &env.name.to_string(), streams, faults, probes).await?;
        Ok(Transport {
            serve_loops: env.serve_loops.max(1),
            ..t
        })
    }

    /// Binds an endpoint that is not a platform node (a client, a test's caller), named `name`,
    /// with streams derived from (`seed`, `name`, purpose) exactly as a node's are.
    pub async fn bind(
        addr: SocketAddr,
        name: &str,
        seed: u64,
        faults: NetFaults,
        probes: Probes,
    ) -> io::Result<Self> {
        let stream =
            |purpose, extra| ChaCha8Rng::seed_from_u64(stream_seed(seed, name, purpose, extra));
        let streams = Streams {
            faults: stream(FAULT_STREAM, 0),
            tags: stream(TAG_STREAM, bind_instant()),
        };
        Self::bind_with(addr, name, streams, faults, probes).await
    }

    async fn bind_with(
        addr: SocketAddr,
        name: &str,
        mut streams: Streams,
        faults: NetFaults,
        probes: Probes,
    ) -> io::Result<Self> {
        let endpoint = WireEndpoint::bind(addr).await?;
        Ok(Transport {
            endpoint,
            next_tag: Arc::new(AtomicU64::new(streams.tags.gen::<u64>() >> 1)),
            faults,
            fault_rng: Arc::new(Mutex::new(streams.faults)),
            probes,
            origin: origin_key(&[name]),
            serve_loops: 1,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    /// Serves requests of type `R`: each request runs `handler` in its own task, and the reply
    /// goes back to the caller. Stops when the node is killed.
    pub fn serve<R, F, Fut>(&self, handler: F)
    where
        R: Rpc,
        F: Fn(R) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R::Response> + Send + 'static,
    {
        self.serve_from(move |request: R, _from| handler(request));
    }

    /// As [`Transport::serve`], and the handler also learns who sent the request: the sender's
    /// address as the network delivered it, which no caller can forge (what a service checks
    /// before it takes a step only another platform service may ask for).
    ///
    /// Requests are taken off the network by `serve_loops` loops ([`NodeEnv::serve_loops`]):
    /// madsim holds each receive for at least a millisecond, so one loop takes at most 1,000
    /// requests per simulated second.
    pub fn serve_from<R, F, Fut>(&self, handler: F)
    where
        R: Rpc,
        F: Fn(R, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R::Response> + Send + 'static,
    {
        let handler = Arc::new(handler);
        for _ in 0..self.serve_loops {
            let (endpoint, handler) = (self.endpoint.clone(), handler.clone());
            let (probes, origin) = (self.probes.clone(), self.origin);
            madsim::task::spawn(async move {
                while let Ok((payload, from)) = endpoint.recv_from(R::TAG).await {
                    let Ok(envelope) = payload.downcast::<Envelope<R>>() else {
                        tracing::error!(tag = R::TAG, "dropped a request of the wrong type");
                        continue;
                    };
                    let Envelope { reply_tag, request } = *envelope;
                    // Boxed: a handler's future is kilobytes (a whole protocol flow), and a
                    // task's future is copied by value on its way into the executor, every
                    // request.
                    let work = Box::pin(handler(request, from));
                    let (endpoint, probes) = (endpoint.clone(), probes.clone());
                    madsim::task::spawn(async move {
                        let response = work.await;
                        probes.digest_reply(origin, R::TAG, reply_hash(&response));
                        // A failed reply is indistinguishable from a lost one; the caller times
                        // out.
                        endpoint.send_to(from, reply_tag, Box::new(response)).await;
                    });
                }
            });
        }
    }

    /// Sends `request` to `dst` and waits at most `timeout` for the reply.
    pub async fn call<R: Rpc>(
        &self,
        dst: SocketAddr,
        request: R,
        timeout: Duration,
    ) -> Result<R::Response, RpcError> {
        let reply_tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        self.probes.rpc_call();
        let exchange = async {
            let (duplicate, delay) = {
                let mut rng = self.fault_rng.lock().unwrap_or_else(|p| p.into_inner());
                self.faults.draw(&mut *rng)
            };
            if duplicate {
                self.probes.hit(names::DUPLICATE_DELIVERED);
                self.send(dst, reply_tag, request.clone()).await?;
            }
            match delay {
                // Held back in the network: it arrives late even if the caller stops waiting,
                // which is how a Try can reach a participant after its Cancel.
                Some(d) => {
                    self.probes.hit(names::MESSAGE_DELAYED);
                    let late = self.clone();
                    madsim::task::spawn(async move {
                        madsim::time::sleep(d).await;
                        let _ = late.send(dst, reply_tag, request).await;
                    });
                }
                None => self.send(dst, reply_tag, request).await?,
            }
            let (payload, _from) = self
                .endpoint
                .recv_from(reply_tag)
                .await
                .map_err(|e| RpcError::Io(e.to_string()))?;
            Ok(*payload
                .downcast::<R::Response>()
                .expect("a reply tag is only ever used for its request's response type"))
        };
        match within(timeout, exchange).await {
            Some(result) => result,
            None => {
                self.probes.hit(names::RPC_TIMEOUT);
                Err(RpcError::Timeout(timeout))
            }
        }
    }

    async fn send<R: Rpc>(
        &self,
        dst: SocketAddr,
        reply_tag: u64,
        request: R,
    ) -> Result<(), RpcError> {
        let envelope = Box::new(Envelope { reply_tag, request });
        self.endpoint.send_to(dst, R::TAG, envelope).await;
        Ok(())
    }
}

/// Whether a request delivered from `from` was sent by one of the nodes at `callers`. A node
/// is known by its IP (madsim gives each node its own, and a node's endpoints may bind other
/// ports), which no caller can forge: what services check before a step only another platform
/// service may ask for.
pub fn sent_by(from: SocketAddr, callers: &[SocketAddr]) -> bool {
    callers.iter().any(|a| a.ip() == from.ip())
}

/// `future`'s output, or `None` if `limit` (simulated) passes first; the future is polled
/// first, so one that is ready at the deadline wins, as with `madsim::time::timeout`.
///
/// Unlike `madsim::time::timeout`, whose sleep adds a timer every time it is polled while
/// pending (madsim's timer queue cannot cancel one, so each stays queued, holding the task,
/// until its deadline), this registers one timer per call: again only if the task's waker
/// changed. The deadline is read from the clock on every other poll.
pub async fn within<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut deadline = madsim::time::sleep(limit);
    let mut armed: Option<Waker> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if deadline.is_elapsed() {
            return Poll::Ready(None);
        }
        if !armed.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            if Pin::new(&mut deadline).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            armed = Some(cx.waker().clone());
        }
        Poll::Pending
    })
    .await
}

/// How a caller retries a call whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts_max: u32,
    pub timeout: Duration,
    /// Pause before the second attempt; doubles each time up to `backoff_max`.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 30,
            timeout: Duration::from_millis(500),
            backoff: Duration::from_millis(50),
            backoff_max: Duration::from_millis(1_000),
        }
    }
}

/// The result of a call retried under a [`RetryPolicy`].
#[derive(Debug)]
pub struct Retried<T> {
    /// The reply, or the last error when every attempt failed (the outcome is then unknown).
    pub result: Result<T, RpcError>,
    pub attempts: u32,
}

impl Transport {
    /// Calls until a reply arrives or the attempts run out. The same `request` (and so the same
    /// idempotency key) is sent every time: retrying is only safe against idempotent handlers.
    pub async fn call_with_retry<R: Rpc>(
        &self,
        dst: SocketAddr,
        request: R,
        policy: RetryPolicy,
    ) -> Retried<R::Response> {
        let mut backoff = policy.backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.call(dst, request.clone(), policy.timeout).await {
                Ok(reply) => {
                    return Retried {
                        result: Ok(reply),
                        attempts,
                    }
                }
                Err(e) if attempts >= policy.attempts_max => {
                    return Retried {
                        result: Err(e),
                        attempts,
                    }
                }
                Err(_) => {
                    self.probes.hit(names::CLIENT_RETRY);
                    madsim::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(policy.backoff_max);
                }
            }
        }
    }
}

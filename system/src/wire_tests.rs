//! The wire against madsim's own datagram network: the same script, under the same seed,
//! must see the same arrivals at the same simulated instants and leave madsim's random stream
//! in the same state; plus the wire's own rules (cut links, loss, kills, double binds).

use super::*;
use madsim::net::Endpoint;
use madsim::runtime::{Handle, Runtime};
use std::net::Ipv4Addr;

fn addr(node: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 9, 0, node)), port)
}

/// What one side of the comparison saw: (simulated ns, tag, sender) per arrival, and a draw
/// from madsim's stream at the end.
type Seen = (Vec<(u128, u64, SocketAddr)>, u64);

fn now_ns() -> u128 {
    madsim::time::TimeHandle::current().elapsed().as_nanos()
}

/// The two networks behind one interface, for the comparison script.
#[derive(Clone)]
enum Net {
    Madsim(Endpoint),
    Wire(WireEndpoint),
}

impl Net {
    async fn bind(wire: bool, at: SocketAddr) -> Net {
        if wire {
            Net::Wire(WireEndpoint::bind(at).await.expect("bind"))
        } else {
            Net::Madsim(Endpoint::bind(at).await.expect("bind"))
        }
    }

    async fn send(&self, dst: SocketAddr, tag: u64) {
        match self {
            Net::Madsim(e) => e.send_to_raw(dst, tag, Box::new(tag)).await.expect("send"),
            Net::Wire(e) => e.send_to(dst, tag, Box::new(tag)).await,
        }
    }

    async fn recv(&self, tag: u64) -> (u64, SocketAddr) {
        let (data, from) = match self {
            Net::Madsim(e) => e.recv_from_raw(tag).await.expect("recv"),
            Net::Wire(e) => e.recv_from(tag).await.expect("recv"),
        };
        (*data.downcast::<u64>().expect("a tag"), from)
    }
}

/// Sets the loss rate and latency on whichever network is in use (madsim's in both cases, so
/// its own state never differs between the two runs).
fn conditions(loss: f64, latency: Range<Duration>) {
    Wire::current().set_conditions(loss, latency.clone());
    NetSim::current().update_config(|c| {
        c.packet_loss_rate = loss;
        c.send_latency = latency;
    });
}

/// Three nodes: a receiver taking tags in an order unlike their arrival (so that messages
/// queue), two senders, one link cut for a while, a lossy stretch, a slow stretch, a send to
/// an address nobody bound and one to an IP no node has.
async fn script(wire: bool) -> Seen {
    let handle = Handle::current();
    let ips: Vec<SocketAddr> = (1..=3).map(|n| addr(n, 7)).collect();
    let nodes: Vec<_> = ips
        .iter()
        .map(|a| {
            Wire::current().add_node(a.ip());
            handle.create_node().ip(a.ip()).build()
        })
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let receiver = nodes[0].spawn(async move {
        let net = Net::bind(wire, addr(1, 7)).await;
        for tag in [3, 1, 2, 1, 4, 5, 5, 6] {
            let (got, from) = net.recv(tag).await;
            assert_eq!(got, tag);
            log.lock().unwrap().push((now_ns(), tag, from));
        }
    });
    madsim::time::sleep(Duration::from_millis(5)).await;
    let sender = |node: usize, tags: Vec<u64>| {
        nodes[node].spawn(async move {
            let net = Net::bind(wire, addr(node as u8 + 1, 7)).await;
            for tag in tags {
                net.send(addr(1, 7), tag).await;
            }
            net.send(addr(1, 99), 9).await;
            net.send(addr(200, 7), 9).await;
        })
    };
    sender(1, vec![1, 2, 1]).await.expect("sender 1");
    sender(2, vec![3, 4]).await.expect("sender 2");
    let (a, b) = (nodes[2].id(), nodes[0].id());
    NetSim::current().clog_link(a, b);
    Wire::current().set_link(ips[2].ip(), ips[0].ip(), true);
    sender(2, vec![7]).await.expect("cut sender");
    NetSim::current().unclog_link(a, b);
    Wire::current().set_link(ips[2].ip(), ips[0].ip(), false);
    conditions(0.5, Duration::from_millis(20)..Duration::from_millis(80));
    sender(1, vec![5; 12]).await.expect("lossy sender");
    conditions(0.0, DEFAULT_LATENCY);
    sender(2, vec![6]).await.expect("last sender");
    receiver.await.expect("receiver");
    let arrivals = seen.lock().unwrap().clone();
    (arrivals, madsim::rand::thread_rng().gen())
}

fn run_script(wire: bool, seed: u64) -> Seen {
    Runtime::with_seed_and_config(seed, madsim::Config::default()).block_on(script(wire))
}

#[test]
fn the_wire_sees_what_madsim_sees_under_every_seed() {
    for seed in 0..8 {
        let (madsim, wire) = (run_script(false, seed), run_script(true, seed));
        assert_eq!(madsim, wire, "seed {seed}");
        assert_eq!(madsim.0.len(), 8, "every awaited tag arrived");
    }
}

/// Runs `body` in a fresh simulation.
fn simulate<F: Future<Output = ()> + 'static>(body: impl FnOnce() -> F) {
    Runtime::with_seed_and_config(1, madsim::Config::default()).block_on(body());
}

#[test]
fn a_datagram_arrives_after_its_latency_from_its_sender() {
    simulate(|| async {
        let a = WireEndpoint::bind(addr(1, 1)).await.expect("bind a");
        let b = WireEndpoint::bind(addr(1, 2)).await.expect("bind b");
        let start = now_ns();
        a.send_to(b.local_addr(), 5, Box::new(42u32)).await;
        let (data, from) = b.recv_from(5).await.expect("recv");
        assert_eq!(*data.downcast::<u32>().expect("u32"), 42);
        assert_eq!(from, a.local_addr());
        // A send's jitter, the latency (1..10 ms) and a receive's jitter.
        let took = Duration::from_nanos((now_ns() - start) as u64);
        assert!(took >= Duration::from_millis(3), "{took:?}");
        assert!(took <= Duration::from_millis(12), "{took:?}");
    });
}

/// Whether a datagram sent now from `a` to `b` under `tag` arrives within a second.
async fn arrives(a: &WireEndpoint, b: &WireEndpoint, tag: u64) -> bool {
    a.send_to(b.local_addr(), tag, Box::new(())).await;
    let wait = madsim::time::timeout(Duration::from_secs(1), b.recv_from(tag));
    wait.await.is_ok()
}

#[test]
fn a_cut_link_and_full_loss_drop_and_healing_restores() {
    simulate(|| async {
        let a = WireEndpoint::bind(addr(1, 1)).await.expect("bind a");
        let b = WireEndpoint::bind(addr(2, 1)).await.expect("bind b");
        let wire = Wire::current();
        wire.set_link(addr(1, 1).ip(), addr(2, 1).ip(), true);
        assert!(!arrives(&a, &b, 1).await, "a cut link drops");
        assert!(arrives(&b, &a, 2).await, "a cut is one way");
        wire.set_link(addr(1, 1).ip(), addr(2, 1).ip(), false);
        assert!(arrives(&a, &b, 3).await, "a restored link delivers");
        wire.set_conditions(1.0, DEFAULT_LATENCY);
        assert!(!arrives(&a, &b, 4).await, "full loss drops");
        wire.set_conditions(0.0, DEFAULT_LATENCY);
        assert!(arrives(&a, &b, 5).await, "no loss delivers");
    });
}

#[test]
fn a_reset_closes_a_node_and_its_old_handles_never_close_the_next_binding() {
    simulate(|| async {
        let a = WireEndpoint::bind(addr(1, 1)).await.expect("bind a");
        let old = WireEndpoint::bind(addr(2, 1)).await.expect("bind b");
        let err = WireEndpoint::bind(addr(2, 1)).await.err().expect("in use");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        Wire::current().reset(addr(2, 1).ip());
        assert!(
            !arrives(&a, &old, 1).await,
            "a killed node's socket is closed"
        );
        let new = WireEndpoint::bind(addr(2, 1))
            .await
            .expect("rebind after the kill");
        drop(old);
        assert!(
            arrives(&a, &new, 2).await,
            "the old handle left the new binding alone"
        );
        drop(new);
        let again = WireEndpoint::bind(addr(2, 1))
            .await
            .expect("a dropped binding frees");
        assert!(arrives(&a, &again, 3).await);
    });
}

/// One step of the mailbox order property: a push, or taking the first entry of a tag.
#[derive(Debug, Clone)]
enum Step {
    Push(u64),
    Take(u64),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0u64..6).prop_map(Step::Push),
        (0u64..6).prop_map(Step::Take)
    ]
}

proptest::proptest! {
    /// The indexed list takes entries in exactly the order madsim's scan over a plain vector
    /// does (first position of the tag, the last entry swapped into the hole).
    #[test]
    fn the_indexed_list_keeps_madsims_order(steps in proptest::collection::vec(step(), 0..200)) {
        let mut tagged = Tagged::default();
        let mut plain: Vec<(u64, usize)> = Vec::new();
        for (n, s) in steps.into_iter().enumerate() {
            match s {
                Step::Push(tag) => {
                    tagged.push(tag, n);
                    plain.push((tag, n));
                }
                Step::Take(tag) => {
                    let want = plain.iter().position(|(t, _)| *t == tag).map(|i| plain.swap_remove(i).1);
                    let got = tagged.first(tag).map(|i| tagged.swap_remove(i));
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
        let left: Vec<usize> = tagged.entries.iter().map(|(_, v)| *v).collect();
        let right: Vec<usize> = plain.iter().map(|(_, v)| *v).collect();
        proptest::prop_assert_eq!(left, right);
    }
}

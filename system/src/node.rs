//! What every node of the platform is given by the harness, and keeps across restarts.

use crate::buggify::Buggify;
use crate::bugs::Bugs;
use crate::clock::NodeClock;
use crate::disk::Disk;
use crate::probes::Probes;
use crate::transport::NetFaults;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;

/// A node's environment: its name and address, and the harness-owned handles that survive a
/// crash (disk, clock) or are shared by the whole run (transport faults, probes, planted bugs).
/// A service's `init` takes one of these and rebuilds everything else from the disk.
#[derive(Debug, Clone)]
pub struct NodeEnv {
    pub name: String,
    pub addr: SocketAddr,
    pub disk: Disk,
    pub clock: NodeClock,
    pub faults: NetFaults,
    pub probes: Probes,
    pub bugs: Bugs,
    pub buggify: Buggify,
    /// The run's seed, from which every random stream of the node derives ([`NodeEnv::rng`]).
    pub seed: u64,
}

impl NodeEnv {
    /// The node's own random stream for one purpose, derived from (run seed, node name,
    /// purpose) alone: one more draw elsewhere (another node, another purpose, one more RPC)
    /// never shifts it. Call it once per purpose per incarnation and keep the stream; a restart
    /// that calls it again starts the same stream again, so mix in whatever the incarnation
    /// must differ by (e.g. the recovered log length) through [`NodeEnv::rng_with`].
    pub fn rng(&self, purpose: &str) -> ChaCha8Rng {
        self.rng_with(purpose, 0)
    }

    /// As [`NodeEnv::rng`], with an extra number mixed in (an incarnation, a sequence).
    pub fn rng_with(&self, purpose: &str, extra: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(stream_seed(
            self.seed,
            &self.name.to_string(),
            purpose,
            extra,
        ))
    }
}

/// FNV-1a over (seed, node, purpose, extra): a stable seed for one stream.
pub fn stream_seed(seed: u64, node: &str, purpose: &str, extra: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&seed.to_le_bytes());
    eat(node.as_bytes());
    eat(&[0xff]);
    eat(purpose.as_bytes());
    eat(&[0xfe]);
    eat(&extra.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_node_and_purpose_and_repeat_exactly() {
        let a = stream_seed(7, "ledger/0", "transport", 0);
        assert_eq!(a, stream_seed(7, "ledger/0", "transport", 0));
        assert_ne!(a, stream_seed(8, "ledger/0", "transport", 0));
        assert_ne!(a, stream_seed(7, "ledger/1", "transport", 0));
        assert_ne!(a, stream_seed(7, "ledger/0", "failures", 0));
        assert_ne!(a, stream_seed(7, "ledger/0", "transport", 1));
        // The separators keep ("ab", "c") apart from ("a", "bc").
        assert_ne!(stream_seed(7, "ab", "c", 0), stream_seed(7, "a", "bc", 0));
    }
}

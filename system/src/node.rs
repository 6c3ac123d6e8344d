//! What every node of the platform is given by the harness, and keeps across restarts.

use crate::buggify::Buggify;
use crate::bugs::Bugs;
use crate::clock::NodeClock;
use crate::disk::Disk;
use crate::probes::Probes;
use crate::transport::NetFaults;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::sync::{Mutex, MutexGuard};

/// Locks `m`. No thread panics while holding a lock inside a simulation; a poisoned lock still
/// holds consistent state, so it is recovered rather than cascading the panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// What kind of node a node is (`ledger`, `trade`, `broker`, ...). The platform does not
/// enumerate its roles: each service kind names its own, so a new service adds no line here.
/// Lower-case letters, digits and dashes only, so that `role/index` parses back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(Cow<'static, str>);

impl Role {
    /// A role known at compile time (a service kind's constant).
    pub const fn new(name: &'static str) -> Role {
        Role(Cow::Borrowed(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The node of this role at `index`.
    pub fn at(&self, index: u32) -> NodeName {
        NodeName {
            role: self.clone(),
            index,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one name of a node, used by the topology, fault plans, observations and reports alike:
/// a role and an index within it, shown and parsed as `ledger/1`, `broker/0`, `client/3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName {
    pub role: Role,
    pub index: u32,
}

impl NodeName {
    pub fn new(role: &Role, index: u32) -> NodeName {
        role.at(index)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.index)
    }
}

/// madsim names its nodes by string: a node's simulator name is its node name shown.
impl From<NodeName> for String {
    fn from(name: NodeName) -> String {
        name.to_string()
    }
}

/// Why a string is not a node name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a node name (expected role/index, e.g. ledger/1)")]
pub struct NodeNameError(pub String);

impl FromStr for NodeName {
    type Err = NodeNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NodeNameError(s.to_string());
        let (role, index) = s.split_once('/').ok_or_else(bad)?;
        let role_ok = !role.is_empty()
            && role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let index_ok = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
        if !role_ok || !index_ok {
            return Err(bad());
        }
        Ok(NodeName {
            role: Role(Cow::Owned(role.to_string())),
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's environment: its name and address, and the harness-owned handles that survive a
/// crash (disk, clock) or are shared by the whole run (transport faults, probes, planted bugs).
/// A service's `init` takes one of these and rebuilds everything else from the disk.
#[derive(Debug, Clone)]
pub struct NodeEnv {
    pub name: NodeName,
    pub addr: SocketAddr,
    pub disk: Disk,
    pub clock: NodeClock,
    pub faults: NetFaults,
    pub probes: Probes,
    pub bugs: Bugs,
    pub buggify: Buggify,
    /// The run's seed, from which every random stream of the node derives ([`NodeEnv::rng`]).
    pub seed: u64,
    /// How many requests of one kind the node's transport takes off the network at once
    /// ([`crate::transport::Transport::serve`]). madsim holds every receive for at least its
    /// sleep's 1 ms floor, so one receiving loop takes at most 1,000 requests per simulated
    /// second; each further loop adds as many. At least 1.
    pub serve_loops: u32,
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

    #[test]
    fn node_names_show_and_parse_as_role_slash_index() {
        const LEDGER: Role = Role::new("ledger");
        let name = LEDGER.at(1);
        assert_eq!(name.to_string(), "ledger/1");
        assert_eq!("ledger/1".parse::<NodeName>(), Ok(name.clone()));
        assert_eq!(
            "consumer-records/0"
                .parse::<NodeName>()
                .map(|n| n.to_string()),
            Ok("consumer-records/0".to_string())
        );
        let json = serde_json::to_string(&name).unwrap();
        assert_eq!(json, "\"ledger/1\"");
        assert_eq!(serde_json::from_str::<NodeName>(&json).unwrap(), name);
        for bad in ["ledger-1", "ledger/", "/1", "Ledger/1", "ledger/x", "a/1/2"] {
            assert!(bad.parse::<NodeName>().is_err(), "{bad}");
        }
    }
}

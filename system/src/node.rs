//! What every node of the platform is given by the harness, and keeps across restarts.

use crate::buggify::Buggify;
use crate::bugs::Bugs;
use crate::clock::NodeClock;
use crate::disk::Disk;
use crate::probes::Probes;
use crate::transport::NetFaults;
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
}

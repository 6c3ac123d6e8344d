//! Typed identifiers. Each id is its own type so an account id can never be passed where a
//! shard is expected.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A ledger shard (one shard = one ledger node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// An account. Ids are allocated so that `id % shards` is the account's home shard; the world
/// account has one sub-account per shard (see [`AccountId::world`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountId(pub u64);

/// How many clearing accounts each bank has (reserve, withdrawal and refund in transit,
/// suspense).
const CLEARING_STRIDE: u32 = 4;

impl AccountId {
    /// World sub-accounts occupy the first `shards` ids, so `world(s).shard(n) == s`.
    pub fn world(shard: ShardId) -> AccountId {
        AccountId(u64::from(shard.0))
    }

    /// Each shard's transit account (在途) for money crossing shards occupies the next `shards`
    /// ids, so `transit(s, n).shard(n) == s`. Ids from `2 * shards` on are free for customers.
    pub fn transit(shard: ShardId, shards: u32) -> AccountId {
        assert!(shard.0 < shards, "{shard} out of range 0..{shards}");
        AccountId(u64::from(shards) + u64::from(shard.0))
    }

    /// The first id of the clearing accounts: far above every customer id, and a multiple of
    /// `shards`, so that each clearing account's sub-account lives on its own shard.
    pub fn clearing_base(shards: u32) -> u64 {
        u64::from(shards) << 32
    }

    /// The platform's reserve at bank `bank` (备付金, an asset: the money the bank holds for
    /// the platform), one sub-account per shard, so that `reserve(b, s, n).shard(n) == s`.
    pub fn reserve(bank: u32, shard: ShardId, shards: u32) -> AccountId {
        assert!(shard.0 < shards, "{shard} out of range 0..{shards}");
        AccountId(
            Self::clearing_base(shards)
                + u64::from(CLEARING_STRIDE * bank) * u64::from(shards)
                + u64::from(shard.0),
        )
    }

    /// Withdrawals to bank `bank` on their way out (提现在途): debited when the bank paid,
    /// one sub-account per shard.
    pub fn in_transit(bank: u32, shard: ShardId, shards: u32) -> AccountId {
        Self::clearing(bank, 1, shard, shards)
    }

    /// Refunds to cards at bank `bank` on their way out (退款在途), one sub-account per shard.
    pub fn refund_transit(bank: u32, shard: ShardId, shards: u32) -> AccountId {
        Self::clearing(bank, 2, shard, shards)
    }

    /// Money at bank `bank` that the platform cannot attribute yet (待清算挂账, deposit
    /// suspense): a statement line no channel order explains, held until one does.
    pub fn suspense(bank: u32, shard: ShardId, shards: u32) -> AccountId {
        Self::clearing(bank, 3, shard, shards)
    }

    /// Clearing account `slot` of bank `bank` on `shard` (slot 0 is the reserve).
    fn clearing(bank: u32, slot: u32, shard: ShardId, shards: u32) -> AccountId {
        assert!(shard.0 < shards, "{shard} out of range 0..{shards}");
        AccountId(
            Self::clearing_base(shards)
                + u64::from(CLEARING_STRIDE * bank + slot) * u64::from(shards)
                + u64::from(shard.0),
        )
    }

    /// The first id that is neither a world nor a transit account.
    pub fn first_customer(shards: u32) -> u64 {
        2 * u64::from(shards)
    }

    /// The shard that owns this account, given the number of shards.
    pub fn shard(self, shards: u32) -> ShardId {
        assert!(shards > 0, "a ledger has at least one shard");
        ShardId((self.0 % u64::from(shards)) as u32)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "acct-{}", self.0)
    }
}

/// A client request id: the idempotency key of a post. A retry reuses it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub CompactString);

impl RequestId {
    pub fn new(s: impl Into<CompactString>) -> Self {
        RequestId(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A voucher, unique across shards: the shard that posted it and its sequence there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VoucherId {
    pub shard: ShardId,
    pub seq: u64,
}

impl fmt::Display for VoucherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}-{}", self.shard.0, self.seq)
    }
}

/// Defines a string newtype id: serialized as the bare string (`#[serde(transparent)]`), shown
/// as it is, built from anything string-like.
macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub CompactString);

        impl $name {
            pub fn new(s: impl Into<CompactString>) -> Self {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(CompactString::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(CompactString::from(s))
            }
        }
    };
}

string_id!(
    /// A global transaction id: one movement of money across services (a TCC activity, later a
    /// saga or a 2PC transaction), unique across the platform.
    Xid
);

string_id!(
    /// A client's idempotency key for a pay or refund order (a retry reuses it).
    IdemKey
);

string_id!(
    /// A published event's id, unique per change: `T{shard}-{seq}:v{version}:{kind}[:{refund}]`
    /// for trade events.
    EventId
);

string_id!(
    /// A clearing instruction's id (`instr_id`): one channel order at the gateway and one
    /// instruction at its bank, unique across the platform; the idempotency key of both.
    InstrId
);

/// A trade shard (one shard = one trade node), distinct from a ledger [`ShardId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TradeShardId(pub u32);

impl fmt::Display for TradeShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trade-shard-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_sub_accounts_live_on_their_own_shard() {
        for s in 0..7 {
            assert_eq!(AccountId::world(ShardId(s)).shard(7), ShardId(s));
            assert_eq!(AccountId::transit(ShardId(s), 7).shard(7), ShardId(s));
        }
    }
}

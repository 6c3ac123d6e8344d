//! The account layout the platform assigns at registration: which accounts each client owns.
//!
//! [`Layout::PerClient`] (the closed-loop workload): after the world and transit accounts
//! (`2 * shards` ids), each client has `2 * shards + 1` slots: two user accounts per shard (slot
//! `k` on shard `k % shards`), then one merchant account on shard `client % shards`. Account
//! `id` sits in slot `id / shards`.
//!
//! [`Layout::OpenLoop`] (`--rate`): `users` user accounts in id order, then `merchants` merchant
//! accounts; a client node owns the users and merchants whose index is its own modulo the
//! node count (it acts for all of them, as an aggregator does).

use crate::ids::AccountId;
use crate::ledger::Subject;

/// How customer account ids are assigned to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    PerClient,
    OpenLoop {
        users: u32,
        merchants: u32,
        nodes: u32,
    },
}

/// The registry of account owners for a ledger of `shards` shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directory {
    pub shards: u32,
    pub layout: Layout,
}

impl Directory {
    /// The closed-loop layout ([`Layout::PerClient`]).
    pub fn new(shards: u32) -> Self {
        assert!(shards > 0, "a ledger has at least one shard");
        Directory {
            shards,
            layout: Layout::PerClient,
        }
    }

    /// The open-loop layout ([`Layout::OpenLoop`]).
    pub fn open_loop(shards: u32, users: u32, merchants: u32, nodes: u32) -> Self {
        assert!(shards > 0 && nodes > 0, "shards and client nodes");
        Directory {
            shards,
            layout: Layout::OpenLoop {
                users,
                merchants,
                nodes,
            },
        }
    }

    /// Open loop: user `u`'s account (customer ids in order, so on shard `u % shards`).
    pub fn open_user(&self, u: u64) -> AccountId {
        AccountId(AccountId::first_customer(self.shards) + u)
    }

    /// Open loop: merchant `m`'s account, after every user's.
    pub fn open_merchant(&self, m: u64) -> AccountId {
        let users = match self.layout {
            Layout::OpenLoop { users, .. } => users,
            Layout::PerClient => 0,
        };
        AccountId(AccountId::first_customer(self.shards) + u64::from(users) + m)
    }

    fn open_owner(
        &self,
        account: AccountId,
        users: u32,
        merchants: u32,
        nodes: u32,
    ) -> Option<(u32, Subject)> {
        let u = account
            .0
            .checked_sub(AccountId::first_customer(self.shards))?;
        let (index, subject) = if u < u64::from(users) {
            (u, Subject::User)
        } else if u - u64::from(users) < u64::from(merchants) {
            (u - u64::from(users), Subject::Merchant)
        } else {
            return None;
        };
        Some(((index % u64::from(nodes)) as u32, subject))
    }

    /// User accounts per client: two per shard.
    pub fn user_accounts_per_client(&self) -> u32 {
        2 * self.shards
    }

    fn slots_per_client(&self) -> u64 {
        u64::from(self.user_accounts_per_client()) + 1
    }

    fn first_slot(&self) -> u64 {
        AccountId::first_customer(self.shards) / u64::from(self.shards)
    }

    fn slot(&self, client: u32, k: u32) -> u64 {
        self.first_slot() + u64::from(client) * self.slots_per_client() + u64::from(k)
    }

    /// Client `client`'s user accounts: `ids[k]` lives on shard `k % shards`.
    pub fn user_accounts(&self, client: u32) -> Vec<AccountId> {
        let shards = u64::from(self.shards);
        (0..self.user_accounts_per_client())
            .map(|k| AccountId(shards * self.slot(client, k) + u64::from(k) % shards))
            .collect()
    }

    /// Client `client`'s merchant account, on shard `client % shards`.
    pub fn merchant_account(&self, client: u32) -> AccountId {
        let shards = u64::from(self.shards);
        let k = self.user_accounts_per_client();
        AccountId(shards * self.slot(client, k) + u64::from(client) % shards)
    }

    /// The client that owns `account` and the subject it was registered with; `None` for the
    /// platform's own accounts and for ids the layout never assigns.
    pub fn owner(&self, account: AccountId) -> Option<(u32, Subject)> {
        let customer =
            AccountId::first_customer(self.shards)..AccountId::clearing_base(self.shards);
        if !customer.contains(&account.0) {
            return None;
        }
        if let Layout::OpenLoop {
            users,
            merchants,
            nodes,
        } = self.layout
        {
            return self.open_owner(account, users, merchants, nodes);
        }
        let rel = account.0 / u64::from(self.shards) - self.first_slot();
        let client = u32::try_from(rel / self.slots_per_client()).ok()?;
        let k = rel % self.slots_per_client();
        let expected = if k == u64::from(self.user_accounts_per_client()) {
            self.merchant_account(client)
        } else {
            self.user_accounts(client)[k as usize]
        };
        let subject = if k == u64::from(self.user_accounts_per_client()) {
            Subject::Merchant
        } else {
            Subject::User
        };
        (expected == account).then_some((client, subject))
    }

    /// Whether client `client` owns `account`.
    pub fn owns(&self, client: u32, account: AccountId) -> bool {
        self.owner(account).is_some_and(|(c, _)| c == client)
    }

    /// Whether `account` is one of the platform's own (world or transit).
    pub fn is_system(&self, account: AccountId) -> bool {
        account.0 < AccountId::first_customer(self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assigned_account_has_exactly_its_owner() {
        for shards in [1, 3, 4] {
            let dir = Directory::new(shards);
            let mut seen = std::collections::BTreeSet::new();
            for c in 0..20 {
                for (k, a) in dir.user_accounts(c).into_iter().enumerate() {
                    assert_eq!(a.shard(shards).0, k as u32 % shards);
                    assert_eq!(dir.owner(a), Some((c, Subject::User)));
                    assert!(seen.insert(a));
                }
                let m = dir.merchant_account(c);
                assert_eq!(dir.owner(m), Some((c, Subject::Merchant)));
                assert!(seen.insert(m));
                assert!(!dir.owns(c + 1, m));
            }
            for s in 0..shards {
                let world = AccountId::world(crate::ShardId(s));
                assert_eq!(dir.owner(world), None);
                assert!(dir.is_system(world));
            }
        }
    }

    #[test]
    fn open_loop_nodes_own_their_share_of_users_and_merchants() {
        let dir = Directory::open_loop(3, 10, 4, 3);
        assert_eq!(dir.owner(dir.open_user(7)), Some((1, Subject::User)));
        assert_eq!(
            dir.owner(dir.open_merchant(2)),
            Some((2, Subject::Merchant))
        );
        assert_eq!(dir.owner(dir.open_merchant(4)), None);
        assert!(dir.owns(0, dir.open_user(9)));
    }

    #[test]
    fn ids_outside_the_layout_have_no_owner() {
        let dir = Directory::new(3);
        let m = dir.merchant_account(0);
        // One shard further than the merchant's home: the slot exists, the id is not assigned.
        let off = AccountId(m.0 + 1);
        assert_eq!(dir.owner(off), None);
    }
}

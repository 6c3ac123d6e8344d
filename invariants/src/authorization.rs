//! Invariant 21: no unauthorized effect.
//!
//! Judged on the ledger's postings against the clients' own record of what they asked (the
//! history) and the registration of who owns which account ([`Observation::owners`]), never on
//! any service's word about who called it:
//!
//! - **Provenance of every posting.** A direct post (no activity) must be a client request of
//!   the history: a transfer debits only accounts its client owns and touches no platform
//!   account; a fund (deposit) is Dr world / Cr an account of its client; a withdrawal is Dr an
//!   account of its client / Cr world. A branch of an activity debits a customer account only
//!   for a pay asked by the payer's owner, or a refund asked by the merchant's owner.
//! - **Money enters and leaves only through the funding path**: a world or transit account is
//!   never one the platform registered to a client, and a registered account keeps the subject
//!   it was registered as (an account opened as `World` by a client is a violation, not a
//!   loophole).
//! - **Hostile attempts** ([`crate::OpKind::Attack`]): the first definite answer is the refusal
//!   the attempt must get; and no posting comes from one.

use crate::{
    ActivityKind, ActivityState, AttemptStatus, Invariant, Observation, OpKind, Operation, Outcome,
    Side, Subject, TradeState, Violation, VoucherRecord,
};
use std::collections::BTreeMap;

fn violation(message: String) -> Violation {
    Violation::new(Invariant::NoUnauthorizedEffect, message)
}

/// Everything the rules look up, indexed once.
struct Index<'a> {
    obs: &'a Observation,
    owners: &'a BTreeMap<u64, crate::Owner>,
    ops: BTreeMap<&'a str, &'a Operation>,
    activities: BTreeMap<&'a str, &'a ActivityState>,
    /// The first trade of each id, as a scan would find it.
    trades: BTreeMap<&'a str, &'a TradeState>,
    subjects: BTreeMap<u64, Subject>,
}

impl<'a> Index<'a> {
    fn new(obs: &'a Observation, owners: &'a BTreeMap<u64, crate::Owner>) -> Self {
        let ops = obs
            .history
            .iter()
            .map(|o| (o.request.as_str(), &**o))
            .collect();
        let activities = obs.activities.iter().map(|a| (a.xid.as_str(), a)).collect();
        let mut trades = BTreeMap::new();
        for t in &obs.trades {
            trades.entry(t.trade.as_str()).or_insert(t);
        }
        let subjects = obs
            .shards
            .iter()
            .flat_map(|s| &s.accounts)
            .map(|a| (a.account, a.subject))
            .collect();
        Index {
            obs,
            owners,
            ops,
            activities,
            trades,
            subjects,
        }
    }

    fn owner(&self, account: u64) -> Option<u32> {
        self.owners.get(&account).map(|o| o.client)
    }

    fn is_platform(&self, account: u64) -> bool {
        !self.owners.contains_key(&account)
    }

    /// A platform account at the edge of the world: the world's, or with banks the reserve
    /// at one and the withdrawals in transit to it.
    fn is_world(&self, account: u64) -> bool {
        let edge = matches!(
            self.subjects.get(&account),
            Some(Subject::World | Subject::Reserve | Subject::InTransit | Subject::Suspense)
        );
        edge && self.is_platform(account)
    }
}

pub fn check(obs: &Observation) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(owners) = &obs.owners {
        let ix = Index::new(obs, owners);
        registration(&ix, &mut out);
        for shard in &obs.shards {
            for v in &shard.vouchers {
                out.extend(provenance(&ix, shard.shard, v));
            }
        }
    }
    for op in obs.history.iter().filter(|o| o.attack.is_some()) {
        out.extend(refused_as_it_must(op));
    }
    out
}

/// Every account with a registered owner keeps its registered subject; platform subjects only
/// on platform ids.
fn registration(ix: &Index<'_>, out: &mut Vec<Violation>) {
    for shard in &ix.obs.shards {
        for a in &shard.accounts {
            let Some(owner) = ix.owners.get(&a.account) else {
                continue;
            };
            if owner.subject != a.subject {
                let msg = format!(
                    "account {} of client-{} was registered {} but is held as {}",
                    a.account, owner.client, owner.subject, a.subject
                );
                out.push(
                    violation(msg)
                        .with("shard", shard.shard)
                        .with("account", a.account)
                        .with("client", owner.client)
                        .with("subject", a.subject),
                );
            }
        }
    }
}

/// A violation about voucher `v` on `shard`.
fn about(shard: u32, v: &VoucherRecord, message: String) -> Violation {
    let legs: Vec<String> = v
        .legs
        .iter()
        .map(|l| format!("{:?} {} {}", l.side, l.account, l.amount))
        .collect();
    violation(message)
        .with("shard", shard)
        .with("voucher", &v.voucher)
        .with("request", &v.request)
        .with("xid", v.xid.as_deref().unwrap_or("none"))
        .with("legs", legs.join("; "))
}

fn debits(v: &VoucherRecord) -> impl Iterator<Item = u64> + '_ {
    v.legs
        .iter()
        .filter(|l| l.side == Side::Debit)
        .map(|l| l.account)
}

/// Whether the voucher's postings trace to an authorized request.
fn provenance(ix: &Index<'_>, shard: u32, v: &VoucherRecord) -> Option<Violation> {
    let Some(xid) = &v.xid else {
        return direct_post(ix, shard, v);
    };
    let a = ix.activities.get(xid.as_str())?;
    let Some(op) = ix.ops.get(a.key.as_str()) else {
        let msg = format!(
            "voucher {} of {xid} moves money for key {}, which no client asked",
            v.voucher, a.key
        );
        return Some(about(shard, v, msg));
    };
    if op.attack.is_some() {
        let msg = format!(
            "voucher {} carries out hostile attempt {}",
            v.voucher, op.request
        );
        return Some(about(shard, v, msg).with("client", op.client));
    }
    let mover = match a.kind {
        ActivityKind::Pay => "payer",
        ActivityKind::Refund => "merchant",
    };
    let stranger = debits(v).find(|&d| !ix.is_platform(d) && ix.owner(d) != Some(op.client))?;
    let msg = format!(
        "voucher {} debits {stranger}, not client-{}'s, for its {:?} {} (the {mover} must be the asker's)",
        v.voucher, op.client, a.kind, a.key
    );
    Some(
        about(shard, v, msg)
            .with("client", op.client)
            .with("account", stranger),
    )
}

/// A post with no activity: a transfer, a fund or a withdrawal of the history's client.
fn direct_post(ix: &Index<'_>, shard: u32, v: &VoucherRecord) -> Option<Violation> {
    if let Some(rest) = v.request.strip_prefix(crate::clearing::CLEARING_PREFIX) {
        return clearing_post(ix, shard, v, rest);
    }
    let Some(op) = ix.ops.get(v.request.as_str()) else {
        let msg = format!(
            "voucher {} was posted for request {}, which no client asked",
            v.voucher, v.request
        );
        return Some(about(shard, v, msg));
    };
    let (client, mine) = (op.client, |a: u64| ix.owner(a) == Some(op.client));
    let fault = match op.kind {
        OpKind::Transfer => v.legs.iter().find_map(|l| {
            if ix.is_platform(l.account) {
                Some(format!("touches platform account {}", l.account))
            } else if l.side == Side::Debit && !mine(l.account) {
                Some(format!("debits {}, not client-{client}'s", l.account))
            } else {
                None
            }
        }),
        OpKind::Fund | OpKind::Withdraw => funding_fault(ix, op, v),
        OpKind::Attack => Some(format!("carries out hostile attempt {}", op.request)),
        other => Some(format!(
            "was posted for a {other} request, which posts nothing"
        )),
    }?;
    let msg = format!(
        "voucher {} of client-{client}'s {} {}",
        v.voucher, op.kind, fault
    );
    Some(
        about(shard, v, msg)
            .with("client", client)
            .with("kind", op.kind),
    )
}

/// The key prefix of the treasury's transfers between the platform's reserves (内转).
const TREASURY_PREFIX: &str = "xfer-";

/// A posting of the treasury's transfer or of reconciliation's suspense moves the platform's
/// own money: only between bank reserves and suspense, never a customer's.
fn treasury_post(ix: &Index<'_>, shard: u32, v: &VoucherRecord, key: &str) -> Option<Violation> {
    let own = |a: u64| {
        let subject = ix.subjects.get(&a);
        ix.is_platform(a) && matches!(subject, Some(Subject::Reserve | Subject::Suspense))
    };
    let stranger = v.legs.iter().find(|l| !own(l.account))?;
    let msg = format!(
        "voucher {} of the platform's own {key} touches {}, not a bank reserve or suspense",
        v.voucher, stranger.account
    );
    Some(about(shard, v, msg).with("account", stranger.account))
}

/// Whose money a clearing key (`<key>` of `clr:<key>:<what>`) moves: the client request it
/// serves, and the customer account it may touch besides that client's own.
struct Cleared<'a> {
    op: &'a Operation,
    /// A refund to card pays the trade's payer, another client's account.
    payee: Option<u64>,
    /// The account may be debited by this posting (a payout's hold, a correction).
    debits: bool,
}

/// The request a clearing posting serves, if it serves one: a client's deposit or withdrawal
/// (`settle` and `reverse` to a withdrawal); a card payment's deposit (`<pay>.card`); a
/// refund's payout to the card of the trade's payer (`<refund>.tocard`, held, then settled or
/// reversed). Reconciliation's correction (`recon`) may debit what a bank did not pay.
fn cleared<'a>(ix: &Index<'a>, key: &str, what: &str) -> Option<Cleared<'a>> {
    let op = |k: &str, kinds: &[OpKind]| ix.ops.get(k).filter(|op| kinds.contains(&op.kind));
    let recon = what == "recon";
    if let Some(pay) = key.strip_suffix(".card") {
        let op = op(pay, &[OpKind::Pay])?;
        return Some(Cleared {
            op,
            payee: None,
            debits: recon,
        });
    }
    if let Some(refund) = key.strip_suffix(".tocard") {
        let op = op(refund, &[OpKind::Refund])?;
        let trade = ix.trades.get(op.trade.as_deref()?)?;
        let paid = trade
            .pays
            .iter()
            .find(|p| p.status == AttemptStatus::Succeeded)?;
        return Some(Cleared {
            op,
            payee: Some(paid.payer),
            debits: what.is_empty() || recon,
        });
    }
    let kinds: &[OpKind] = match what {
        "settle" | "reverse" => &[OpKind::Withdraw],
        _ => &[OpKind::Withdraw, OpKind::Fund],
    };
    Some(Cleared {
        op: op(key, kinds)?,
        payee: None,
        debits: recon,
    })
}

/// A clearing posting (`clr:<key>:<what>`): it must serve a client's request ([`cleared`]),
/// and touch only platform accounts, that client's own and the payee's, debiting a customer
/// only where the posting may.
fn clearing_post(ix: &Index<'_>, shard: u32, v: &VoucherRecord, rest: &str) -> Option<Violation> {
    let (key, what) = rest.split_once(':').unwrap_or((rest, ""));
    if key.starts_with(TREASURY_PREFIX) || key.starts_with(crate::clearing::SUSPENSE_PREFIX) {
        return treasury_post(ix, shard, v, key);
    }
    let Some(Cleared { op, payee, debits }) = cleared(ix, key, what) else {
        let msg = format!(
            "voucher {} clears {key}, which no client asked to deposit, withdraw, pay by card \
             or refund to a card",
            v.voucher
        );
        return Some(about(shard, v, msg));
    };
    let stranger = v.legs.iter().find(|l| {
        let customer = !ix.is_platform(l.account);
        let allowed = ix.owner(l.account) == Some(op.client) || Some(l.account) == payee;
        (customer && !allowed) || (customer && l.side == Side::Debit && !debits)
    })?;
    let msg = format!(
        "voucher {} of client-{}'s {} {key} touches {}",
        v.voucher, op.client, op.kind, stranger.account
    );
    Some(
        about(shard, v, msg)
            .with("client", op.client)
            .with("account", stranger.account),
    )
}

/// What is wrong with a fund or withdrawal voucher, if anything: it must move money between
/// the world and one account of the asker, in the direction asked.
fn funding_fault(ix: &Index<'_>, op: &Operation, v: &VoucherRecord) -> Option<String> {
    let into = op.kind == OpKind::Fund;
    let shape_ok = v.legs.len() == 2
        && v.legs.iter().all(|l| {
            let from_world = (l.side == Side::Debit) == into;
            if from_world {
                ix.is_world(l.account)
            } else {
                ix.owner(l.account) == Some(op.client)
            }
        });
    (!shape_ok).then(|| {
        let way = if into {
            "Dr world / Cr"
        } else {
            "Dr / Cr world from"
        };
        format!("is not {way} an account of client-{}", op.client)
    })
}

/// A hostile attempt's first definite answer must be its expected refusal.
fn refused_as_it_must(op: &Operation) -> Option<Violation> {
    let attack = op.attack.as_ref()?;
    let first = op.replies.iter().find(|r| **r != Outcome::Unknown)?;
    let refused = matches!(first, Outcome::Fail(r) if attack.accepts(&r.code));
    if refused {
        return None;
    }
    let msg = format!(
        "hostile attempt {} ({}) of client-{} was answered {first}, not refused {}",
        op.request, attack.name, op.client, attack.expect
    );
    Some(
        violation(msg)
            .with("request", &op.request)
            .with("client", op.client)
            .with("attack", &attack.name)
            .with("expected", &attack.expect)
            .with("answer", first)
            .with("trade", op.trade.as_deref().unwrap_or("none"))
            .with(
                "victim",
                attack.victim.map_or("none".to_string(), |a| a.to_string()),
            ),
    )
}

#[cfg(test)]
#[path = "authorization/tests.rs"]
mod tests;

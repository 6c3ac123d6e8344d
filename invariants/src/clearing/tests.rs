use super::*;
use crate::testkit::{account, ev, single, voucher};
use crate::{
    BankInstruction, BankStatus, ClearingSnapshot, ShardSnapshot, StatementLineState, Subject,
};
use rust_decimal_macros::dec;

const USER: u64 = 10;
const RESERVE: u64 = 100;
const TRANSIT: u64 = 101;

fn order(
    key: &str,
    kind: FundKind,
    amount: Decimal,
    history: &[ChannelStatus],
) -> ChannelOrderState {
    let status = *history.last().expect("a history");
    let fail = (status == ChannelStatus::Fail).then(|| "bank:NoFunds".to_string());
    ChannelOrderState {
        instr: format!("i:{key}"),
        key: key.to_string(),
        client: 1,
        kind,
        account: USER,
        bank: 0,
        amount,
        status,
        history: history.to_vec(),
        held: kind == FundKind::Withdrawal,
        settled: true,
        corrected: false,
        fail,
    }
}

fn instruction(key: &str, debit: bool, amount: Decimal, status: BankStatus) -> BankInstruction {
    BankInstruction {
        instr: format!("i:{key}"),
        debit,
        card: USER,
        amount,
        status,
        date: (status == BankStatus::Success).then_some(0),
    }
}

fn line(key: &str, debit: bool, amount: Decimal) -> StatementLineState {
    StatementLineState {
        date: 0,
        instr: format!("i:{key}"),
        debit,
        amount,
    }
}

/// A deposit of 50 (paid), a withdrawal of 20 (paid) and one of 5 the bank refused (reversed),
/// on one shard and one bank, every book agreeing.
fn valid() -> Observation {
    use ChannelStatus::*;
    let shard = ShardSnapshot {
        shard: 0,
        accounts: vec![
            account(USER, Subject::User, dec!(30), dec!(0)),
            account(RESERVE, Subject::Reserve, dec!(-30), dec!(0)),
            account(TRANSIT, Subject::InTransit, dec!(0), dec!(0)),
        ],
        vouchers: vec![
            voucher("v0-1", "c1-d1", RESERVE, USER, dec!(50)),
            voucher("v0-2", "c1-w1", USER, TRANSIT, dec!(20)),
            voucher("v0-3", "clr:c1-w1:settle", TRANSIT, RESERVE, dec!(20)),
            voucher("v0-4", "c1-w2", USER, TRANSIT, dec!(5)),
            voucher("v0-5", "clr:c1-w2:reverse", TRANSIT, USER, dec!(5)),
        ],
        ..ShardSnapshot::default()
    };
    let bank = BankState {
        bank: 0,
        reserve: dec!(30),
        cards: dec!(19970),
        openings: dec!(20000),
        instructions: vec![
            instruction("c1-d1", true, dec!(50), BankStatus::Success),
            instruction("c1-w1", false, dec!(20), BankStatus::Success),
            instruction("c1-w2", false, dec!(5), BankStatus::Fail),
        ],
        lines: vec![
            line("c1-d1", true, dec!(50)),
            line("c1-w1", false, dec!(20)),
        ],
        last_date: Some(0),
        sent: dec!(0),
        received: dec!(0),
        undelivered: Vec::new(),
    };
    Observation {
        shards: vec![shard],
        clearing: ClearingSnapshot {
            orders: vec![
                order("c1-d1", FundKind::Deposit, dec!(50), &[Init, Sent, Success]),
                order(
                    "c1-w1",
                    FundKind::Withdrawal,
                    dec!(20),
                    &[Init, Sent, Unknown, Success],
                ),
                order("c1-w2", FundKind::Withdrawal, dec!(5), &[Init, Sent, Fail]),
            ],
            banks: vec![bank],
            reserve_accounts: [(RESERVE, 0)].into(),
            transit_accounts: [(TRANSIT, 0)].into(),
            suspense_accounts: BTreeMap::new(),
            reconciled: [(0, 1)].into(),
        },
        ..Observation::default()
    }
}

#[test]
fn agreeing_books_pass() {
    assert_eq!(check(&valid()), Vec::new());
}

#[test]
fn a_deposit_credited_twice_breaks_exactly_once() {
    let mut obs = valid();
    // The reply and the notification each credited it (two postings under two requests would
    // be caught the same way; here a second voucher under the same request).
    obs.shards[0]
        .vouchers
        .push(voucher("v0-9", "c1-d1", RESERVE, USER, dec!(50)));
    obs.shards[0].accounts[0].available += dec!(50);
    obs.shards[0].accounts[1].available -= dec!(50);
    let found = check(&obs);
    let v = found
        .iter()
        .find(|v| v.invariant == Invariant::ExactlyOnce)
        .expect("caught");
    assert_eq!(ev(v, "instr"), "i:c1-d1");
    assert_eq!(ev(v, "vouchers"), "v0-1,v0-9");
    assert!(
        v.message.contains("posted 2 times but must post 1"),
        "{}",
        v.message
    );
}

#[test]
fn a_withdrawal_both_paid_and_reversed_breaks_exactly_once() {
    let mut obs = valid();
    obs.shards[0].vouchers.push(voucher(
        "v0-8",
        "clr:c1-w1:reverse",
        TRANSIT,
        USER,
        dec!(20),
    ));
    obs.shards[0].accounts[0].available += dec!(20);
    obs.shards[0].accounts[2].available -= dec!(20);
    let found = check(&obs);
    let v = found
        .iter()
        .find(|v| v.invariant == Invariant::ExactlyOnce)
        .expect("caught");
    assert_eq!(ev(v, "request"), "clr:c1-w1:reverse");
    let transit = found
        .iter()
        .find(|v| v.invariant == Invariant::Reconciliation)
        .expect("seen");
    assert_eq!(ev(transit, "in_transit"), "-20");
}

#[test]
fn a_clearing_posting_without_its_order_is_a_phantom() {
    let mut obs = valid();
    obs.shards[0].vouchers.push(voucher(
        "v0-7",
        "clr:c9-x:settle",
        TRANSIT,
        RESERVE,
        dec!(1),
    ));
    obs.shards[0].accounts[1].available += dec!(1);
    obs.shards[0].accounts[2].available -= dec!(1);
    let found = check(&obs);
    let v = found
        .iter()
        .find(|v| v.invariant == Invariant::ExactlyOnce)
        .expect("caught");
    assert_eq!(ev(v, "request"), "clr:c9-x:settle");
}

#[test]
fn an_order_that_leaves_a_final_status_breaks_its_transitions() {
    use ChannelStatus::*;
    let mut obs = valid();
    obs.clearing.orders[2].history = vec![Init, Sent, Fail, Success, Fail];
    let v = single(check(&obs), Invariant::LegalTransitions);
    assert_eq!(
        v.message,
        "channel order i:c1-w2 went Init → Sent → Fail → Success → Fail"
    );
}

#[test]
fn a_bank_that_creates_money_breaks_conservation() {
    let mut obs = valid();
    obs.clearing.banks[0].cards += dec!(1);
    let v = single(check(&obs), Invariant::Conservation);
    assert_eq!(ev(&v, "cards"), "19971");
}

#[test]
fn a_success_the_bank_does_not_have_is_short() {
    let mut obs = valid();
    // 短款: the bank never carried the deposit out (and its reserve shows it).
    let bank = &mut obs.clearing.banks[0];
    bank.instructions.remove(0);
    bank.lines.remove(0);
    bank.reserve -= dec!(50);
    bank.cards += dec!(50);
    let found = check(&obs);
    assert!(
        found
            .iter()
            .all(|v| v.invariant == Invariant::Reconciliation),
        "{found:#?}"
    );
    let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "channel order i:c1-d1 is Success but the bank has no such instruction (短款)",
            "channel order i:c1-d1 succeeded but is on no statement of bank 0 (短款)",
            "the ledger holds 30 as the reserve at bank 0, but the bank owes the platform -20",
        ]
    );
}

#[test]
fn an_instruction_no_order_sent_is_long() {
    let mut obs = valid();
    // 长款: the bank paid out 7 that no channel order knows of.
    let bank = &mut obs.clearing.banks[0];
    bank.instructions
        .push(instruction("c1-w3", false, dec!(7), BankStatus::Success));
    bank.lines.push(line("c1-w3", false, dec!(7)));
    bank.reserve -= dec!(7);
    bank.cards += dec!(7);
    let found = check(&obs);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found
        .iter()
        .all(|v| v.invariant == Invariant::Reconciliation));
    assert_eq!(ev(&found[0], "instr"), "i:c1-w3");
    assert!(found[0].message.contains("长款"));
}

#[test]
fn a_failed_order_the_bank_carried_out_and_an_amount_mismatch_are_caught() {
    let mut obs = valid();
    obs.clearing.banks[0].instructions[2].status = BankStatus::Success;
    obs.clearing.banks[0].instructions[0].amount = dec!(51);
    let found = check(&obs);
    let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "channel order i:c1-d1 is Success but the bank carried out a debit of 51 (amount mismatch)",
            "channel order i:c1-w2 is Fail but the bank says Success",
        ]
    );
}

/// The platform's own orders (a card payment's deposit, a refund paid out to the card) are
/// judged as the clients' are: their first posting is their key, the rest `clr:<key>:<what>`.
#[test]
fn platform_orders_post_once_under_their_own_key() {
    use ChannelStatus::*;
    let mut obs = valid();
    let deposit = order(
        "clr:c1-p1.card",
        FundKind::Deposit,
        dec!(8),
        &[Init, Sent, Success],
    );
    let mut refund = order(
        "clr:c1-r1.tocard",
        FundKind::RefundToCard,
        dec!(8),
        &[Init, Sent, Success],
    );
    refund.held = true;
    obs.clearing.orders.extend([deposit, refund]);
    let bank = &mut obs.clearing.banks[0];
    bank.instructions.extend([
        instruction("clr:c1-p1.card", true, dec!(8), BankStatus::Success),
        instruction("clr:c1-r1.tocard", false, dec!(8), BankStatus::Success),
    ]);
    bank.lines.extend([
        line("clr:c1-p1.card", true, dec!(8)),
        line("clr:c1-r1.tocard", false, dec!(8)),
    ]);
    let vouchers = &mut obs.shards[0].vouchers;
    vouchers.push(voucher("v0-6", "clr:c1-p1.card", RESERVE, USER, dec!(8)));
    vouchers.push(voucher("v0-7", "clr:c1-r1.tocard", USER, TRANSIT, dec!(8)));
    vouchers.push(voucher(
        "v0-8",
        "clr:c1-r1.tocard:settle",
        TRANSIT,
        RESERVE,
        dec!(8),
    ));
    assert_eq!(check(&obs), Vec::new());
    // The notification credited the card payment's deposit again.
    obs.shards[0].vouchers.push(voucher(
        "v0-9",
        "clr:c1-p1.card:notify",
        RESERVE,
        USER,
        dec!(8),
    ));
    obs.shards[0].accounts[0].available += dec!(8);
    obs.shards[0].accounts[1].available -= dec!(8);
    let found = check(&obs);
    let v = found
        .iter()
        .find(|v| v.invariant == Invariant::ExactlyOnce)
        .expect("caught");
    assert_eq!(ev(v, "instr"), "i:clr:c1-p1.card");
    assert_eq!(ev(v, "request"), "clr:c1-p1.card:notify");
}

/// [`valid`] with a treasury transfer of 10 from bank 0 to bank 1, carried out and arrived.
fn with_transfer() -> Observation {
    use ChannelStatus::*;
    const RESERVE1: u64 = 102;
    let mut obs = valid();
    let mut t = order(
        "clr:xfer-0",
        FundKind::Transfer { to: 1 },
        dec!(10),
        &[Init, Sent, Success],
    );
    t.held = false;
    obs.clearing.orders.push(t);
    obs.clearing.reserve_accounts.insert(RESERVE1, 1);
    let shard = &mut obs.shards[0];
    shard.accounts[1].available += dec!(10);
    shard
        .accounts
        .push(account(RESERVE1, Subject::Reserve, dec!(-10), dec!(0)));
    shard.vouchers.push(voucher(
        "v0-6",
        "clr:xfer-0:settle",
        RESERVE1,
        RESERVE,
        dec!(10),
    ));
    let a = &mut obs.clearing.banks[0];
    a.reserve -= dec!(10);
    a.sent = dec!(10);
    a.instructions.push(instruction(
        "clr:xfer-0",
        false,
        dec!(10),
        BankStatus::Success,
    ));
    a.lines.push(line("clr:xfer-0", false, dec!(10)));
    let arrived = instruction("clr:xfer-0", true, dec!(10), BankStatus::Success);
    obs.clearing.banks.push(BankState {
        bank: 1,
        reserve: dec!(10),
        cards: dec!(0),
        openings: dec!(0),
        instructions: vec![arrived],
        lines: vec![line("clr:xfer-0", true, dec!(10))],
        last_date: Some(0),
        sent: dec!(0),
        received: dec!(10),
        undelivered: Vec::new(),
    });
    obs.clearing.reconciled.insert(1, 1);
    obs
}

#[test]
fn a_transfer_between_reserves_that_arrived_passes() {
    assert_eq!(check(&with_transfer()), Vec::new());
}

/// The sending bank paid it out but the receiving bank never got it: money is lost between
/// banks (conservation across banks), the transfer did not arrive (reconciliation), and bank
/// 1's reserve in the ledger is more than the bank holds.
#[test]
fn a_transfer_lost_between_banks_is_caught_at_rest() {
    let mut obs = with_transfer();
    let b = &mut obs.clearing.banks[1];
    b.reserve = dec!(0);
    b.received = dec!(0);
    b.instructions.clear();
    b.lines.clear();
    obs.clearing.banks[0].undelivered = vec!["i:clr:xfer-0".into()];
    let found = check(&obs);
    let lost = found
        .iter()
        .find(|v| v.invariant == Invariant::Conservation)
        .expect("money between banks");
    assert_eq!(ev(lost, "undelivered"), "i:clr:xfer-0");
    let missing = found
        .iter()
        .find(|v| v.message.contains("never arrived at bank 1"))
        .expect("the arrival is missing");
    assert_eq!(missing.invariant, Invariant::Reconciliation);
    assert_eq!(ev(missing, "instr"), "i:clr:xfer-0");
}

/// Money reconciliation held in suspense must be explained by rest (an order turned up and it
/// was released); what is still there is a 长款 no order explains.
#[test]
fn money_left_in_suspense_at_rest_breaks_reconciliation() {
    const SUSPENSE: u64 = 103;
    let mut obs = valid();
    obs.clearing.suspense_accounts.insert(SUSPENSE, 0);
    let shard = &mut obs.shards[0];
    shard
        .accounts
        .push(account(SUSPENSE, Subject::Suspense, dec!(0), dec!(0)));
    assert_eq!(check(&obs), Vec::new());
    obs.shards[0].accounts[3].available = dec!(5);
    obs.shards[0].accounts[1].available -= dec!(5);
    let found = check(&obs);
    let v = found
        .iter()
        .find(|v| v.message.contains("held in suspense"))
        .expect("caught");
    assert_eq!(v.invariant, Invariant::Reconciliation);
    assert_eq!(ev(v, "suspense"), "5");
}

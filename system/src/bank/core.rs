//! One simulated bank's state machine: its cards, the platform's reserve account, the
//! instructions it took (idempotent by `instr_id`) and its statement lines. Pure: the shell
//! draws whether an instruction is processed late and reads the clock; `decide` says what to
//! write, `apply` (also the recovery) changes the state.
//!
//! Money at a bank is created only by opening a card (with its opening balance); a debit moves
//! it from a card to the platform's reserve, a credit back; a transfer (内转) moves it from the
//! reserve to another bank's, and an arriving one into the reserve. So at every instant the
//! bank's books satisfy Σ cards + reserve + sent − received = Σ openings, and across banks,
//! once every transfer sent has arrived, Σ cards + reserves = Σ openings.

use super::types::{BankError, BankReply};
use super::types::{Direction, FailReason, InstrStatus, Instruction, StatementLine};
use crate::ids::InstrId;
use crate::money::Amount;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a new card holds when it is opened (1,000,000 yuan: enough that money keeps flowing
/// in from cards at any run length).
pub const CARD_OPENING: Decimal = Decimal::from_parts(100_000_000, 0, 0, false, 2);

/// Whether card `card` is closed (one card in 97, fixed by its number): instructions on it
/// fail for good.
pub fn card_is_closed(card: u64) -> bool {
    card % 97 == 7
}

/// One card at the bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub balance: Decimal,
    pub opening: Decimal,
    pub closed: bool,
}

/// One instruction as the bank holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrState {
    pub instruction: Instruction,
    pub status: InstrStatus,
    /// When a PROCESSING instruction is due to be decided (bank's clock).
    pub due_ms: u64,
    /// The bank date of its statement line (a success).
    pub date: Option<u32>,
    /// When a successful payout bounces (the same bank day), if it will.
    pub bounce_ms: Option<u64>,
}

/// What the shell drew for a new instruction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Draw {
    /// PROCESSING until this instant.
    pub late: Option<u64>,
    /// Refused by the bank's own checks.
    pub reject: bool,
    /// A payout carried out now that bounces at this instant (before the day ends).
    pub bounce_at: Option<u64>,
}

/// What the bank's log holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankRecord {
    /// (An [`Amount`], not a `Decimal`: the log is bincode, which cannot decode `Decimal`'s
    /// self-describing form.)
    CardOpened {
        card: u64,
        balance: Amount,
        closed: bool,
    },
    /// An instruction taken: decided at once, or PROCESSING until `due_ms`.
    Accepted {
        instruction: Instruction,
        status: InstrStatus,
        at_ms: u64,
        due_ms: u64,
        bounce_ms: Option<u64>,
    },
    /// A successful payout came back.
    Bounced { instr: InstrId },
    /// A PROCESSING instruction decided.
    Decided {
        instr: InstrId,
        status: InstrStatus,
        at_ms: u64,
    },
    /// A transfer from bank `from_bank` arrived: the reserve is credited.
    Received {
        instr: InstrId,
        from_bank: u32,
        amount: Amount,
        at_ms: u64,
    },
    /// A transfer sent from here was acknowledged by its receiving bank.
    Delivered { instr: InstrId },
}

/// What to do with a submission.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Reply(Result<BankReply, BankError>),
    Write(Vec<BankRecord>),
}

/// One bank's books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankCore {
    pub bank: u32,
    day_ms: u64,
    pub cards: BTreeMap<u64, Card>,
    /// The platform's account at this bank (credit-positive: what the bank owes the platform).
    pub reserve: Decimal,
    pub instructions: BTreeMap<InstrId, InstrState>,
    pub lines: Vec<StatementLine>,
    /// Transfers sent from here and not yet acknowledged by the receiving bank.
    pub undelivered: BTreeSet<InstrId>,
    /// The PROCESSING instructions by when they are due, and the successful payouts that will
    /// bounce by when (derived from `instructions` by `apply`, so that the bank's timer reads
    /// only those, not every instruction it ever took).
    processing: BTreeSet<(u64, InstrId)>,
    bouncing: BTreeSet<(u64, InstrId)>,
}

impl BankCore {
    pub fn new(bank: u32, day_ms: u64) -> Self {
        assert!(day_ms > 0, "a bank day lasts some time");
        BankCore {
            bank,
            day_ms,
            cards: BTreeMap::new(),
            reserve: Decimal::ZERO,
            instructions: BTreeMap::new(),
            lines: Vec::new(),
            undelivered: BTreeSet::new(),
            processing: BTreeSet::new(),
            bouncing: BTreeSet::new(),
        }
    }

    /// Rebuilds the books from the log.
    pub fn recover(bank: u32, day_ms: u64, records: &[BankRecord]) -> Self {
        let mut core = BankCore::new(bank, day_ms);
        for r in records {
            core.apply(r.clone());
        }
        core
    }

    /// The bank date of simulated instant `at_ms`.
    pub fn date_of(&self, at_ms: u64) -> u32 {
        (at_ms / self.day_ms) as u32
    }

    /// A submission: the answer of a repeat, or the records of a new instruction (its card
    /// opened first if new), as the shell drew it (`draw`).
    pub fn decide(&self, instruction: &Instruction, now_ms: u64, draw: Draw) -> Decision {
        if let Some(known) = self.instructions.get(&instruction.id) {
            return Decision::Reply(if known.instruction == *instruction {
                Ok(BankReply::Status(known.status))
            } else {
                Err(BankError::Mismatch(instruction.id.clone()))
            });
        }
        let mut records = Vec::new();
        let transfer = instruction.direction == Direction::TransferOut;
        if instruction.direction == Direction::TransferIn {
            return Decision::Reply(Err(BankError::Mismatch(instruction.id.clone())));
        }
        if !transfer && !self.cards.contains_key(&instruction.card) {
            records.push(BankRecord::CardOpened {
                card: instruction.card,
                balance: Amount::new(CARD_OPENING).expect("a valid opening"),
                closed: card_is_closed(instruction.card),
            });
        }
        let status = match draw.late {
            Some(_) => InstrStatus::Processing,
            None => self.outcome(instruction, records.first(), draw.reject),
        };
        let payout = status == InstrStatus::Success && instruction.direction == Direction::Credit;
        let same_day = |at: &u64| self.date_of(*at) == self.date_of(now_ms);
        records.push(BankRecord::Accepted {
            instruction: instruction.clone(),
            status,
            at_ms: now_ms,
            due_ms: draw.late.unwrap_or(now_ms),
            bounce_ms: draw.bounce_at.filter(|at| payout && same_day(at)),
        });
        Decision::Write(records)
    }

    /// The record deciding a PROCESSING instruction now (`reject`: the bank's checks refuse
    /// it), if it is one.
    pub fn decide_late(&self, instr: &InstrId, now_ms: u64, reject: bool) -> Option<BankRecord> {
        let state = self.instructions.get(instr)?;
        (state.status == InstrStatus::Processing).then(|| BankRecord::Decided {
            instr: instr.clone(),
            status: self.outcome(&state.instruction, None, reject),
            at_ms: now_ms,
        })
    }

    /// The payouts due to bounce by `now_ms`, in id order.
    pub fn bounces_due(&self, now_ms: u64) -> Vec<InstrId> {
        due_by(&self.bouncing, now_ms)
    }

    /// The PROCESSING instructions due by `now_ms`, in id order.
    pub fn due(&self, now_ms: u64) -> Vec<InstrId> {
        due_by(&self.processing, now_ms)
    }

    /// What carrying `instruction` out now would end in (`opening`: its card's opening record,
    /// not applied yet).
    fn outcome(
        &self,
        instruction: &Instruction,
        opening: Option<&BankRecord>,
        reject: bool,
    ) -> InstrStatus {
        let amount = instruction.amount.value();
        if instruction.direction == Direction::TransferOut {
            let fail = match () {
                _ if self.reserve < amount => Some(FailReason::ReserveShort),
                _ if reject => Some(FailReason::Rejected),
                _ => None,
            };
            return fail.map_or(InstrStatus::Success, InstrStatus::Fail);
        }
        let (balance, closed) = match (self.cards.get(&instruction.card), opening) {
            (Some(card), _) => (card.balance, card.closed),
            (
                None,
                Some(BankRecord::CardOpened {
                    balance, closed, ..
                }),
            ) => (balance.value(), *closed),
            (None, _) => unreachable!("a card is opened before its first instruction"),
        };
        let fail = match instruction.direction {
            _ if closed => Some(FailReason::CardClosed),
            Direction::Debit if balance < amount => Some(FailReason::NoFunds),
            Direction::Credit if self.reserve < amount => Some(FailReason::ReserveShort),
            _ if reject => Some(FailReason::Rejected),
            _ => None,
        };
        fail.map_or(InstrStatus::Success, InstrStatus::Fail)
    }

    /// Where instruction `id` stands.
    pub fn query(&self, id: &InstrId) -> BankReply {
        self.instructions
            .get(id)
            .map_or(BankReply::NotFound, |s| BankReply::Status(s.status))
    }

    /// Every line of bank date `date`, and the reserve's balance at the end of it.
    pub fn statement(&self, date: u32) -> super::types::Statement {
        let lines = self.lines.iter().filter(|l| l.date == date).cloned();
        let through = self.lines.iter().filter(|l| l.date <= date);
        let closing: Decimal = through
            .map(|l| {
                let a = l.amount.value();
                if l.direction.into_reserve() {
                    a
                } else {
                    -a
                }
            })
            .sum();
        super::types::Statement {
            lines: lines.collect(),
            closing,
        }
    }

    /// The record taking a transfer that arrived from `from_bank`, unless it arrived before.
    pub fn receive(
        &self,
        instr: &InstrId,
        from_bank: u32,
        amount: Amount,
        now_ms: u64,
    ) -> Result<Option<BankRecord>, BankError> {
        match self.instructions.get(instr) {
            Some(s) if s.instruction.direction == Direction::TransferIn => {
                let same = s.instruction.amount == amount;
                same.then_some(None)
                    .ok_or_else(|| BankError::Mismatch(instr.clone()))
            }
            Some(_) => Err(BankError::Mismatch(instr.clone())),
            None => Ok(Some(BankRecord::Received {
                instr: instr.clone(),
                from_bank,
                amount,
                at_ms: now_ms,
            })),
        }
    }

    /// The transfers to deliver: (instruction, receiving bank, amount), in id order.
    pub fn to_deliver(&self) -> Vec<(InstrId, u32, Amount)> {
        let undelivered = self.undelivered.iter().map(|id| {
            let i = &self.instructions[id].instruction;
            let to = i.to_bank.expect("a transfer names its receiving bank");
            (id.clone(), to, i.amount)
        });
        undelivered.collect()
    }

    /// Applies one record (a decision just made, or one replayed at recovery).
    pub fn apply(&mut self, record: BankRecord) {
        match record {
            BankRecord::CardOpened {
                card,
                balance,
                closed,
            } => {
                let balance = balance.value();
                let card_state = Card {
                    balance,
                    opening: balance,
                    closed,
                };
                let fresh = self.cards.insert(card, card_state).is_none();
                assert!(fresh, "card {card} opened twice");
            }
            BankRecord::Accepted {
                instruction,
                status,
                at_ms,
                due_ms,
                bounce_ms,
            } => {
                let id = instruction.id.clone();
                let state = InstrState {
                    instruction,
                    status: InstrStatus::Processing,
                    due_ms,
                    date: None,
                    bounce_ms,
                };
                let fresh = self.instructions.insert(id.clone(), state).is_none();
                assert!(fresh, "instruction {id} accepted twice");
                if status.is_final() {
                    self.settle(&id, status, at_ms);
                } else {
                    self.processing.insert((due_ms, id));
                }
            }
            BankRecord::Decided {
                instr,
                status,
                at_ms,
            } => {
                let due_ms = self.instructions.get(&instr).map_or(0, |s| s.due_ms);
                self.processing.remove(&(due_ms, instr.clone()));
                self.settle(&instr, status, at_ms);
            }
            BankRecord::Bounced { instr } => self.bounce(&instr),
            BankRecord::Received {
                instr,
                from_bank,
                amount,
                at_ms,
            } => self.take_transfer(instr, from_bank, amount, at_ms),
            BankRecord::Delivered { instr } => {
                self.undelivered.remove(&instr);
            }
        }
    }

    /// A transfer arrived: the reserve is credited and the day's statement lists it.
    fn take_transfer(&mut self, instr: InstrId, from_bank: u32, amount: Amount, at_ms: u64) {
        let date = self.date_of(at_ms);
        let instruction = Instruction {
            id: instr.clone(),
            direction: Direction::TransferIn,
            card: 0,
            amount,
            to_bank: Some(self.bank),
        };
        let state = InstrState {
            instruction,
            status: InstrStatus::Success,
            due_ms: at_ms,
            date: Some(date),
            bounce_ms: None,
        };
        let fresh = self.instructions.insert(instr.clone(), state).is_none();
        assert!(
            fresh,
            "transfer {instr} from bank {from_bank} received twice"
        );
        self.reserve += amount.value();
        self.lines.push(StatementLine {
            date,
            instr,
            direction: Direction::TransferIn,
            card: 0,
            amount,
        });
    }

    /// A payout comes back the day it was made: the money returns to the reserve and the
    /// line leaves the day's (unpublished) statement.
    fn bounce(&mut self, id: &InstrId) {
        let state = self
            .instructions
            .get_mut(id)
            .expect("bounced instructions exist");
        assert_eq!(
            state.status,
            InstrStatus::Success,
            "{id} bounces once, after success"
        );
        if let Some(at) = state.bounce_ms.take() {
            self.bouncing.remove(&(at, id.clone()));
        }
        state.status = InstrStatus::Fail(FailReason::Bounced);
        let i = state.instruction.clone();
        let card = self
            .cards
            .get_mut(&i.card)
            .expect("an instruction's card is open");
        if card.balance < i.amount.value() {
            // Spent from the card already: the payout stands.
            state.status = InstrStatus::Success;
            return;
        }
        card.balance -= i.amount.value();
        self.reserve += i.amount.value();
        self.lines.retain(|l| l.instr != *id);
    }

    /// A PROCESSING instruction reaches its final status; a success moves the money and
    /// writes its statement line.
    fn settle(&mut self, id: &InstrId, status: InstrStatus, at_ms: u64) {
        assert!(status.is_final(), "{id} settles to a final status");
        let date = self.date_of(at_ms);
        let state = self
            .instructions
            .get_mut(id)
            .expect("settled instructions exist");
        assert_eq!(state.status, InstrStatus::Processing, "{id} settles once");
        state.status = status;
        if status != InstrStatus::Success {
            return;
        }
        state.date = Some(date);
        if let Some(at) = state.bounce_ms {
            self.bouncing.insert((at, id.clone()));
        }
        let i = state.instruction.clone();
        if i.direction == Direction::TransferOut {
            self.reserve -= i.amount.value();
            assert!(self.reserve >= Decimal::ZERO, "{id} overdraws the reserve");
            self.undelivered.insert(i.id.clone());
            self.lines.push(StatementLine {
                date,
                instr: i.id,
                direction: i.direction,
                card: 0,
                amount: i.amount,
            });
            return;
        }
        let card = self
            .cards
            .get_mut(&i.card)
            .expect("an instruction's card is open");
        let amount = i.amount.value();
        let (to_card, to_reserve) = match i.direction {
            Direction::Debit => (-amount, amount),
            _ => (amount, -amount),
        };
        card.balance += to_card;
        self.reserve += to_reserve;
        assert!(
            card.balance >= Decimal::ZERO && self.reserve >= Decimal::ZERO,
            "{id} overdraws"
        );
        self.lines.push(StatementLine {
            date,
            instr: i.id,
            direction: i.direction,
            card: i.card,
            amount: i.amount,
        });
    }
}

/// The ids in `index` (by instant, then id) due by `now_ms`, in id order.
fn due_by(index: &BTreeSet<(u64, InstrId)>, now_ms: u64) -> Vec<InstrId> {
    let mut due: Vec<InstrId> = index
        .iter()
        .take_while(|(at, _)| *at <= now_ms)
        .map(|(_, id)| id.clone())
        .collect();
    due.sort();
    due
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

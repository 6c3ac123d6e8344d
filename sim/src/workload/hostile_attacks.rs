//! The attempts of a hostile client ([`super::Hostile`]), one method each.

use super::*;

impl Hostile {
    /// A client posting a voucher that debits another user's account.
    pub(super) async fn debit_another(&mut self) {
        let victim = self.victim_account();
        let shard = victim.shard(self.shards()).0 as usize;
        let post = LedgerCommand::Post {
            request: RequestId::new(self.request("x")),
            legs: vec![
                Leg::debit(victim, one_fen()),
                Leg::credit(self.own[shard], one_fen()),
            ],
        };
        let aim = Aim::new("debit-another", RefusalCode::Unauthorized).victim(victim);
        let dst = self.ledger_of(victim);
        self.attempt(aim, dst, self.client_ledger(post)).await;
    }

    /// Minting: a client posting Dr world / Cr its own account.
    pub(super) async fn mint(&mut self) {
        let own = self.own[0];
        let world = AccountId::world(own.shard(self.shards()));
        let big = Amount::from_fen(Amount::MAX_YUAN * 100).expect("the maximum is an amount");
        let post = LedgerCommand::Post {
            request: RequestId::new(self.request("x")),
            legs: vec![Leg::debit(world, big), Leg::credit(own, big)],
        };
        let aim = Aim::new("mint-from-world", RefusalCode::Unauthorized).victim(world);
        self.attempt(aim, self.ledger_of(own), self.client_ledger(post))
            .await;
    }

    /// Opening one of its own account ids as a world account (which may go negative).
    pub(super) async fn open_as_world(&mut self) {
        let account = self.own[self.own.len() - 1];
        let open = LedgerCommand::OpenAccount {
            account,
            subject: Subject::World,
        };
        let aim = Aim::new("open-as-world", RefusalCode::Unauthorized);
        self.attempt(aim, self.ledger_of(account), self.client_ledger(open))
            .await;
    }

    /// Opening (squatting) an account the platform assigned to someone else.
    pub(super) async fn open_another(&mut self) {
        let victim = self.victim_account();
        let open = LedgerCommand::OpenAccount {
            account: victim,
            subject: Subject::User,
        };
        let aim = Aim::new("open-another", RefusalCode::Unauthorized).victim(victim);
        self.attempt(aim, self.ledger_of(victim), self.client_ledger(open))
            .await;
    }

    /// The ledger's internal call from a client: a post from the world, or a TCC Try on
    /// another's account.
    pub(super) async fn internal_ledger_step(&mut self) {
        let victim = self.victim_account();
        let command = if self.rng.gen_bool(0.5) {
            let world = AccountId::world(victim.shard(self.shards()));
            let own = self.own[victim.shard(self.shards()).0 as usize];
            LedgerCommand::Post {
                request: RequestId::new(self.request("x")),
                legs: vec![Leg::debit(world, one_fen()), Leg::credit(own, one_fen())],
            }
        } else {
            LedgerCommand::TccTry {
                branch: BranchKey {
                    xid: Xid::new(self.request("x")),
                    branch: 0,
                },
                action: LegAction::Debit {
                    account: victim,
                    amount: one_fen(),
                },
            }
        };
        let aim = Aim::new("internal-ledger-step", RefusalCode::Unauthorized).victim(victim);
        self.attempt(aim, self.ledger_of(victim), LedgerCall(command))
            .await;
    }

    /// The end of a pay (`pay`) or of a refund, forged: the trade would be paid with no money
    /// moved, or a pending refund failed so that another may begin.
    pub(super) async fn forge_end(&mut self, pay: bool) {
        let pick = self.rng.gen();
        let Some((victim, trade)) = self.caller.ctx.history.paid_trade(self.id(), pick) else {
            return;
        };
        let Ok(trade) = trade.parse::<TradeId>() else {
            return;
        };
        let (key, xid) = (IdemKey::new(self.request("x")), Xid::new(self.request("x")));
        let payer = client_accounts(&self.caller.ctx.config, victim)[0];
        let (name, command) = if pay {
            let outcome = Ok(());
            let end = TradeCommand::EndPay {
                trade,
                key,
                xid,
                payer,
                outcome,
            };
            ("forge-end-pay", end)
        } else {
            let amount = one_fen();
            let refusal = paylab_system::Refusal::new(RefusalCode::Aborted, "forged");
            let outcome = Err(refusal);
            let end = TradeCommand::EndRefund {
                trade,
                out_request_no: key,
                xid,
                amount,
                outcome,
            };
            ("forge-end-refund", end)
        };
        let aim = Aim::new(name, RefusalCode::Unauthorized).trade(trade);
        self.attempt(aim, trade_addr(trade.shard), TradeCall(command))
            .await;
    }

    /// Paying its own fresh trade from another user's account, named in the body; with banks,
    /// every other time from that user's card (a deposit from someone else's card must be
    /// refused before it is asked of the bank).
    pub(super) async fn pay_from_another(&mut self) {
        let amount = Amount::from_fen(self.rng.gen_range(100..=5_000)).expect("valid");
        let Some(trade) = self.own_trade(amount).await else {
            return;
        };
        let victim = self.victim_account();
        let by_card = self.caller.ctx.config.banks > 0 && trade.seq % 2 == 1;
        let pay = PaymentCommand::Pay {
            trade,
            key: self.request("x"),
            payer: victim,
            by_card,
        };
        let name = if by_card {
            "pay-from-another-by-card"
        } else {
            "pay-from-another"
        };
        let aim = Aim::new(name, RefusalCode::Unauthorized)
            .victim(victim)
            .trade(trade)
            .amount(amount);
        let dst = self.payment_node(&self.request("x"));
        self.attempt(aim, dst, self.client_payment(pay)).await;
    }

    /// Refunding another merchant's paid trade (back to its buyer: no gain, but not its call).
    pub(super) async fn refund_another(&mut self) {
        let pick = self.rng.gen();
        let Some((_, trade)) = self.caller.ctx.history.paid_trade(self.id(), pick) else {
            return;
        };
        let Ok(trade) = trade.parse::<TradeId>() else {
            return;
        };
        let refund = PaymentCommand::Refund {
            trade,
            out_request_no: self.request("x"),
            amount: one_fen(),
        };
        let aim = Aim::new("refund-another", RefusalCode::Unauthorized).trade(trade);
        let dst = self.payment_node(&self.request("x"));
        self.attempt(aim, dst, self.client_payment(refund)).await;
    }

    /// A transfer between its own accounts, then the same request id with another amount.
    pub(super) async fn reuse_key_other_body(&mut self) {
        let (from, to) = (self.own[0], self.own[self.shards() as usize]);
        let request = self.request("t");
        let first = self.caller.post(&request, from, to, one_fen()).await;
        if first == Outcome::Unknown {
            // Whether the ledger holds the first body is unknown: no claim to make.
            return;
        }
        let two = Amount::from_fen(2).expect("valid");
        let post = LedgerCommand::Post {
            request: RequestId::new(request),
            legs: vec![Leg::debit(from, two), Leg::credit(to, two)],
        };
        let aim = Aim::new("reuse-key-other-body", RefusalCode::KeyReused).amount(two);
        self.attempt(aim, self.ledger_of(from), self.client_ledger(post))
            .await;
    }

    /// A deposit under a key in another client's namespace (squatting its key).
    pub(super) async fn key_of_another(&mut self) {
        let v = self.rng.gen_range(0..self.caller.ctx.config.clients);
        let key = format!("c{v}-fund-{}", self.n);
        let deposit = PaymentCommand::Deposit {
            account: self.own[0],
            key: key.clone(),
            amount: one_fen(),
        };
        let aim = Aim::new("key-of-another", RefusalCode::Unauthorized);
        let dst = self.payment_node(&key);
        self.attempt(aim, dst, self.client_payment(deposit)).await;
    }

    /// A forged token, or another client's credential replayed from this client's address.
    pub(super) async fn bad_credential(&mut self) {
        let v = self.rng.gen_range(0..self.caller.ctx.config.clients);
        let (name, credential) = if self.rng.gen_bool(0.5) {
            let token = self.rng.gen();
            ("forged-credential", Credential { client: v, token })
        } else {
            let authority = Authority::for_run(self.caller.ctx.config.seed);
            ("stolen-credential", authority.issue(v, client_addr(v)))
        };
        let victim = client_accounts(&self.caller.ctx.config, v)[0];
        let withdraw = PaymentCommand::Withdraw {
            account: victim,
            key: format!("c{v}-x{}-{}", self.id(), self.n),
            amount: one_fen(),
        };
        let aim = Aim::new(name, RefusalCode::Unauthenticated).victim(victim);
        let call = ClientPaymentCall {
            credential,
            command: withdraw,
        };
        self.attempt(aim, payment_addr(0), call).await;
    }

    /// Creating a trade for another merchant, or reading another merchant's trade.
    pub(super) async fn for_another_merchant(&mut self) {
        let clients = self.caller.ctx.config.clients;
        let other = merchant_account(&self.caller.ctx.config, self.rng.gen_range(0..clients));
        let pick = self.rng.gen();
        let read = self.caller.ctx.history.paid_trade(self.id(), pick);
        let (name, command, shard) = match read.and_then(|(_, t)| t.parse::<TradeId>().ok()) {
            Some(trade) if self.rng.gen_bool(0.5) => {
                ("query-another", TradeCommand::Query { trade }, trade.shard)
            }
            _ => {
                let out_trade_no = self.request("x");
                let shards = self.caller.ctx.config.trade_shards;
                let shard = trade_shard_of(other, &out_trade_no, shards).0;
                let amount = one_fen();
                let create = TradeCommand::Create {
                    merchant: other,
                    out_trade_no,
                    amount,
                };
                ("create-for-another", create, shard)
            }
        };
        let aim = Aim::new(name, RefusalCode::Unauthorized);
        let call = ClientTradeCall {
            credential: self.caller.credential,
            command,
        };
        self.attempt(aim, trade_addr(shard), call).await;
    }

    /// Paying its own trade of the largest amount there is: far beyond its balance.
    pub(super) async fn huge_pay(&mut self) {
        let big = Amount::from_fen(Amount::MAX_YUAN * 100).expect("the maximum is an amount");
        let Some(trade) = self.own_trade(big).await else {
            return;
        };
        let pay = PaymentCommand::Pay {
            trade,
            key: self.request("x"),
            payer: self.own[0],
            by_card: false,
        };
        let aim = Aim::any_refusal("huge-pay").trade(trade).amount(big);
        let dst = self.payment_node(&self.request("x"));
        self.attempt(aim, dst, self.client_payment(pay)).await;
    }

    /// Refunding its own trade that was never paid.
    pub(super) async fn refund_unpaid(&mut self) {
        let amount = Amount::from_fen(500).expect("valid");
        let Some(trade) = self.own_trade(amount).await else {
            return;
        };
        let refund = PaymentCommand::Refund {
            trade,
            out_request_no: self.request("x"),
            amount,
        };
        let aim = Aim::any_refusal("refund-unpaid").trade(trade);
        let dst = self.payment_node(&self.request("x"));
        self.attempt(aim, dst, self.client_payment(refund)).await;
    }

    /// A fresh trade of its own merchant, if the create got a definite yes.
    async fn own_trade(&mut self, amount: Amount) -> Option<TradeId> {
        let out_trade_no = self.request("o");
        self.caller
            .create_trade(&out_trade_no, self.merchant, amount)
            .await
    }

    fn payment_node(&self, key: &str) -> SocketAddr {
        let nodes = self.caller.ctx.config.payment_nodes;
        payment_addr(paylab_system::payment::payment_node_for(key, nodes))
    }
}

//! The PaymentService API: validates requests, calls the store, maps rows to messages.

use std::time::Duration;

use orderly_common::{
    ApiError,
    auth::{Caller, scope_to_caller},
    grpc::RollbackCheck,
    idempotency::{self, Keyed},
    messaging::Relay,
    time::to_proto,
    validate::{self, Page},
};
use orderly_proto::{
    common::v1::Money,
    payment::v1::{
        Account, DepositRequest, DepositResponse, GetAccountRequest, GetAccountResponse,
        ListPaymentsRequest, ListPaymentsResponse, OpenAccountRequest, OpenAccountResponse,
        Payment, PaymentStatus as ProtoStatus, RefundPaymentRequest, RefundPaymentResponse,
        payment_service_server::PaymentService,
    },
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    accounts_feed,
    domain::PaymentStatus,
    store::{
        accounts::{self, DepositRefused},
        payments,
    },
};

pub struct PaymentApi {
    db: DatabaseConnection,
    /// Publishes the accounts' events.
    relay: Relay,
    rollback: RollbackCheck,
    /// How long Deposit's idempotency keys are kept.
    keys_ttl: Duration,
}

impl PaymentApi {
    pub fn new(
        db: DatabaseConnection,
        relay: Relay,
        rollback: RollbackCheck,
        keys_ttl: Duration,
    ) -> Self {
        Self {
            db,
            relay,
            rollback,
            keys_ttl,
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn open_account(
        &self,
        request: Request<OpenAccountRequest>,
    ) -> Reply<OpenAccountResponse> {
        let request = request.into_inner();
        let customer_id = validate::identifier("customer_id", &request.customer_id)?;
        let currency = validate::currency("currency", &request.currency)?;
        let account = accounts_feed::open(&self.db, &self.relay, customer_id, currency)
            .await
            .map_err(ApiError::from)?;
        if account.currency != currency {
            return Err(ApiError::AlreadyExists(format!(
                "customer {customer_id} already has an account in {}",
                account.currency
            ))
            .into());
        }
        tracing::info!(customer_id, currency, "account open");
        Ok(Response::new(OpenAccountResponse {
            account: Some(account_message(account)),
        }))
    }

    async fn deposit(&self, request: Request<DepositRequest>) -> Reply<DepositResponse> {
        let mut request = request.into_inner();
        let key = std::mem::take(&mut request.idempotency_key);
        let customer_id = validate::identifier("customer_id", &request.customer_id)?.to_owned();
        let (amount, currency) = validate::positive_money("amount", request.amount.as_ref())?;
        let currency = currency.to_owned();
        let keyed = Keyed::new("Deposit", &customer_id, &key, &request, self.keys_ttl)?;
        let response = idempotency::once(&self.db, keyed, |txn| {
            Box::pin(async move {
                let account = accounts::deposit(txn, &customer_id, amount, &currency)
                    .await?
                    .map_err(|refused| deposit_refused(refused, &customer_id, &currency))?;
                tracing::info!(customer_id, amount, currency, "deposit");
                Ok(DepositResponse {
                    account: Some(account_message(account)),
                })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_account(&self, request: Request<GetAccountRequest>) -> Reply<GetAccountResponse> {
        let customer_id = validate::identifier("customer_id", &request.get_ref().customer_id)?;
        Caller::check_acts_for(&request, customer_id)?;
        let account = accounts::find(&self.db, customer_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("account", customer_id))?;
        Ok(Response::new(GetAccountResponse {
            account: Some(account_message(account)),
        }))
    }

    async fn refund_payment(
        &self,
        request: Request<RefundPaymentRequest>,
    ) -> Reply<RefundPaymentResponse> {
        let request = request.into_inner();
        let order_id = validate::uuid("order_id", &request.order_id)?;
        let reason = validate::optional_text("reason", &request.reason)?;
        let not_found = || ApiError::not_found("payment for order", order_id.to_string());
        let current = payments::find_by_order(&self.db, order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        if current.status == PaymentStatus::Captured.as_str() {
            return Err(ApiError::FailedPrecondition(format!(
                "payment for order {order_id} is captured (the order was confirmed) and cannot be refunded"
            ))
            .into());
        }
        if current.status == PaymentStatus::Authorized.as_str() {
            self.rollback.allows(order_id, "refund its payment").await?;
        }
        // Only an authorized payment moves: one captured since (impossible once its saga rolls
        // back) or refunded since is answered as it is.
        let payment = payments::refund(&self.db, order_id, reason)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        tracing::info!(order_id = %order_id, status = payment.status, "refund requested");
        Ok(Response::new(RefundPaymentResponse {
            payment: Some(payment_message(payment)),
        }))
    }

    async fn list_payments(
        &self,
        request: Request<ListPaymentsRequest>,
    ) -> Reply<ListPaymentsResponse> {
        let asked = validate::optional_identifier("customer_id", &request.get_ref().customer_id)?;
        let customer_id = scope_to_caller(&request, asked)?;
        let request = request.into_inner();
        let order_id = validate::optional_uuid("order_id", &request.order_id)?;
        let page = Page::from_request("page", request.page.as_ref())?;
        let after = page.after_uuid("page")?;
        let rows = payments::list(&self.db, customer_id.as_deref(), order_id, after, page.size)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListPaymentsResponse {
            next_page_token: page.next_uuid_token(rows.iter().map(|row| row.id)),
            payments: rows.into_iter().map(payment_message).collect(),
        }))
    }
}

fn deposit_refused(refused: DepositRefused, customer_id: &str, currency: &str) -> ApiError {
    match refused {
        DepositRefused::UnknownAccount => ApiError::not_found("account", customer_id),
        DepositRefused::WrongCurrency(expected) => ApiError::invalid(
            "amount.currency",
            format!("account {customer_id} holds {expected}, not {currency}"),
        ),
        DepositRefused::WouldOverflow => ApiError::invalid(
            "amount.amount_minor",
            "the balance and the money held for orders would pass the largest amount",
        ),
    }
}

fn account_message(row: accounts::Model) -> Account {
    Account {
        balance: Some(Money {
            amount_minor: row.balance_minor,
            currency: row.currency.clone(),
        }),
        held: Some(Money {
            amount_minor: row.held_minor,
            currency: row.currency,
        }),
        created_at: Some(to_proto(row.created_at)),
        updated_at: Some(to_proto(row.updated_at)),
        customer_id: row.customer_id,
    }
}

fn payment_message(row: payments::Model) -> Payment {
    let status =
        PaymentStatus::parse(&row.status).map_or(ProtoStatus::Unspecified, PaymentStatus::to_proto);
    Payment {
        payment_id: row.id.to_string(),
        order_id: row.order_id.to_string(),
        customer_id: row.customer_id,
        amount: Some(Money {
            amount_minor: row.amount_minor,
            currency: row.currency,
        }),
        status: status.into(),
        reason: row.reason,
        created_at: Some(to_proto(row.created_at)),
        updated_at: Some(to_proto(row.updated_at)),
    }
}

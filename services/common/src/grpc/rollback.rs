//! The fence on undoing a step of a saga (I11): a participant releases a reservation or refunds
//! a payment only while the orchestrator is rolling that order's saga back, whoever asks and
//! with whatever credentials. The orchestrator commits COMPENSATING (or REJECTED, for a late
//! success) before it calls a compensation and never moves from there to CONFIRMED, so once it
//! says a saga rolls back, an undo can no longer leave a confirmed order without its step. Any
//! orchestrator replica answers: they share the sagas' database.

use metrics::counter;
use orderly_proto::saga::v1::{GetSagaRequest, SagaState, saga_service_client::SagaServiceClient};
use tonic::{Code, Status};
use uuid::Uuid;

use super::{Client, InvalidEndpoint};
use crate::{
    config::{Callee, Callees, DependencyArgs},
    metrics::UNDOS_REFUSED,
    tls::Tls,
};

/// What a participant calls to check an undo: the orchestrator.
pub struct AsksOrchestrator;

impl Callees for AsksOrchestrator {
    const CALLEES: &'static [Callee] = &[Callee {
        name: "orchestrator",
        default_port: 50055,
    }];
}

/// Asks the orchestrator whether a saga is rolling back.
#[derive(Clone)]
pub struct RollbackCheck {
    orchestrator: Client,
}

impl RollbackCheck {
    pub fn new(orchestrator: Client) -> Self {
        Self { orchestrator }
    }

    /// `Ok` when order `order_id`'s saga is COMPENSATING, REJECTED or PARKED (an operator undoing
    /// by hand what a compensation could not), so `undo` (e.g. "refund its payment") may happen;
    /// otherwise the status to answer, saying why nothing was undone.
    pub async fn allows(&self, order_id: Uuid, undo: &str) -> Result<(), Status> {
        let request = GetSagaRequest {
            order_id: order_id.to_string(),
        };
        let answer = self
            .orchestrator
            .idempotent("orderly.saga.v1.SagaService/GetSaga", |channel| {
                let request = request.clone();
                async move {
                    let reply = SagaServiceClient::new(channel).get_saga(request).await?;
                    Ok(reply.into_inner().saga.map(|saga| saga.state()))
                }
            })
            .await;
        let state = match answer {
            Ok(Some(SagaState::Compensating | SagaState::Rejected | SagaState::Parked)) => {
                return Ok(());
            }
            Ok(state) => state.unwrap_or_default().as_str_name().to_owned(),
            Err(status) if status.code() == Code::NotFound => "unknown to the orchestrator".into(),
            Err(status) => {
                return Err(Status::unavailable(format!(
                    "cannot learn from the orchestrator whether order {order_id}'s saga is rolling \
                     back ({}); did not {undo}, try again",
                    status.message()
                )));
            }
        };
        counter!(UNDOS_REFUSED).increment(1);
        tracing::warn!(%order_id, saga = state, undo, "undo refused: the saga is not rolling back");
        Err(Status::failed_precondition(format!(
            "order {order_id}'s saga is {state}: a step is undone only while its saga rolls back \
             (COMPENSATING, REJECTED or PARKED); did not {undo}"
        )))
    }
}

impl DependencyArgs<AsksOrchestrator> {
    /// `caller`'s check, asking the orchestrator at its endpoint (over `tls` when given).
    pub fn rollback_check(
        &self,
        caller: &'static str,
        tls: Option<&Tls>,
    ) -> Result<RollbackCheck, InvalidEndpoint> {
        let (_, orchestrator) =
            (self.clients(caller, tls)?.pop()).expect("AsksOrchestrator declares one callee");
        Ok(RollbackCheck::new(orchestrator))
    }
}

//! The SagaService API: views of sagas, and the operator's actions on parked ones (retry,
//! resolve); its dead-letter RPCs are in `dead_letters::api`.

use orderly_common::{
    ApiError,
    time::to_proto,
    validate::{self, Page},
};
use orderly_proto::{
    common::v1::Money,
    saga::v1::{
        DiscardDeadLetterRequest, DiscardDeadLetterResponse, GetDeadLetterRequest,
        GetDeadLetterResponse, GetSagaRequest, GetSagaResponse, ListDeadLettersRequest,
        ListDeadLettersResponse, ListSagasRequest, ListSagasResponse, RedriveDeadLettersRequest,
        RedriveDeadLettersResponse, ResolveSagaRequest, ResolveSagaResponse, RetrySagaRequest,
        RetrySagaResponse, Saga, SagaHistoryEntry, SagaState, SagaStep, StepStatus,
        saga_service_server::SagaService,
    },
};
use sea_orm::{DatabaseConnection, prelude::Uuid};
use tonic::{Request, Response, Status};

use crate::{
    dead_letters::{self, DeadLetters},
    runtime::{Operator, OperatorError},
    store::{history, sagas, steps},
};

pub struct SagaApi {
    db: DatabaseConnection,
    operator: Operator,
    /// The name of the saga definition every saga here runs (in one of its versions).
    definition: String,
    dead_letters: DeadLetters,
}

impl SagaApi {
    pub fn new(
        db: DatabaseConnection,
        operator: Operator,
        definition: String,
        dead_letters: DeadLetters,
    ) -> Self {
        Self {
            db,
            operator,
            definition,
            dead_letters,
        }
    }

    /// The whole saga (steps and history) as the API shows it.
    async fn saga(&self, order_id: Uuid) -> Result<Saga, ApiError> {
        let saga = sagas::find(&self.db, order_id)
            .await?
            .ok_or_else(|| ApiError::not_found("saga for order", order_id.to_string()))?;
        let mut message = saga_message(&self.definition, saga.header);
        message.steps = saga.steps.into_iter().map(step_message).collect();
        message.history = saga.history.into_iter().map(history_message).collect();
        Ok(message)
    }
}

impl From<OperatorError> for ApiError {
    fn from(error: OperatorError) -> Self {
        match error {
            OperatorError::UnknownSaga(order_id) => {
                ApiError::not_found("saga for order", order_id.to_string())
            }
            OperatorError::NotParked { .. }
            | OperatorError::StepNotOpen { .. }
            | OperatorError::CannotUndo { .. } => ApiError::FailedPrecondition(error.to_string()),
            OperatorError::UnknownStep { .. } => ApiError::invalid("step", error.to_string()),
            OperatorError::Database(error) => error.into(),
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl SagaService for SagaApi {
    async fn get_saga(&self, request: Request<GetSagaRequest>) -> Reply<GetSagaResponse> {
        let order_id = validate::uuid("order_id", &request.get_ref().order_id)?;
        Ok(Response::new(GetSagaResponse {
            saga: Some(self.saga(order_id).await?),
        }))
    }

    async fn retry_saga(&self, request: Request<RetrySagaRequest>) -> Reply<RetrySagaResponse> {
        let order_id = validate::uuid("order_id", &request.get_ref().order_id)?;
        self.operator
            .retry(order_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(RetrySagaResponse {
            saga: Some(self.saga(order_id).await?),
        }))
    }

    async fn resolve_saga(
        &self,
        request: Request<ResolveSagaRequest>,
    ) -> Reply<ResolveSagaResponse> {
        let request = request.into_inner();
        let order_id = validate::uuid("order_id", &request.order_id)?;
        let step = validate::text("step", &request.step)?;
        let note = validate::text("note", &request.note)?;
        self.operator
            .resolve(order_id, step, note)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ResolveSagaResponse {
            saga: Some(self.saga(order_id).await?),
        }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Reply<ListDeadLettersResponse> {
        let reply = dead_letters::api::list(&self.dead_letters, request.into_inner()).await?;
        Ok(Response::new(reply))
    }

    async fn get_dead_letter(
        &self,
        request: Request<GetDeadLetterRequest>,
    ) -> Reply<GetDeadLetterResponse> {
        let reply = dead_letters::api::get(&self.dead_letters, request.into_inner()).await?;
        Ok(Response::new(reply))
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<RedriveDeadLettersRequest>,
    ) -> Reply<RedriveDeadLettersResponse> {
        let reply = dead_letters::api::redrive(&self.dead_letters, request).await?;
        Ok(Response::new(reply))
    }

    async fn discard_dead_letter(
        &self,
        request: Request<DiscardDeadLetterRequest>,
    ) -> Reply<DiscardDeadLetterResponse> {
        let reply = dead_letters::api::discard(&self.dead_letters, request).await?;
        Ok(Response::new(reply))
    }

    async fn list_sagas(&self, request: Request<ListSagasRequest>) -> Reply<ListSagasResponse> {
        let request = request.into_inner();
        let state = match SagaState::try_from(request.state) {
            Ok(SagaState::Unspecified) => None,
            Ok(state) => Some(state.as_str_name()),
            Err(_) => {
                return Err(
                    ApiError::invalid("state", format!("unknown state {}", request.state)).into(),
                );
            }
        };
        let page = Page::from_request("page", request.page.as_ref())?;
        let after = page.after_uuid("page")?;
        let rows = sagas::list(&self.db, state, after, page.size)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListSagasResponse {
            next_page_token: page.next_uuid_token(rows.iter().map(|row| row.order_id)),
            sagas: rows
                .into_iter()
                .map(|row| saga_message(&self.definition, row))
                .collect(),
        }))
    }
}

fn saga_message(definition: &str, row: sagas::Model) -> Saga {
    Saga {
        definition: definition.to_owned(),
        definition_version: u32::try_from(row.definition_version).unwrap_or(0),
        order_id: row.order_id.to_string(),
        customer_id: row.customer_id,
        total: Some(Money {
            amount_minor: row.total_minor,
            currency: row.currency,
        }),
        state: SagaState::from_str_name(&row.state)
            .unwrap_or(SagaState::Unspecified)
            .into(),
        reason: row.reason,
        steps: Vec::new(),
        history: Vec::new(),
        deadline: Some(to_proto(row.deadline_at)),
        created_at: Some(to_proto(row.created_at)),
        updated_at: Some(to_proto(row.updated_at)),
    }
}

fn step_message(row: steps::Model) -> SagaStep {
    SagaStep {
        name: row.name,
        status: StepStatus::from_str_name(&row.status)
            .unwrap_or(StepStatus::Unspecified)
            .into(),
        detail: row.detail,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        updated_at: Some(to_proto(row.updated_at)),
    }
}

fn history_message(row: history::Model) -> SagaHistoryEntry {
    SagaHistoryEntry {
        event_id: row.event_id,
        event_type: row.event_type,
        note: row.note,
        at: Some(to_proto(row.at)),
    }
}

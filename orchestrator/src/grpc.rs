//! The SagaService API: read-only views of sagas for operators and tests.

use orderly_common::{
    ApiError,
    time::to_proto,
    validate::{self, Page},
};
use orderly_proto::{
    common::v1::Money,
    saga::v1::{
        GetSagaRequest, GetSagaResponse, ListSagasRequest, ListSagasResponse, Saga,
        SagaHistoryEntry, SagaState, SagaStep, StepStatus, saga_service_server::SagaService,
    },
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::store::{history, sagas, steps};

pub struct SagaApi {
    db: DatabaseConnection,
}

impl SagaApi {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl SagaService for SagaApi {
    async fn get_saga(&self, request: Request<GetSagaRequest>) -> Reply<GetSagaResponse> {
        let order_id = validate::uuid("order_id", &request.get_ref().order_id)?;
        let saga = sagas::find(&self.db, order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("saga for order", order_id.to_string()))?;
        let mut message = saga_message(saga.header);
        message.steps = saga.steps.into_iter().map(step_message).collect();
        message.history = saga.history.into_iter().map(history_message).collect();
        Ok(Response::new(GetSagaResponse {
            saga: Some(message),
        }))
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
            sagas: rows.into_iter().map(saga_message).collect(),
        }))
    }
}

fn saga_message(row: sagas::Model) -> Saga {
    Saga {
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

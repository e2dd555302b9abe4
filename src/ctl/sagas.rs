//! `orderly ctl sagas`: list and show sagas, retry or resolve a parked one (SagaService).

use clap::{Subcommand, ValueEnum};
use orderly_proto::{
    common::v1::PageRequest,
    saga::v1::{
        GetSagaRequest, ListSagasRequest, ResolveSagaRequest, RetrySagaRequest, Saga, SagaState,
        StepStatus, saga_service_client::SagaServiceClient,
    },
};
use serde_json::json;

use super::{
    CtlChannel, Output,
    output::{cut, money, money_json, table, time},
    refused,
};

#[derive(Debug, Subcommand)]
pub enum SagasCommand {
    /// Sagas oldest first, optionally in one state
    List {
        #[arg(long, value_enum)]
        state: Option<State>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One saga with its steps and history
    Show { order_id: String },
    /// Send a PARKED saga's failed compensations to be tried again
    Retry { order_id: String },
    /// Declare a PARKED saga's open compensation (or a step it cannot undo) done by hand
    Resolve {
        order_id: String,
        /// The step done by hand, e.g. reserve_inventory
        #[arg(long)]
        step: String,
        /// What was done, for the saga's history
        #[arg(long)]
        note: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum State {
    Running,
    Compensating,
    Confirmed,
    Rejected,
    Parked,
}

impl State {
    fn proto(self) -> SagaState {
        match self {
            Self::Running => SagaState::Running,
            Self::Compensating => SagaState::Compensating,
            Self::Confirmed => SagaState::Confirmed,
            Self::Rejected => SagaState::Rejected,
            Self::Parked => SagaState::Parked,
        }
    }
}

/// Sagas fetched a page at a time.
const PAGE: usize = 100;

pub async fn run(command: SagasCommand, channel: CtlChannel, output: Output) -> anyhow::Result<()> {
    let mut sagas = SagaServiceClient::new(channel);
    match command {
        SagasCommand::List { state, limit } => {
            let listed = list(&mut sagas, state, limit).await?;
            match output {
                Output::Json => println!(
                    "{}",
                    json!(listed.iter().map(saga_json).collect::<Vec<_>>())
                ),
                Output::Table => println!("{}", saga_table(&listed)),
            }
        }
        SagasCommand::Show { order_id } => {
            let request = GetSagaRequest {
                order_id: order_id.clone(),
            };
            let reply = (sagas.get_saga(request).await)
                .map_err(|status| refused(&format!("saga {order_id}"), &status))?;
            print_one(reply.into_inner().saga, output);
        }
        SagasCommand::Retry { order_id } => {
            let request = RetrySagaRequest {
                order_id: order_id.clone(),
            };
            let reply = (sagas.retry_saga(request).await)
                .map_err(|status| refused(&format!("retry of saga {order_id}"), &status))?;
            print_one(reply.into_inner().saga, output);
        }
        SagasCommand::Resolve {
            order_id,
            step,
            note,
        } => {
            let request = ResolveSagaRequest {
                order_id: order_id.clone(),
                step,
                note,
            };
            let reply = (sagas.resolve_saga(request).await)
                .map_err(|status| refused(&format!("resolution of saga {order_id}"), &status))?;
            print_one(reply.into_inner().saga, output);
        }
    }
    Ok(())
}

async fn list(
    sagas: &mut SagaServiceClient<CtlChannel>,
    state: Option<State>,
    limit: usize,
) -> anyhow::Result<Vec<Saga>> {
    let mut listed = Vec::new();
    let mut page_token = String::new();
    while listed.len() < limit {
        let request = ListSagasRequest {
            state: state.map_or(SagaState::Unspecified, State::proto).into(),
            page: Some(PageRequest {
                page_size: u32::try_from(PAGE.min(limit - listed.len())).unwrap_or(1),
                page_token,
            }),
        };
        let page = (sagas.list_sagas(request).await)
            .map_err(|status| refused("saga list", &status))?
            .into_inner();
        listed.extend(page.sagas);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    listed.truncate(limit);
    Ok(listed)
}

fn print_one(saga: Option<Saga>, output: Output) {
    let Some(saga) = saga else { return };
    match output {
        Output::Json => println!("{}", saga_json(&saga)),
        Output::Table => println!("{}", saga_detail(&saga)),
    }
}

fn state_name(saga: &Saga) -> &'static str {
    saga.state().as_str_name()
}

fn step_name(status: StepStatus) -> &'static str {
    status.as_str_name().trim_start_matches("STEP_")
}

fn saga_table(sagas: &[Saga]) -> String {
    let rows: Vec<Vec<String>> = sagas
        .iter()
        .map(|saga| {
            vec![
                saga.order_id.clone(),
                state_name(saga).to_owned(),
                saga.customer_id.clone(),
                money(saga.total.as_ref()),
                format!("{} v{}", saga.definition, saga.definition_version),
                time(saga.updated_at.as_ref()),
                cut(&saga.reason, 60),
            ]
        })
        .collect();
    let header = [
        "ORDER", "STATE", "CUSTOMER", "TOTAL", "SAGA", "UPDATED", "REASON",
    ];
    table(&header, &rows)
}

fn saga_detail(saga: &Saga) -> String {
    let mut out = vec![
        format!("order     {}", saga.order_id),
        format!("state     {}", state_name(saga)),
        format!("customer  {}", saga.customer_id),
        format!("total     {}", money(saga.total.as_ref())),
        format!("saga      {} v{}", saga.definition, saga.definition_version),
        format!("created   {}", time(saga.created_at.as_ref())),
        format!("updated   {}", time(saga.updated_at.as_ref())),
        format!("deadline  {}", time(saga.deadline.as_ref())),
    ];
    if !saga.reason.is_empty() {
        out.push(format!("reason    {}", saga.reason));
    }
    let steps: Vec<Vec<String>> = (saga.steps.iter())
        .map(|step| {
            vec![
                step.name.clone(),
                step_name(step.status()).to_owned(),
                step.attempts.to_string(),
                time(step.updated_at.as_ref()),
                step.detail.clone(),
            ]
        })
        .collect();
    out.push(String::new());
    out.push(table(
        &["STEP", "STATUS", "ATTEMPTS", "UPDATED", "DETAIL"],
        &steps,
    ));
    let history: Vec<Vec<String>> = (saga.history.iter())
        .map(|entry| {
            vec![
                time(entry.at.as_ref()),
                entry.event_type.clone(),
                entry.note.clone(),
            ]
        })
        .collect();
    out.push(String::new());
    out.push(table(&["AT", "EVENT", "NOTE"], &history));
    out.join("\n")
}

fn saga_json(saga: &Saga) -> serde_json::Value {
    json!({
        "order_id": saga.order_id,
        "state": state_name(saga),
        "customer_id": saga.customer_id,
        "total": money_json(saga.total.as_ref()),
        "reason": saga.reason,
        "definition": saga.definition,
        "definition_version": saga.definition_version,
        "created_at": time(saga.created_at.as_ref()),
        "updated_at": time(saga.updated_at.as_ref()),
        "deadline": time(saga.deadline.as_ref()),
        "steps": saga.steps.iter().map(|step| json!({
            "name": step.name,
            "status": step_name(step.status()),
            "attempts": step.attempts,
            "detail": step.detail,
            "updated_at": time(step.updated_at.as_ref()),
        })).collect::<Vec<_>>(),
        "history": saga.history.iter().map(|entry| json!({
            "event_id": entry.event_id,
            "event_type": entry.event_type,
            "note": entry.note,
            "at": time(entry.at.as_ref()),
        })).collect::<Vec<_>>(),
    })
}

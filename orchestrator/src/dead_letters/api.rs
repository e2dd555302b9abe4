//! The dead-letter RPCs of SagaService: requests checked, the caller named, rows mapped to
//! messages.

use orderly_common::{ApiError, auth::Caller, time::to_proto, validate};
use orderly_proto::saga::v1::{
    DeadLetter, DeadLetterAction, DeadLetterState, DiscardDeadLetterRequest,
    DiscardDeadLetterResponse, GetDeadLetterRequest, GetDeadLetterResponse, ListDeadLettersRequest,
    ListDeadLettersResponse, RedriveDeadLettersRequest, RedriveDeadLettersResponse,
};
use tonic::Request;

use super::{
    actions::{DeadLetters, Filter, MOST_AT_ONCE},
    table::{State, letters},
};

/// Listed when the request names no limit.
const DEFAULT_LIMIT: u64 = 100;

pub async fn list(
    dead_letters: &DeadLetters,
    request: ListDeadLettersRequest,
) -> Result<ListDeadLettersResponse, ApiError> {
    let state = match request.state() {
        DeadLetterState::Unspecified => None,
        state => Some(from_proto(state)),
    };
    let filter = Filter {
        state,
        topic: non_empty(request.topic),
        consumer: non_empty(request.consumer),
    };
    let limit = match u64::from(request.limit) {
        0 => DEFAULT_LIMIT,
        limit if limit > MOST_AT_ONCE => {
            return Err(ApiError::invalid(
                "limit",
                format!("at most {MOST_AT_ONCE}"),
            ));
        }
        limit => limit,
    };
    let listed = dead_letters.list(&filter, limit).await?;
    Ok(ListDeadLettersResponse {
        dead_letters: listed.into_iter().map(message).collect(),
    })
}

pub async fn get(
    dead_letters: &DeadLetters,
    request: GetDeadLetterRequest,
) -> Result<GetDeadLetterResponse, ApiError> {
    let id = validate::uuid("id", &request.id)?;
    let detail = dead_letters.get(id).await?;
    let (envelope, event) = match detail.event {
        Some(Ok(opened)) => {
            let event = opened
                .payload
                .as_ref()
                .map(|payload| format!("{payload:?}"))
                .unwrap_or_default();
            (Some(opened.envelope), event)
        }
        Some(Err(error)) => (None, format!("does not open as an event: {error}")),
        None => (None, String::new()),
    };
    let payload = detail.letter.payload.clone();
    Ok(GetDeadLetterResponse {
        dead_letter: Some(message(detail.letter)),
        payload,
        envelope,
        event,
        actions: (detail.actions.into_iter())
            .map(|action| DeadLetterAction {
                action: action.action,
                actor: action.actor,
                at: Some(to_proto(action.at)),
                note: action.note,
            })
            .collect(),
    })
}

pub async fn redrive(
    dead_letters: &DeadLetters,
    request: Request<RedriveDeadLettersRequest>,
) -> Result<RedriveDeadLettersResponse, ApiError> {
    let actor = actor(&request);
    let request = request.into_inner();
    let note = validate::text("note", &request.note)?;
    let redriven = if request.ids.is_empty() {
        let filter = Filter {
            state: None,
            topic: non_empty(request.topic),
            consumer: non_empty(request.consumer),
        };
        if filter.topic.is_none() && filter.consumer.is_none() {
            return Err(ApiError::invalid(
                "ids",
                "name the dead letters, or a topic or a consumer whose parked ones to redrive",
            ));
        }
        dead_letters.redrive_parked(filter, &actor, note).await?
    } else {
        let ids = (request.ids.iter().enumerate())
            .map(|(index, id)| validate::uuid(&format!("ids[{index}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        dead_letters.redrive_ids(&ids, &actor, note).await?
    };
    Ok(RedriveDeadLettersResponse {
        redriven: redriven.into_iter().map(message).collect(),
    })
}

pub async fn discard(
    dead_letters: &DeadLetters,
    request: Request<DiscardDeadLetterRequest>,
) -> Result<DiscardDeadLetterResponse, ApiError> {
    let actor = actor(&request);
    let request = request.into_inner();
    let id = validate::uuid("id", &request.id)?;
    let reason = validate::text("reason", &request.reason)?;
    let letter = dead_letters.discard(id, &actor, reason).await?;
    Ok(DiscardDeadLetterResponse {
        dead_letter: Some(message(letter)),
    })
}

/// Who acts, as the auth layer authenticated them.
fn actor<T>(request: &Request<T>) -> String {
    Caller::of(request).map_or_else(
        || "anonymous".to_owned(),
        |caller| caller.principal.to_string(),
    )
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn from_proto(state: DeadLetterState) -> State {
    match state {
        DeadLetterState::Redriven => State::Redriven,
        DeadLetterState::Discarded => State::Discarded,
        DeadLetterState::Parked | DeadLetterState::Unspecified => State::Parked,
    }
}

fn message(letter: letters::Model) -> DeadLetter {
    let state = match State::parse(&letter.state) {
        Some(State::Parked) => DeadLetterState::Parked,
        Some(State::Redriven) => DeadLetterState::Redriven,
        Some(State::Discarded) => DeadLetterState::Discarded,
        None => DeadLetterState::Unspecified,
    };
    DeadLetter {
        id: letter.id.to_string(),
        topic: letter.topic,
        partition: letter.partition,
        offset: letter.offset,
        consumer: letter.consumer,
        error: letter.error,
        event_id: letter.event_id,
        event_type: letter.event_type,
        key: letter.key,
        dead_lettered_at: Some(to_proto(letter.dead_lettered_at)),
        state: state.into(),
    }
}

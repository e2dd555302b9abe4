//! `orderly ctl dlq`: list and show dead letters, redrive them to their origin for the consumer
//! that refused them, or discard them (SagaService; each action recorded with who and why).

use clap::{Subcommand, ValueEnum};
use orderly_proto::saga::v1::{
    DeadLetter, DeadLetterState, DiscardDeadLetterRequest, GetDeadLetterRequest,
    GetDeadLetterResponse, ListDeadLettersRequest, RedriveDeadLettersRequest,
    saga_service_client::SagaServiceClient,
};
use serde_json::json;

use super::{
    CtlChannel, Output,
    output::{cut, table, time},
    refused,
};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Dead letters newest first: origin, consumer, error, age
    List {
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Only those from this topic (e.g. orderly.sagas.v1)
        #[arg(long)]
        topic: Option<String>,
        /// Only those this consumer group refused
        #[arg(long)]
        consumer: Option<String>,
        /// At most this many (up to 1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One dead letter: its message decoded when it is an event, its bytes, and its actions
    Show { id: String },
    /// Publish dead letters again to their origin, for the consumer that refused them: the ones
    /// named, or every parked one of --topic and/or --consumer
    Redrive {
        ids: Vec<String>,
        #[arg(long, conflicts_with = "ids")]
        topic: Option<String>,
        #[arg(long, conflicts_with = "ids")]
        consumer: Option<String>,
        /// Why, for the record
        #[arg(long)]
        note: String,
    },
    /// Set a dead letter aside for good
    Discard {
        id: String,
        /// Why, for the record
        #[arg(long)]
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum State {
    Parked,
    Redriven,
    Discarded,
}

impl State {
    fn proto(self) -> DeadLetterState {
        match self {
            Self::Parked => DeadLetterState::Parked,
            Self::Redriven => DeadLetterState::Redriven,
            Self::Discarded => DeadLetterState::Discarded,
        }
    }
}

pub async fn run(command: DlqCommand, channel: CtlChannel, output: Output) -> anyhow::Result<()> {
    let mut api = SagaServiceClient::new(channel);
    match command {
        DlqCommand::List {
            state,
            topic,
            consumer,
            limit,
        } => {
            let request = ListDeadLettersRequest {
                state: state
                    .map_or(DeadLetterState::Unspecified, State::proto)
                    .into(),
                topic: topic.unwrap_or_default(),
                consumer: consumer.unwrap_or_default(),
                limit,
            };
            let listed = (api.list_dead_letters(request).await)
                .map_err(|status| refused("dead-letter list", &status))?
                .into_inner()
                .dead_letters;
            print_many(&listed, output);
        }
        DlqCommand::Show { id } => {
            let request = GetDeadLetterRequest { id: id.clone() };
            let reply = (api.get_dead_letter(request).await)
                .map_err(|status| refused(&format!("dead letter {id}"), &status))?
                .into_inner();
            match output {
                Output::Json => println!("{}", detail_json(&reply)),
                Output::Table => println!("{}", detail(&reply)),
            }
        }
        DlqCommand::Redrive {
            ids,
            topic,
            consumer,
            note,
        } => {
            let request = RedriveDeadLettersRequest {
                ids,
                topic: topic.unwrap_or_default(),
                consumer: consumer.unwrap_or_default(),
                note,
            };
            let redriven = (api.redrive_dead_letters(request).await)
                .map_err(|status| refused("redrive", &status))?
                .into_inner()
                .redriven;
            if output == Output::Table {
                eprintln!("{} dead letters redriven", redriven.len());
            }
            print_many(&redriven, output);
        }
        DlqCommand::Discard { id, reason } => {
            let request = DiscardDeadLetterRequest {
                id: id.clone(),
                reason,
            };
            let discarded = (api.discard_dead_letter(request).await)
                .map_err(|status| refused(&format!("discard of dead letter {id}"), &status))?
                .into_inner()
                .dead_letter;
            print_many(discarded.as_slice(), output);
        }
    }
    Ok(())
}

fn print_many(letters: &[DeadLetter], output: Output) {
    match output {
        Output::Json => println!(
            "{}",
            json!(letters.iter().map(letter_json).collect::<Vec<_>>())
        ),
        Output::Table => println!("{}", letters_table(letters)),
    }
}

fn state_name(letter: &DeadLetter) -> &'static str {
    letter
        .state()
        .as_str_name()
        .trim_start_matches("DEAD_LETTER_STATE_")
}

/// How long ago the message was dead-lettered, to the second.
fn age(letter: &DeadLetter) -> String {
    let Some(at) = &letter.dead_lettered_at else {
        return String::new();
    };
    let seconds = (chrono::Utc::now().timestamp() - at.seconds).max(0);
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{}m", s / 3_600, s % 3_600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3_600),
    }
}

fn origin(letter: &DeadLetter) -> String {
    format!("{}/{}@{}", letter.topic, letter.partition, letter.offset)
}

fn letters_table(letters: &[DeadLetter]) -> String {
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|letter| {
            vec![
                letter.id.clone(),
                state_name(letter).to_owned(),
                origin(letter),
                letter.consumer.clone(),
                letter.event_type.clone(),
                age(letter),
                cut(&letter.error, 60),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "ORIGIN", "CONSUMER", "EVENT", "AGE", "ERROR"],
        &rows,
    )
}

fn letter_json(letter: &DeadLetter) -> serde_json::Value {
    json!({
        "id": letter.id,
        "state": state_name(letter),
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "consumer": letter.consumer,
        "error": letter.error,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "key": letter.key,
        "dead_lettered_at": time(letter.dead_lettered_at.as_ref()),
    })
}

fn detail(reply: &GetDeadLetterResponse) -> String {
    let Some(letter) = &reply.dead_letter else {
        return String::new();
    };
    let mut out = vec![
        format!("id        {}", letter.id),
        format!("state     {}", state_name(letter)),
        format!("origin    {}", origin(letter)),
        format!("consumer  {}", letter.consumer),
        format!("error     {}", letter.error),
        format!(
            "dead      {} ({} ago)",
            time(letter.dead_lettered_at.as_ref()),
            age(letter)
        ),
        format!("key       {}", letter.key),
    ];
    match &reply.envelope {
        Some(envelope) => {
            out.push(format!("event id  {}", envelope.event_id));
            out.push(format!("type      {}", envelope.event_type));
            out.push(format!("occurred  {}", time(envelope.occurred_at.as_ref())));
            out.push(format!("schema    {}", envelope.schema_version));
            out.push(format!("event     {}", reply.event));
        }
        None if !reply.event.is_empty() => out.push(format!("event     {}", reply.event)),
        None => {}
    }
    out.push(format!("bytes     {}", hex::encode(&reply.payload)));
    let actions: Vec<Vec<String>> = (reply.actions.iter())
        .map(|action| {
            vec![
                time(action.at.as_ref()),
                action.action.clone(),
                action.actor.clone(),
                action.note.clone(),
            ]
        })
        .collect();
    out.push(String::new());
    out.push(table(&["AT", "ACTION", "BY", "WHY"], &actions));
    out.join("\n")
}

fn detail_json(reply: &GetDeadLetterResponse) -> serde_json::Value {
    let mut value = reply.dead_letter.as_ref().map_or(json!({}), letter_json);
    value["payload_hex"] = json!(hex::encode(&reply.payload));
    value["envelope"] = reply.envelope.as_ref().map_or(json!(null), |envelope| {
        json!({
            "event_id": envelope.event_id,
            "event_type": envelope.event_type,
            "order_id": envelope.order_id,
            "occurred_at": time(envelope.occurred_at.as_ref()),
            "schema_version": envelope.schema_version,
        })
    });
    value["event"] = json!(reply.event);
    value["actions"] = json!(
        reply
            .actions
            .iter()
            .map(|action| json!({
                "action": action.action,
                "actor": action.actor,
                "at": time(action.at.as_ref()),
                "note": action.note,
            }))
            .collect::<Vec<_>>()
    );
    value
}

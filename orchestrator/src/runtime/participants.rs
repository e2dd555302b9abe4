//! The participants the orchestrator calls, by the names the saga definition gives them, and
//! the one call it makes: a step's compensation, through the RPC its definition declares.

use std::{collections::HashMap, future::Future};

use orderly_common::grpc::Client;
use orderly_proto::saga::v1::CompensateRequest;
use orderly_saga::{Compensation, Versions};
use tonic::{Status, codegen::http::uri::PathAndQuery};
use tonic_prost::ProstCodec;

/// How the compensator reaches the participants: gRPC here, the simulation's participants in
/// its tests.
pub trait CompensationCalls: Send + Sync {
    /// Whether calls to `participant` are refused for now (its circuit breaker is open).
    fn failing_fast(&self, participant: &str) -> bool;

    /// Calls `compensation` on `participant` for `order_id`; it is idempotent, so it may be
    /// retried.
    fn compensate(
        &self,
        participant: &str,
        compensation: &Compensation,
        order_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), Status>> + Send;
}

/// A client per participant.
#[derive(Clone)]
pub struct Participants {
    clients: HashMap<String, Client>,
}

#[derive(Debug, thiserror::Error)]
#[error("saga {saga} v{version} names participant {participant}, which has no endpoint here")]
pub struct UnknownParticipant {
    pub saga: String,
    pub version: u32,
    pub participant: String,
}

impl Participants {
    /// Checks that every participant of every version has a client: a definition naming one
    /// this process cannot reach stops it at start-up rather than at the first compensation.
    pub fn new(
        clients: impl IntoIterator<Item = (String, Client)>,
        versions: &Versions,
    ) -> Result<Self, UnknownParticipant> {
        let clients: HashMap<String, Client> = clients.into_iter().collect();
        for definition in versions.all() {
            for participant in definition.participants() {
                if !clients.contains_key(participant) {
                    return Err(UnknownParticipant {
                        saga: definition.name().to_owned(),
                        version: definition.version(),
                        participant: participant.to_owned(),
                    });
                }
            }
        }
        Ok(Self { clients })
    }

    /// The client of `participant` (every participant has one: checked in [`Self::new`]).
    fn client(&self, participant: &str) -> Option<&Client> {
        self.clients.get(participant)
    }
}

impl CompensationCalls for Participants {
    fn failing_fast(&self, participant: &str) -> bool {
        self.client(participant)
            .is_some_and(|client| client.failing_fast())
    }

    /// The client retries the call itself (it is idempotent).
    async fn compensate(
        &self,
        participant: &str,
        compensation: &Compensation,
        order_id: &str,
        reason: &str,
    ) -> Result<(), Status> {
        let client = self
            .client(participant)
            .ok_or_else(|| Status::internal(format!("no client for participant {participant}")))?;
        let path = PathAndQuery::try_from(compensation.method.as_str()).map_err(|error| {
            Status::internal(format!(
                "bad compensation path {}: {error}",
                compensation.method
            ))
        })?;
        client
            .idempotent(compensation.rpc_name(), |channel| {
                let request = CompensateRequest {
                    order_id: order_id.to_owned(),
                    reason: reason.to_owned(),
                };
                let path = path.clone();
                async move {
                    let mut grpc = tonic::client::Grpc::new(channel);
                    grpc.ready().await.map_err(|error| {
                        Status::unavailable(format!("{participant} is not ready: {error}"))
                    })?;
                    // The reply is not read: success is enough.
                    let codec = ProstCodec::<CompensateRequest, ()>::default();
                    grpc.unary(tonic::Request::new(request), path, codec)
                        .await
                        .map(drop)
                }
            })
            .await
    }
}

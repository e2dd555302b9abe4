//! Events are not a way in (issue 14). With the components signing their events
//! (`--event-keys`, on whenever TLS is, as in `orderly dev --secure`), an OrderPlaced made by hand
//! and produced straight to the broker (three mugs for a cent, for an order the order service
//! never took) is refused by every consumer of its topic and dead-lettered saying why, and so is
//! one signed with a key the components do not hold. Nothing is reserved, charged or opened for
//! it, and the next real order confirms.

use std::collections::BTreeMap;

use orderly_common::{
    kafka::{
        envelope::{self, Payload},
        signing::{self, EventKeys, SIGNATURE},
        topics,
    },
    messaging::dead_letter::headers as dlq,
};
use orderly_proto::{
    events::v1::{OrderLine, OrderPlaced, order_event},
    saga::v1::{GetSagaRequest, saga_service_client::SagaServiceClient},
};
use prost::Message;
use rdkafka::message::{Header, OwnedHeaders};
use tonic::Code;
use uuid::Uuid;

use crate::support::{
    Options, System, channel,
    orders::{one_more_confirms, seed, usd},
    topic,
};

/// Three mugs (12.99 each) for one cent, by alice, for an order nobody placed.
fn forged_order(order_id: Uuid) -> Vec<u8> {
    let placed = OrderPlaced {
        customer_id: "alice".into(),
        lines: vec![OrderLine {
            sku: "mug".into(),
            quantity: 3,
            unit_price: usd(0),
        }],
        total: usd(1),
    };
    let payload = Payload::Order(order_event::Event::OrderPlaced(placed));
    envelope::wrap(order_id, payload).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_order_placed_is_dead_lettered_by_every_consumer_and_changes_nothing() {
    let system = System::start(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;

    let (unsigned, resigned) = (Uuid::now_v7(), Uuid::now_v7());
    let value = forged_order(resigned);
    let keyfile = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keyfile.path(), signing::new_key()).unwrap();
    let signature = EventKeys::load(keyfile.path()).unwrap().sign(&value);
    let signed = OwnedHeaders::new().insert(Header {
        key: SIGNATURE,
        value: Some(signature.as_str()),
    });
    let records = vec![
        (
            b"forged".to_vec(),
            forged_order(unsigned),
            OwnedHeaders::new(),
        ),
        (b"forged".to_vec(), value, signed),
    ];
    topic::produce(&system.kafka, topics::ORDERS, records).await;
    one_more_confirms(&system, &initial).await;

    // Each consumer of the topic refused both, saying why.
    let letters = topic::read_all(&system.kafka, &topics::dead_letter(topics::ORDERS)).await;
    let mut refused: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for letter in &letters {
        let headers: BTreeMap<String, String> = topic::headers(letter).into_iter().collect();
        let error = headers.get(dlq::ERROR).cloned().unwrap_or_default();
        let why = ["not signed", "forged or altered"]
            .into_iter()
            .find(|says| error.contains(says))
            .unwrap_or_else(|| panic!("an error saying what is wrong: {error:?}"));
        let consumer = headers.get(dlq::CONSUMER).cloned().unwrap_or_default();
        *refused.entry((consumer, why)).or_default() += 1;
    }
    let expected: BTreeMap<(String, &str), usize> = ["inventory", "orchestrator"]
        .into_iter()
        .flat_map(|consumer| {
            ["not signed", "forged or altered"].map(|why| ((consumer.to_owned(), why), 1))
        })
        .collect();
    assert_eq!(refused, expected);

    // No saga was opened for either (stock and money were checked by the invariants above).
    let mut sagas = SagaServiceClient::new(channel(system.addr("orchestrator")));
    for forged in [unsigned, resigned] {
        let request = GetSagaRequest {
            order_id: forged.to_string(),
        };
        let unknown = sagas.get_saga(request).await.unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    }
}

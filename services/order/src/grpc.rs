//! The OrderService API: validates requests, calls the store, maps rows to messages.

use std::pin::Pin;

use futures::Stream;
use orderly_common::{
    ApiError,
    auth::{Caller, scope_to_caller},
    time::to_proto,
    validate::{self, Page},
};
use orderly_proto::{
    common::v1::Money,
    order::v1::{
        GetOrderRequest, GetOrderResponse, ListOrdersRequest, ListOrdersResponse, Order, OrderLine,
        OrderStatus as ProtoStatus, PlaceOrderRequest, PlaceOrderResponse,
        WatchCustomerOrdersRequest, WatchOrderRequest, WatchOrderResponse,
        order_service_server::OrderService,
    },
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    domain::OrderStatus,
    place::Placer,
    store::orders,
    watch::{
        Watchers,
        customer::{self, CustomerWatch},
        stream::{self, Watch},
    },
};

pub struct OrderApi {
    db: DatabaseConnection,
    placer: Placer,
    watchers: Watchers,
}

impl OrderApi {
    pub fn new(placer: Placer, watchers: Watchers) -> Self {
        Self {
            db: placer.db.clone(),
            placer,
            watchers,
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;
type Updates = Pin<Box<dyn Stream<Item = Result<WatchOrderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn place_order(&self, request: Request<PlaceOrderRequest>) -> Reply<PlaceOrderResponse> {
        Caller::check_acts_for(&request, &request.get_ref().customer_id)?;
        let order = self.placer.place(request.into_inner()).await?;
        // Committed: the customer's WatchCustomerOrders streams read it.
        (self.watchers.hub).notify(customer::customer_key(&order.header.customer_id));
        Ok(Response::new(PlaceOrderResponse {
            order: Some(order_message(order)),
        }))
    }

    async fn get_order(&self, request: Request<GetOrderRequest>) -> Reply<GetOrderResponse> {
        let order_id = validate::uuid("order_id", &request.get_ref().order_id)?;
        let order = orders::find(&self.db, order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("order", order_id.to_string()))?;
        Caller::check_acts_for(&request, &order.header.customer_id)?;
        Ok(Response::new(GetOrderResponse {
            order: Some(order_message(order)),
        }))
    }

    async fn list_orders(&self, request: Request<ListOrdersRequest>) -> Reply<ListOrdersResponse> {
        let asked = validate::optional_identifier("customer_id", &request.get_ref().customer_id)?;
        let customer_id = scope_to_caller(&request, asked)?;
        let request = request.into_inner();
        let status = match ProtoStatus::try_from(request.status) {
            Ok(status) => OrderStatus::from_proto(status),
            Err(_) => {
                return Err(ApiError::invalid(
                    "status",
                    format!("unknown status {}", request.status),
                )
                .into());
            }
        };
        let page = Page::from_request("page", request.page.as_ref())?;
        let after = page.after_uuid("page")?;
        let rows = orders::list(&self.db, customer_id.as_deref(), status, after, page.size)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListOrdersResponse {
            next_page_token: page.next_uuid_token(rows.iter().map(|row| row.header.id)),
            orders: rows.into_iter().map(order_message).collect(),
        }))
    }

    type WatchOrderStream = Updates;

    async fn watch_order(&self, request: Request<WatchOrderRequest>) -> Reply<Updates> {
        let order_id = validate::uuid("order_id", &request.get_ref().order_id)?;
        tracing::Span::current().record("order_id", tracing::field::display(order_id));
        // Subscribed before the read: a decision committed in between still wakes the stream.
        let subscription = self.watchers.hub.subscribe(order_id);
        // Read here, not in the stream, so an unknown id is a plain NOT_FOUND answer.
        let order = orders::find(&self.db, order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("order", order_id.to_string()))?;
        Caller::check_acts_for(&request, &order.header.customer_id)?;
        let db = self.db.clone();
        let read = move || {
            let db = db.clone();
            async move {
                let order = orders::find(&db, order_id).await.map_err(ApiError::from)?;
                Ok(order.map(order_message))
            }
        };
        let watch = Watch {
            subscription,
            recheck: self.watchers.recheck,
            shutdown: self.watchers.shutdown.clone(),
            read,
        };
        Ok(Response::new(Box::pin(stream::updates(
            order_message(order),
            watch,
        ))))
    }

    type WatchCustomerOrdersStream = Updates;

    async fn watch_customer_orders(
        &self,
        request: Request<WatchCustomerOrdersRequest>,
    ) -> Reply<Updates> {
        let customer_id =
            validate::identifier("customer_id", &request.get_ref().customer_id)?.to_owned();
        Caller::check_acts_for(&request, &customer_id)?;
        // Subscribed before the reads: an order placed or decided in between still wakes it.
        let subscription = (self.watchers.hub).subscribe(customer::customer_key(&customer_id));
        let since = orderly_common::time::now();
        let margin = chrono::Duration::from_std(customer::CLOCK_MARGIN).unwrap_or_default();
        let recent = changed_since(&self.db, &customer_id, since - margin).await?;
        let pending = orders::list(
            &self.db,
            Some(&customer_id),
            Some(OrderStatus::Pending),
            None,
            WATCHED_AT_ONCE,
        )
        .await
        .map_err(ApiError::from)?;
        let pending = pending.into_iter().map(order_message).collect();
        let db = self.db.clone();
        let read = move |since| {
            let (db, customer_id) = (db.clone(), customer_id.clone());
            async move { changed_since(&db, &customer_id, since).await }
        };
        let watch = CustomerWatch {
            subscription,
            recheck: self.watchers.recheck,
            shutdown: self.watchers.shutdown.clone(),
            read,
        };
        Ok(Response::new(Box::pin(customer::updates(
            pending, recent, since, watch,
        ))))
    }
}

/// The most orders a customer watch reads at once.
const WATCHED_AT_ONCE: u64 = 1_000;

async fn changed_since(
    db: &DatabaseConnection,
    customer_id: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Order>, ApiError> {
    let changed = orders::changed_since(db, customer_id, since, WATCHED_AT_ONCE).await?;
    Ok(changed.into_iter().map(order_message).collect())
}

fn order_message(order: orders::Order) -> Order {
    let header = order.header;
    let currency = header.currency;
    let money = |amount_minor: i64| {
        Some(Money {
            amount_minor,
            currency: currency.clone(),
        })
    };
    let status =
        OrderStatus::parse(&header.status).map_or(ProtoStatus::Unspecified, OrderStatus::to_proto);
    Order {
        order_id: header.id.to_string(),
        customer_id: header.customer_id,
        items: order
            .lines
            .into_iter()
            .map(|line| OrderLine {
                sku: line.sku,
                quantity: u32::try_from(line.quantity).unwrap_or(u32::MAX),
                unit_price: money(line.unit_price_minor),
                line_total: money(line.unit_price_minor.saturating_mul(line.quantity)),
            })
            .collect(),
        total: money(header.total_minor),
        status: status.into(),
        reason: header.reason,
        created_at: Some(to_proto(header.created_at)),
        updated_at: Some(to_proto(header.updated_at)),
        idempotency_key: header
            .idempotency_key
            .as_deref()
            .map(orders::client_key)
            .unwrap_or_default()
            .to_owned(),
    }
}

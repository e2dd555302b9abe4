//! The InventoryService API: validates requests, calls the store, maps rows to messages.

use std::time::Duration;

use orderly_common::{
    ApiError,
    grpc::RollbackCheck,
    idempotency::{self, Keyed},
    messaging::Relay,
    time::to_proto,
    validate::{self, Page},
};
use orderly_proto::{
    common::v1::Money,
    inventory::v1::{
        BatchGetProductsRequest, BatchGetProductsResponse, GetProductRequest, GetProductResponse,
        ListProductsRequest, ListProductsResponse, ListReservationsRequest,
        ListReservationsResponse, Product, ReleaseReservationRequest, ReleaseReservationResponse,
        Reservation, ReservationItem, ReservationStatus as ProtoStatus, RestockRequest,
        RestockResponse, UpsertProductRequest, UpsertProductResponse,
        inventory_service_server::InventoryService,
    },
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    catalogue,
    domain::ReservationStatus,
    store::{
        products::{self, RestockRefused},
        reservations,
    },
};

/// The most skus one BatchGetProducts may ask for: an order's most items.
pub const MAX_BATCH_SKUS: usize = 100;

pub struct InventoryApi {
    db: DatabaseConnection,
    /// Publishes the catalogue's events.
    relay: Relay,
    rollback: RollbackCheck,
    /// How long Restock's idempotency keys are kept.
    keys_ttl: Duration,
}

impl InventoryApi {
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
impl InventoryService for InventoryApi {
    async fn upsert_product(
        &self,
        request: Request<UpsertProductRequest>,
    ) -> Reply<UpsertProductResponse> {
        let request = request.into_inner();
        let sku = validate::identifier("sku", &request.sku)?;
        let name = validate::text("name", &request.name)?;
        let (price, currency) =
            validate::positive_money("unit_price", request.unit_price.as_ref())?;
        let product = catalogue::upsert(&self.db, &self.relay, sku, name, price, currency)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(sku, price, currency, "product upserted");
        Ok(Response::new(UpsertProductResponse {
            product: Some(product_message(product)),
        }))
    }

    async fn restock(&self, request: Request<RestockRequest>) -> Reply<RestockResponse> {
        let mut request = request.into_inner();
        let key = std::mem::take(&mut request.idempotency_key);
        let sku = validate::identifier("sku", &request.sku)?.to_owned();
        let quantity = validate::positive_quantity("quantity", request.quantity)?;
        let keyed = Keyed::new("Restock", &sku, &key, &request, self.keys_ttl)?;
        let response = idempotency::once(&self.db, keyed, |txn| {
            Box::pin(async move {
                let product = products::restock(txn, &sku, quantity)
                    .await?
                    .map_err(|refused| match refused {
                        RestockRefused::UnknownProduct => ApiError::not_found("product", &sku),
                        RestockRefused::WouldOverflow => ApiError::invalid(
                            "quantity",
                            format!("{sku} would hold more than {} units", u32::MAX),
                        ),
                    })?;
                tracing::info!(
                    sku,
                    quantity,
                    available = product.available,
                    "product restocked"
                );
                Ok(RestockResponse {
                    product: Some(product_message(product)),
                })
            })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn get_product(&self, request: Request<GetProductRequest>) -> Reply<GetProductResponse> {
        let sku = validate::identifier("sku", &request.get_ref().sku)?;
        let product = products::find(&self.db, sku)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("product", sku))?;
        Ok(Response::new(GetProductResponse {
            product: Some(product_message(product)),
        }))
    }

    async fn batch_get_products(
        &self,
        request: Request<BatchGetProductsRequest>,
    ) -> Reply<BatchGetProductsResponse> {
        let request = request.get_ref();
        if request.skus.len() > MAX_BATCH_SKUS {
            return Err(ApiError::invalid(
                "skus",
                format!(
                    "at most {MAX_BATCH_SKUS} per call, got {}",
                    request.skus.len()
                ),
            )
            .into());
        }
        let mut skus = Vec::with_capacity(request.skus.len());
        for (index, sku) in request.skus.iter().enumerate() {
            skus.push(validate::identifier(&format!("skus[{index}]"), sku)?);
        }
        skus.sort_unstable();
        skus.dedup();
        let rows = products::find_many(&self.db, &skus)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(BatchGetProductsResponse {
            products: rows.into_iter().map(product_message).collect(),
        }))
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Reply<ListProductsResponse> {
        let page = Page::from_request("page", request.get_ref().page.as_ref())?;
        let rows = products::list(&self.db, page.after.as_deref(), page.size)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = page.next_token(rows.iter().map(|row| row.sku.as_str()));
        Ok(Response::new(ListProductsResponse {
            products: rows.into_iter().map(product_message).collect(),
            next_page_token,
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<ReleaseReservationRequest>,
    ) -> Reply<ReleaseReservationResponse> {
        let request = request.into_inner();
        let order_id = validate::uuid("order_id", &request.order_id)?;
        let reason = validate::optional_text("reason", &request.reason)?;
        let not_found = || ApiError::not_found("reservation for order", order_id.to_string());
        let current = reservations::find(&self.db, order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        if current.header.status == ReservationStatus::Committed.as_str() {
            return Err(ApiError::FailedPrecondition(format!(
                "reservation for order {order_id} is committed (the order was confirmed) and cannot be released"
            ))
            .into());
        }
        if current.header.status == ReservationStatus::Reserved.as_str() {
            self.rollback
                .allows(order_id, "release its reservation")
                .await?;
        }
        // Only a held reservation is released: one committed since (impossible once its saga
        // rolls back) or released since is answered as it is.
        let reservation = reservations::release(&self.db, order_id, reason)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        tracing::info!(order_id = %order_id, reason, "reservation released");
        Ok(Response::new(ReleaseReservationResponse {
            reservation: Some(reservation_message(reservation)),
        }))
    }

    async fn list_reservations(
        &self,
        request: Request<ListReservationsRequest>,
    ) -> Reply<ListReservationsResponse> {
        let request = request.into_inner();
        let order_id = validate::optional_uuid("order_id", &request.order_id)?;
        let status = match ProtoStatus::try_from(request.status) {
            Ok(status) => ReservationStatus::from_proto(status),
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
        let rows = reservations::list(&self.db, order_id, status, after, page.size)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListReservationsResponse {
            next_page_token: page.next_uuid_token(rows.iter().map(|row| row.header.order_id)),
            reservations: rows.into_iter().map(reservation_message).collect(),
        }))
    }
}

fn count(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

fn product_message(row: products::Model) -> Product {
    Product {
        unit_price: Some(Money {
            amount_minor: row.unit_price_minor,
            currency: row.currency,
        }),
        available: count(row.available),
        reserved: count(row.reserved),
        sold: count(row.sold),
        created_at: Some(to_proto(row.created_at)),
        updated_at: Some(to_proto(row.updated_at)),
        sku: row.sku,
        name: row.name,
        version: u64::try_from(row.version).unwrap_or_default(),
    }
}

fn reservation_message(reservation: reservations::Reservation) -> Reservation {
    let header = reservation.header;
    let status = ReservationStatus::parse(&header.status)
        .map_or(ProtoStatus::Unspecified, ReservationStatus::to_proto);
    Reservation {
        order_id: header.order_id.to_string(),
        status: status.into(),
        items: reservation
            .items
            .into_iter()
            .map(|item| ReservationItem {
                sku: item.sku,
                quantity: count(item.quantity),
            })
            .collect(),
        reason: header.reason,
        created_at: Some(to_proto(header.created_at)),
        updated_at: Some(to_proto(header.updated_at)),
    }
}

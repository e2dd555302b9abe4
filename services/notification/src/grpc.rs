//! The NotificationService API.

use orderly_common::{
    ApiError,
    auth::scope_to_caller,
    time::to_proto,
    validate::{self, Page},
};
use orderly_proto::notification::v1::{
    ListNotificationsRequest, ListNotificationsResponse, Notification, NotificationKind,
    notification_service_server::NotificationService,
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::store::notifications;

pub struct NotificationApi {
    db: DatabaseConnection,
}

impl NotificationApi {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn list_notifications(
        &self,
        request: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        let asked = validate::optional_identifier("customer_id", &request.get_ref().customer_id)?;
        let customer_id = scope_to_caller(&request, asked)?;
        let request = request.into_inner();
        let order_id = validate::optional_uuid("order_id", &request.order_id)?;
        let page = Page::from_request("page", request.page.as_ref())?;
        let after = page.after_uuid("page")?;
        let rows =
            notifications::list(&self.db, order_id, customer_id.as_deref(), after, page.size)
                .await
                .map_err(ApiError::from)?;
        Ok(Response::new(ListNotificationsResponse {
            next_page_token: page.next_uuid_token(rows.iter().map(|row| row.id)),
            notifications: rows.into_iter().map(notification_message).collect(),
        }))
    }
}

fn notification_message(row: notifications::Model) -> Notification {
    let kind = NotificationKind::from_str_name(&row.kind).unwrap_or(NotificationKind::Unspecified);
    Notification {
        notification_id: row.id.to_string(),
        order_id: row.order_id.to_string(),
        customer_id: row.customer_id,
        kind: kind.into(),
        channel: row.channel,
        message: row.message,
        sent_at: Some(to_proto(row.sent_at)),
    }
}

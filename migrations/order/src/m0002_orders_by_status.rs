//! An index on order status: PlaceOrder's admission counts the PENDING orders every second
//! under load, and ListOrders filters by status.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::Orders;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("orders_by_status")
                    .table(Orders::Table)
                    .col(Orders::Status)
                    .col(Orders::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("orders_by_status")
                    .table(Orders::Table)
                    .to_owned(),
            )
            .await
    }
}

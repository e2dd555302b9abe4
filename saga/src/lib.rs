//! Sagas declared as data. A [`Definition`] lists a saga's steps in forward order: who runs
//! each one (its participant), the event that starts it (choreography: each participant reacts
//! to the previous step's event, and the definition is where that chain is written down), the
//! events that say it succeeded or failed, and how it is undone (a participant's idempotent
//! compensation RPC) or that it is the pivot, after which nothing is undone. The orchestrator's
//! core is generic over a definition; the services and the simulation read the same one.
//!
//! ```
//! use orderly_saga::Definition;
//!
//! let saga = Definition::named("order", 1)
//!     .trigger_topic("orderly.orders.v1")
//!     .step("reserve_inventory")
//!     .by("inventory")
//!     .reports_to("orderly.inventory.v1")
//!     .starts_on("OrderPlaced")
//!     .succeeds_on("InventoryReserved")
//!     .fails_on("InventoryRejected")
//!     .compensated_by("/orderly.inventory.v1.InventoryService/ReleaseReservation")
//!     .step("authorize_payment")
//!     .by("payment")
//!     .reports_to("orderly.payments.v1")
//!     .starts_on("InventoryReserved")
//!     .succeeds_on("PaymentAuthorized")
//!     .fails_on("PaymentDeclined")
//!     .compensated_by("/orderly.payment.v1.PaymentService/RefundPayment")
//!     .build()?;
//! assert_eq!(saga.steps().len(), 2);
//! # Ok::<(), orderly_saga::DefinitionError>(())
//! ```

mod builder;
mod definition;
pub mod file;
pub mod order;
mod validate;
mod versions;

pub use builder::Builder;
pub use definition::{Compensation, Definition, Outcome, RetryPolicy, StepDefinition, StepIndex};
pub use validate::{DefinitionError, Rule};
pub use versions::{Versions, VersionsError};

//! Every Orderly API and event, generated from the .proto files under `proto/`, and the rest of
//! the event contract: the topics events travel on and what every payload says in common.
//!
//! Services depend on this crate and never copy .proto files.

mod payload;

pub use payload::Payload;
pub mod topics;

/// The encoded `FileDescriptorSet` of every Orderly proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/orderly_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("orderly.common.v1");
    }
}

pub mod order {
    pub mod v1 {
        tonic::include_proto!("orderly.order.v1");
    }
}

pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("orderly.inventory.v1");
    }
}

pub mod payment {
    pub mod v1 {
        tonic::include_proto!("orderly.payment.v1");
    }
}

pub mod notification {
    pub mod v1 {
        tonic::include_proto!("orderly.notification.v1");
    }
}

pub mod saga {
    pub mod v1 {
        tonic::include_proto!("orderly.saga.v1");
    }
}

pub mod query {
    pub mod v1 {
        tonic::include_proto!("orderly.query.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("orderly.events.v1");
    }
}

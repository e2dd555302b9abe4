//! The gRPC server every component runs: its API plus health and reflection, behind one stack.

mod server;

pub use server::{GrpcServer, bind};

//! The one mapping from failures to gRPC status codes, with messages a client can act on.

use sea_orm::DbErr;
use thiserror::Error;
use tonic::{Code, Status};

/// What went wrong with an API call, in terms the caller can act on.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the offending field.
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },

    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },

    #[error("{0}")]
    AlreadyExists(String),

    /// The request is well formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),

    #[error("database unavailable, retry later")]
    Unavailable(#[source] DbErr),

    /// A service this call depends on did not answer; retry later.
    #[error("{0}, retry later")]
    Dependency(String),

    /// Refused at the door: the system would not finish this work in time. Clients retry after
    /// `retry_after` (sent as `grpc-retry-pushback-ms`).
    #[error("{reason}, retry in {} ms", retry_after.as_millis())]
    Overloaded {
        reason: String,
        retry_after: std::time::Duration,
    },

    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            id: id.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Unavailable(_) | Self::Dependency(_) => Code::Unavailable,
            Self::Overloaded { .. } => Code::ResourceExhausted,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        if crate::db::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(Box::new(error))
        }
    }
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match &error {
            // Internal details stay in the log, not in the client's message.
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable")
            }
            ApiError::Internal(source) => tracing::error!(error = %source, "internal error"),
            _ => {}
        }
        let mut status = Status::new(error.code(), error.to_string());
        if let ApiError::Overloaded { retry_after, .. } = &error {
            // gRPC's retry pushback: the client's retry policy waits this long.
            let millis = retry_after.as_millis().to_string();
            if let Ok(value) = millis.parse() {
                status.metadata_mut().insert(RETRY_PUSHBACK, value);
            }
        }
        status
    }
}

/// The trailer in which a server tells a client how long to wait before retrying.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_the_field() {
        let status = Status::from(ApiError::invalid(
            "unit_price.currency",
            "must be 3 uppercase letters",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid unit_price.currency: must be 3 uppercase letters"
        );
    }

    #[test]
    fn overload_carries_a_retry_hint() {
        let status = Status::from(ApiError::Overloaded {
            reason: "overloaded".into(),
            retry_after: std::time::Duration::from_millis(750),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "overloaded, retry in 750 ms");
        let hint = status.metadata().get(RETRY_PUSHBACK).unwrap();
        assert_eq!(hint.to_str().unwrap(), "750");
    }

    #[test]
    fn not_found_names_the_id() {
        let status = Status::from(ApiError::not_found("product", "sku-1"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "product sku-1 not found");
    }
}

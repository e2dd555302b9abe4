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
        Status::new(error.code(), error.to_string())
    }
}

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
    fn not_found_names_the_id() {
        let status = Status::from(ApiError::not_found("product", "sku-1"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "product sku-1 not found");
    }
}

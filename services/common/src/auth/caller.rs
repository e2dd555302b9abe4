//! The caller of a request, as the auth layer let it through, and the check every handler that
//! reads a customer makes: a customer's token acts for its own customer only.

use tonic::{GrpcMethod, Request, Status};

use super::Principal;

/// Put in a request's extensions by the auth layer (absent when auth is off).
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    /// Some customer id when only the customer role let the caller in: it acts for that customer
    /// alone. None when a component or another role did: it acts for anyone.
    pub only_for: Option<String>,
}

impl Caller {
    pub fn of<T>(request: &Request<T>) -> Option<&Self> {
        request.extensions().get::<Self>()
    }

    /// Whether the caller may act for `customer_id` (anyone may while auth is off).
    pub fn check_acts_for<T>(request: &Request<T>, customer_id: &str) -> Result<(), Status> {
        let Some(caller) = Self::of(request) else {
            return Ok(());
        };
        match caller.only_for.as_deref() {
            Some(own) if own != customer_id => {
                let status = Status::permission_denied(format!(
                    "a customer token acts for its own customer only: it is {own}'s, not {customer_id}'s"
                ));
                let method = request.extensions().get::<GrpcMethod>().map_or_else(
                    || "unknown".to_owned(),
                    |method| format!("{}/{}", method.service(), method.method()),
                );
                Err(super::refused(&method, Some(&caller.principal), status))
            }
            _ => Ok(()),
        }
    }
}

/// The customer a listing is limited to: the one asked for, or, for a customer's token, its own
/// (asking for another's is refused).
pub fn scope_to_caller<T>(
    request: &Request<T>,
    asked: Option<&str>,
) -> Result<Option<String>, Status> {
    let own = Caller::of(request).and_then(|caller| caller.only_for.clone());
    match (own, asked) {
        (Some(own), None) => Ok(Some(own)),
        (_, Some(asked)) => Caller::check_acts_for(request, asked).map(|()| Some(asked.to_owned())),
        (None, None) => Ok(None),
    }
}

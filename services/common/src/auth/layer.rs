//! One tower layer in front of every server's API: it names the caller (a component's
//! certificate, else a bearer token), finds the RPC's [`Access`] and lets the request through
//! with its [`Caller`], or answers UNAUTHENTICATED or PERMISSION_DENIED saying what is missing,
//! before anything is decoded or written. Refusals are counted and logged with the caller, never
//! with the token.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tonic::{
    Status,
    codegen::http,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service};

use super::{Access, COMPONENTS, Caller, Principal, RateLimits, Reflection, Role, Rules, Verifier};
use crate::tls::identity;

/// Who may call a server's RPCs; lets everything through when auth is off.
#[derive(Clone)]
pub struct AuthLayer {
    gate: Option<Arc<Gate>>,
}

struct Gate {
    verifier: Verifier,
    /// `/orderly.payment.v1.PaymentService/`: the API whose rules these are.
    prefix: String,
    rules: Rules,
    reflection: Reflection,
    limits: Option<RateLimits>,
}

impl AuthLayer {
    /// `rules` for the API called `service` (its fully-qualified name), each caller within
    /// `limits`; no checks without a `verifier` (auth off).
    pub fn new(
        verifier: Option<Verifier>,
        service: &str,
        rules: Rules,
        reflection: Reflection,
        limits: Option<RateLimits>,
    ) -> Self {
        let gate = verifier.map(|verifier| {
            Arc::new(Gate {
                verifier,
                prefix: format!("/{service}/"),
                rules,
                reflection,
                limits,
            })
        });
        Self { gate }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            gate: self.gate.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    gate: Option<Arc<Gate>>,
}

impl<S, B, R> Service<http::Request<B>> for Auth<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(gate) = &self.gate {
            match gate.admit(&request) {
                Ok(Some(caller)) => {
                    request.extensions_mut().insert(caller);
                }
                Ok(None) => {}
                Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
            }
        }
        Box::pin(self.inner.call(request))
    }
}

impl Gate {
    /// The caller to let through (none for health and open reflection), or the refusal.
    fn admit<B>(&self, request: &http::Request<B>) -> Result<Option<Caller>, Status> {
        let path = request.uri().path();
        if path.starts_with("/grpc.health.v1.Health/") {
            return Ok(None);
        }
        let reflection = path.starts_with("/grpc.reflection.");
        if reflection && self.reflection == Reflection::Open {
            return Ok(None);
        }
        let method = path.strip_prefix(self.prefix.as_str());
        let principal = match self.authenticate(request) {
            Ok(principal) => principal,
            Err(why) => return Err(refuse(path, None, Status::unauthenticated(why))),
        };
        if let Some(limits) = &self.limits {
            limits.admit(path.trim_start_matches('/'), &principal)?;
        }
        if reflection {
            return Ok(Some(Caller {
                principal,
                only_for: None,
            }));
        }
        let access = method.and_then(|method| {
            let rule = self.rules.iter().find(|(name, _)| *name == method);
            rule.map(|(_, access)| *access)
        });
        let Some(access) = access else {
            let status = Status::permission_denied(format!("{path} is not an RPC of this server"));
            return Err(refuse(path, Some(&principal), status));
        };
        match admitted(&principal, &access) {
            Some(only_for) => Ok(Some(Caller {
                principal,
                only_for,
            })),
            None => {
                let status = Status::permission_denied(format!(
                    "{principal} may not call {}: it takes {}",
                    method.unwrap_or(path),
                    needs(&access)
                ));
                Err(refuse(path, Some(&principal), status))
            }
        }
    }

    /// A component by its client certificate, else the bearer token's subject.
    fn authenticate<B>(&self, request: &http::Request<B>) -> Result<Principal, String> {
        let certificates = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(TlsConnectInfo::peer_certs);
        let component =
            certificates.and_then(|chain| identity::peer_component(&chain, &COMPONENTS));
        if let Some(component) = component {
            return Ok(Principal::Component(component));
        }
        let header = request.headers().get(http::header::AUTHORIZATION);
        let Some(header) = header else {
            return Err("no credentials: send `authorization: Bearer <token>`".into());
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("the authorization header is not `Bearer <token>`")?;
        self.verifier
            .verify(token.trim())
            .map_err(|error| error.to_string())
    }
}

/// Whether `access` lets `principal` in: `Some(None)` to act for anyone, `Some(Some(id))` for
/// customer `id` alone (only the customer role matched), `None` if not at all.
fn admitted(principal: &Principal, access: &Access) -> Option<Option<String>> {
    match principal {
        Principal::Component(name) => access.components.contains(name).then_some(None),
        Principal::Token { subject, roles } => {
            let matched = |role: &Role| access.roles.contains(role);
            if roles
                .iter()
                .filter(|role| **role != Role::Customer)
                .any(matched)
            {
                Some(None)
            } else if roles.contains(&Role::Customer) && matched(&Role::Customer) {
                Some(Some(subject.clone()))
            } else {
                None
            }
        }
    }
}

/// What `access` takes, for the caller to read.
fn needs(access: &Access) -> String {
    let roles: Vec<&str> = access.roles.iter().map(|role| role.as_str()).collect();
    let components: Vec<&str> = access.components.to_vec();
    match (roles.is_empty(), components.is_empty()) {
        (false, true) => format!("a token with role {}", roles.join(" or ")),
        (true, false) => format!("the certificate of {}", components.join(" or ")),
        _ => format!(
            "a token with role {} or the certificate of {}",
            roles.join(" or "),
            components.join(" or ")
        ),
    }
}

fn refuse(path: &str, principal: Option<&Principal>, status: Status) -> Status {
    super::refused(path.trim_start_matches('/'), principal, status)
}

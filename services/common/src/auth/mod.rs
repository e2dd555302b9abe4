//! Who calls, and whether they may (issue 14). With `--auth-jwks` every RPC but health (and
//! reflection, unless `--reflection` says otherwise) needs a caller: a component, by the
//! certificate it presents over mutual TLS, or a person or program, by a bearer JWT signed by a
//! key of the JWKS (issuer, audience and expiry checked). Each service declares who may call
//! each of its RPCs ([`Access`]), checked in one tower layer before a request is decoded
//! ([`layer`]); a customer's token acts only for the customer it names, checked by the handlers
//! that read a customer ([`Caller`]).

mod caller;
mod jwks;
pub mod layer;
mod limits;
mod tokens;

use std::fmt;

use clap::{Args, ValueEnum};
use metrics::counter;
use tonic::Status;

use crate::metrics::AUTH_REFUSED;

pub use caller::{Caller, scope_to_caller};
pub use layer::AuthLayer;
pub use limits::RateLimits;
pub use tokens::{Claims, TokenError, Verifier};

/// Every component whose certificate can speak for it (the binary's component table checks it
/// lists the same).
pub const COMPONENTS: [&str; 6] = [
    "order",
    "inventory",
    "payment",
    "notification",
    "orchestrator",
    "query",
];

/// What a token may do, by its `roles` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Places and reads their own orders, account and notifications (the token's subject is the
    /// customer id).
    Customer,
    /// Products, prices and stock.
    Catalog,
    /// Accounts and deposits.
    Finance,
    /// Sagas (retry, resolve) and reads of everything.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Catalog => "catalog",
            Self::Finance => "finance",
            Self::Operator => "operator",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        <Self as ValueEnum>::from_str(name, false).ok()
    }
}

/// Who may call one RPC.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// Tokens with any of these roles ([`Role::Customer`]: for their own customer only).
    pub roles: &'static [Role],
    /// Components, by their certificate.
    pub components: &'static [&'static str],
}

impl Access {
    /// Tokens with any of `roles`.
    pub const fn roles(roles: &'static [Role]) -> Self {
        Self {
            roles,
            components: &[],
        }
    }

    /// These components' certificates, and nothing else.
    pub const fn components(components: &'static [&'static str]) -> Self {
        Self {
            roles: &[],
            components,
        }
    }
}

/// Each RPC of a service by method name (`PlaceOrder`), and who may call it.
pub type Rules = &'static [(&'static str, Access)];

/// Every role: reads anyone signed in may make (the catalogue).
pub const EVERY_ROLE: &[Role] = &[Role::Customer, Role::Catalog, Role::Finance, Role::Operator];

/// A caller the server knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A component, by its certificate.
    Component(&'static str),
    /// A token's subject and roles.
    Token { subject: String, roles: Vec<Role> },
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Component(name) => write!(f, "component {name}"),
            Self::Token { subject, roles } => {
                let roles: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
                write!(f, "{subject} ({})", roles.join(", "))
            }
        }
    }
}

/// Whether reflection answers callers without credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Reflection {
    /// Anyone may list and describe the APIs (grpcurl needs no .proto files).
    #[default]
    Open,
    /// Only callers with credentials.
    Authenticated,
}

/// Who may call a component's RPCs.
#[derive(Args, Clone, Debug)]
pub struct AuthArgs {
    /// The public keys that sign callers' tokens: a JWKS file (read again when it changes) or
    /// an identity provider's JWKS URL (https, or http on loopback; fetched again every
    /// --auth-jwks-refresh-secs and when a token names a key it lacks). With it every RPC but
    /// health needs a caller: a token, or a component's certificate over mutual TLS (so TLS
    /// must be on). Without it anyone reaching the port may call anything
    #[arg(
        long,
        env = "ORDERLY_AUTH_JWKS",
        requires = "tls_cert",
        value_name = "FILE|URL"
    )]
    pub auth_jwks: Option<String>,

    /// How often a JWKS URL is fetched again
    #[arg(long, env = "ORDERLY_AUTH_JWKS_REFRESH_SECS", default_value_t = JWKS_REFRESH_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub auth_jwks_refresh_secs: u64,

    /// The issuer (`iss`) tokens must name
    #[arg(long, env = "ORDERLY_AUTH_ISSUER", default_value = "orderly")]
    pub auth_issuer: String,

    /// The audience (`aud`) tokens must name
    #[arg(long, env = "ORDERLY_AUTH_AUDIENCE", default_value = "orderly")]
    pub auth_audience: String,

    /// Clock skew allowed on a token's `exp` and `nbf`, in seconds
    #[arg(long, env = "ORDERLY_AUTH_LEEWAY_SECS", default_value_t = 60)]
    pub auth_leeway_secs: u64,

    /// Whether reflection answers callers without credentials
    #[arg(long, env = "ORDERLY_REFLECTION", value_enum, default_value_t = Reflection::Open)]
    pub reflection: Reflection,

    /// Requests a second each token subject may send (its bucket refills at this rate); past
    /// it, RESOURCE_EXHAUSTED with a retry hint. 0: no limit. Components are never limited
    #[arg(long, env = "ORDERLY_RATE_LIMIT_PER_SEC", default_value_t = RATE_LIMIT_PER_SEC)]
    pub rate_limit_per_sec: u32,

    /// Requests a token subject may send at once, above its rate
    #[arg(long, env = "ORDERLY_RATE_LIMIT_BURST", default_value_t = RATE_LIMIT_BURST)]
    pub rate_limit_burst: u32,
}

/// Providers rotate signing keys rarely and publish the new one ahead of use; a token naming a
/// key not fetched yet makes the set be fetched again at once anyway.
pub const JWKS_REFRESH_SECS: u64 = 300;

/// Generous for a person or a script acting for one; a bulk importer gets its own setting.
pub const RATE_LIMIT_PER_SEC: u32 = 50;
pub const RATE_LIMIT_BURST: u32 = 100;

/// Off: anyone reaching the port may call anything.
impl Default for AuthArgs {
    fn default() -> Self {
        Self {
            auth_jwks: None,
            auth_jwks_refresh_secs: JWKS_REFRESH_SECS,
            auth_issuer: "orderly".to_owned(),
            auth_audience: "orderly".to_owned(),
            auth_leeway_secs: 60,
            reflection: Reflection::Open,
            rate_limit_per_sec: RATE_LIMIT_PER_SEC,
            rate_limit_burst: RATE_LIMIT_BURST,
        }
    }
}

/// Counts and logs a refusal of `method` (`package.Service/Method`) with the caller, never the
/// token, and returns it.
fn refused(method: &str, principal: Option<&Principal>, status: Status) -> Status {
    let code = crate::grpc::code_name(status.code());
    counter!(AUTH_REFUSED, "method" => method.to_owned(), "code" => code).increment(1);
    let caller = principal.map_or_else(|| "unknown".to_owned(), ToString::to_string);
    tracing::warn!(method, caller, code, reason = status.message(), "refused");
    status
}

/// What does not match between `rules` and the RPCs of `service` (fully qualified, e.g.
/// `orderly.payment.v1.PaymentService`) as the protos declare them: RPCs without a rule (which
/// the layer would refuse to everyone) and rules naming no RPC. Each service's tests want none.
pub fn mismatches(rules: Rules, service: &str) -> Vec<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(orderly_proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set is generated at build time");
    let (package, name) = service.rsplit_once('.').expect("a fully-qualified service");
    let rpcs: Vec<String> = (set.file.iter())
        .filter(|file| file.package() == package)
        .flat_map(|file| &file.service)
        .filter(|declared| declared.name() == name)
        .flat_map(|declared| {
            declared
                .method
                .iter()
                .map(|method| method.name().to_owned())
        })
        .collect();
    let ruled: Vec<&str> = rules.iter().map(|(method, _)| *method).collect();
    let unruled = (rpcs.iter())
        .filter(|rpc| !ruled.contains(&rpc.as_str()))
        .map(|rpc| format!("{rpc} has no rule"));
    let unknown = (ruled.iter())
        .filter(|method| !rpcs.iter().any(|rpc| rpc == *method))
        .map(|method| format!("{method} is not an RPC of {service}"));
    unruled.chain(unknown).collect()
}

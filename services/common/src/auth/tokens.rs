//! Bearer tokens: JWTs signed by a key of a JWKS (a file or a URL), found by their `kid`, with
//! the issuer, audience, expiry (and not-before) checked, allowing for clock skew.

use std::{path::Path, time::Duration};

use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use super::{AuthArgs, Principal, Role, jwks::KeySet};

/// A token's claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// Who: a customer id for a customer's token.
    pub sub: String,
    pub roles: Vec<String>,
    pub iat: u64,
    pub exp: u64,
}

/// What a verified token grants (its other claims are checked by the validation).
#[derive(Deserialize)]
struct Granted {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Why a token was refused; the message is the caller's to read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub(super) String);

/// Checks tokens against the keys of a JWKS.
#[derive(Clone)]
pub struct Verifier {
    keys: KeySet,
    issuer: String,
    audience: String,
    leeway: u64,
}

impl Verifier {
    /// The verifier `args` ask for, if any. A JWKS file is read again when it changes, looked
    /// at every `every`; a URL is fetched trusting the system's roots and `ca`.
    pub async fn start(
        args: &AuthArgs,
        ca: Option<&Path>,
        every: Duration,
    ) -> Result<Option<Self>, TokenError> {
        let Some(setting) = &args.auth_jwks else {
            return Ok(None);
        };
        let refresh = Duration::from_secs(args.auth_jwks_refresh_secs);
        let keys = KeySet::start(setting, ca, every, refresh).await?;
        Ok(Some(Self {
            keys,
            issuer: args.auth_issuer.clone(),
            audience: args.auth_audience.clone(),
            leeway: args.auth_leeway_secs,
        }))
    }

    /// The caller a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let refused = |why: &str| TokenError(format!("token refused: {why}"));
        let header = decode_header(token).map_err(|_| refused("not a JWT"))?;
        let kid = header
            .kid
            .ok_or_else(|| refused("its header names no key (kid)"))?;
        let key = {
            let keys = self.keys.read();
            let Some(jwk) = keys.find(&kid) else {
                self.keys.unknown_key();
                return Err(refused(&format!("no key {kid:?} in the key set")));
            };
            DecodingKey::from_jwk(jwk).map_err(|_| refused(&format!("key {kid:?} is unusable")))?
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway;
        let granted = decode::<Granted>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => refused("expired"),
                ErrorKind::ImmatureSignature => refused("not valid yet"),
                ErrorKind::InvalidAudience => {
                    refused(&format!("its audience is not {:?}", self.audience))
                }
                ErrorKind::InvalidIssuer => {
                    refused(&format!("its issuer is not {:?}", self.issuer))
                }
                ErrorKind::InvalidSignature => refused("bad signature"),
                ErrorKind::MissingRequiredClaim(claim) => refused(&format!("no {claim} claim")),
                _ => refused("malformed"),
            })?
            .claims;
        let roles = (granted.roles.iter())
            .map(|name| Role::parse(name).ok_or_else(|| refused(&format!("unknown role {name:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Principal::Token {
            subject: granted.sub,
            roles,
        })
    }
}

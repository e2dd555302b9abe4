//! Throwaway security for `orderly dev --secure`, `orderly token` and the tests: a CA, for each
//! component a certificate carrying its identity (`orderly-<component>`) and the loopback names
//! people's grpcurl dials (localhost, 127.0.0.1, ::1), a key that signs callers' tokens (its
//! public half in `jwks.json`, what the components check tokens against) and the key events are
//! signed with (`event-keys`). All of it stays in its directory, so a restart keeps the CA people
//! were told to trust (`<dir>/ca.pem`) and the tokens they were given. Production certificates
//! and tokens come from a real CA and identity provider, never from here.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use std::time::Duration;

use anyhow::Context;
use chrono::Datelike;
use jsonwebtoken::{
    Algorithm, EncodingKey, Header,
    jwk::{Jwk, JwkSet, ThumbprintHash},
};
use orderly_common::{
    auth::{Claims, Role},
    kafka::signing,
    tls::{TlsFiles, identity},
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig},
};

const CA_NAME: &str = "Orderly development CA";

/// A CA kept in a directory, issuing certificates there.
pub struct Authority {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// The CA kept in `dir`, made there first if there is none.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key_path = dir.join("ca-key.pem");
        let key = if key_path.exists() {
            let pem = fs::read_to_string(&key_path)
                .with_context(|| format!("cannot read {}", key_path.display()))?;
            KeyPair::from_pem(&pem).with_context(|| format!("{}", key_path.display()))?
        } else {
            let key = KeyPair::generate()?;
            let certificate = ca_params().self_signed(&key)?;
            write(&dir.join("ca.pem"), &certificate.pem(), 0o644)?;
            write(&key_path, &key.serialize_pem(), 0o600)?;
            key
        };
        // The issuer is the CA's name and key: certificates it signs chain to ca.pem.
        let issuer = Issuer::new(ca_params(), key);
        Ok(Self {
            dir: dir.to_owned(),
            issuer,
        })
    }

    /// The CA certificate clients trust (`grpcurl -cacert`).
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The key set the components check tokens against (`--auth-jwks`).
    pub fn jwks(&self) -> PathBuf {
        self.dir.join("jwks.json")
    }

    /// The key events are signed with (`--event-keys`), made first if there is none.
    pub fn event_keys(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("event-keys");
        if !path.exists() {
            write(&path, &format!("{}\n", signing::new_key()), 0o600)?;
        }
        Ok(path)
    }

    /// The issuer of callers' tokens kept here, made first if there is none.
    pub fn token_issuer(&self) -> anyhow::Result<TokenIssuer> {
        TokenIssuer::open(&self.dir)
    }

    /// A new certificate and key for `component` (`<component>.pem`, `<component>-key.pem`),
    /// replacing any it had: the files its `--tls-*` settings name.
    pub fn issue(&self, component: &str) -> anyhow::Result<TlsFiles> {
        let names = vec![
            identity::dns_name(component),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, identity::dns_name(component));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        valid_for_years(&mut params, 1);
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        let files = TlsFiles {
            cert: self.dir.join(format!("{component}.pem")),
            key: self.dir.join(format!("{component}-key.pem")),
            ca: self.ca(),
        };
        write(&files.key, &key.serialize_pem(), 0o600)?;
        write(&files.cert, &certificate.pem(), 0o644)?;
        Ok(files)
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    valid_for_years(&mut params, 10);
    params
}

/// Valid from today (UTC) for `years`.
fn valid_for_years(params: &mut CertificateParams, years: i32) {
    let today = chrono::Utc::now().date_naive();
    let month = u8::try_from(today.month()).unwrap_or(1);
    // The 28th exists in every month of every year.
    let day = u8::try_from(today.day().min(28)).unwrap_or(1);
    params.not_before = date_time_ymd(today.year(), month, day);
    params.not_after = date_time_ymd(today.year() + years, month, day);
}

/// Writes `path` whole or not at all (a temporary file renamed over it), readable by `mode`:
/// a component reloading its files never reads half of one.
fn write(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Signs callers' tokens (ES256) with the key kept in a directory.
pub struct TokenIssuer {
    key: EncodingKey,
    kid: String,
}

/// What `orderly dev --secure` components expect (their `--auth-issuer` and `--auth-audience`
/// defaults).
const ISSUER: &str = "orderly";
const AUDIENCE: &str = "orderly";

impl TokenIssuer {
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let key_path = dir.join("token-key.pem");
        if !key_path.exists() {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?;
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)?;
            jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256)?);
            let keys = JwkSet { keys: vec![jwk] };
            write(
                &dir.join("jwks.json"),
                &serde_json::to_string_pretty(&keys)?,
                0o644,
            )?;
            write(&key_path, &pair.serialize_pem(), 0o600)?;
        }
        let pem =
            fs::read(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
        let key =
            EncodingKey::from_ec_pem(&pem).with_context(|| format!("{}", key_path.display()))?;
        let text = fs::read_to_string(dir.join("jwks.json"))?;
        let keys: JwkSet = serde_json::from_str(&text)?;
        let kid = (keys.keys.first())
            .and_then(|jwk| jwk.common.key_id.clone())
            .context("jwks.json names no key")?;
        Ok(Self { key, kid })
    }

    /// A token for `subject` with `roles`, valid for `ttl` from now.
    pub fn token(&self, subject: &str, roles: &[Role], ttl: Duration) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
        self.token_at(subject, roles, now, now + ttl.as_secs(), AUDIENCE)
    }

    /// A token with every claim given: the tests make expired ones and ones for another
    /// audience.
    pub fn token_at(
        &self,
        subject: &str,
        roles: &[Role],
        issued_at: u64,
        expires_at: u64,
        audience: &str,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: audience.to_owned(),
            sub: subject.to_owned(),
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            iat: issued_at,
            exp: expires_at,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &self.key)?)
    }
}

/// `orderly token`: who the token is for and what it may do.
#[derive(clap::Args, Clone, Debug)]
pub struct TokenArgs {
    /// The data directory of the `orderly dev --secure` whose issuer signs it
    #[arg(long, env = "ORDERLY_DATA_DIR", default_value = "orderly-data")]
    pub data_dir: PathBuf,

    /// Who: for a customer, the customer id it acts for
    #[arg(long)]
    pub subject: String,

    /// What it may do (repeatable)
    #[arg(long = "role", value_enum, required = true)]
    pub roles: Vec<Role>,

    /// How long it is valid, in seconds
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
}

/// Prints a token for `args`, signed by the issuer `orderly dev --secure` keeps in the data
/// directory.
pub fn print_token(args: &TokenArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.join("secure");
    if !dir.join("token-key.pem").exists() {
        anyhow::bail!(
            "no token issuer in {}: start `orderly dev --secure --data-dir {}` first",
            dir.display(),
            args.data_dir.display()
        );
    }
    let issuer = Authority::open(&dir)?.token_issuer()?;
    let ttl = Duration::from_secs(args.ttl_secs);
    println!("{}", issuer.token(&args.subject, &args.roles, ttl)?);
    Ok(())
}

/// Sends `authorization: Bearer <token>` with every request, when there is a token.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// Sends `token` (JWTs are ASCII; anything else is refused); `None` sends nothing.
    pub fn of(token: Option<&str>) -> anyhow::Result<Self> {
        let value = token.map(|token| format!("Bearer {token}").parse());
        Ok(Self(value.transpose().context("a token is ASCII")?))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// How a client of Orderly's own reaches a server: in plaintext, or over TLS trusting a CA; with
/// a bearer token when there is one (`orderly dev`'s seeding, `orderly ctl`).
#[derive(Clone, Default)]
pub struct Dial {
    tls: Option<ClientTlsConfig>,
    bearer: Bearer,
}

impl Dial {
    /// Over TLS when `ca` (a PEM file) is given, sending `token` when given.
    pub fn new(ca: Option<&Path>, token: Option<&str>) -> anyhow::Result<Self> {
        let tls = match ca {
            None => None,
            Some(ca) => {
                let pem = fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
                Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            }
        };
        Ok(Self {
            tls,
            bearer: Bearer::of(token)?,
        })
    }

    /// A lazily connected channel to `addr` (host:port).
    pub fn channel(&self, addr: &str) -> anyhow::Result<InterceptedService<Channel, Bearer>> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
            .with_context(|| format!("{addr:?} is not a host:port"))?;
        let endpoint = match &self.tls {
            Some(tls) => endpoint.tls_config(tls.clone())?,
            None => endpoint,
        };
        Ok(InterceptedService::new(
            endpoint.connect_lazy(),
            self.bearer.clone(),
        ))
    }
}

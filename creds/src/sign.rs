//! The signing pipeline behind `gencreds sign`: from the committed
//! `nats.acl` of every service under a root to one expiring user per
//! hostname, written as `DIR/<hostname>_nats.creds` (0600, DIR 0700).
//!
//! The steps are separate so a CLI can run its own checks in between:
//! [`discover`] finds and parses the `nats.acl` files, [`sign_services`]
//! validates every rule for its hostname, fills in the plane, mints every
//! user in memory, refuses the whole run if any service has a problem
//! (nothing is written then), and only then writes the files. [`sign_root`]
//! does both.

use crate::claims::{AccountClaims, AccountSigningKey, UserClaims};
use crate::connect;
use crate::creds::{self, GrantsBlock};
use crate::gojson;
use crate::jwt::{self, EncodeError, JwtError};
use crate::keyfile::{self, KeyFileError};
use crate::keys::{self, KeyKind, KeyPair};
use buswarden_rules::acl::{self, AclError};
use buswarden_rules::queue;
use buswarden_rules::rule::PLANE_PLACEHOLDER;
use buswarden_rules::validate::{self, ValidationError};
use buswarden_rules::{Hostname, Plane, Rule, RuleSet, Verb};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The environment variable that may hold the account signing key's seed.
pub const SIGNING_KEY_ENV: &str = "BUSWARDEN_SIGNING_KEY";
/// Default lifetime of a signed user: a week, long enough for a deploy.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
/// The file name of a service's credentials is the hostname plus this.
pub const CREDS_SUFFIX: &str = "_nats.creds";
/// The name of the ACL file beside each service.
pub const ACL_FILE: &str = "nats.acl";
/// Largest number of contributors named when a user is over budget.
pub const LARGEST_SHOWN: usize = 5;

/// One service's committed allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAcl {
    /// Where the `nats.acl` is.
    pub path: PathBuf,
    /// The hostname from its first line.
    pub hostname: Hostname,
    /// Its rules.
    pub rules: RuleSet,
}

/// A deploy id, carried in every user JWT as the tag `deploy:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployId(String);

impl DeployId {
    /// 1 to 64 characters of `[a-z0-9._-]` starting with a letter or digit
    /// (upper case is lower-cased, as the Go library does with tags), not
    /// containing `danger`: the id is printed in every `.creds` file, where
    /// `grep danger` must list the trust-root grants and nothing else. The
    /// account server applies the same rule (without the lower-casing).
    pub fn parse(id: &str) -> Result<DeployId, SignError> {
        let lower = id.to_ascii_lowercase();
        let ok = !lower.is_empty()
            && lower.len() <= 64
            && lower.as_bytes()[0].is_ascii_alphanumeric()
            && !lower.contains("danger")
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if ok {
            Ok(DeployId(lower))
        } else {
            Err(SignError::BadDeployId { id: id.to_string() })
        }
    }

    /// A deploy id from a time: `20261130t091500z`.
    pub fn at(unix: i64) -> DeployId {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
        let text = humantime::format_rfc3339_seconds(t).to_string();
        DeployId(
            text.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase(),
        )
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeployId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses `--expires`: a humantime duration (`7d`, `12h`, `1w 2d`) or
/// `never` (no expiry). Zero is refused: a user must live a while.
pub fn parse_expires(text: &str) -> Result<Option<Duration>, SignError> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("never") {
        return Ok(None);
    }
    match humantime::parse_duration(t) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(Some(d)),
        _ => Err(SignError::BadExpiry {
            text: text.to_string(),
        }),
    }
}

/// Which account a signing key signs for, when it is not the account's identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    /// The account's public key.
    PublicKey(String),
    /// The account's JWT (decoded and signature-checked): also gives its
    /// signing keys and revocations.
    Jwt(Box<AccountClaims>),
}

impl AccountRef {
    /// Parses `--account`: an account public key (`A…`) or an account JWT.
    pub fn parse(text: &str) -> Result<AccountRef, SignError> {
        let text = text.trim();
        if text.contains('.') {
            let claims = jwt::decode_account(text).map_err(SignError::AccountJwt)?;
            return Ok(AccountRef::Jwt(Box::new(claims)));
        }
        keys::check_public_key(KeyKind::Account, text).map_err(|_| SignError::BadAccount {
            text: text.chars().take(80).collect(),
        })?;
        Ok(AccountRef::PublicKey(text.to_string()))
    }
}

/// The account key that signs users, and the account it belongs to.
#[derive(Debug, Clone)]
pub struct AccountSigner {
    key: KeyPair,
    account: String,
    claims: Option<AccountClaims>,
}

impl AccountSigner {
    /// `key` must be an account key. Without `account`, it is the account's
    /// identity key. With it, `key` is the account itself or one of its
    /// signing keys (checked when `account` is a JWT: a key it does not list,
    /// or a scoped key, is refused).
    pub fn new(key: KeyPair, account: Option<AccountRef>) -> Result<AccountSigner, SignError> {
        if key.kind() != KeyKind::Account {
            return Err(SignError::SigningKeyKind { found: key.kind() });
        }
        let (account, claims) = match account {
            None => (key.public_key().to_string(), None),
            Some(AccountRef::PublicKey(a)) => (a, None),
            Some(AccountRef::Jwt(c)) => {
                let acc = c.data.sub.clone();
                if key.public_key() != acc {
                    match c.nats.signing_keys.get(key.public_key()) {
                        None => {
                            return Err(SignError::KeyNotOfAccount {
                                key: key.public_key().to_string(),
                                account: acc,
                            });
                        }
                        Some(AccountSigningKey::Scoped(_)) => {
                            return Err(SignError::ScopedSigningKey {
                                key: key.public_key().to_string(),
                            });
                        }
                        Some(AccountSigningKey::Plain) => {}
                    }
                }
                (acc, Some(*c))
            }
        };
        Ok(AccountSigner {
            key,
            account,
            claims,
        })
    }

    /// The account's public key.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The signing key's public key.
    pub fn issuer(&self) -> &str {
        self.key.public_key()
    }

    /// The `issuer_account` users carry: set when a signing key signs.
    pub fn issuer_account(&self) -> Option<&str> {
        (self.key.public_key() != self.account).then_some(self.account.as_str())
    }
}

/// How to sign.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// The plane filled in for `{{plane}}`.
    pub plane: Plane,
    /// Lifetime of each user; `None` = never expires.
    pub expires: Option<Duration>,
    /// The deploy id tag.
    pub deploy: DeployId,
    /// The servers' `max_control_line`.
    pub max_control_line: usize,
    /// How clients name their connections (counts against the budget).
    pub connect_name: connect::ConnectName,
    /// Sync each file's data before renaming it into place.
    pub sync: bool,
    /// The signing time, unix seconds.
    pub now: i64,
}

impl SignOptions {
    /// Defaults: plane `microbus`, 7 days, deploy id from the time, 4,096
    /// bytes for connections named as the runtime names them, synced
    /// writes, now.
    pub fn new() -> SignOptions {
        let now = jwt::now();
        SignOptions {
            plane: Plane::default(),
            expires: Some(DEFAULT_EXPIRY),
            deploy: DeployId::at(now),
            max_control_line: connect::DEFAULT_MAX_CONTROL_LINE,
            connect_name: connect::ConnectName::Runtime,
            sync: true,
            now,
        }
    }
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions::new()
    }
}

/// A rule's share of the JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contributor {
    /// The rule, plane filled in.
    pub rule: String,
    /// Bytes it adds to the JWT (base64 of its JSON string and comma).
    pub bytes: usize,
}

/// What is wrong with one service; nothing is signed while any stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceProblem {
    /// Rules the `rules` crate refuses for this hostname.
    Invalid {
        /// Hostname.
        hostname: Hostname,
        /// The `nats.acl`.
        path: PathBuf,
        /// Every failure.
        errors: Vec<ValidationError>,
    },
    /// A rule written for another plane.
    ForeignPlane {
        /// Hostname.
        hostname: Hostname,
        /// The `nats.acl`.
        path: PathBuf,
        /// The rule.
        rule: Rule,
        /// The plane being signed.
        plane: String,
    },
    /// An empty PUB or SUB allow list would fall back to the account's
    /// default permissions.
    EmptyAllowList {
        /// Hostname.
        hostname: Hostname,
        /// The `nats.acl`.
        path: PathBuf,
        /// Which list.
        verb: Verb,
    },
    /// The CONNECT line would not fit `max_control_line`.
    OverBudget {
        /// Hostname.
        hostname: Hostname,
        /// The `nats.acl`.
        path: PathBuf,
        /// CONNECT argument length.
        connect_len: usize,
        /// The limit.
        max_control_line: usize,
        /// The JWT's length.
        jwt_len: usize,
        /// The biggest rules.
        largest: Vec<Contributor>,
        /// Rules in all.
        rules: usize,
    },
    /// Encoding the JWT failed.
    Encode {
        /// Hostname.
        hostname: Hostname,
        /// Why.
        source: EncodeError,
    },
}

impl fmt::Display for ServiceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceProblem::Invalid {
                hostname,
                path,
                errors,
            } => {
                write!(
                    f,
                    "{hostname} ({}): {} invalid rule(s)",
                    path.display(),
                    errors.len()
                )?;
                for e in errors {
                    write!(f, "\n    {e}")?;
                }
                Ok(())
            }
            ServiceProblem::ForeignPlane {
                hostname,
                path,
                rule,
                plane,
            } => write!(
                f,
                "{hostname} ({}): {rule} names another plane than {plane:?}; write {PLANE_PLACEHOLDER} instead",
                path.display()
            ),
            ServiceProblem::EmptyAllowList {
                hostname,
                path,
                verb,
            } => write!(
                f,
                "{hostname} ({}): no {verb} rule; an empty {verb} allow list would fall back to the account's default permissions",
                path.display()
            ),
            ServiceProblem::OverBudget {
                hostname,
                path,
                connect_len,
                max_control_line,
                jwt_len,
                largest,
                rules,
            } => {
                write!(
                    f,
                    "{hostname} ({}): the CONNECT line would be {connect_len} bytes (JWT {jwt_len} bytes, {rules} rules), over max_control_line {max_control_line} by {}; largest contributors:",
                    path.display(),
                    connect_len - max_control_line
                )?;
                for c in largest {
                    write!(f, "\n    {} bytes  {}", c.bytes, c.rule)?;
                }
                Ok(())
            }
            ServiceProblem::Encode { hostname, source } => write!(f, "{hostname}: {source}"),
        }
    }
}

/// Why signing did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// Walking the root failed.
    #[error("reading {path}: {source}")]
    Walk {
        /// Path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `nats.acl` is malformed.
    #[error("{path}: {source}")]
    Acl {
        /// Path.
        path: PathBuf,
        /// Why.
        source: AclError,
    },
    /// No `nats.acl` under the root.
    #[error("no {ACL_FILE} found under {root} (target/ and hidden folders are skipped)")]
    NoServices {
        /// The root.
        root: PathBuf,
    },
    /// Two `nats.acl` files name the same hostname.
    #[error("{hostname} is named by both {first} and {second}")]
    DuplicateHostname {
        /// Hostname.
        hostname: Hostname,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
    /// One or more services cannot be signed; nothing was written.
    #[error("refusing to sign; nothing was written:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<ServiceProblem>),
    /// The signing key is not an account key.
    #[error("the signing key is a{} {found} key; users are signed by an account key (its identity key or one of its signing keys)", if matches!(found, KeyKind::User) { "" } else { "n" })]
    SigningKeyKind {
        /// Kind found.
        found: KeyKind,
    },
    /// The account JWT given is invalid.
    #[error("the account JWT is not valid: {0}")]
    AccountJwt(#[source] JwtError),
    /// The account given is neither a public key nor a JWT.
    #[error("{text:?} is neither an account public key (A…) nor an account JWT")]
    BadAccount {
        /// The text (truncated).
        text: String,
    },
    /// The key is neither the account nor one of its signing keys.
    #[error("signing key {key} is neither account {account} nor one of its signing keys")]
    KeyNotOfAccount {
        /// Key.
        key: String,
        /// Account.
        account: String,
    },
    /// A scoped signing key cannot sign users with their own permissions.
    #[error(
        "signing key {key} is scoped: its users get the scope's template and cannot carry per-service permissions; use a plain signing key"
    )]
    ScopedSigningKey {
        /// Key.
        key: String,
    },
    /// An expiry that is not a duration (`7d`, `12h`, `90m`) or `never`.
    #[error("expiry {text:?} is not a duration such as 7d, 12h or 90m, nor 'never'")]
    BadExpiry {
        /// The text.
        text: String,
    },
    /// A deploy id with characters other than `[a-z0-9._-]` or over 64 long.
    #[error(
        "deploy id {id:?} must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit, without the word 'danger'"
    )]
    BadDeployId {
        /// The id.
        id: String,
    },
    /// Writing a file failed.
    #[error(transparent)]
    Write(#[from] KeyFileError),
}

/// What was signed for one service (serializes as stable JSON for
/// `--format json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceReport {
    /// Hostname.
    pub hostname: Hostname,
    /// The new user's public key.
    pub user: String,
    /// The `.creds` file written.
    pub path: PathBuf,
    /// Expiry, unix seconds (0 = never).
    pub expires: i64,
    /// The JWT's `iat`.
    pub issued_at: i64,
    /// PUB rules.
    pub pub_rules: usize,
    /// SUB rules.
    pub sub_rules: usize,
    /// Trust-root grants, plane filled in (`PUB microbus.danger.666.…`).
    pub danger_grants: Vec<String>,
    /// JWT length.
    pub jwt_len: usize,
    /// CONNECT argument length.
    pub connect_len: usize,
}

/// What a signing run did (serializes as stable JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignReport {
    /// The folder written.
    pub out_dir: PathBuf,
    /// Whether an existing out folder open to others was restricted to 0700.
    pub out_dir_tightened: bool,
    /// The account.
    pub account: String,
    /// The key that signed.
    pub issuer: String,
    /// The plane.
    pub plane: String,
    /// The deploy id.
    pub deploy: String,
    /// One entry per service, by hostname.
    pub services: Vec<ServiceReport>,
}

/// A minted user, in memory.
pub struct MintedUser {
    /// Report fields (path empty until written).
    pub report: ServiceReport,
    /// The user JWT.
    pub jwt: String,
    /// The `.creds` bytes (wiped on drop).
    pub creds: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for MintedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedUser")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Finds every `nats.acl` under `root` (skipping `target/` and hidden
/// folders, not following symlinked folders), sorted by hostname.
pub fn discover(root: &Path) -> Result<Vec<ServiceAcl>, SignError> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    files.sort();
    let mut found: Vec<ServiceAcl> = Vec::with_capacity(files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| SignError::Walk {
            path: path.clone(),
            source,
        })?;
        let parsed = acl::parse(&text).map_err(|source| SignError::Acl {
            path: path.clone(),
            source,
        })?;
        found.push(ServiceAcl {
            path,
            hostname: parsed.hostname,
            rules: parsed.rules,
        });
    }
    found.sort_by(|a, b| a.hostname.cmp(&b.hostname));
    for pair in found.windows(2) {
        if pair[0].hostname == pair[1].hostname {
            return Err(SignError::DuplicateHostname {
                hostname: pair[0].hostname.clone(),
                first: pair[0].path.clone(),
                second: pair[1].path.clone(),
            });
        }
    }
    if found.is_empty() {
        return Err(SignError::NoServices {
            root: root.to_path_buf(),
        });
    }
    Ok(found)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SignError> {
    let walk_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SignError::Walk { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(walk_err(dir))? {
        let entry = entry.map_err(walk_err(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ty = entry.file_type().map_err(walk_err(&entry.path()))?;
        if ty.is_dir() {
            if name.starts_with('.') || name == "target" {
                continue;
            }
            walk(&entry.path(), out)?;
        } else if name == ACL_FILE && (ty.is_file() || ty.is_symlink()) {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// `{{plane}}` at the start of a subject replaced by `plane`.
fn fill_plane(subject: &str, plane: &str) -> String {
    match subject.strip_prefix(PLANE_PLACEHOLDER) {
        Some(rest) => format!("{plane}{rest}"),
        None => subject.to_string(),
    }
}

/// Bytes a subject adds to the base64 JWT as one allow-list entry.
fn contribution(subject: &str) -> usize {
    jwt::b64_len(gojson::string_len(subject) + 1)
}

/// Checks one service's rules for signing on `plane`; returns the grants
/// with the plane filled in, PUB first.
fn check_rules(
    service: &ServiceAcl,
    plane: &Plane,
) -> Result<(Vec<String>, Vec<String>), Vec<ServiceProblem>> {
    let mut problems = Vec::new();
    if let Err(errors) = validate::validate(&service.hostname, &service.rules) {
        problems.push(ServiceProblem::Invalid {
            hostname: service.hostname.clone(),
            path: service.path.clone(),
            errors,
        });
    }
    for rule in service.rules.iter() {
        let first = rule.tokens().next().unwrap_or_default();
        if first != PLANE_PLACEHOLDER && first != plane.as_str() {
            problems.push(ServiceProblem::ForeignPlane {
                hostname: service.hostname.clone(),
                path: service.path.clone(),
                rule: rule.clone(),
                plane: plane.to_string(),
            });
        }
    }
    let (pubs, subs) = allow_lists(&service.hostname, &service.rules, plane.as_str());
    for (verb, list) in [(Verb::Pub, &pubs), (Verb::Sub, &subs)] {
        if list.is_empty() {
            problems.push(ServiceProblem::EmptyAllowList {
                hostname: service.hostname.clone(),
                path: service.path.clone(),
                verb,
            });
        }
    }
    if problems.is_empty() {
        Ok((pubs, subs))
    } else {
        Err(problems)
    }
}

/// The PUB and SUB allow lists of a service's user with the plane filled
/// in: PUB rules as they are, each SUB rule in the forms
/// [`queue::sub_allow`] gives (plain and/or pinned to the service's own
/// queue group, `"<subject> <group>"`).
pub fn allow_lists(
    hostname: &Hostname,
    rules: &RuleSet,
    plane: &str,
) -> (Vec<String>, Vec<String>) {
    let pubs = rules
        .of(Verb::Pub)
        .map(|r| r.subject_for_plane(plane))
        .collect();
    let subs = queue::sub_allow(&queue::group(hostname), rules)
        .iter()
        .map(|e| fill_plane(e, plane))
        .collect();
    (pubs, subs)
}

/// What a service user's JWT carries besides its rules.
#[derive(Debug, Clone, Copy)]
pub struct UserGrant<'a> {
    /// The plane filled in for `{{plane}}`.
    pub plane: &'a Plane,
    /// The deploy id, carried as the tag `deploy:<id>`.
    pub deploy: &'a str,
    /// Expiry, unix seconds; 0 = never.
    pub exp: i64,
    /// The account, when a signing key (not the account's identity key) signs.
    pub issuer_account: Option<&'a str>,
}

/// The claims of one service's user, the single definition shared by
/// `gencreds sign` and the account server: name = hostname, expiry, the
/// `deploy:<id>` tag, `issuer_account`, the PUB and SUB allow lists with the
/// plane filled in (SUB entries pinned to the service's queue group, see
/// [`allow_lists`]), and the `sub.deny` guards that stop nats-server from
/// widening a SUB rule ending in `*` to `>`. Rules are not validated here:
/// callers validate them for the hostname first.
pub fn user_claims(
    user_key: &str,
    hostname: &Hostname,
    rules: &RuleSet,
    grant: &UserGrant<'_>,
) -> UserClaims {
    let plane = grant.plane.as_str();
    let mut claims = UserClaims::new_user(user_key);
    claims.data.name = hostname.as_str().to_string();
    claims.data.exp = grant.exp;
    claims.nats.generic.tags = vec![format!("deploy:{}", grant.deploy)];
    if let Some(ia) = grant.issuer_account {
        claims.nats.issuer_account = ia.to_string();
    }
    let (pubs, subs) = allow_lists(hostname, rules, plane);
    claims.nats.limits.publish.allow = pubs;
    claims.nats.limits.subscribe.allow = subs;
    // nats-server lets `SUB a.>` through an allow of `a.*`; the guards deny
    // what such a subscription would receive beyond the rule.
    claims.nats.limits.subscribe.deny = rules
        .sub_guards()
        .deny
        .iter()
        .map(|g| fill_plane(&g.deny, plane))
        .collect();
    claims
}

/// Mints one service's user in memory: a fresh user key, the JWT signed by
/// `signer`, the `.creds` bytes with the grants block. Refuses rules that do
/// not validate, empty allow lists and a CONNECT line over budget.
pub fn mint(
    service: &ServiceAcl,
    signer: &AccountSigner,
    opts: &SignOptions,
) -> Result<MintedUser, Vec<ServiceProblem>> {
    let (pubs, subs) = check_rules(service, &opts.plane)?;
    let user_key = KeyPair::generate(KeyKind::User);
    let exp = match opts.expires {
        Some(d) => opts
            .now
            .saturating_add(d.as_secs().min(i64::MAX as u64) as i64),
        None => 0,
    };
    let mut claims = user_claims(
        user_key.public_key(),
        &service.hostname,
        &service.rules,
        &UserGrant {
            plane: &opts.plane,
            deploy: opts.deploy.as_str(),
            exp,
            issuer_account: signer.issuer_account(),
        },
    );
    let grants: Vec<(Verb, String)> = pubs
        .into_iter()
        .map(|s| (Verb::Pub, s))
        .chain(subs.into_iter().map(|s| (Verb::Sub, s)))
        .collect();
    // The trust-root entries as the JWT and the grants block hold them (a
    // SUB rule may be signed twice: plain and pinned to the queue group).
    let danger_grants: Vec<String> = grants
        .iter()
        .filter(|(_, s)| s.split('.').nth(1) == Some("danger"))
        .map(|(v, s)| format!("{v} {s}"))
        .collect();
    let iat = jwt::issue_time(opts.now, signer.claims.as_ref(), user_key.public_key());
    let token = jwt::encode(&mut claims, &signer.key, iat).map_err(|source| {
        vec![ServiceProblem::Encode {
            hostname: service.hostname.clone(),
            source,
        }]
    })?;
    let name = opts.connect_name.for_host(service.hostname.as_str());
    let connect_len = connect::connect_len(token.len(), name.as_deref());
    if connect_len > opts.max_control_line {
        let mut largest: Vec<Contributor> = grants
            .iter()
            .map(|(v, s)| Contributor {
                rule: format!("{v} {s}"),
                bytes: contribution(s),
            })
            .collect();
        largest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.rule.cmp(&b.rule)));
        largest.truncate(LARGEST_SHOWN);
        return Err(vec![ServiceProblem::OverBudget {
            hostname: service.hostname.clone(),
            path: service.path.clone(),
            connect_len,
            max_control_line: opts.max_control_line,
            jwt_len: token.len(),
            largest,
            rules: grants.len(),
        }]);
    }
    let block = GrantsBlock {
        hostname: service.hostname.as_str().to_string(),
        plane: opts.plane.to_string(),
        deploy: opts.deploy.to_string(),
        expires: claims.data.exp,
        grants,
    };
    let creds = creds::format_creds(&token, &user_key.seed(), &block);
    let pub_rules = service.rules.of(Verb::Pub).count();
    let sub_rules = service.rules.of(Verb::Sub).count();
    Ok(MintedUser {
        report: ServiceReport {
            hostname: service.hostname.clone(),
            user: user_key.public_key().to_string(),
            path: PathBuf::new(),
            expires: claims.data.exp,
            issued_at: iat,
            pub_rules,
            sub_rules,
            danger_grants,
            jwt_len: token.len(),
            connect_len,
        },
        jwt: token,
        creds,
    })
}

/// The credentials file name for a hostname: `calculator.example_nats.creds`.
pub fn creds_file_name(hostname: &Hostname) -> String {
    format!("{}{CREDS_SUFFIX}", hostname.as_str())
}

/// Threads: one per core, at least 64 items each. File writes get no more:
/// creating and renaming files in one folder serializes on its lock.
fn workers(n: usize) -> usize {
    std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1)
        .min(n.div_ceil(64))
        .max(1)
}

/// Runs `f` over `items` on `n` threads, keeping the order.
fn parallel<T: Sync, R: Send>(items: &[T], n: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if n == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            // A worker only panics if `f` does; pass the panic on.
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Mints every service's user; refuses (writing nothing) if any service has
/// a problem; then writes `out_dir/<hostname>_nats.creds` for each.
pub fn sign_services(
    services: &[ServiceAcl],
    out_dir: &Path,
    signer: &AccountSigner,
    opts: &SignOptions,
) -> Result<SignReport, SignError> {
    let results = parallel(services, workers(services.len()), |s| mint(s, signer, opts));
    let mut minted = Vec::with_capacity(results.len());
    let mut problems = Vec::new();
    for r in results {
        match r {
            Ok(m) => minted.push(m),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(SignError::Refused(problems));
    }
    let tightened = keyfile::create_private_dir(out_dir)?;
    let written = parallel(&minted, workers(minted.len()), |m| {
        let path = out_dir.join(creds_file_name(&m.report.hostname));
        keyfile::write_private_file(&path, &m.creds, opts.sync).map(|()| path)
    });
    let mut services_report = Vec::with_capacity(minted.len());
    for (m, path) in minted.into_iter().zip(written) {
        let mut report = m.report;
        report.path = path?;
        services_report.push(report);
    }
    Ok(SignReport {
        out_dir: out_dir.to_path_buf(),
        out_dir_tightened: tightened,
        account: signer.account().to_string(),
        issuer: signer.issuer().to_string(),
        plane: opts.plane.to_string(),
        deploy: opts.deploy.to_string(),
        services: services_report,
    })
}

/// [`discover`] then [`sign_services`].
pub fn sign_root(
    root: &Path,
    out_dir: &Path,
    signer: &AccountSigner,
    opts: &SignOptions,
) -> Result<SignReport, SignError> {
    let services = discover(root)?;
    sign_services(&services, out_dir, signer, opts)
}

/// Loads the account signing key from `file`, or else from the
/// [`SIGNING_KEY_ENV`] environment variable.
pub fn load_signing_key(file: Option<&Path>) -> Result<KeyPair, SignError> {
    let key = match file {
        Some(path) => keyfile::load_private_key_file(path, None)?,
        None => keyfile::load_key_env(SIGNING_KEY_ENV, None)?,
    };
    if key.kind() != KeyKind::Account {
        return Err(SignError::SigningKeyKind { found: key.kind() });
    }
    Ok(key)
}

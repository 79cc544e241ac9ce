//! The in-memory working set (the [`Snapshot`] plus the decoded account
//! claims) and the one place that re-signs the managed account's JWT from
//! it: signing keys of the deploys whose key is live, revocations as a
//! union, an `iat` later than the live JWT's.

use std::collections::BTreeMap;

use buswarden_creds::claims::{AccountClaims, AccountSigningKey};
use buswarden_creds::jwt;
use buswarden_creds::keys::KeyPair;

use crate::store::{AccountRecord, Approval, DeployRecord, DeployState, Revocation, UserRecord};

/// Why the account JWT could not be (re)built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// A stored or configured account JWT does not decode.
    #[error("account JWT: {0}")]
    Decode(#[from] jwt::JwtError),
    /// Signing failed.
    #[error("signing the account JWT: {0}")]
    Encode(#[from] jwt::EncodeError),
}

/// The working set, guarded by one lock: every change is computed here,
/// committed to the store, then applied.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// The account record as stored.
    pub account: AccountRecord,
    /// The operator's base claims (from busop).
    pub base: AccountClaims,
    /// The live claims (decoded `account.jwt`).
    pub live: AccountClaims,
    /// Deploys by id.
    pub deploys: BTreeMap<String, DeployRecord>,
    /// Users by public key.
    pub users: BTreeMap<String, UserRecord>,
    /// Approvals by (deploy, rule).
    pub approvals: BTreeMap<(String, String), Approval>,
    /// The store position this working set reflects (see
    /// [`crate::store::Change::base`]).
    pub position: u64,
}

impl Ledger {
    /// The active deploy, if any.
    pub fn active(&self) -> Option<&DeployRecord> {
        self.deploys
            .values()
            .find(|d| d.state == DeployState::Active)
    }

    /// Whether `user_key` was revoked: in the account JWT's revocations, or
    /// (after that entry was pruned) by the permanent mark on its user
    /// record. Users of a revoked deploy are refused by the deploy's state.
    pub fn is_revoked(&self, user_key: &str) -> bool {
        self.account.revocations.contains_key(user_key)
            || self.users.get(user_key).is_some_and(|u| u.revoked)
    }

    /// The users of `deploy`.
    pub fn users_of<'a>(&'a self, deploy: &'a str) -> impl Iterator<Item = &'a UserRecord> + 'a {
        self.users.values().filter(move |u| u.deploy == deploy)
    }
}

/// Builds and signs the account JWT for `deploys` and `revocations` on top
/// of `base`, with an `iat` later than `live`'s and `base`'s. Returns the new record and
/// its decoded claims.
pub fn sign_account(
    previous: &AccountRecord,
    base: &AccountClaims,
    live: Option<&AccountClaims>,
    deploys: &BTreeMap<String, DeployRecord>,
    revocations: BTreeMap<String, Revocation>,
    operator: &KeyPair,
    now: i64,
) -> Result<(AccountRecord, AccountClaims), LedgerError> {
    let mut claims = base.clone();
    for d in deploys.values().filter(|d| d.state.key_is_live()) {
        claims
            .nats
            .signing_keys
            .0
            .insert(d.signing_key.clone(), AccountSigningKey::Plain);
    }
    for (key, r) in &revocations {
        let at = claims.nats.revocations.entry(key.clone()).or_insert(r.at);
        *at = (*at).max(r.at);
    }
    // Later than the live JWT and than busop's base (which busop may have
    // pushed itself): a full resolver keeps the newer `iat`.
    let iat = jwt::account_issue_time(now, live).max(jwt::account_issue_time(now, Some(base)));
    let token = jwt::encode(&mut claims, operator, iat)?;
    let record = AccountRecord {
        account: previous.account.clone(),
        base_jwt: previous.base_jwt.clone(),
        jwt: token,
        iat,
        version: previous.version + 1,
        revocations,
        kek_check: previous.kek_check.clone(),
    };
    Ok((record, claims))
}

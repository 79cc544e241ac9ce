//! The deploy lifecycle: open a deploy (a fresh account signing key in the
//! account JWT), sign its users from their public keys and rule sets,
//! activate it (the previous active deploy retires after the grace period),
//! retire or revoke it, revoke a user, renew a user's JWT, approve a
//! trust-root grant, and the janitor's retiring and pruning.
//!
//! Every operation locks the ledger, computes one [`Change`], commits it
//! (one store transaction) and only then applies it and answers; a change
//! of the account JWT is re-signed with a later `iat` and pushed.

use std::collections::{BTreeMap, BTreeSet};

use buswarden_creds::connect;
use buswarden_creds::jwt;
use buswarden_creds::keys::{self, KeyKind, KeyPair, Seed};
use buswarden_creds::sign::{self, DeployId};
use buswarden_rules::{Hostname, Plane, Rule, RuleSet, Verb};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::auth::Caller;
use crate::config::Role;
use crate::error::ApiError;
use crate::ledger::Ledger;
use crate::push::PushStatus;
use crate::seal::deploy_context;
use crate::server::AccountServer;
use crate::store::{
    Approval, AuditEntry, AuditGrant, Change, DeployRecord, DeployState, Revocation, StoreError,
    UserRecord,
};

/// Rules per user at most (the JWT budget ends well before).
const MAX_RULES: usize = 512;
/// Users per sign request at most.
const MAX_USERS: usize = 5000;

/// `POST /v1/deploys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenDeploy {
    /// The deploy id.
    pub deploy: String,
}

/// One user to sign.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRequest {
    /// The service hostname.
    pub hostname: String,
    /// The user's public key (`U…`).
    pub user_key: String,
    /// The rules (`PUB {{plane}}…`, `SUB {{plane}}…`).
    pub rules: Vec<String>,
}

/// `POST /v1/deploys/<id>/users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUsers {
    /// The users.
    pub users: Vec<UserRequest>,
    /// Lifetime of the JWTs (`7d`, `12h`); the configured default if absent.
    #[serde(default)]
    pub expires: Option<String>,
}

/// `POST /v1/revocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeUser {
    /// The user key.
    pub user_key: String,
}

/// `POST /v1/approvals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approve {
    /// The deploy.
    pub deploy: String,
    /// The `:666` rule.
    pub rule: String,
}

/// A signed user in a reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct SignedUser {
    /// The hostname.
    pub hostname: String,
    /// The user key.
    pub user_key: String,
    /// The user JWT.
    pub jwt: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A deploy in a reply.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeployView {
    /// The id.
    pub deploy: String,
    /// Its account signing key.
    pub signing_key: String,
    /// Its state.
    pub state: String,
    /// Users signed.
    pub users: usize,
    /// Unix seconds.
    pub opened_at: i64,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<i64>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
}

/// The outcome of a change to the account JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct Pushed {
    /// The account JWT version.
    pub version: u64,
    /// Servers that confirmed it within the wait.
    pub confirmed: usize,
    /// Servers configured.
    pub servers: usize,
}

fn view(l: &Ledger, d: &DeployRecord) -> DeployView {
    DeployView {
        deploy: d.id.clone(),
        signing_key: d.signing_key.clone(),
        state: d.state.as_str().into(),
        users: l.users_of(&d.id).count(),
        opened_at: d.opened_at,
        activated_at: d.activated_at,
        retire_at: d.retire_at,
        ended_at: d.ended_at,
    }
}

fn audit(
    at: i64,
    caller: &str,
    action: &str,
    deploy: Option<&str>,
    subjects: Vec<String>,
) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at,
        caller: caller.into(),
        action: action.into(),
        deploy: deploy.map(Into::into),
        subjects,
        grants: Vec::new(),
    }
}

/// The deploy id rule of `gencreds sign` ([`DeployId::parse`]: no
/// `danger`, which `grep '\.danger\.'` on a `.creds` file would hit), in
/// lower case as it is carried in the JWT tag.
fn check_deploy_id(id: &str) -> Result<(), ApiError> {
    match DeployId::parse(id) {
        Ok(parsed) if parsed.as_str() == id => Ok(()),
        Ok(_) => Err(ApiError::BadRequest(format!(
            "deploy id {:?} must be lower case (it is carried as the JWT tag deploy:<id>, which is lower case)",
            id.chars().take(64).collect::<String>()
        ))),
        Err(e) if id.len() <= 64 => Err(ApiError::BadRequest(e.to_string())),
        Err(_) => Err(ApiError::BadRequest(
            "deploy id is longer than 64 characters".into(),
        )),
    }
}

fn deploy<'a>(l: &'a Ledger, id: &str) -> Result<&'a DeployRecord, ApiError> {
    l.deploys
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no deploy {id:?}")))
}

fn check_user_key(key: &str) -> Result<(), ApiError> {
    if keys::is_public_key(KeyKind::User, key) {
        Ok(())
    } else {
        // The value is not echoed: it may be a seed sent by mistake.
        Err(ApiError::BadRequest(
            "user_key is not a user public key (U followed by 55 base32 characters); send the public key, never the seed".into(),
        ))
    }
}

fn parse_rules(hostname: &Hostname, texts: &[String]) -> Result<RuleSet, ApiError> {
    if texts.len() > MAX_RULES {
        return Err(ApiError::BadRequest(format!(
            "{}: more than {MAX_RULES} rules",
            hostname.as_str()
        )));
    }
    let mut set = RuleSet::new();
    for text in texts {
        let rule = Rule::parse(text)
            .map_err(|e| ApiError::InvalidRules(format!("{}: {e}", hostname.as_str())))?;
        set.insert(rule);
    }
    if let Err(errors) = buswarden_rules::validate::validate(hostname, &set) {
        let shown: Vec<String> = errors.iter().take(10).map(|e| e.to_string()).collect();
        let more = errors.len().saturating_sub(shown.len());
        let mut msg = format!("{}: {}", hostname.as_str(), shown.join("; "));
        if more > 0 {
            msg.push_str(&format!("; and {more} more"));
        }
        return Err(ApiError::InvalidRules(msg));
    }
    if set.of(Verb::Pub).next().is_none() || set.of(Verb::Sub).next().is_none() {
        return Err(ApiError::InvalidRules(format!(
            "{}: a user needs at least one PUB and one SUB rule (an empty list would fall back to the account's default permissions)",
            hostname.as_str()
        )));
    }
    Ok(set)
}

fn parse_expiry(server: &AccountServer, text: Option<&str>) -> Result<i64, ApiError> {
    let deploys = &server.config.deploys;
    let d = match text {
        None => deploys.default_user_expiry,
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::BadRequest(format!("expires {t:?}: {e}")))?,
    };
    if d.is_zero() || d > deploys.max_user_expiry {
        return Err(ApiError::BadRequest(format!(
            "expires must be more than 0 and at most {}",
            humantime::format_duration(deploys.max_user_expiry)
        )));
    }
    i64::try_from(d.as_secs()).map_err(|_| ApiError::BadRequest("expires too large".into()))
}

impl AccountServer {
    /// Commits a caller's change together with its request's nonce.
    async fn commit_as(
        &self,
        caller: &Caller,
        l: &mut Ledger,
        mut change: Change,
    ) -> Result<(), ApiError> {
        let nonce = caller.take_nonce();
        change.nonce = nonce.clone();
        match self.commit(l, change).await {
            Ok(()) => Ok(()),
            Err(StoreError::NonceReused) => Err(ApiError::Replayed),
            Err(e) => {
                if let Some(n) = nonce {
                    caller.put_back(n);
                }
                Err(e.into())
            }
        }
    }

    fn unseal(&self, d: &DeployRecord) -> Result<KeyPair, ApiError> {
        let sealed = hex::decode(&d.sealed_seed)
            .map_err(|e| ApiError::Internal(format!("deploy {}: sealed seed: {e}", d.id)))?;
        let plain = self
            .kek
            .open(&sealed, &deploy_context(&d.id, &d.signing_key))
            .map_err(|e| ApiError::Internal(format!("deploy {}: {e}", d.id)))?;
        let text = Zeroizing::new(
            String::from_utf8(plain.to_vec())
                .map_err(|_| ApiError::Internal(format!("deploy {}: seed is not text", d.id)))?,
        );
        KeyPair::from_seed_of(KeyKind::Account, &Seed::new(&text))
            .map_err(|e| ApiError::Internal(format!("deploy {}: {e}", d.id)))
    }

    /// Signs one user JWT valid from `now` until `exp`.
    fn sign_user(
        &self,
        l: &Ledger,
        (signer, deploy): (&KeyPair, &str),
        (user_key, hostname, rules): (&str, &Hostname, &RuleSet),
        (now, exp): (i64, i64),
    ) -> Result<(String, i64), ApiError> {
        let plane = Plane::parse(&self.config.plane)
            .map_err(|e| ApiError::Internal(format!("configured plane: {e}")))?;
        let mut claims = sign::user_claims(
            user_key,
            hostname,
            rules,
            &sign::UserGrant {
                plane: &plane,
                deploy,
                exp,
                issuer_account: Some(&l.account.account),
            },
        );
        let iat = jwt::issue_time(now, Some(&l.live), user_key);
        let token = jwt::encode(&mut claims, signer, iat)
            .map_err(|e| ApiError::Internal(format!("signing user {user_key}: {e}")))?;
        // Counted as the runtime names its connections, as `gencreds sign` does.
        let name = connect::ConnectName::Runtime.for_host(hostname.as_str());
        let budget = connect::jwt_budget(connect::DEFAULT_MAX_CONTROL_LINE, name.as_deref());
        if token.len() > budget {
            return Err(ApiError::InvalidRules(format!(
                "{}: the user JWT would be {} bytes, over the {budget} that fit nats-server's {}-byte CONNECT line; narrow the rules",
                hostname.as_str(),
                token.len(),
                connect::DEFAULT_MAX_CONTROL_LINE
            )));
        }
        Ok((token, iat))
    }

    /// Waits (bounded) for every server to confirm `version`.
    pub(crate) async fn pushed(&self, version: u64) -> Pushed {
        let PushStatus { confirmed, servers } = self
            .pusher
            .wait_confirmed(version, self.config.nats.push_wait)
            .await;
        Pushed {
            version,
            confirmed,
            servers,
        }
    }

    /// Opens a deploy with a fresh signing key.
    pub async fn open_deploy(
        &self,
        caller: &Caller,
        req: OpenDeploy,
    ) -> Result<(DeployView, Pushed), ApiError> {
        check_deploy_id(&req.deploy)?;
        let mut l = self.ledger.lock().await;
        if l.deploys.contains_key(&req.deploy) {
            return Err(ApiError::Conflict(format!(
                "deploy {:?} exists",
                req.deploy
            )));
        }
        let max_open = self.config.deploys.max_open;
        let open = l
            .deploys
            .values()
            .filter(|d| d.state == DeployState::Open)
            .count();
        if open >= max_open {
            return Err(ApiError::Conflict(format!(
                "{open} deploys are open already (deploys.max_open is {max_open}): activate or retire one, or wait until an unused one expires (deploys.open_ttl {})",
                humantime::format_duration(self.config.deploys.open_ttl)
            )));
        }
        let now = crate::server::now();
        let key = KeyPair::generate(KeyKind::Account);
        let seed = key.seed();
        let sealed = self
            .kek
            .seal(
                seed.expose().as_bytes(),
                &deploy_context(&req.deploy, key.public_key()),
            )
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let record = DeployRecord {
            id: req.deploy.clone(),
            signing_key: key.public_key().to_string(),
            sealed_seed: hex::encode(sealed),
            state: DeployState::Open,
            opened_at: now,
            opened_by: caller.key.clone(),
            activated_at: None,
            retire_at: None,
            ended_at: None,
        };
        let account = self.resign(
            &l,
            std::slice::from_ref(&record),
            l.account.revocations.clone(),
            now,
        )?;
        let version = account.version;
        let change = Change {
            account: Some(account),
            deploys: vec![record.clone()],
            audit: vec![audit(
                now,
                &caller.key,
                "open",
                Some(&record.id),
                vec![record.signing_key.clone()],
            )],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        self.metrics.deploys_opened.inc();
        tracing::info!(deploy = %record.id, signing_key = %record.signing_key, caller = %caller.key, "deploy opened");
        let v = view(&l, &record);
        drop(l);
        Ok((v, self.pushed(version).await))
    }

    /// Signs users for an open or active deploy.
    pub async fn sign_users(
        &self,
        caller: &Caller,
        id: &str,
        req: SignUsers,
    ) -> Result<Vec<SignedUser>, ApiError> {
        if req.users.is_empty() {
            return Err(ApiError::BadRequest("users is empty".into()));
        }
        if req.users.len() > MAX_USERS {
            return Err(ApiError::BadRequest(format!(
                "more than {MAX_USERS} users in one request"
            )));
        }
        let lifetime = parse_expiry(self, req.expires.as_deref())?;
        // Validate everything before taking the lock: nothing is signed or
        // stored unless every user passes.
        let mut seen = BTreeSet::new();
        let mut parsed = Vec::with_capacity(req.users.len());
        for u in &req.users {
            let hostname = Hostname::parse(&u.hostname)
                .map_err(|e| ApiError::BadRequest(format!("hostname {:?}: {e}", u.hostname)))?;
            check_user_key(&u.user_key)?;
            if !seen.insert(u.user_key.clone()) {
                return Err(ApiError::BadRequest(format!(
                    "user key {} is listed twice",
                    u.user_key
                )));
            }
            if !caller.may_sign_for(hostname.as_str()) {
                return Err(ApiError::Forbidden(format!(
                    "this key may not sign for {}",
                    hostname.as_str()
                )));
            }
            let rules = parse_rules(&hostname, &u.rules)?;
            self.policy
                .check(&hostname, &rules)
                .map_err(ApiError::PolicyViolation)?;
            parsed.push((hostname, rules, u));
        }
        let mut l = self.ledger.lock().await;
        let d = deploy(&l, id)?.clone();
        if !matches!(d.state, DeployState::Open | DeployState::Active) {
            return Err(ApiError::Conflict(format!(
                "deploy {id:?} is {}",
                d.state.as_str()
            )));
        }
        for (hostname, rules, u) in &parsed {
            if let Some(existing) = l.users.get(&u.user_key)
                && (existing.deploy != id || existing.hostname != hostname.as_str())
            {
                return Err(ApiError::Conflict(format!(
                    "user key {} already belongs to another deploy or hostname",
                    u.user_key
                )));
            }
            if l.is_revoked(&u.user_key) {
                return Err(ApiError::Conflict(format!(
                    "user key {} is revoked (for good: a revoked key is never signed again; generate a new one)",
                    u.user_key
                )));
            }
            self.check_trust_root(&l, id, hostname, rules)?;
        }
        let signer = self.unseal(&d)?;
        let now = crate::server::now();
        let exp = now.saturating_add(lifetime);
        let mut out = Vec::with_capacity(parsed.len());
        let mut records = Vec::with_capacity(parsed.len());
        for (hostname, rules, u) in &parsed {
            let (token, iat) = self.sign_user(
                &l,
                (&signer, id),
                (&u.user_key, hostname, rules),
                (now, exp),
            )?;
            let max_exp = l
                .users
                .get(&u.user_key)
                .map_or(exp, |p| p.max_expires_at.max(exp));
            records.push(UserRecord {
                user_key: u.user_key.clone(),
                deploy: id.to_string(),
                hostname: hostname.as_str().to_string(),
                rules: rules.iter().map(|r| r.to_string()).collect(),
                jwt: token.clone(),
                issued_at: iat,
                expires_at: exp,
                max_expires_at: max_exp,
                signed_by: caller.key.clone(),
                revoked: false,
            });
            out.push(SignedUser {
                hostname: hostname.as_str().to_string(),
                user_key: u.user_key.clone(),
                jwt: token,
                expires_at: exp,
            });
        }
        let subjects = records
            .iter()
            .map(|r| format!("{} {}", r.hostname, r.user_key))
            .collect();
        let mut entry = audit(now, &caller.key, "sign", Some(id), subjects);
        entry.grants = records
            .iter()
            .map(|r| AuditGrant::new(&r.user_key, &r.hostname, &r.rules))
            .collect();
        let change = Change {
            users: records,
            audit: vec![entry],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        self.metrics.users_signed.add(out.len() as u64);
        tracing::info!(deploy = %id, users = out.len(), caller = %caller.key, "users signed");
        Ok(out)
    }

    /// Refuses a `:666` rule that the active deploy's user for the same
    /// hostname did not have, unless an operator approved it for `deploy`.
    fn check_trust_root(
        &self,
        l: &Ledger,
        deploy: &str,
        hostname: &Hostname,
        rules: &RuleSet,
    ) -> Result<(), ApiError> {
        let active: BTreeSet<&str> = l
            .active()
            .filter(|a| a.id != deploy)
            .map(|a| {
                l.users_of(&a.id)
                    .filter(|u| u.hostname == hostname.as_str())
                    .flat_map(|u| u.rules.iter().map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        for rule in rules
            .iter()
            .filter(|r| r.verb == Verb::Pub && r.is_danger())
        {
            let text = rule.to_string();
            if !active.contains(text.as_str())
                && !l
                    .approvals
                    .contains_key(&(deploy.to_string(), text.clone()))
            {
                return Err(ApiError::ApprovalRequired(format!(
                    "{}: trust-root grant {text:?} is new (the active deploy does not have it); an operator must approve it for deploy {deploy:?} first (POST /v1/approvals)",
                    hostname.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Activates a deploy; the previous active one retires after the grace period.
    pub async fn activate(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(DeployView, Pushed), ApiError> {
        let mut l = self.ledger.lock().await;
        let mut d = deploy(&l, id)?.clone();
        if d.state != DeployState::Open {
            return Err(ApiError::Conflict(format!(
                "deploy {id:?} is {}, not open",
                d.state.as_str()
            )));
        }
        if l.users_of(id).next().is_none() {
            return Err(ApiError::Conflict(format!("deploy {id:?} has no users")));
        }
        may_activate(caller, &l, id)?;
        let now = crate::server::now();
        let grace = i64::try_from(self.config.deploys.grace.as_secs()).unwrap_or(i64::MAX / 2);
        d.state = DeployState::Active;
        d.activated_at = Some(now);
        let mut changed = vec![d.clone()];
        let mut subjects = vec![d.signing_key.clone()];
        if let Some(prev) = l.active().cloned() {
            let mut prev = prev;
            if grace == 0 {
                prev.state = DeployState::Retired;
                prev.ended_at = Some(now);
            } else {
                prev.state = DeployState::Retiring;
                prev.retire_at = Some(now + grace);
            }
            subjects.push(format!("replaces {}", prev.id));
            changed.push(prev);
        }
        let key_removed = changed.iter().any(|c| c.state == DeployState::Retired);
        let account = if key_removed {
            Some(self.resign(&l, &changed, l.account.revocations.clone(), now)?)
        } else {
            None
        };
        let version = account.as_ref().map_or(l.account.version, |a| a.version);
        let change = Change {
            account,
            deploys: changed,
            audit: vec![audit(now, &caller.key, "activate", Some(id), subjects)],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        tracing::info!(deploy = %id, caller = %caller.key, "deploy activated");
        let v = view(&l, &l.deploys[id]);
        drop(l);
        Ok((v, self.pushed(version).await))
    }

    /// Retires a deploy now: its signing key leaves the account JWT, which
    /// closes the connections of its users.
    pub async fn retire(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(DeployView, Pushed), ApiError> {
        self.end_deploy(caller, id, DeployState::Retired).await
    }

    /// Revokes every user of a deploy and removes its signing key.
    pub async fn revoke_deploy(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(DeployView, Pushed), ApiError> {
        self.end_deploy(caller, id, DeployState::Revoked).await
    }

    async fn end_deploy(
        &self,
        caller: &Caller,
        id: &str,
        to: DeployState,
    ) -> Result<(DeployView, Pushed), ApiError> {
        let mut l = self.ledger.lock().await;
        let mut d = deploy(&l, id)?.clone();
        if d.state == DeployState::Revoked || d.state == to {
            return Err(ApiError::Conflict(format!(
                "deploy {id:?} is already {}",
                d.state.as_str()
            )));
        }
        let now = crate::server::now();
        d.state = to;
        d.ended_at = Some(now);
        let mut revocations = l.account.revocations.clone();
        let mut subjects = vec![d.signing_key.clone()];
        if to == DeployState::Revoked {
            for u in l.users_of(id) {
                revoke_into(&mut revocations, u, now);
                subjects.push(u.user_key.clone());
            }
        }
        let revoked = subjects.len() - 1;
        let account = self.resign(&l, std::slice::from_ref(&d), revocations, now)?;
        let version = account.version;
        let action = if to == DeployState::Revoked {
            "revoke-deploy"
        } else {
            "retire"
        };
        let change = Change {
            account: Some(account),
            deploys: vec![d],
            audit: vec![audit(now, &caller.key, action, Some(id), subjects)],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        self.metrics.revocations.add(revoked as u64);
        tracing::info!(deploy = %id, action, caller = %caller.key, "deploy ended");
        let v = view(&l, &l.deploys[id]);
        drop(l);
        Ok((v, self.pushed(version).await))
    }

    /// Revokes one user key (ours or not).
    pub async fn revoke_user(&self, caller: &Caller, req: RevokeUser) -> Result<Pushed, ApiError> {
        check_user_key(&req.user_key)?;
        let mut l = self.ledger.lock().await;
        let now = crate::server::now();
        let mut revocations = l.account.revocations.clone();
        match l.users.get(&req.user_key) {
            Some(u) => revoke_into(&mut revocations, u, now),
            None => {
                revocations.insert(
                    req.user_key.clone(),
                    Revocation {
                        at: now,
                        prune_after: None,
                    },
                );
            }
        }
        let account = self.resign(&l, &[], revocations, now)?;
        let version = account.version;
        let deploy = l.users.get(&req.user_key).map(|u| u.deploy.clone());
        // Ours: marked for good, so the key stays refused after the JWT's
        // entry is pruned (a key we did not sign is never pruned).
        let users = l
            .users
            .get(&req.user_key)
            .map(|u| UserRecord {
                revoked: true,
                ..u.clone()
            })
            .into_iter()
            .collect();
        let change = Change {
            account: Some(account),
            users,
            audit: vec![audit(
                now,
                &caller.key,
                "revoke-user",
                deploy.as_deref(),
                vec![req.user_key.clone()],
            )],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        self.metrics.revocations.inc();
        tracing::info!(user = %req.user_key, caller = %caller.key, "user revoked");
        drop(l);
        Ok(self.pushed(version).await)
    }

    /// Re-issues a user's JWT with the same rules and lifetime.
    pub async fn renew(&self, caller: &Caller, user_key: &str) -> Result<SignedUser, ApiError> {
        check_user_key(user_key)?;
        let mut l = self.ledger.lock().await;
        let u = l
            .users
            .get(user_key)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("no user {user_key}")))?;
        if !caller.may_sign_for(&u.hostname) {
            return Err(ApiError::Forbidden(format!(
                "this key may not sign for {}",
                u.hostname
            )));
        }
        if l.is_revoked(user_key) {
            return Err(ApiError::Conflict(format!(
                "user {user_key} is revoked (for good: a revoked key is never renewed; sign a new one)"
            )));
        }
        let d = deploy(&l, &u.deploy)?.clone();
        if !matches!(d.state, DeployState::Open | DeployState::Active) {
            return Err(ApiError::Conflict(format!(
                "deploy {:?} of this user is {}",
                d.id,
                d.state.as_str()
            )));
        }
        let hostname =
            Hostname::parse(&u.hostname).map_err(|e| ApiError::Internal(e.to_string()))?;
        let rules = parse_rules(&hostname, &u.rules)?;
        // The policy may have changed since the user was signed: a renewal
        // is a new signature and must pass the policy in force now.
        self.policy
            .check(&hostname, &rules)
            .map_err(ApiError::PolicyViolation)?;
        let signer = self.unseal(&d)?;
        let now = crate::server::now();
        let exp = now.saturating_add(u.expires_at.saturating_sub(u.issued_at).max(1));
        let (token, iat) = self.sign_user(
            &l,
            (&signer, &d.id),
            (user_key, &hostname, &rules),
            (now, exp),
        )?;
        let record = UserRecord {
            jwt: token.clone(),
            issued_at: iat,
            expires_at: exp,
            max_expires_at: u.max_expires_at.max(exp),
            signed_by: caller.key.clone(),
            ..u
        };
        let mut entry = audit(
            now,
            &caller.key,
            "renew",
            Some(&d.id),
            vec![user_key.to_string()],
        );
        entry.grants = vec![AuditGrant::new(
            &record.user_key,
            &record.hostname,
            &record.rules,
        )];
        let change = Change {
            users: vec![record.clone()],
            audit: vec![entry],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        self.metrics.users_signed.inc();
        Ok(SignedUser {
            hostname: record.hostname,
            user_key: record.user_key,
            jwt: token,
            expires_at: exp,
        })
    }

    /// Records an operator's approval of a `:666` rule for a deploy.
    pub async fn approve(&self, caller: &Caller, req: Approve) -> Result<Approval, ApiError> {
        let rule = Rule::parse(&req.rule).map_err(|e| ApiError::InvalidRules(e.to_string()))?;
        if rule.verb != Verb::Pub || !rule.is_danger() {
            return Err(ApiError::BadRequest(
                "only PUB rules on the trust root (danger.666) need approval".into(),
            ));
        }
        let mut l = self.ledger.lock().await;
        let d = deploy(&l, &req.deploy)?;
        if !matches!(d.state, DeployState::Open | DeployState::Active) {
            return Err(ApiError::Conflict(format!(
                "deploy {:?} is {}",
                d.id,
                d.state.as_str()
            )));
        }
        let now = crate::server::now();
        let approval = Approval {
            deploy: req.deploy.clone(),
            rule: rule.to_string(),
            by: caller.key.clone(),
            at: now,
        };
        let change = Change {
            approvals: vec![approval.clone()],
            audit: vec![audit(
                now,
                &caller.key,
                "approve",
                Some(&req.deploy),
                vec![approval.rule.clone()],
            )],
            ..Default::default()
        };
        self.commit_as(caller, &mut l, change).await?;
        Ok(approval)
    }

    /// Every deploy, oldest first.
    pub async fn list(&self) -> Vec<DeployView> {
        let l = self.ledger.lock().await;
        let mut all: Vec<_> = l.deploys.values().map(|d| view(&l, d)).collect();
        all.sort_by_key(|d| (d.opened_at, d.deploy.clone()));
        all
    }

    /// The account as served now, with push status.
    pub async fn account(&self) -> serde_json::Value {
        let l = self.ledger.lock().await;
        let revocations: BTreeMap<&String, i64> = l
            .live
            .nats
            .revocations
            .iter()
            .map(|(k, v)| (k, *v))
            .collect();
        serde_json::json!({
            "account": l.account.account,
            "version": l.account.version,
            "iat": l.account.iat,
            "jwt": l.account.jwt,
            "signing_keys": l.live.nats.signing_keys.0.keys().collect::<Vec<_>>(),
            "revocations": revocations,
            "confirmed_servers": self.pusher.status(l.account.version),
            "servers": self.config.nats.servers.len(),
        })
    }

    /// Audit entries at or after unix second `since`, oldest first.
    pub async fn audit(&self, since: i64, limit: usize) -> Result<Vec<AuditEntry>, ApiError> {
        let store = self.store.clone();
        Ok(
            tokio::task::spawn_blocking(move || store.audit_since(since, limit))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??,
        )
    }

    /// The janitor's work at `now`: retire deploys whose grace ended and
    /// open deploys left unused for `deploys.open_ttl`, prune revocations
    /// whose revoked JWTs have all expired.
    pub async fn tidy(&self, now: i64) -> Result<(), ApiError> {
        let mut l = self.ledger.lock().await;
        let open_ttl = i64::try_from(self.config.deploys.open_ttl.as_secs()).unwrap_or(i64::MAX);
        let ends = |d: &DeployRecord| match d.state {
            DeployState::Retiring => d.retire_at.is_some_and(|t| t <= now),
            DeployState::Open => d.opened_at.saturating_add(open_ttl) <= now,
            _ => false,
        };
        let expired: BTreeSet<String> = l
            .deploys
            .values()
            .filter(|d| d.state == DeployState::Open && ends(d))
            .map(|d| d.id.clone())
            .collect();
        let retiring: Vec<DeployRecord> = l
            .deploys
            .values()
            .filter(|d| ends(d))
            .map(|d| DeployRecord {
                state: DeployState::Retired,
                ended_at: Some(now),
                ..d.clone()
            })
            .collect();
        let mut revocations = l.account.revocations.clone();
        let before = revocations.len();
        revocations.retain(|_, r| r.prune_after.is_none_or(|t| t >= now));
        let pruned = before - revocations.len();
        if retiring.is_empty() && pruned == 0 {
            return Ok(());
        }
        let mut audit_entries: Vec<AuditEntry> = retiring
            .iter()
            .map(|d| {
                let action = if expired.contains(&d.id) {
                    "expire"
                } else {
                    "retire"
                };
                audit(
                    now,
                    "server",
                    action,
                    Some(&d.id),
                    vec![d.signing_key.clone()],
                )
            })
            .collect();
        if pruned > 0 {
            let gone = l
                .account
                .revocations
                .keys()
                .filter(|k| !revocations.contains_key(*k))
                .cloned()
                .collect();
            audit_entries.push(audit(now, "server", "prune", None, gone));
        }
        // A pruned entry must leave the JWT too: rebuild from the base, not
        // from the live claims.
        let account = self.resign(&l, &retiring, revocations, now)?;
        let change = Change {
            account: Some(account),
            deploys: retiring,
            audit: audit_entries,
            ..Default::default()
        };
        self.commit(&mut l, change).await?;
        Ok(())
    }
}

/// Activation replaces the whole account's active deploy: an operator may
/// always; a CI key only when its hostnames cover every service of the
/// deploy it activates and of the active deploy it would retire, so a key
/// limited to one service cannot take the others off the bus.
fn may_activate(caller: &Caller, l: &Ledger, id: &str) -> Result<(), ApiError> {
    if caller.role == Role::Operator {
        return Ok(());
    }
    let retired = l.active().map(|a| a.id.as_str());
    let uncovered: BTreeSet<&str> = l
        .users
        .values()
        .filter(|u| u.deploy == id || Some(u.deploy.as_str()) == retired)
        .map(|u| u.hostname.as_str())
        .filter(|h| !caller.may_sign_for(h))
        .collect();
    if uncovered.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = uncovered.iter().take(10).copied().collect();
    Err(ApiError::Forbidden(format!(
        "this key may not sign for {}: activating {id:?} (retiring {}) needs the operator role or a ci key whose hostnames cover every service of both deploys",
        shown.join(", "),
        retired.map_or_else(|| "nothing".to_string(), |r| format!("{r:?}"))
    )))
}

fn revoke_into(revocations: &mut BTreeMap<String, Revocation>, u: &UserRecord, now: i64) {
    // A user JWT issued in this second would be revoked too (rev >= iat);
    // a re-issue is placed after it by `jwt::issue_time`.
    let at = now.max(u.issued_at);
    let entry = revocations.entry(u.user_key.clone()).or_insert(Revocation {
        at,
        prune_after: Some(u.max_expires_at),
    });
    entry.at = entry.at.max(at);
    entry.prune_after = entry.prune_after.map(|p| p.max(u.max_expires_at));
}

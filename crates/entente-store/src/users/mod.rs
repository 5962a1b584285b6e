//! The node's identity and its users: the first ledger entry (the node's party, name and
//! ledger key) and the users who act on the node with a role and an API token.

use crate::gate::{DecideCx, EffectCx, GateCommand, GateError, PayloadDigests, Ruling};
use crate::store::to_i64;
use entente_core::{Action, PartyCode, Role, Subject, SubjectKind, ids};

/// Record the node's identity as the ledger's first entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitNode {
    /// The node's party.
    pub party: PartyCode,
    /// The authority's name.
    pub name: String,
    /// The ledger origin.
    pub origin: String,
    /// The C2SP verifier key of the ledger.
    pub verifier_key: String,
}

impl GateCommand for InitNode {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::NodeInit
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::Node, self.party.as_str())]
    }

    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "node",
            serde_json::json!({"party": self.party, "name": self.name, "origin": self.origin, "verifier_key": self.verifier_key}),
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        if self.name.trim().is_empty() {
            return Err(GateError::Invalid("node name: must not be empty".into()));
        }
        Ok(())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _facts: &()) -> Ruling {
        Ruling::of(cx.role.clone())
    }

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let existing: Option<String> =
            sqlx::query_scalar("SELECT v FROM node_meta WHERE k = 'party'")
                .fetch_optional(&mut **cx.tx)
                .await?;
        if let Some(p) = existing {
            return Err(GateError::Conflict(format!("this database already belongs to node {p}")));
        }
        let now = cx.now_text();
        for (k, v) in [
            ("party", self.party.as_str()),
            ("name", self.name.as_str()),
            ("origin", self.origin.as_str()),
            ("verifier_key", self.verifier_key.as_str()),
            ("created_at", now.as_str()),
        ] {
            sqlx::query("INSERT INTO node_meta (k, v) VALUES ($1, $2)")
                .bind(k)
                .bind(v)
                .execute(&mut **cx.tx)
                .await?;
        }
        Ok(())
    }
}

/// What a user entry records: the name, the role and the token's hash, in one digest.
pub(crate) fn payload(name: &str, role: &str, token_sha256: &str) -> serde_json::Value {
    serde_json::json!({"name": name, "role": role, "token_sha256": token_sha256})
}

/// Create a user. The token is given only as its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddUser {
    /// User name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the API token, hex.
    pub token_sha256: String,
}

impl GateCommand for AddUser {
    type Output = ();
    type Facts = ();

    fn action(&self) -> Action {
        Action::UserAdd
    }

    fn subjects(&self) -> Vec<Subject> {
        vec![Subject::new(SubjectKind::User, &self.name)]
    }

    /// The user's name, role and token hash, bound in one digest so that `ledger verify
    /// --state` finds a role raised or a token hash swapped in the database. The token's
    /// hash itself is not disclosed: the token is 256 random bits, so the digest cannot be
    /// inverted to it.
    fn payload_digests(&self) -> Result<PayloadDigests, GateError> {
        PayloadDigests::canonical([(
            "user",
            payload(&self.name, self.role.as_str(), &self.token_sha256),
        )])
    }

    fn validate(&self) -> Result<(), GateError> {
        ids::check_identifier("user name", &self.name).map_err(GateError::Invalid)?;
        let t = &self.token_sha256;
        if t.contains(':') || t.parse::<entente_core::digest::Sha256>().is_err() {
            return Err(GateError::Invalid(
                "token_sha256: expected 64 lowercase hex digits".into(),
            ));
        }
        Ok(())
    }

    async fn load(&self, _cx: &mut EffectCx<'_>) -> Result<(), GateError> {
        Ok(())
    }

    fn decide(&self, cx: &DecideCx<'_>, _facts: &()) -> Ruling {
        Ruling::of(cx.role.clone())
    }

    async fn apply(self, cx: &mut EffectCx<'_>, _: (), _: &Ruling) -> Result<(), GateError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE name = $1")
            .bind(&self.name)
            .fetch_optional(&mut **cx.tx)
            .await?;
        if exists.is_some() {
            return Err(GateError::Conflict(format!("user `{}` already exists", self.name)));
        }
        sqlx::query("INSERT INTO users (name, role, token_sha256, created_at, ledger_index) VALUES ($1, $2, $3, $4, $5)")
            .bind(&self.name)
            .bind(self.role.as_str())
            .bind(&self.token_sha256)
            .bind(cx.now_text())
            .bind(to_i64(cx.index)?)
            .execute(&mut **cx.tx)
            .await?;
        Ok(())
    }
}

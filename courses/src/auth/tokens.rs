//! Signed tokens. Two kinds, told apart by their audience: API session tokens (from login)
//! and join tokens (admit one user to one room). Expiry is checked against the `now` the
//! caller passes, so tests control time.

use std::time::Duration;

use classroom_protocol::{
    CourseId, Grants, JOIN_TOKEN_AUDIENCE, JoinClaims, LessonId, ParticipantRole, RoomName, UserId,
    UserRole,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

const SESSION_AUDIENCE: &str = "classroom-api";
const REPLAY_FILES_AUDIENCE: &str = "classroom-replay-files";
/// Document page links: the same claims as replay links (`rid` names the document), their
/// own audience so that a replay's link never opens the document with the same id.
const DOCUMENT_FILES_AUDIENCE: &str = "classroom-document-files";
/// How long a replay's file links work: long enough to watch a long lesson in one sitting.
const REPLAY_FILES_TTL: Duration = Duration::from_secs(6 * 3600);

/// The claims of a replay file token: it opens one replay's files to one user. It travels in
/// the URL path (a `<video>` fetching HLS segments cannot send a bearer header), so it is
/// narrow: one replay, read only, a few hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayFileClaims {
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    /// The replay.
    pub rid: i64,
}

impl ReplayFileClaims {
    pub fn user(&self) -> Option<UserId> {
        self.sub.parse().ok()
    }
}

/// The claims of an API session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
    /// The user's session version when issued; a password change bumps it.
    pub sv: i64,
    pub role: UserRole,
}

impl SessionClaims {
    pub fn user(&self) -> Option<UserId> {
        self.sub.parse().ok()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed or its signature is wrong; sign in again")]
    Invalid,
    #[error("the token has expired; sign in again")]
    Expired,
    #[error("this kind of token is not accepted here")]
    WrongAudience,
}

/// What a join token is issued for.
#[derive(Debug, Clone)]
pub struct JoinGrant {
    pub user: UserId,
    pub name: String,
    pub lesson: LessonId,
    pub course: CourseId,
    pub role: ParticipantRole,
}

/// Issues and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    session_ttl: Duration,
    join_ttl: Duration,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("session_ttl", &self.session_ttl)
            .field("join_ttl", &self.join_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub fn new(secret: &[u8], session_ttl: Duration, join_ttl: Duration) -> Self {
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            session_ttl,
            join_ttl,
        }
    }

    pub fn join_ttl(&self) -> Duration {
        self.join_ttl
    }

    /// A session token for `user`, and when it expires.
    pub fn issue_session(
        &self,
        user: UserId,
        role: UserRole,
        session_version: i64,
        now: OffsetDateTime,
    ) -> (String, OffsetDateTime) {
        let (iat, exp) = times(now, self.session_ttl);
        let claims = SessionClaims {
            sub: user.to_string(),
            aud: SESSION_AUDIENCE.into(),
            iat,
            exp,
            sv: session_version,
            role,
        };
        (self.sign(&claims), now + self.session_ttl)
    }

    pub fn verify_session(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<SessionClaims, TokenError> {
        let claims: SessionClaims = self.verify(token, SESSION_AUDIENCE)?;
        check_expiry(claims.exp, now)?;
        Ok(claims)
    }

    /// A join token admitting `grant.user` to the lesson's room, and when it expires.
    pub fn issue_join(&self, grant: JoinGrant, now: OffsetDateTime) -> (JoinClaims, String) {
        let (iat, exp) = times(now, self.join_ttl);
        let claims = JoinClaims {
            sub: grant.user.to_string(),
            aud: JOIN_TOKEN_AUDIENCE.into(),
            iat,
            exp,
            jti: super::random_token(16),
            name: grant.name,
            room: RoomName::for_lesson(grant.lesson),
            lesson: grant.lesson,
            course: grant.course,
            role: grant.role,
            grants: Grants::for_role(grant.role),
        };
        let token = self.sign(&claims);
        (claims, token)
    }

    pub fn verify_join(&self, token: &str, now: OffsetDateTime) -> Result<JoinClaims, TokenError> {
        let claims: JoinClaims = self.verify(token, JOIN_TOKEN_AUDIENCE)?;
        check_expiry(claims.exp, now)?;
        Ok(claims)
    }

    /// A token for the files of replay `replay`, for `user`.
    pub fn issue_replay_files(&self, user: UserId, replay: i64, now: OffsetDateTime) -> String {
        let (_, exp) = times(now, REPLAY_FILES_TTL);
        self.sign(&ReplayFileClaims {
            sub: user.to_string(),
            aud: REPLAY_FILES_AUDIENCE.into(),
            exp,
            rid: replay,
        })
    }

    pub fn verify_replay_files(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<ReplayFileClaims, TokenError> {
        let claims: ReplayFileClaims = self.verify(token, REPLAY_FILES_AUDIENCE)?;
        check_expiry(claims.exp, now)?;
        Ok(claims)
    }

    /// A token for the pages of document `document`, for `user` (an `<img>` cannot send a
    /// bearer header either).
    pub fn issue_document_files(&self, user: UserId, document: i64, now: OffsetDateTime) -> String {
        let (_, exp) = times(now, REPLAY_FILES_TTL);
        self.sign(&ReplayFileClaims {
            sub: user.to_string(),
            aud: DOCUMENT_FILES_AUDIENCE.into(),
            exp,
            rid: document,
        })
    }

    pub fn verify_document_files(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<ReplayFileClaims, TokenError> {
        let claims: ReplayFileClaims = self.verify(token, DOCUMENT_FILES_AUDIENCE)?;
        check_expiry(claims.exp, now)?;
        Ok(claims)
    }

    fn sign<T: Serialize>(&self, claims: &T) -> String {
        // HS256 over serializable claims cannot fail: no key parsing, no fallible encoding.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims to succeed")
    }

    fn verify<T: DeserializeOwned>(&self, token: &str, audience: &str) -> Result<T, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against the caller's `now`, not the system clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        validation.set_audience(&[audience]);
        // Decode loosely first so that the audience is judged before the claims' shape.
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => TokenError::WrongAudience,
                _ => TokenError::Invalid,
            })?
            .claims;
        serde_json::from_value(claims).map_err(|_| TokenError::Invalid)
    }
}

fn times(now: OffsetDateTime, ttl: Duration) -> (u64, u64) {
    let iat = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    (iat, iat.saturating_add(ttl.as_secs()))
}

fn check_expiry(exp: u64, now: OffsetDateTime) -> Result<(), TokenError> {
    let now = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    if now >= exp {
        Err(TokenError::Expired)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &[u8]) -> TokenIssuer {
        TokenIssuer::new(secret, Duration::from_secs(3600), Duration::from_secs(300))
    }

    #[test]
    fn session_tokens_verify_until_they_expire() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let tokens = issuer(&[7; 32]);
        let (token, expires) = tokens.issue_session(UserId(5), UserRole::Teacher, 2, now);
        assert_eq!(expires, now + Duration::from_secs(3600));
        let claims = tokens.verify_session(&token, now).expect("fresh token");
        assert_eq!(
            (claims.user(), claims.sv, claims.role),
            (Some(UserId(5)), 2, UserRole::Teacher)
        );
        assert_eq!(
            tokens.verify_session(&token, expires),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tokens_of_another_secret_or_kind_are_refused() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let tokens = issuer(&[7; 32]);
        let (session, _) = tokens.issue_session(UserId(5), UserRole::Student, 0, now);
        assert_eq!(
            issuer(&[8; 32]).verify_session(&session, now),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.verify_join(&session, now),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            tokens.verify_session("garbage", now),
            Err(TokenError::Invalid)
        );

        let grant = JoinGrant {
            user: UserId(9),
            name: "Ada".into(),
            lesson: LessonId(3),
            course: CourseId(1),
            role: ParticipantRole::Student,
        };
        let (claims, join) = tokens.issue_join(grant, now);
        assert_eq!(claims.room.as_str(), "lesson-3");
        assert_eq!(tokens.verify_join(&join, now), Ok(claims));
        assert_eq!(
            tokens.verify_session(&join, now),
            Err(TokenError::WrongAudience)
        );
        assert_eq!(
            tokens.verify_join(&join, now + Duration::from_secs(300)),
            Err(TokenError::Expired)
        );
    }
}

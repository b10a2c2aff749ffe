//! Authentication: password hashing (argon2id), signed tokens (HS256 JWTs), the signing
//! secret, and rate limits on the endpoints that hand out tokens.

pub mod at_rest;
mod password;
mod rate_limit;
mod secret;
mod tokens;
mod turn;

pub use at_rest::KeySealer;
pub use password::{
    TemporaryPassword, hash_password, hash_temporary_password, verify_password,
    verify_password_or_dummy,
};
pub use rate_limit::{AccountKey, RateLimitConfig, RateLimited, RateLimits};
pub use secret::{SecretError, load_or_create_secret, random_token};
pub use tokens::{JoinGrant, ReplayFileClaims, SessionClaims, TokenError, TokenIssuer};
pub use turn::{IceServer, TurnConfigError, TurnCredentials};

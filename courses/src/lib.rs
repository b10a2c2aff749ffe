//! Course and user management of classroom: school accounts (admin, teacher, student),
//! courses with their teachers and enrolled students, scheduled lessons and their life
//! (scheduled → live → ended), join tokens for a lesson's room, and the replay library.
//!
//! Layers, top to bottom: [`api`] (axum handlers, permission checks, the OpenAPI document),
//! [`store`] (typed queries over sqlx), [`db`] (one pool for SQLite or PostgreSQL). Domain
//! types in [`model`] are built only by parsing, so handlers never pass unchecked input down.
//!
//! Invariants:
//! - Every SQL statement binds its values; no user input is ever part of SQL text.
//! - Password hashes and token secrets never leave this crate in a response or a log line.
//! - Lesson state changes only through [`model::LessonState::apply`].

pub mod api;
pub mod attendance;
pub mod auth;
pub mod csv_export;
pub mod csv_import;
pub mod db;
pub mod error;
pub mod model;
pub mod private_files;
pub mod restream;
pub mod store;
pub mod webhook;

pub use db::{Backend, Db, DbError};
pub use error::{StoreError, StoreResult};
pub use store::Store;

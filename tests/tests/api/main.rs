//! Black-box tests of the REST API. Every test runs twice: on SQLite and on PostgreSQL
//! (skipped with a message where PostgreSQL is unreachable, failed in CI).

mod at_rest;
mod attendance;
mod auth;
mod cluster;
mod courses;
mod lessons;
mod operations;
mod origin;
mod placement;
mod polls;
mod restreams;
mod setup;
mod stream_keys;
mod users;
mod web;
mod webhooks;

use classroom_tests::school::{School, id};
use classroom_tests::{Backend, TestServer};

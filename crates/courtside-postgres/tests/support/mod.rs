//! Test databases for this crate's tests: a fresh database per test, skipped (or, under
//! `CI=true`, failed) without PostgreSQL — the workspace's one rule, from `courtside-testkit`.

#![allow(unused_imports)] // each test binary uses a different part

pub use courtside_testkit::postgres::{TestDatabase, admin_url, fresh_database};

//! What Courtside's tests share, so every crate's tests treat missing services alike:
//!
//! - [`skip_or_fail`]: a test that needs PostgreSQL, Redis or Chromium and cannot find it prints
//!   `SKIPPED: …` and returns — unless `CI=true`, where it fails: CI must never pass by testing
//!   nothing.
//! - [`postgres`]: a fresh database per test on the server at `COURTSIDE_TEST_POSTGRES_URL`,
//!   dropped when the test ends, so runs never collide.
//! - [`assert_docs_say`]: a figure the docs quote is the code's.
//! - [`tls`]: a certificate authority made at test time; [`tls_services`]: a Redis and a
//!   PostgreSQL of the test's own that speak TLS with its certificates.
//!
//! A dev-dependency only: no shipped crate depends on this one.

pub mod postgres;
pub mod tls;
pub mod tls_services;

/// Is this a CI run (`CI=true`), where tests must not skip?
pub fn is_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The one way a test gives up for lack of a service: under `CI=true` it fails with `reason`,
/// elsewhere it prints `SKIPPED: …` to stderr (past the test harness's capture, so a skip is
/// visible in a normal run) and the caller returns.
pub fn skip_or_fail(reason: &str) {
    if is_ci() {
        panic!("{reason} (CI=true, so this test must not be skipped)");
    }
    let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("SKIPPED: {reason}\n"));
}

/// Fails unless `docs/<document>` says `sentence` (compared with runs of whitespace, line breaks
/// included, taken as one space): for a test that keeps a figure in the docs equal to the code.
pub fn assert_docs_say(document: &str, sentence: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(document);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat(&text).contains(&flat(sentence)), "docs/{document} must say {sentence:?}");
}

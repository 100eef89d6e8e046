//! Runs the TypeScript client's suites (`@courtside/client` in clients/js: the type check, unit
//! tests, and integration tests against this build's `courtside` binary) as part of
//! `cargo test`. Needs Node 20+ and `npm ci` in clients/js; without them the test says
//! `SKIPPED` and passes, except under `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_typescript_client_passes_its_suites_against_this_server() {
    let clients = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js");
    if !clients.join("node_modules/vitest").exists() {
        courtside_testkit::skip_or_fail("the JavaScript packages are not installed: run `npm ci` in clients/js (needs Node 20+)");
        return;
    }
    let run = Command::new("npm")
        .args(["test", "--workspace", "@courtside/client"])
        .current_dir(&clients)
        .env("COURTSIDE_BIN", env!("CARGO_BIN_EXE_courtside"))
        .env("NO_COLOR", "1")
        .output();
    let output = match run {
        Ok(output) => output,
        Err(error) => {
            courtside_testkit::skip_or_fail(&format!("cannot run npm ({error}): Node 20+ runs the TypeScript client's suites"));
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "npm test --workspace @courtside/client failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("SKIPPED") && !stderr.contains("SKIPPED"), "the integration tests must run here:\n{stdout}\n{stderr}");
    assert!(stdout.contains("client.integration.test.ts"), "the integration suite ran:\n{stdout}");
}

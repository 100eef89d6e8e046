//! Runs the TypeScript packages' suites as part of `cargo test`: `@courtside/client` (the type
//! check, unit tests, and integration tests against this build's `courtside` binary) and
//! `@courtside/react` (its hooks in a DOM, over the client's scripted test server); the client's
//! browser suite, the CourtSync scorer example's and the served pages' drive Debian's Chromium;
//! `@courtside/pages` also checks that the bundle the binary embeds is a fresh build. Needs Node 20+ and `npm ci` in clients/js; without them the test says
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
        .args(["test", "--workspace", "@courtside/client", "--workspace", "@courtside/react", "--workspace", "@courtside/example-courtsync-scorer", "--workspace", "@courtside/pages"])
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
    assert!(output.status.success(), "npm test (@courtside/client, @courtside/react) failed:\n{stdout}\n{stderr}");
    // A suite that lacks what it needs (Chromium) says SKIPPED: fine on a bare machine, not in CI.
    let skipped: Vec<&str> = stdout.lines().chain(stderr.lines()).filter(|line| line.contains("SKIPPED")).collect();
    for line in &skipped {
        courtside_testkit::skip_or_fail(line.trim());
    }
    for suite in ["client.integration.test.ts", "api.integration.test.ts", "shared.integration.test.ts", "browser.test.ts", "readme.test.ts", "hooks.test.tsx", "scorer.test.ts", "bundle.test.ts", "scoreboard.test.ts", "scorekeeper.test.ts", "ops.test.ts", "metrics.test.ts", "director.test.ts"] {
        assert!(stdout.contains(suite), "{suite} ran:\n{stdout}");
    }
}

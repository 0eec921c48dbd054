//! The live status page in a real browser: headless Chromium loads `/status#token=…` from a
//! running gate after intents were decided; the rendered DOM must show the product names, a
//! rejection reason code and the lag table (so the page's JS fetched `/status.json` with the
//! token and rendered it). A screenshot is kept in `target/artifacts/status-page.png`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bhiv_bucket::produce::IntentProducer;
use common::*;

/// The Chromium binary, installing the Debian package once if it is missing; None if that fails.
fn chromium() -> Option<PathBuf> {
    let find = || {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|name| {
                let out = Command::new("sh")
                    .args(["-c", &format!("command -v {name}")])
                    .output()
                    .ok()?;
                let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
                (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
            })
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let _ = Command::new("sh")
        .args([
            "-c",
            "(apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1",
        ])
        .status();
    find()
}

/// Runs headless Chromium with `args` and `url`; returns stdout.
fn browse(chromium: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Text of the page's error line (empty when all went well).
fn error_line(dom: &str) -> &str {
    dom.split("<p id=\"error\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or("<missing>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_products_reasons_and_lag_in_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "\n\n*** SKIPPED status_page: Chromium is not installed and `apt-get install -y \
             chromium` failed. Install it to run this test. ***\n"
        );
        return;
    };
    let sfx = suffix();
    let topics = create_topics(&sfx, 2).await;
    let group = format!("gate{sfx}");
    let token = format!("page-{}", uuid::Uuid::new_v4().simple());
    let addr = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{addr}");
    let _gate = spawn_gate_admin(&sfx, &group, "g1", &addr, Some(&token));
    let registry = registry();
    let producer = IntentProducer::connect(&brokers(), &registry, &topics.intents)
        .await
        .unwrap();
    for (i, (product, class)) in [("ai_assistant", "document"), ("gurukul", "transcript")]
        .iter()
        .enumerate()
    {
        send_signed(&producer, &create_intent(product, class, &format!("p{i}"))).await;
    }
    let mut bad = signed(
        &producer,
        &create_intent("ai_assistant", "document", "wrong-key"),
    );
    bad.key = Some(b"someone_else".to_vec());
    let headers: Vec<(&str, &[u8])> = bad
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    producer
        .send_raw(bad.key.as_deref(), bad.value.as_deref(), &headers)
        .await
        .unwrap();
    wait_all_decided(&group, &topics, 2, Duration::from_secs(120));
    // Lag is refreshed every 5 s: wait until the status data has both partitions.
    let (_, status) = http_until(
        &format!("{base}/status.json"),
        Some(&token),
        Duration::from_secs(30),
        |s, b| s == 200 && b.contains("\"lag\":{\"0\":0,\"1\":0}"),
    )
    .await;
    assert!(status.contains("KEY_MISMATCH"), "{status}");

    let url = format!("{base}/status#token={token}");
    let dom = browse(&chromium, &["--dump-dom"], &url);
    for want in ["ai_assistant", "gurukul", "KEY_MISMATCH"] {
        assert!(dom.contains(want), "rendered page lacks {want}:\n{dom}");
    }
    let lag_table = dom
        .split("id=\"lag\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_default();
    assert!(
        lag_table.contains("<td>0</td>") && lag_table.contains("<td>1</td>"),
        "lag table rows for partitions 0 and 1 missing:\n{lag_table}"
    );
    assert_eq!(error_line(&dom), "", "the page reported an error:\n{dom}");
    assert!(dom.contains(">ready<"), "readiness pill:\n{dom}");

    // Without the token the page says so instead of showing data.
    let dom = browse(&chromium, &["--dump-dom"], &format!("{base}/status"));
    assert!(error_line(&dom).contains("unauthorized"), "{dom}");
    assert!(!dom.contains("KEY_MISMATCH"));

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("status-page.png");
    let _ = std::fs::remove_file(&png);
    browse(
        &chromium,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,900",
            "--hide-scrollbars",
        ],
        &url,
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "screenshot is too small: {} bytes",
        bytes.len()
    );
}

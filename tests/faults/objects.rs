//! Object-store faults (issue 28): the sink keeps content in the local S3 server (versitygw,
//! `deploy/local/s3.sh`) under the mixed workload while
//!
//! - the S3 server is stopped for the outage and started again (the sink retries, commits no
//!   offset for what it could not store, and catches up), then
//! - the S3 server is frozen (SIGSTOP) so the sink's uploads hang, the sink is killed with
//!   `kill -9` mid-upload and restarted, and the server resumes (SIGCONT), then
//! - the sink is killed with `kill -9` at random points and restarted at once,
//!
//! and `finish` checks every invariant, reconcile (which reads every referenced object: a row
//! without its object is a difference) and, after `bucket sink gc-objects` as the janitor
//! identity, that the objects left are exactly those rows reference (orphans of killed uploads
//! collected, nothing referenced deleted).

use super::*;

/// The keys of the content objects under `url`, read with the reader identity.
async fn objects_under(url: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let objects = content_objects(url, "reader");
    let mut keys: Vec<String> = objects
        .list()
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("object store lists");
    keys.sort();
    keys
}

/// Runs `gc-objects` as the janitor, then compares the objects left with the keys rows name;
/// records how many orphans it collected.
pub(super) async fn no_orphans_after_collection(run: &mut Run) -> bool {
    let (ok, report) = run.bucket_as("janitor", &["sink", "gc-objects"]);
    eprintln!("[{} #{}] {}", run.fault, run.rep, report.trim());
    if !ok {
        return false;
    }
    let collected = report
        .split(", ")
        .find_map(|part| part.strip_suffix(" deleted"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    run.figures
        .extra
        .insert("orphans_collected".into(), collected.into());
    let url = run.content_store.clone().unwrap_or_default();
    let left = objects_under(&url).await;
    let client = pg_connect(&run.db).await;
    let mut referenced: Vec<String> = client
        .query(
            "SELECT DISTINCT content_object FROM artifact_versions WHERE content_object IS NOT NULL",
            &[],
        )
        .await
        .expect("rows read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    referenced.sort();
    run.figures
        .extra
        .insert("objects".into(), (left.len() as u64).into());
    if left != referenced {
        eprintln!(
            "[{} #{}] objects left {} != referenced {}",
            run.fault,
            run.rep,
            left.len(),
            referenced.len()
        );
        return false;
    }
    !referenced.is_empty()
}

/// Sends `signal` (STOP or CONT) to the local S3 server.
fn signal_s3(signal: &str) {
    let stack = std::env::var("BUCKET_STACK_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.stack").to_string());
    let pid = std::fs::read_to_string(format!("{stack}/pids/s3.pid")).expect("s3 pid file");
    let status = Command::new("kill")
        .args([&format!("-{signal}"), pid.trim()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} of the S3 server failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "stops the S3 server and kills the sink: run deploy/faults.sh"]
async fn fault_s3_outage_and_sink_killed_mid_upload() {
    let _serial = serial().await;
    let k = knobs();
    for rep in 0..k.reps {
        let mut run = Run::start("s3", rep, 2, false).await;
        run.content_store = Some(content_store_url(&format!("faults{}", run.sfx)));
        let feeder = run.load(700 + rep as u64).await;
        run.fault_begins(&feeder);
        outage("s3.sh", k.outage).await;
        signal_s3("STOP");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        if let Some(s) = run.sink.as_mut() {
            s.kill9();
        }
        run.sink = Some(run.spawn_sink());
        tokio::time::sleep(Duration::from_millis(500)).await;
        signal_s3("CONT");
        let mut seed = 0x53_u64 ^ ((rep as u64 + 1) << 8);
        for _ in 0..k.kills {
            tokio::time::sleep(Duration::from_millis(200 + xorshift(&mut seed) % 800)).await;
            if let Some(s) = run.sink.as_mut() {
                s.kill9();
            }
            run.sink = Some(run.spawn_sink());
        }
        run.figures.note = format!(
            "s3.sh stop, {}s down, start; frozen 1.5 s and the sink killed mid-upload; then {} kill -9 of the sink",
            k.outage.as_secs(),
            k.kills
        );
        run.catch_up(Instant::now()).await;
        run.finish(feeder).await;
    }
}

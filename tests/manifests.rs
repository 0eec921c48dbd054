//! The deployment files, checked without any service: deploy/compose/docker-compose.yml and
//! every manifest of the kustomize base deploy/k8s/base/ parse; every container command line
//! (workloads, Jobs, CronJobs) is accepted by the real
//! `bucket` binary (`bucket config check`, the same parser and config layering the container
//! runs); every environment variable given to a container is read by a flag of its command;
//! probes, ports, selectors, secrets, config maps, autoscaling bounds and topic names agree with
//! each other and with topics/topics.toml; deploy/k8s/base/topics.yaml and kafka-users.yaml are
//! exactly what `bucket topics manifests` and `bucket acls manifests` print; the shipped policy
//! is approved by the shipped pin (not pinned to any bytes); alert expressions use only the
//! metrics the binaries export. The rendered overlays are validated strictly against the API
//! types by tests/k8s-validate (Go).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bucket");
const IMAGE: &str = concat!("bhiv/bucket:", env!("CARGO_PKG_VERSION"));
const NAMESPACE: &str = "bhiv-bucket";

/// The metrics the gate, the sink and the read API export (name, labels); histograms also have `_bucket`,
/// `_sum` and `_count` series.
const METRICS: &[(&str, &[&str])] = &[
    (
        "bucket_gate_decisions_total",
        &["product", "outcome", "reason"],
    ),
    ("bucket_gate_decision_duration_seconds", &[]),
    ("bucket_gate_rate_limited_total", &["product"]),
    ("bucket_gate_cooling_off_integrations", &[]),
    ("bucket_gate_quota_used_bytes", &["product"]),
    ("bucket_gate_quota_limit_bytes", &["product"]),
    ("bucket_gate_consumer_lag", &["partition"]),
    ("bucket_gate_transaction_commit_duration_seconds", &[]),
    ("bucket_gate_transactions_aborted_total", &[]),
    ("bucket_gate_assigned_partitions", &[]),
    ("bucket_gate_registry_up", &[]),
    ("bucket_gate_redis_up", &[]),
    ("bucket_gate_redis_enabled", &[]),
    ("bucket_gate_governance_events_total", &["event_type"]),
    ("bucket_sink_artifacts_written_total", &[]),
    ("bucket_sink_write_duration_seconds", &[]),
    ("bucket_sink_consumer_lag", &["partition"]),
    ("bucket_sink_versions_quarantined_total", &[]),
    ("bucket_sink_undecodable_total", &[]),
    ("bucket_api_throttled_total", &["product", "limit"]),
];
/// Metrics of the tiles service and the witness that alerts use (not required to be watched).
const AUDIT_METRICS: &[(&str, &[&str])] = &[
    ("bucket_tlog_tree_size", &["partition"]),
    ("bucket_tlog_published_size", &["partition"]),
    ("bucket_tlog_lag_records", &["partition"]),
    ("bucket_tlog_checkpoint_mismatches_total", &[]),
    ("bucket_witness_alerts_total", &[]),
];
/// Platform metrics alerts may use: kubelet volume stats, kube-state-metrics' Job status.
const PLATFORM_METRICS: &[(&str, &[&str])] = &[
    (
        "kubelet_volume_stats_available_bytes",
        &["persistentvolumeclaim"],
    ),
    (
        "kubelet_volume_stats_capacity_bytes",
        &["persistentvolumeclaim"],
    ),
    ("kube_job_status_failed", &["job_name"]),
];
const HISTOGRAMS: &[&str] = &[
    "bucket_gate_decision_duration_seconds",
    "bucket_gate_transaction_commit_duration_seconds",
    "bucket_sink_write_duration_seconds",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|x| match x {
            Value::String(t) => t.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("not a scalar: {other:?}"),
        })
        .collect()
}

fn base() -> PathBuf {
    root().join("deploy/k8s/base")
}

/// Every document of every file of the kustomize base, and of deploy/k8s/secrets.example.yaml.
fn k8s() -> Vec<(String, Value)> {
    let dir = base();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/k8s/base")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files.push(root().join("deploy/k8s/secrets.example.yaml"));
    assert!(
        files.len() >= 8,
        "deploy/k8s/base has its manifests: {files:?}"
    );
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        for doc in yaml_docs(&f) {
            out.push((name.clone(), doc));
        }
    }
    out
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/k8s/base"))
}

/// The gate is a StatefulSet, the sink and the API Deployments.
fn workload<'a>(docs: &'a [(String, Value)], name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| {
            (d["kind"] == "Deployment" || d["kind"] == "StatefulSet")
                && d["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no workload {name} in deploy/k8s/base"))
}

/// The ConfigMaps the base's kustomization.yaml generates.
fn generated_config_maps() -> Vec<String> {
    let k = yaml_docs(&base().join("kustomization.yaml"));
    k[0]["configMapGenerator"]
        .as_sequence()
        .expect("configMapGenerator")
        .iter()
        .map(|g| s(&g["name"]).to_string())
        .collect()
}

fn compose() -> Value {
    let docs = yaml_docs(&root().join("deploy/compose/docker-compose.yml"));
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().expect("one document")
}

/// A container's environment as the binary sees it, with the repository's copy of each mounted
/// file (the ConfigMap and the compose mount are byte-for-byte deploy/bucket.toml) and a
/// placeholder for values that come from secrets.
fn container_env(env: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match env {
        Value::Null => {}
        Value::Mapping(m) => {
            for (k, v) in m {
                let val = match v {
                    Value::String(t) => t.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => panic!("env value {other:?}"),
                };
                out.insert(s(k).to_string(), val);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                let val = match (&item["value"], &item["valueFrom"]) {
                    (Value::String(t), _) => t.clone(),
                    (_, Value::Mapping(_)) => "from-a-secret".to_string(),
                    other => panic!("env item {other:?}"),
                };
                out.insert(s(&item["name"]).to_string(), val);
            }
        }
        other => panic!("env {other:?}"),
    }
    out
}

/// Runs `bucket config check --json <args>` with `env` (the config file mapped to the repo's)
/// and returns the effective settings, or the parser's complaint.
fn check(args: &[String], env: &BTreeMap<String, String>) -> Result<serde_json::Value, String> {
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "check", "--json"]).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("BUCKET_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        let v = if k == "BUCKET_CONFIG" {
            assert!(
                v.ends_with("/bucket.toml"),
                "BUCKET_CONFIG points at the mounted bucket.toml: {v}"
            );
            root().join("deploy/bucket.toml").display().to_string()
        } else {
            v.clone()
        };
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bucket");
    if !out.status.success() {
        return Err(format!(
            "`bucket {}` refused: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("config check output: {e}"))
}

/// Checks one container (one or several `bucket` invocations sharing an environment): every
/// command line parses, and every BUCKET_* variable is read by a flag of one of the commands
/// (or is referenced as `$(VAR)` in the arguments). Returns the effective settings per command.
fn check_container(
    what: &str,
    invocations: &[Vec<String>],
    env: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) -> Vec<BTreeMap<String, (Option<String>, String)>> {
    let mut consumed: BTreeSet<String> = BTreeSet::new();
    let mut all = Vec::new();
    for args in invocations {
        match check(args, env) {
            Ok(doc) => {
                let mut settings = BTreeMap::new();
                for row in doc["settings"].as_array().expect("settings") {
                    let key = row["key"].as_str().expect("key").to_string();
                    let value = row["value"].as_str().map(str::to_string);
                    let source = row["source"].as_str().expect("source").to_string();
                    if source == "env"
                        && let Some(e) = row["env"].as_str()
                    {
                        consumed.insert(e.to_string());
                    }
                    settings.insert(key, (value, source));
                }
                all.push(settings);
            }
            Err(e) => problems.push(format!("{what}: {e}")),
        }
    }
    if all.len() == invocations.len() {
        let joined = invocations.concat().join(" ");
        for var in env.keys().filter(|k| k.starts_with("BUCKET_")) {
            if var == "BUCKET_CONFIG"
                || consumed.contains(var)
                || joined.contains(&format!("$({var})"))
            {
                continue;
            }
            problems.push(format!(
                "{what}: {var} is read by no flag of `{}`",
                invocations
                    .iter()
                    .map(|a| a.join(" "))
                    .collect::<Vec<_>>()
                    .join("`, `")
            ));
        }
    }
    all
}

fn partitions(topic: &str) -> i64 {
    bhiv_bucket::ops::topics::parse(bhiv_bucket::ops::topics::DEFAULT_DECLARATION, None)
        .expect("topics.toml")
        .into_iter()
        .find(|t| t.name == topic)
        .map(|t| i64::from(t.partitions))
        .unwrap_or_else(|| panic!("{topic} is not declared"))
}

#[test]
fn compose_declares_the_stack_and_every_command_line_parses() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().map(s).collect();
    for want in [
        "kafka", "registry", "redis", "postgres", "init", "gate", "sink", "api",
    ] {
        assert!(names.contains(want), "compose service {want} missing");
    }
    let svc = |n: &str| &c["services"][n];
    assert_eq!(svc("kafka")["image"], "apache/kafka:4.1.1");
    assert_eq!(svc("registry")["image"], "apicurio/apicurio-registry:3.0.9");
    assert_eq!(svc("redis")["image"], "redis:7");
    assert_eq!(svc("postgres")["image"], "postgres:15");
    assert_eq!(
        svc("registry")["environment"]["APICURIO_STORAGE_KIND"],
        "sql"
    );
    assert_eq!(
        svc("registry")["environment"]["APICURIO_STORAGE_SQL_KIND"],
        "postgresql"
    );
    assert_eq!(
        svc("kafka")["environment"]["KAFKA_PROCESS_ROLES"],
        "broker,controller"
    );

    let compose_dir = root().join("deploy/compose");
    let dockerfile = svc("init")["build"]["dockerfile"]
        .as_str()
        .expect("dockerfile");
    let context = compose_dir.join(s(&svc("init")["build"]["context"]));
    let docker = read(&context.join(dockerfile));
    assert!(docker.contains("FROM rust:1"), "builder stage on rust:1");
    assert!(docker.contains("FROM debian:bookworm-slim"));
    for name in ["init", "gate", "sink", "api"] {
        assert_eq!(svc(name)["image"], IMAGE, "{name} runs the bucket image");
    }
    for name in ["gate", "sink", "api"] {
        assert_eq!(
            svc(name)["depends_on"]["init"]["condition"],
            "service_completed_successfully",
            "{name} waits for the init job"
        );
    }
    // Bind mounts and secret files exist.
    for (name, service) in services {
        if let Some(vols) = service["volumes"].as_sequence() {
            for v in vols {
                let src = s(v).split(':').next().expect("source");
                if src.starts_with('.') {
                    assert!(
                        compose_dir.join(src).exists(),
                        "{}: mount source {src} missing",
                        s(name)
                    );
                }
            }
        }
    }
    for (_, secret) in c["secrets"].as_mapping().expect("secrets") {
        assert!(compose_dir.join(s(&secret["file"])).exists());
    }

    let mut problems = Vec::new();
    // The init job is a shell script of bucket commands.
    assert_eq!(strings(&svc("init")["entrypoint"]), ["/bin/sh", "-ec"]);
    let script = strings(&svc("init")["command"]).concat();
    let init: Vec<Vec<String>> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words: Vec<String> = l.split_whitespace().map(str::to_string).collect();
            assert_eq!(words.remove(0), "bucket", "init runs only bucket: {l}");
            words
        })
        .collect();
    let firsts: Vec<Vec<&str>> = init
        .iter()
        .map(|a| a.iter().take(2).map(String::as_str).collect())
        .collect();
    assert_eq!(
        firsts,
        [
            vec!["topics", "apply"],
            vec!["schemas", "apply"],
            vec!["sink", "migrate"]
        ]
    );
    let env = container_env(&svc("init")["environment"]);
    check_container("compose init", &init, &env, &mut problems);
    for name in ["gate", "sink", "api"] {
        let args = strings(&svc(name)["command"]);
        assert_eq!(args[0], name);
        let env = container_env(&svc(name)["environment"]);
        check_container(&format!("compose {name}"), &[args], &env, &mut problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn k8s_manifests_agree_with_each_other_and_the_cli() {
    let docs = k8s();
    for (file, d) in &docs {
        assert!(
            d["apiVersion"].is_string() && d["kind"].is_string(),
            "{file}"
        );
        let kind = s(&d["kind"]);
        if kind == "Kustomization" {
            let listed = strings(&d["resources"]);
            for r in &listed {
                assert!(base().join(r).exists(), "{file}: {r}");
            }
            // Everything but the example Secrets is applied by `kubectl apply -k`.
            for (other, _) in &docs {
                let skip = other == file || other == "secrets.example.yaml";
                assert!(skip || listed.contains(other), "{file} misses {other}");
            }
            for g in d["configMapGenerator"].as_sequence().expect("generators") {
                for f in strings(&g["files"]) {
                    assert!(base().join(&f).exists(), "{file}: {f}");
                }
            }
            continue;
        }
        if kind != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], NAMESPACE, "{file}: {kind}");
        }
    }
    let secrets: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "Secret")
        .collect();
    let secret_has = |name: &str, key: &str| {
        secrets
            .iter()
            .any(|d| d["metadata"]["name"] == name && !d["stringData"][key].is_null())
    };
    let config_maps: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "ConfigMap")
        .collect();

    let generated = generated_config_maps();
    let mut problems = Vec::new();
    let mut effective = BTreeMap::new();
    let mut brokers = BTreeMap::new();
    for (deploy, container, port, health, ready) in [
        ("bucket-gate", "gate", 9600, "/healthz", "/readyz"),
        ("bucket-sink", "sink", 9601, "/healthz", "/readyz"),
        ("bucket-api", "api", 8088, "/healthz", "/healthz"),
    ] {
        let d = workload(&docs, deploy);
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        for (k, v) in d["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .expect("selector")
        {
            assert_eq!(
                &labels[s(k)],
                v,
                "{deploy}: selector matches the pod labels"
            );
        }
        let pod = &d["spec"]["template"]["spec"];
        let c = pod["containers"]
            .as_sequence()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == container)
            .unwrap_or_else(|| panic!("{deploy}: no container {container}"));
        assert_eq!(c["image"], IMAGE, "{deploy}");
        let ports: Vec<(&str, i64)> = c["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or(""),
                    p["containerPort"].as_i64().expect("containerPort"),
                )
            })
            .collect();
        assert!(
            ports.iter().any(|(_, p)| *p == port),
            "{deploy} declares port {port}"
        );
        for (probe, path) in [("livenessProbe", health), ("readinessProbe", ready)] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"], path, "{deploy} {probe}");
            let p = match &get["port"] {
                Value::String(name) => ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| *p)
                    .unwrap_or_else(|| panic!("{deploy} {probe}: no port named {name}")),
                Value::Number(n) => n.as_i64().expect("port"),
                other => panic!("{deploy} {probe}: port {other:?}"),
            };
            assert_eq!(p, port, "{deploy} {probe} probes the declared port");
        }
        let args = strings(&c["args"]);
        assert_eq!(args[0], container);
        if container != "api" {
            let at = args
                .iter()
                .position(|a| a == "--admin-addr")
                .unwrap_or_else(|| panic!("{deploy}: --admin-addr"));
            assert_eq!(args[at + 1], format!("0.0.0.0:{port}"), "{deploy}");
            assert!(
                args.windows(2)
                    .any(|w| w[0] == "--admin-token" && w[1] == "$(BUCKET_ADMIN_TOKEN)"),
                "{deploy}: --admin-token from the Secret"
            );
        }
        let env = container_env(&c["env"]);
        for item in c["env"].as_sequence().expect("env") {
            let r = &item["valueFrom"]["secretKeyRef"];
            if !r.is_null() && !secret_has(s(&r["name"]), s(&r["key"])) {
                problems.push(format!(
                    "{deploy}: secret {}/{} is not in secrets.example.yaml",
                    s(&r["name"]),
                    s(&r["key"])
                ));
            }
        }
        if let Some(b) = env.get("BUCKET_BROKERS") {
            brokers.insert(deploy, b.clone());
        }
        // Volumes refer to the ConfigMaps and Secrets declared here.
        for v in pod["volumes"].as_sequence().expect("volumes") {
            let mut cms = vec![&v["configMap"]];
            let mut secs = vec![&v["secret"]];
            if let Some(sources) = v["projected"]["sources"].as_sequence() {
                cms.extend(sources.iter().map(|x| &x["configMap"]));
                secs.extend(sources.iter().map(|x| &x["secret"]));
            }
            for cm in cms.into_iter().filter(|x| !x.is_null()) {
                assert!(
                    config_maps
                        .iter()
                        .any(|d| d["metadata"]["name"] == cm["name"])
                        || generated.iter().any(|g| cm["name"] == g.as_str()),
                    "{deploy}: ConfigMap {:?}",
                    cm["name"]
                );
            }
            for sec in secs.into_iter().filter(|x| !x.is_null()) {
                let name = sec["secretName"].as_str().or(sec["name"].as_str());
                let name = name.expect("secret name");
                if name == "bucket-api-tokens" {
                    continue;
                }
                for item in sec["items"].as_sequence().into_iter().flatten() {
                    assert!(secret_has(name, s(&item["key"])), "{deploy}: {name}");
                }
                {
                    assert!(
                        secrets.iter().any(|d| d["metadata"]["name"] == name),
                        "{deploy}: Secret {name} is in secrets.example.yaml"
                    );
                }
            }
        }
        let settings = check_container(&format!("k8s {deploy}"), &[args], &env, &mut problems);
        if let Some(first) = settings.into_iter().next() {
            effective.insert(deploy, first);
        }
    }

    // Disruption budgets select existing Deployments.
    for (_, pdb) in docs
        .iter()
        .filter(|(_, d)| d["kind"] == "PodDisruptionBudget")
    {
        let sel = &pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"];
        workload(&docs, s(sel));
    }
    for name in ["bucket-gate", "bucket-sink"] {
        find(&docs, "PodDisruptionBudget", name);
    }

    // Autoscaling: the consumer group and topic each role really uses, one replica per
    // partition at most.
    for (deploy, topic) in [
        ("bucket-gate", "bucket.intents"),
        ("bucket-sink", "bucket.accepted"),
    ] {
        let so = find(&docs, "ScaledObject", deploy);
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], deploy);
        assert_eq!(
            so["spec"]["maxReplicaCount"].as_i64(),
            Some(partitions(topic)),
            "{deploy}: max replicas = partitions of {topic}"
        );
        let t = &so["spec"]["triggers"][0];
        assert_eq!(t["type"], "kafka");
        assert_eq!(t["metadata"]["topic"], topic);
        if let Some(settings) = effective.get(deploy) {
            let group = settings["group"].0.clone().expect("group");
            assert_eq!(t["metadata"]["consumerGroup"], group.as_str(), "{deploy}");
            let b = settings["brokers"].0.clone().expect("brokers");
            assert_eq!(t["metadata"]["bootstrapServers"], b.as_str(), "{deploy}");
        }
        assert!(
            t["metadata"]["lagThreshold"].is_string(),
            "KEDA wants strings"
        );
    }
    assert_eq!(brokers["bucket-gate"], brokers["bucket-sink"]);

    // Metrics are scraped from the admin port of both roles.
    let pm = find(&docs, "PodMonitor", "bucket");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["port"], "admin");
    assert_eq!(pm["spec"]["podMetricsEndpoints"][0]["path"], "/metrics");

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn k8s_config_maps_are_the_repository_files() {
    let docs = k8s();
    let cfg = find(&docs, "ConfigMap", "bucket-config");
    assert_eq!(
        s(&cfg["data"]["bucket.toml"]),
        read(&root().join("deploy/bucket.toml")),
        "deploy/k8s/base/configmap.yaml: bucket.toml differs from deploy/bucket.toml"
    );
}

/// The policy the manifests ship is any policy an adopter likes, as long as the approvers the
/// manifests pin signed it: the gate would refuse to start otherwise.
#[test]
fn k8s_policy_is_approved_by_the_pinned_approvers() {
    // As the gate sees it: the policy, its signatures beside it, and the HMAC secrets it names
    // (file:demo/keys/..., mounted from a Secret there; the demo's own files here).
    let dir = std::env::temp_dir().join(format!("k8s-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policy.toml.approvals")).expect("temp dir");
    std::fs::copy(base().join("policy/policy.toml"), dir.join("policy.toml")).expect("copy");
    for e in std::fs::read_dir(base().join("policy/policy.toml.approvals")).expect("sigs") {
        let e = e.expect("entry");
        std::fs::copy(
            e.path(),
            dir.join("policy.toml.approvals").join(e.file_name()),
        )
        .expect("copy");
    }
    std::os::unix::fs::symlink(root().join("deploy/demo"), dir.join("demo")).expect("symlink");
    let policy = dir.join("policy.toml");
    let pin = base().join("approvers/allowed_signers");
    let gate = workload(&k8s(), "bucket-gate").clone();
    let env = container_env(&gate["spec"]["template"]["spec"]["containers"][0]["env"]);
    let required = env
        .get("BUCKET_POLICY_APPROVALS_REQUIRED")
        .expect("the gate pins approvals")
        .clone();
    assert!(env.contains_key("BUCKET_POLICY_APPROVERS"));
    let out = Command::new(BIN)
        .args(["policy", "check"])
        .arg(&policy)
        .arg("--approvers")
        .arg(&pin)
        .args(["--approvals-required", &required])
        .env_remove("BUCKET_CONFIG")
        .output()
        .expect("run bucket");
    assert!(
        out.status.success(),
        "{} is not approved by {}: {}{}",
        policy.display(),
        pin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every signature shipped is mounted where the gate looks (<policy>.approvals/).
    let sigs: Vec<String> = std::fs::read_dir(base().join("policy/policy.toml.approvals"))
        .expect("approvals")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mounted =
        serde_norway::to_string(&gate["spec"]["template"]["spec"]["volumes"]).expect("volumes");
    for sig in sigs {
        assert!(
            mounted.contains(&format!("path: policy.toml.approvals/{sig}")),
            "{sig} is not projected into the gate's policy volume"
        );
    }
}

/// Bootstrap Jobs and CronJobs: each command line parses and each variable is read.
#[test]
fn k8s_jobs_and_schedules_run_real_commands() {
    let docs = k8s();
    let mut problems = Vec::new();
    let mut seen = 0;
    for (_, d) in &docs {
        let pod = match d["kind"].as_str() {
            Some("Job") => &d["spec"]["template"]["spec"],
            Some("CronJob") => &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        seen += 1;
        let name = s(&d["metadata"]["name"]);
        for c in pod["containers"].as_sequence().expect("containers") {
            assert_eq!(c["image"], IMAGE, "{name}");
            let args = strings(&c["args"]);
            let env = container_env(&c["env"]);
            check_container(&format!("k8s {name}"), &[args], &env, &mut problems);
        }
    }
    assert!(seen >= 5, "{seen} Jobs and CronJobs");
    for name in ["bucket-tiles", "bucket-witness"] {
        let d = workload(&docs, name);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let env = container_env(&c["env"]);
        check_container(
            &format!("k8s {name}"),
            &[strings(&c["args"])],
            &env,
            &mut problems,
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn k8s_kafka_users_are_generated_from_the_acl_declaration() {
    let out = Command::new(BIN)
        .args(["acls", "manifests"])
        .current_dir(root())
        .env_remove("BUCKET_CONFIG")
        .env_remove("BUCKET_TOPIC_SUFFIX")
        .env_remove("BUCKET_ACLS")
        .output()
        .expect("run bucket");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let committed = read(&base().join("kafka-users.yaml"));
    assert!(
        generated == committed,
        "deploy/k8s/base/kafka-users.yaml is stale: run `cargo run --bin bucket -- acls \
         manifests --out deploy/k8s/base/kafka-users.yaml`"
    );
    // The ACL Job's copy of the declaration (kustomize reads no file outside its directory).
    assert!(
        read(&root().join("deploy/k8s/components/kafka-acls-job/acls.toml"))
            == read(&root().join("deploy/acls.toml")),
        "deploy/k8s/components/kafka-acls-job/acls.toml differs from deploy/acls.toml: copy it"
    );
    // Each workload's Kafka principal (production overlay) has a KafkaUser.
    let users: Vec<String> = k8s()
        .iter()
        .filter(|(_, d)| d["kind"] == "KafkaUser")
        .map(|(_, d)| s(&d["metadata"]["name"]).to_string())
        .collect();
    for u in ["gate", "sink", "auditor", "admin"] {
        assert!(users.iter().any(|x| x == u), "no KafkaUser {u}: {users:?}");
    }
}

#[test]
fn k8s_topics_are_generated_from_the_declaration() {
    let out = Command::new(BIN)
        .args(["topics", "manifests", "--format", "strimzi"])
        .env_remove("BUCKET_CONFIG")
        .env_remove("BUCKET_TOPIC_SUFFIX")
        .output()
        .expect("run bucket");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    let committed = read(&base().join("topics.yaml"));
    assert!(
        generated == committed,
        "deploy/k8s/base/topics.yaml is stale: run `cargo run --bin bucket -- topics manifests \
         --format strimzi --out deploy/k8s/base/topics.yaml`"
    );
    let docs = k8s();
    let topics: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"] == "KafkaTopic")
        .collect();
    let declared =
        bhiv_bucket::ops::topics::parse(bhiv_bucket::ops::topics::DEFAULT_DECLARATION, None)
            .expect("topics.toml")
            .len();
    assert_eq!(topics.len(), declared);
    for t in topics {
        let name = s(&t["spec"]["topicName"]);
        assert_eq!(t["spec"]["partitions"].as_i64(), Some(partitions(name)));
    }
}

/// Identifiers of a PromQL expression that name series (not functions, keywords or labels).
fn promql_metrics(expr: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    const FUNCS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "rate",
        "irate",
        "increase",
        "delta",
        "deriv",
        "absent",
        "absent_over_time",
        "histogram_quantile",
        "min_over_time",
        "max_over_time",
        "avg_over_time",
        "clamp_min",
        "clamp_max",
        "topk",
        "bottomk",
        "changes",
        "resets",
    ];
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset"];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let mut i = 0;
    let mut last_ident: Option<String> = None;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '"' | '\'' => {
                let end = expr[i + 1..]
                    .find(c)
                    .ok_or_else(|| format!("unterminated string in {expr}"))?;
                i += end + 2;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let end = expr[i..]
                    .find(close)
                    .ok_or_else(|| format!("unbalanced {c} in {expr}"))?;
                if c == '{' {
                    for m in expr[i + 1..i + end].split(',') {
                        let name = m.split(['=', '!', '~']).next().unwrap_or("").trim();
                        if !name.is_empty() {
                            labels.insert(name.to_string());
                        }
                    }
                }
                i += end + 1;
            }
            '(' if last_ident.as_deref().is_some_and(|l| GROUPING.contains(&l)) => {
                let end = expr[i..]
                    .find(')')
                    .ok_or_else(|| format!("unbalanced ( in {expr}"))?;
                for l in expr[i + 1..i + end].split(',') {
                    labels.insert(l.trim().to_string());
                }
                last_ident = None;
                i += end + 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < b.len()
                    && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let ident = &expr[start..i];
                let next = expr[i..].trim_start().chars().next();
                if GROUPING.contains(&ident) || KEYWORDS.contains(&ident) {
                    // handled by the '(' arm, or an operator
                } else if FUNCS.contains(&ident) {
                    // a function or an aggregation (`sum by (le) (...)`)
                } else if next == Some('(') {
                    return Err(format!("unknown function {ident} in {expr}"));
                } else {
                    metrics.insert(ident.to_string());
                }
                last_ident = Some(ident.to_string());
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                last_ident = None;
                continue;
            }
            _ => {
                if !c.is_whitespace() {
                    last_ident = None;
                }
                i += 1;
            }
        }
    }
    Ok((metrics, labels))
}

fn known_metric(name: &str) -> bool {
    METRICS
        .iter()
        .chain(AUDIT_METRICS)
        .chain(PLATFORM_METRICS)
        .any(|(m, _)| *m == name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|base| HISTOGRAMS.contains(&base))
        })
}

#[test]
fn the_promql_check_can_fail() {
    let (m, l) = promql_metrics(
        "sum by (product) (rate(bucket_gate_decisions_total{outcome=~\"x|y\"}[5m])) > 0 \
         and on() up == 1",
    )
    .expect("parses");
    assert!(m.contains("bucket_gate_decisions_total") && m.contains("up"));
    assert!(l.contains("product") && l.contains("outcome"));
    assert!(!known_metric("up"));
    assert!(known_metric("bucket_sink_write_duration_seconds_bucket"));
    assert!(!known_metric("bucket_gate_decisions_total_bucket"));
    assert!(promql_metrics("nonsense_fn(bucket_gate_redis_up)").is_err());
}

#[test]
fn alerts_use_only_exported_metrics_and_each_has_a_runbook_entry() {
    let docs = yaml_docs(&base().join("alerts.yaml"));
    assert_eq!(docs.len(), 1);
    let rule = &docs[0];
    assert_eq!(rule["kind"], "PrometheusRule");
    let runbook = read(&root().join("docs/runbook.md"));
    let all_labels: BTreeSet<&str> = METRICS
        .iter()
        .chain(AUDIT_METRICS)
        .chain(PLATFORM_METRICS)
        .flat_map(|(_, l)| l.iter().copied())
        .chain(["le"])
        .collect();
    let mut names = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for group in rule["spec"]["groups"].as_sequence().expect("groups") {
        for r in group["rules"].as_sequence().expect("rules") {
            let name = s(&r["alert"]).to_string();
            assert!(names.insert(name.clone()), "alert {name} twice");
            let expr = s(&r["expr"]);
            match promql_metrics(expr) {
                Ok((metrics, labels)) => {
                    for m in &metrics {
                        if known_metric(m) {
                            used.insert(m.clone());
                        } else {
                            problems.push(format!("{name}: unknown metric {m}"));
                        }
                    }
                    for l in labels {
                        if !all_labels.contains(l.as_str()) && !l.is_empty() {
                            problems.push(format!("{name}: unknown label {l}"));
                        }
                    }
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
            let sev = s(&r["labels"]["severity"]);
            assert!(["critical", "warning", "info"].contains(&sev), "{name}");
            let anchor = name.to_lowercase();
            assert_eq!(
                r["annotations"]["runbook_url"],
                format!("docs/runbook.md#{anchor}").as_str(),
                "{name}"
            );
            if !runbook.contains(&format!("\n### {name}\n")) {
                problems.push(format!("docs/runbook.md has no `### {name}` entry"));
            }
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    // Every exported metric is watched by at least one alert.
    for (m, _) in METRICS {
        let watched = used
            .iter()
            .any(|u| u == m || u.starts_with(&format!("{m}_")));
        if !watched {
            problems.push(format!("no alert watches {m}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn compose_and_k8s_run_the_same_image_and_environment_names() {
    let c = compose();
    let docs = k8s();
    for (svc, deploy) in [
        ("gate", "bucket-gate"),
        ("sink", "bucket-sink"),
        ("api", "bucket-api"),
    ] {
        let compose_env: BTreeSet<String> = container_env(&c["services"][svc]["environment"])
            .into_keys()
            .collect();
        let d = workload(&docs, deploy);
        let container = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], c["services"][svc]["image"]);
        let k8s_env: BTreeSet<String> = container_env(&container["env"]).into_keys().collect();
        // The admin token comes from a Secret, the gate's id from the pod name, on Kubernetes
        // only (compose passes --instance-id); the sink, a Deployment whose pod names change
        // on every rollout, is a dynamic member there (BUCKET_STATIC_MEMBERSHIP=false).
        let k8s_only = [
            "BUCKET_ADMIN_TOKEN",
            "BUCKET_INSTANCE_ID",
            "BUCKET_STATIC_MEMBERSHIP",
        ];
        let k8s_env: BTreeSet<String> = k8s_env
            .into_iter()
            .filter(|e| !k8s_only.contains(&e.as_str()))
            .collect();
        assert_eq!(
            compose_env, k8s_env,
            "{svc}: same variables on both targets"
        );
    }
}

/// Runs the binary with only the given BUCKET_* variables.
fn bucket(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("BUCKET_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run bucket")
}

#[test]
fn precedence_is_flag_then_environment_then_file_then_default() {
    let file = root().join("deploy/bucket.toml");
    let file = file.to_str().expect("utf-8 path");
    let out = bucket(
        &["config", "check", "--json", "gate", "--group", "from-cli"],
        &[("BUCKET_CONFIG", file), ("BUCKET_BROKERS", "from-env:9092")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let get = |key: &str| {
        let row = doc["settings"]
            .as_array()
            .expect("settings")
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .clone();
        (
            row["value"].as_str().map(str::to_string),
            row["source"].as_str().expect("source").to_string(),
        )
    };
    assert_eq!(get("group"), (Some("from-cli".into()), "cli".into()));
    assert_eq!(get("brokers"), (Some("from-env:9092".into()), "env".into()));
    assert_eq!(
        get("commit-interval-ms"),
        (Some("100".into()), "file".into())
    );
    assert_eq!(get("audit-key-file"), (None, "unset".into()));
    assert_eq!(get("checkpoint-interval-s").1, "file");
    assert_eq!(doc["file"].as_str(), Some(file));

    // The environment also beats the file when the flag is on neither side.
    let out = bucket(
        &["config", "check", "--json", "gate"],
        &[("BUCKET_CONFIG", file), ("BUCKET_GATE_GROUP", "from-env")],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let group = doc["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|r| r["key"] == "group")
        .expect("group")
        .clone();
    assert_eq!(group["value"], "from-env");
    assert_eq!(group["source"], "env");
}

#[test]
fn a_bad_config_file_stops_every_command_naming_file_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "[gate]\nbrokers = \"k:9092\"\ncommit-intervall-ms = 5\n",
    )
    .expect("write");
    let f = f.to_str().expect("utf-8 path");
    for args in [
        vec!["--config", f, "config", "check", "gate"],
        vec!["--config", f, "policy", "check"],
    ] {
        let out = bucket(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("commit-intervall-ms") && err.contains(f) && err.contains("[gate]"),
            "{err}"
        );
    }
    let out = bucket(&["config", "check", "gate"], &[("BUCKET_CONFIG", f)]);
    assert_eq!(out.status.code(), Some(2));
}

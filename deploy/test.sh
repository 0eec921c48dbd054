#!/usr/bin/env bash
# The test command (README, CI): installs and starts the local stack if it is not running,
# runs every check and test against it, and stops what it started.
#
#   deploy/test.sh            formatting, clippy, unused dependencies, unit + integration tests and
#                             bench smoke runs (`bucket-bench --quick`, `state`, `tlog`, `tiles-lag`,
#                             `content`) on the plain profile; then the stack's production profile
#                             (SASL_SSL/mTLS with ACLs, Redis TLS): the demo and the short fault
#                             suite (deploy/faults.sh --short) run on it; fuzzing last
#
# Environment: everything in deploy/local/env.sh (ports, data and cache dirs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
t0=$SECONDS

started=0
if ! bash deploy/local/status.sh >/dev/null 2>&1; then
  started=1
fi
# The profile a running stack had: put back at the end (the run switches it).
previous_profile="$(cat "${BUCKET_STACK_DIR:-$ROOT/.stack}/profile" 2>/dev/null || echo plain)"
cleanup() {
  rc=$?
  bash deploy/demo.sh stop >/dev/null 2>&1 || true
  if (( started )); then
    step "stopping the local stack this run started"
    bash deploy/local/down.sh || true
  elif [[ "$previous_profile" != "$(cat "${BUCKET_STACK_DIR:-$ROOT/.stack}/profile" 2>/dev/null || echo plain)" ]]; then
    step "putting the running stack back on its profile ($previous_profile)"
    bash deploy/local/up.sh --profile "$previous_profile" >/dev/null || true
  fi
  printf '\n==> test run finished in %ss (exit %s)\n' "$((SECONDS - t0))" "$rc"
  exit "$rc"
}
trap cleanup EXIT

step "local stack (Kafka, Apicurio Registry, Redis, PostgreSQL, S3), plain profile"
bash deploy/local/up.sh --profile plain

step "formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The benchmark binary and its module (feature `bench`, not in the production binary).
cargo clippy --all-targets --locked --features bench -- -D warnings

step "supply chain: cargo deny (licences, bans/duplicates, sources; advisories with BUCKET_ADVISORY_DB)"
# cargo-deny is installed once into ~/.cargo/bin. The run probes no outside host: the advisories
# check runs only against a local clone of the RustSec advisory database that the operator names
# in BUCKET_ADVISORY_DB; without one the other three checks still gate the run (docs/security.md).
if ! command -v cargo-deny >/dev/null 2>&1; then
  timeout 1200 cargo install --locked cargo-deny
fi
if [[ -n "${BUCKET_ADVISORY_DB:-}" ]]; then
  # A local clone of the RustSec advisory-db repository (any URL or path git can clone), placed
  # where cargo-deny keeps the database for the URL in deny.toml, and checked without fetching.
  DENY_DBS="${BUCKET_CACHE_DIR:-$HOME/.cache/bhiv-bucket}/advisory-dbs"
  rm -rf "$DENY_DBS" && mkdir -p "$DENY_DBS"
  git clone -q "$BUCKET_ADVISORY_DB" "$DENY_DBS/advisory-db-3157b0e258782691"
  echo "advisory DB: local clone of $BUCKET_ADVISORY_DB at $(git -C "$DENY_DBS/advisory-db-3157b0e258782691" log -1 --format='%h %cs')"
  sed "s|^db-urls = .*|&\ndb-path = \"$DENY_DBS\"|" deny.toml >"$DENY_DBS/deny.toml"
  cargo deny --locked --offline --config "$DENY_DBS/deny.toml" check
else
  echo "NOTICE: advisories skipped (no BUCKET_ADVISORY_DB); set BUCKET_ADVISORY_DB to a local clone of the RustSec advisory-db to check them"
  cargo deny --locked check licenses bans sources
fi

# --- unused dependencies (issue 31) ---
step "unused dependencies: cargo machete (installed once into ~/.cargo/bin)"
# Fails when a dependency declared in a Cargo.toml of the repo is used nowhere; true false
# positives are listed with a reason under [package.metadata.cargo-machete] (docs/security.md).
if ! command -v cargo-machete >/dev/null 2>&1; then
  timeout 1200 cargo install --locked cargo-machete
fi
# The check can fail: a throwaway crate declaring a dependency it never uses must be refused.
MACHETE_PROBE="$(mktemp -d)"
mkdir -p "$MACHETE_PROBE/src"
printf '[package]\nname = "probe"\nversion = "0.0.0"\nedition = "2024"\n\n[dependencies]\nhex = "0.4"\n' \
  >"$MACHETE_PROBE/Cargo.toml"
printf 'pub fn f() {}\n' >"$MACHETE_PROBE/src/lib.rs"
# (It exits 1 when it finds one, so its output is taken whole before it is searched.)
probe_report="$(cargo machete "$MACHETE_PROBE" 2>/dev/null || true)"
if ! grep -q 'hex' <<<"$probe_report"; then
  echo "cargo machete did not report the probe crate's unused dependency"; exit 1
fi
rm -rf "$MACHETE_PROBE"
cargo machete
# --- end unused dependencies ---

step "build"
cargo build --all-targets --locked

# ---- Kubernetes manifests (tests/k8s-validate) ---------------------------------------------------
step "Kubernetes manifests: every kustomize overlay rendered and decoded strictly against the API types, PromQL parsed (Go; module and build caches reused)"
# Needs no cluster and no service. The Go module cache (~/go/pkg/mod) and build cache
# (~/.cache/go-build) persist across runs, so only the first run downloads and compiles.
(cd tests/k8s-validate && go test -count=1 ./...)
# ---- end Kubernetes manifests ---------------------------------------------------------------------

step "topics and schemas as code against the live stack"
target/debug/bucket topics apply --profile local
target/debug/bucket schemas apply
# ACLs as code are applied as written by the demo on the production profile (below), and per
# test suffix by tests/security.rs.

step "Schemathesis venv (~/.cache/bhiv-bucket/venv, created once; used by tests/api.rs)"
VENV="${BUCKET_CACHE_DIR:-$HOME/.cache/bhiv-bucket}/venv"
if [[ ! -x "$VENV/bin/st" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q schemathesis
fi
"$VENV/bin/st" --version

step "Chromium for tests/status_page.rs (Debian package, installed once)"
command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
  || echo "WARNING: chromium could not be installed; tests/status_page.rs will skip loudly"

step "ssh-keygen for tests/policy_approvals.rs (Debian package openssh-client, installed once)"
# Policy approvals are tested with signatures made by the real `ssh-keygen -Y sign`.
command -v ssh-keygen >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null)
command -v ssh-keygen >/dev/null 2>&1 || { echo "ssh-keygen could not be installed (openssh-client)"; exit 1; }

step "unit and integration tests (real broker, registry, Redis, PostgreSQL)"
cargo test --lib --bins --tests --locked -- --test-threads 4

step "criterion micro-benchmarks, once each as a smoke test"
# gate_core takes its workload from the bench module (feature `bench`).
cargo test --benches --locked --features bench

step "bench smoke run: bucket-bench --quick (tiny sizes; fails on errors only, never on speed)"
# Unit tests of the bench module and its binary (the feature is off in the test step above).
cargo test --locked --features bench --lib --bin bucket-bench
cargo build --locked --features bench --bin bucket-bench
target/debug/bucket-bench --quick --out target/bench/quick/results.json
# The state bench's short form: one small history, cold and warm restore on a local store.
target/debug/bucket-bench state --sizes 20000 --tail 1000 --out target/bench/quick/state.json
# The transparency log's short forms: proofs in a 20,000-link partition, and the tiles service
# following 20,000 links (docs/audit.md, "At the seeds' scale").
target/debug/bucket-bench tlog --links 20000 --samples 20 --rebuild --dir target/bench/quick/tlog \
  --out target/bench/quick/tlog.json
target/debug/bucket-bench tiles-lag --links 20000 --dir target/bench/quick/tiles-lag \
  --out target/bench/quick/tiles-lag.json
# Content storage's short form: PostgreSQL rows and S3 objects side by side at small sizes
# (docs/scale-readiness.md, "Content at the seeds' scale", has the full run's command).
(source deploy/local/env.sh
 BUCKET_PG_URL="$BUCKET_DATABASE_URL" BUCKET_CONTENT_STORE="$BUCKET_CONTENT_STORE_URL" \
 BUCKET_S3_ENDPOINT="$BUCKET_S3_ENDPOINT" BUCKET_S3_CA_FILE="$BUCKET_LOCAL_CA" \
 BUCKET_S3_ACCESS_KEY_ID="$BUCKET_S3_SINK_ACCESS_KEY_ID" \
 BUCKET_S3_SECRET_ACCESS_KEY="$BUCKET_S3_SINK_SECRET_ACCESS_KEY" \
 BUCKET_S3_READER_ACCESS_KEY_ID="$BUCKET_S3_READER_ACCESS_KEY_ID" \
 BUCKET_S3_READER_SECRET_ACCESS_KEY="$BUCKET_S3_READER_SECRET_ACCESS_KEY" \
 target/debug/bucket-bench content --sizes 1024,65536 --bytes-per-size 1048576 \
   --dedup-artifacts 1 --dedup-versions 2 --read-size 1048576 --readers 4 \
   --requests-per-reader 2 --usage-versions 10000 --out target/bench/quick/content.json)

# ---- production profile ----------------------------------------------------------------------------
step "production profile: Kafka on SASL_SSL and mTLS only with the authorizer, Redis over TLS (Kafka and Redis restarted)"
bash deploy/local/up.sh --profile production

step "demo on the production profile: each process its own principal, ACLs applied, approvals enforced"
BUCKET_DEMO_BUILD=prebuilt bash deploy/demo.sh
bash deploy/demo.sh stop

step "fault injection, short form, on the production profile: kill -9, local state, instance ids, broker/Redis/registry/PostgreSQL/S3 restarts, latency, 1 of 3 brokers lost (a plain three-node cluster)"
bash deploy/faults.sh --short
# ---- end production profile ------------------------------------------------------------------------

step "fuzz: decode_decide, headers, policy, audit_verify and approvals, 20 s each (nightly + cargo-fuzz; installed if missing)"
have_nightly() { rustup toolchain list 2>/dev/null | grep -q '^nightly'; }
have_nightly || timeout 180 rustup toolchain install nightly --profile minimal || true
if have_nightly && ! command -v cargo-fuzz >/dev/null 2>&1; then
  timeout 900 cargo install cargo-fuzz --locked || true
fi
if have_nightly && command -v cargo-fuzz >/dev/null 2>&1; then
  (cd fuzz && for t in decode_decide headers policy audit_verify approvals; do
    cargo +nightly fuzz run -O "$t" -- -max_total_time=20 -print_final_stats=1 2>&1 | tail -n 3
  done)
else
  echo "SKIPPED: fuzzing needs a nightly toolchain and cargo-fuzz, and installing them failed."
fi

package validate

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// metricSources are the Rust files that register every metric the binary exports (the gate's
// and sink's admin endpoints, the read API, the tiles service, the witness).
var metricSources = []string{
	"src/admin/metrics.rs",
	"src/api/metrics.rs",
	"src/audit/tiles.rs",
	"src/audit/witness.rs",
}

// platformMetrics are metrics of the platform, not of the binary, that alerts may use: the
// kubelet's volume statistics (the gate's state volumes) and kube-state-metrics' Job status
// (failed bootstrap Jobs and scheduled runs). Nothing else outside the binary is allowed.
var platformMetrics = map[string]bool{
	"kubelet_volume_stats_available_bytes": true,
	"kubelet_volume_stats_capacity_bytes":  true,
	"kube_job_status_failed":               true,
}

var (
	registerRe = regexp.MustCompile(`register\(\s*"(bucket_[a-z0-9_]+)",\s*"[^"]*",\s*(?:self\.)?([a-z_]+)[.\w]*(?:\.clone\(\))?,?\s*\)`)
	fieldRe    = regexp.MustCompile(`(?m)^\s*(?:pub(?:\([a-z]+\))? )?([a-z_]+): ([A-Za-z<>, ]+),\s*$`)
	localRe    = regexp.MustCompile(`let ([a-z_]+) = ([A-Za-z]+)::<[^>]*, ([A-Za-z]+)>::default\(\)`)
)

// exportedMetrics reads the registrations in the Rust sources and returns every series name
// Prometheus scrapes from them: counters with `_total`, histograms with `_bucket`, `_sum`,
// `_count`, gauges as registered.
func exportedMetrics(root string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, rel := range metricSources {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			return nil, err
		}
		src := string(b)
		types := map[string]string{}
		for _, m := range fieldRe.FindAllStringSubmatch(src, -1) {
			types[m[1]] = m[2]
		}
		for _, m := range localRe.FindAllStringSubmatch(src, -1) {
			types[m[1]] = m[2] + "<_, " + m[3] + ">"
		}
		regs := registerRe.FindAllStringSubmatch(src, -1)
		if len(regs) == 0 {
			return nil, fmt.Errorf("%s: no metric registrations found (has the registration code changed?)", rel)
		}
		for _, m := range regs {
			name, field := m[1], m[2]
			t, ok := types[field]
			if !ok {
				return nil, fmt.Errorf("%s: %s is registered from %q, whose type is not declared there", rel, name, field)
			}
			switch {
			case strings.Contains(t, "Counter"):
				out[name+"_total"] = true
			case strings.Contains(t, "Histogram"):
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					out[name+s] = true
				}
			case strings.Contains(t, "Gauge"):
				out[name] = true
			default:
				return nil, fmt.Errorf("%s: %s has type %q: counter, gauge or histogram?", rel, name, t)
			}
		}
	}
	return out, nil
}

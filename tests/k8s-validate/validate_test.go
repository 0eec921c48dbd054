package validate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const root = "../.."

var overlays = []string{"dev", "production", "production-mtls"}

// secrets: the example Secrets (deploy/k8s/secrets.example.yaml, decoded strictly too) and the
// Secrets others write: Strimzi one per KafkaUser and the cluster CA, the certificate tooling
// the Ingress certificate, the operator the API tokens file.
func secrets(t *testing.T, objs []Object) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{
		"bucket-cluster-ca-cert": {"ca.crt": true, "ca.p12": true, "ca.password": true},
		"bucket-api-tls":         {"tls.crt": true, "tls.key": true},
		"bucket-api-tokens":      {"api-tokens.toml": true},
	}
	for _, o := range objs {
		if u, ok := o.Value.(*kafkaUser); ok {
			out[u.Name] = map[string]bool{"password": true, "sasl.jaas.config": true,
				"ca.crt": true, "user.crt": true, "user.key": true, "user.p12": true, "user.password": true}
		}
	}
	text, err := os.ReadFile(filepath.Join(root, "deploy/k8s/secrets.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range splitDocs(text) {
		o, err := Decode(doc)
		if err != nil {
			t.Fatalf("secrets.example.yaml: %v", err)
		}
		sec, ok := o.Value.(*corev1.Secret)
		if !ok {
			t.Fatalf("secrets.example.yaml holds a %s", o.Kind)
		}
		keys := map[string]bool{}
		for k := range sec.StringData {
			keys[k] = true
		}
		for k := range sec.Data {
			keys[k] = true
		}
		out[sec.Name] = keys
	}
	return out
}

func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(b, []byte("\n---")) {
		var v any
		if yaml.Unmarshal(d, &v) == nil && v != nil {
			out = append(out, d)
		}
	}
	return out
}

func load(t *testing.T, overlay string) *Set {
	t.Helper()
	docs, err := Render(filepath.Join(root, "deploy/k8s/overlays", overlay))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	s := &Set{}
	var errs []string
	for _, d := range docs {
		o, err := Decode(d)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		s.Objects = append(s.Objects, o)
	}
	if len(errs) > 0 {
		t.Fatalf("%s: objects that do not decode strictly:\n%s", overlay, strings.Join(errs, "\n"))
	}
	s.Secrets = secrets(t, s.Objects)
	if s.Metrics, err = exportedMetrics(root); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOverlaysRenderAndValidate(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			s := load(t, overlay)
			if p := s.Check(overlay); len(p) > 0 {
				t.Fatalf("%d problems:\n%s", len(p), strings.Join(p, "\n"))
			}
			counts := map[string]int{}
			for _, o := range s.Objects {
				counts[o.Kind]++
			}
			// What the deployment is made of, whatever the overlay.
			for kind, least := range map[string]int{
				"StatefulSet": 2, "Deployment": 3, "Job": 3, "CronJob": 2, "KafkaUser": 4,
				"KafkaTopic": 6, "NetworkPolicy": 5, "PodDisruptionBudget": 2, "Ingress": 1,
				"ScaledObject": 2, "PrometheusRule": 1, "PodMonitor": 1,
			} {
				if counts[kind] < least {
					t.Errorf("%s: %d %s, want at least %d", overlay, counts[kind], kind, least)
				}
			}
			if overlay != "dev" && counts["TriggerAuthentication"] < 2 {
				t.Errorf("production: KEDA triggers need TriggerAuthentications")
			}
			t.Logf("%s: %d objects validated: %v", overlay, len(s.Objects), counts)
		})
	}
}

// The production overlays talk to Kafka over TLS with the cluster CA, everywhere: with a SCRAM
// password file (production) or a client certificate and key (production-mtls).
func TestProductionKafkaIsAuthenticatedAndEncrypted(t *testing.T) {
	for overlay, want := range map[string]string{"production": "sasl_ssl", "production-mtls": "ssl"} {
		s := load(t, overlay)
		n := 0
		for _, o := range s.Objects {
			tpl := podTemplate(o)
			if tpl == nil {
				continue
			}
			for _, c := range tpl.Spec.Containers {
				env := map[string]string{}
				for _, e := range c.Env {
					env[e.Name] = e.Value
				}
				if _, kafka := env["BUCKET_BROKERS"]; !kafka {
					continue
				}
				n++
				ok := env["BUCKET_KAFKA_SECURITY_PROTOCOL"] == want && env["BUCKET_KAFKA_SSL_CA"] != ""
				if want == "sasl_ssl" {
					ok = ok && strings.HasPrefix(env["BUCKET_KAFKA_SASL_PASSWORD"], "file:")
				} else {
					_, sasl := env["BUCKET_KAFKA_SASL_USERNAME"]
					ok = ok && !sasl && env["BUCKET_KAFKA_SSL_CERT"] != "" && env["BUCKET_KAFKA_SSL_KEY"] != ""
				}
				if !ok {
					t.Errorf("%s: %s %s: Kafka settings %v", overlay, o.Kind, o.Name, env)
				}
			}
		}
		if n < 6 {
			t.Errorf("%s: only %d containers talk to Kafka", overlay, n)
		}
		for _, o := range s.Objects {
			if u, ok := o.Value.(*kafkaUser); ok {
				if got := u.Spec.Authentication.Type; (want == "ssl") != (got == "tls") {
					t.Errorf("%s: KafkaUser %s authenticates with %s", overlay, u.Name, got)
				}
			}
		}
	}
}

// A validator that cannot fail is no validator: each kind of mistake is caught.
func TestMistakesAreCaught(t *testing.T) {
	good := []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: x, namespace: bhiv-bucket}
spec:
  replicas: 1
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: x, image: i}]
`)
	if _, err := Decode(good); err != nil {
		t.Fatalf("the good object: %v", err)
	}
	for what, bad := range map[string][]byte{
		"unknown field": bytes.Replace(good, []byte("replicas: 1"), []byte("replica: 1"), 1),
		"wrong type":    bytes.Replace(good, []byte("replicas: 1"), []byte("replicas: one"), 1),
		"unknown kind":  bytes.Replace(good, []byte("kind: Deployment"), []byte("kind: Deploymnt"), 1),
		"CRD field":     []byte("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}, maxReplicas: 3}\n"),
		"Strimzi field": []byte("apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaUser\nmetadata: {name: x}\nspec: {authentication: {type: tls, user: x}}\n"),
		"rule field":    []byte("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: x}\nspec: {groups: [{name: g, rules: [{alert: A, expression: up}]}]}\n"),
	} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("%s: decoded without error", what)
		}
	}
	// Missing required parts and broken references are reported by Check.
	s := load(t, "production")
	o, err := Decode(bytes.Replace(good, []byte("image: i"), []byte("image: ''"), 1))
	if err != nil {
		t.Fatal(err)
	}
	s.Objects = append(s.Objects, o)
	p := strings.Join(s.Check("production"), "\n")
	for _, want := range []string{"name and image are required", "cpu and memory requests are required", "runAsNonRoot is required"} {
		if !strings.Contains(p, want) {
			t.Errorf("Check missed %q in:\n%s", want, p)
		}
	}
	for expr, want := range map[string]string{
		"sum(rate(bucket_gate_decisions_total[5m]))": "",
		"sum(rate(bucket_gate_decisions[5m]))":       "not exported",
		"bucket_gate_redis_up_total > 0":             "not exported",
		"sum(rate(bucket_gate_decisions_total[5m])":  "PromQL",
		"kube_pod_info": "not exported",
	} {
		var p problems
		s.checkExpr(&p, "expr", expr)
		got := strings.Join(p, "\n")
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want %q", expr, got, want)
		}
	}
}

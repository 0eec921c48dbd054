package validate

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const root = "../.."

// The overlays of deploy/k8s/overlays, and testdata overlays that add an optional component
// (a path relative to deploy/k8s/overlays).
var overlays = []string{"dev", "production", "production-mtls",
	"../../../tests/k8s-validate/testdata/production-acls-job"}

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
	if s.Env, err = declaredEnv(root); err != nil || len(s.Env) < 40 {
		t.Fatalf("environment variables in src/: %d, %v", len(s.Env), err)
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

// Where content lives: in PostgreSQL on dev (no object store), in S3 on the production overlays,
// with the identity each workload's access needs.
func TestContentObjectsWhereConfigured(t *testing.T) {
	want := map[string]string{
		"Deployment bucket-sink":              "bucket-s3-sink",
		"CronJob bucket-sink-migrate-content": "bucket-s3-sink",
		"CronJob bucket-sink-purge":           "bucket-s3-janitor",
		"CronJob bucket-sink-gc-objects":      "bucket-s3-janitor",
		"Deployment bucket-api":               "bucket-s3-reader",
		"CronJob bucket-sink-reconcile":       "bucket-s3-reader",
	}
	for _, overlay := range overlays {
		s := load(t, overlay)
		got := map[string]string{}
		for _, o := range s.Objects {
			if tpl := podTemplate(o); tpl != nil {
				for _, c := range tpl.Spec.Containers {
					for _, e := range c.Env {
						if e.Name == "BUCKET_S3_ACCESS_KEY_ID" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
							got[o.Kind+" "+o.Name] = e.ValueFrom.SecretKeyRef.Name
						}
					}
				}
			}
		}
		if overlay == "dev" {
			if len(got) != 0 || s.find("ConfigMap", "bucket-object-store") != nil {
				t.Errorf("dev keeps content in PostgreSQL, but S3 credentials are set: %v", got)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: S3 identities %v, want %v", overlay, got, want)
		}
	}
}

// The object-store checks fail on each mistake they are there for (and pass the documented fix
// for an endpoint on another port).
func TestObjectStoreMistakesAreCaught(t *testing.T) {
	type edit func(t *testing.T, s *Set)
	secretRef := func(name, key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
	}
	setting := func(key, value string) edit {
		return func(t *testing.T, s *Set) {
			s.find("ConfigMap", "bucket-object-store").Value.(*corev1.ConfigMap).Data[key] = value
		}
	}
	for _, tc := range []struct {
		what, want string
		edits      []edit
	}{
		{"gc-objects without the secret key", "CronJob bucket-sink-gc-objects container schedule: BUCKET_CONTENT_STORE without BUCKET_S3_SECRET_ACCESS_KEY",
			[]edit{dropEnv("CronJob", "bucket-sink-gc-objects", "BUCKET_S3_SECRET_ACCESS_KEY")}},
		{"purge without the access key id", "CronJob bucket-sink-purge container schedule: BUCKET_S3_ACCESS_KEY_ID must come from a Secret",
			[]edit{dropEnv("CronJob", "bucket-sink-purge", "BUCKET_S3_ACCESS_KEY_ID")}},
		{"purge without the store", "CronJob bucket-sink-purge container schedule: content is in an object store, but this janitor has no BUCKET_CONTENT_STORE",
			[]edit{dropEnv("CronJob", "bucket-sink-purge", "BUCKET_CONTENT_STORE")}},
		{"gc-objects with no S3 settings", "CronJob bucket-sink-gc-objects container schedule: `sink gc-objects` needs BUCKET_CONTENT_STORE",
			[]edit{dropEnv("CronJob", "bucket-sink-gc-objects", "BUCKET_CONTENT_STORE", "BUCKET_S3_REGION", "BUCKET_S3_ENDPOINT", "BUCKET_S3_CA_FILE", "BUCKET_S3_ACCESS_KEY_ID", "BUCKET_S3_SECRET_ACCESS_KEY")}},
		{"the secret key in the environment", "Deployment bucket-sink container sink: BUCKET_S3_SECRET_ACCESS_KEY must be file:PATH",
			[]edit{putEnv("Deployment", "bucket-sink", corev1.EnvVar{Name: "BUCKET_S3_SECRET_ACCESS_KEY", ValueFrom: secretRef("bucket-s3-sink", "secret-access-key")})}},
		{"the API with the sink's identity", "S3 identity bucket-s3-sink serves more than one kind of access: reader (Deployment bucket-api container api)",
			[]edit{
				putEnv("Deployment", "bucket-api", corev1.EnvVar{Name: "BUCKET_S3_ACCESS_KEY_ID", ValueFrom: secretRef("bucket-s3-sink", "access-key-id")}),
				func(t *testing.T, s *Set) {
					volume(t, s, "Deployment", "bucket-api", "s3-credentials").Secret.SecretName = "bucket-s3-sink"
				},
			}},
		{"two identities in one container", "Deployment bucket-api container api: the access key id is from Secret bucket-s3-reader but the secret key from bucket-s3-janitor",
			[]edit{func(t *testing.T, s *Set) {
				volume(t, s, "Deployment", "bucket-api", "s3-credentials").Secret.SecretName = "bucket-s3-janitor"
			}}},
		{"a secret key file on no mount", "CronJob bucket-sink-reconcile container schedule: BUCKET_S3_SECRET_ACCESS_KEY file /etc/bucket/s3/key is not a mounted Secret's key",
			[]edit{putEnv("CronJob", "bucket-sink-reconcile", corev1.EnvVar{Name: "BUCKET_S3_SECRET_ACCESS_KEY", Value: "file:/etc/bucket/s3/key"})}},
		{"an endpoint on a port the policies close", "Deployment bucket-api container api: no NetworkPolicy lets it reach the object store on TCP 8333",
			[]edit{setting("s3-endpoint", "https://seaweedfs.storage.svc:8333")}},
		{"plain HTTP", "BUCKET_S3_ENDPOINT \"http://minio.storage.svc\" is not https://",
			[]edit{setting("s3-endpoint", "http://minio.storage.svc")}},
		{"not an s3:// URL", "BUCKET_CONTENT_STORE \"bhiv-bucket-content\" is not s3://bucket[/prefix]",
			[]edit{setting("content-store", "bhiv-bucket-content")}},
		{"a CA file without the CA", "BUCKET_S3_CA_FILE \"/etc/bucket/s3-ca/ca.crt\": ConfigMap bucket-object-store has no key s3-ca.crt",
			[]edit{setting("s3-ca-file", "/etc/bucket/s3-ca/ca.crt")}},
		{"a misspelt variable", "Deployment bucket-sink container sink: env BUCKET_S3_ACCES_KEY_ID is read by no flag of the binary",
			[]edit{putEnv("Deployment", "bucket-sink", corev1.EnvVar{Name: "BUCKET_S3_ACCES_KEY_ID", ValueFrom: secretRef("bucket-s3-sink", "access-key-id")})}},
		{"credentials where nothing needs them", "StatefulSet bucket-gate container gate: BUCKET_S3_ACCESS_KEY_ID on `gate",
			[]edit{putEnv("StatefulSet", "bucket-gate", corev1.EnvVar{Name: "BUCKET_S3_ACCESS_KEY_ID", ValueFrom: secretRef("bucket-s3-reader", "access-key-id")})}},
		{"two stores", "content stores differ between workloads: s3://bhiv-bucket-content-production/bucket, s3://elsewhere",
			[]edit{putEnv("Deployment", "bucket-api", corev1.EnvVar{Name: "BUCKET_CONTENT_STORE", Value: "s3://elsewhere"})}},
		// The documented fix for an in-cluster server on 8333 passes.
		{"an endpoint on 8333 with its policy", "",
			[]edit{setting("s3-endpoint", "https://seaweedfs.storage.svc:8333"), func(t *testing.T, s *Set) {
				np := s.find("NetworkPolicy", "bucket-object-store").Value.(*networkingv1.NetworkPolicy)
				port := intstr.FromInt32(8333)
				np.Spec.Egress[0].To = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{"kubernetes.io/metadata.name": "storage"}}}}
				np.Spec.Egress[0].Ports[0].Port = &port
			}}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			s := load(t, "production")
			for _, e := range tc.edits {
				e(t, s)
			}
			got := strings.Join(s.Check("production"), "\n")
			if tc.want == "" && got != "" {
				t.Errorf("unexpected problems:\n%s", got)
			}
			if tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("Check missed %q in:\n%s", tc.want, got)
			}
		})
	}
}

func containerOf(t *testing.T, s *Set, kind, name string) (*corev1.PodSpec, *corev1.Container) {
	t.Helper()
	o := s.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %s", kind, name)
	}
	tpl := podTemplate(*o)
	return &tpl.Spec, &tpl.Spec.Containers[0]
}

func dropEnv(kind, name string, vars ...string) func(*testing.T, *Set) {
	return func(t *testing.T, s *Set) {
		_, c := containerOf(t, s, kind, name)
		var kept []corev1.EnvVar
		for _, e := range c.Env {
			if !slices.Contains(vars, e.Name) {
				kept = append(kept, e)
			}
		}
		if len(kept) == len(c.Env) {
			t.Fatalf("%s %s sets none of %v", kind, name, vars)
		}
		c.Env = kept
	}
}

func putEnv(kind, name string, v corev1.EnvVar) func(*testing.T, *Set) {
	return func(t *testing.T, s *Set) {
		_, c := containerOf(t, s, kind, name)
		for i := range c.Env {
			if c.Env[i].Name == v.Name {
				c.Env[i] = v
				return
			}
		}
		c.Env = append(c.Env, v)
	}
}

func volume(t *testing.T, s *Set, kind, name, vol string) *corev1.Volume {
	pod, _ := containerOf(t, s, kind, name)
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == vol {
			return &pod.Volumes[i]
		}
	}
	t.Fatalf("%s %s has no volume %s", kind, name, vol)
	return nil
}

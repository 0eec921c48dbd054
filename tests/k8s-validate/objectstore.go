package validate

// Content objects in S3 (deploy/k8s/components/object-storage, docs/deploying.md "Object
// storage"): what a rendering must get right beyond the API types, because each mistake
// deploys fine and fails later (or quietly widens access):
//   - every BUCKET_* variable a container sets is one the binary reads (a flag's env = "…"
//     in src/), so a misspelt BUCKET_S3_* name cannot silently leave a setting at its default;
//   - when content lives in an object store, every command that reads or writes content (the
//     sink, the API, purge, gc-objects, reconcile, migrate-content) names the same store: a
//     sink writing objects the API cannot read, or a purge that never deletes them, is caught;
//     gc-objects and migrate-content always need one; nothing else gets S3 settings;
//   - each of those containers has credentials: the access key id from a Secret, the secret key
//     as file:PATH mounted from the same Secret (one identity), a CA file that a mount provides;
//     an https endpoint and an s3:// URL;
//   - least privilege: one identity per kind of access, never shared across kinds: writer
//     (sink, migrate-content: Get/Put/List), janitor (purge, gc-objects: Get/List/Delete),
//     reader (API, reconcile: Get/List);
//   - the network policies let each of those pods reach the endpoint's port (443 unless
//     s3-endpoint names another) through a rule that can reach outside this namespace.

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var envDeclRe = regexp.MustCompile(`env\s*=\s*"(BUCKET_[A-Z0-9_]+)"`)

// declaredEnv returns every environment variable a flag of the binary reads: the
// `env = "BUCKET_…"` of the clap attributes under src/.
func declaredEnv(root string) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "src"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rs") {
			return err
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range envDeclRe.FindAllStringSubmatch(string(text), -1) {
			out[m[1]] = true
		}
		return nil
	})
	return out, err
}

// contentAccess is the kind of object-store access a command line needs, "" when it touches no
// content objects.
func contentAccess(args []string) string {
	if len(args) == 0 {
		return ""
	}
	switch args[0] {
	case "api":
		return "reader"
	case "sink":
		sub := ""
		if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
			sub = args[1]
		}
		switch sub {
		case "", "run", "migrate-content":
			return "writer"
		case "purge", "gc-objects":
			return "janitor"
		case "reconcile":
			return "reader"
		}
	}
	return ""
}

// needsStore: commands that fail without a content store.
func needsStore(args []string) bool {
	return len(args) > 1 && args[0] == "sink" && (args[1] == "gc-objects" || args[1] == "migrate-content")
}

// envValue is one variable as the container will see it.
type envValue struct {
	set    bool
	value  string
	secret *corev1.SecretKeySelector
}

// resolve gives a variable's value: literal, from a ConfigMap of the rendering (an optional
// key that is absent leaves it unset, as the kubelet does), or a Secret reference.
func (s *Set) resolve(e corev1.EnvVar) envValue {
	if e.ValueFrom == nil {
		return envValue{set: true, value: e.Value}
	}
	if r := e.ValueFrom.SecretKeyRef; r != nil {
		return envValue{set: true, secret: r}
	}
	if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
		if o := s.find("ConfigMap", r.Name); o != nil {
			if v, ok := o.Value.(*corev1.ConfigMap).Data[r.Key]; ok {
				return envValue{set: true, value: v}
			}
		}
		if r.Optional != nil && *r.Optional {
			return envValue{}
		}
		return envValue{set: true}
	}
	return envValue{set: true}
}

// mountedFile finds the volume and key that provide path in the container.
func mountedFile(pod *corev1.PodSpec, c *corev1.Container, path string) (*corev1.Volume, string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok || m.SubPath != "" {
			continue
		}
		for i := range pod.Volumes {
			v := &pod.Volumes[i]
			if v.Name != m.Name {
				continue
			}
			var items []corev1.KeyToPath
			switch {
			case v.Secret != nil:
				items = v.Secret.Items
			case v.ConfigMap != nil:
				items = v.ConfigMap.Items
			default:
				return v, rel
			}
			if len(items) == 0 {
				return v, rel
			}
			for _, it := range items {
				if it.Path == rel {
					return v, it.Key
				}
			}
			return nil, ""
		}
	}
	return nil, ""
}

// egressAllows reports whether the network policies let a pod with these labels open a TCP
// connection to port outside this namespace: no policy selects it for egress, or one has a rule
// with that port (or all ports) whose peers are not only this namespace's pods.
func (s *Set) egressAllows(podLabels map[string]string, port int32) bool {
	restricted := false
	for _, o := range s.Objects {
		np, ok := o.Value.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		egress := false
		for _, t := range np.Spec.PolicyTypes {
			egress = egress || t == networkingv1.PolicyTypeEgress
		}
		if !egress {
			continue
		}
		restricted = true
		for _, r := range np.Spec.Egress {
			outside := len(r.To) == 0
			for _, peer := range r.To {
				outside = outside || peer.IPBlock != nil || peer.NamespaceSelector != nil
			}
			if !outside {
				continue
			}
			if len(r.Ports) == 0 {
				return true
			}
			for _, p := range r.Ports {
				if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
					continue
				}
				if p.Port == nil {
					return true
				}
				lo := p.Port.IntVal
				hi := lo
				if p.EndPort != nil {
					hi = *p.EndPort
				}
				if p.Port.StrVal == "" && lo <= port && port <= hi {
					return true
				}
			}
		}
	}
	return !restricted
}

// checkObjectStore runs the checks above over every container of the rendering.
func (s *Set) checkObjectStore(p *problems) {
	type user struct {
		what, access, store string
		hasStore            bool
	}
	var users []user
	identities := map[string]map[string][]string{} // Secret → access → containers
	stores := map[string]bool{}
	for _, o := range s.Objects {
		t := podTemplate(o)
		if t == nil {
			continue
		}
		for ci := range t.Spec.Containers {
			c := &t.Spec.Containers[ci]
			cw := o.Kind + " " + o.Name + " container " + c.Name
			env := map[string]envValue{}
			for _, e := range c.Env {
				if s.Env != nil && strings.HasPrefix(e.Name, "BUCKET_") && !s.Env[e.Name] {
					p.add("%s: env %s is read by no flag of the binary (no env = %q in src/)", cw, e.Name, e.Name)
				}
				env[e.Name] = s.resolve(e)
			}
			access := contentAccess(c.Args)
			store := env["BUCKET_CONTENT_STORE"]
			if access == "" {
				for name, v := range env {
					if v.set && (name == "BUCKET_CONTENT_STORE" || strings.HasPrefix(name, "BUCKET_S3_")) {
						p.add("%s: %s on `%s`, which touches no content objects", cw, name, strings.Join(c.Args, " "))
					}
				}
				continue
			}
			users = append(users, user{cw, access, store.value, store.set})
			if !store.set {
				if needsStore(c.Args) {
					p.add("%s: `%s` needs BUCKET_CONTENT_STORE", cw, strings.Join(c.Args, " "))
				}
				continue
			}
			stores[store.value] = true
			if u, err := url.Parse(store.value); err != nil || u.Scheme != "s3" || u.Host == "" {
				p.add("%s: BUCKET_CONTENT_STORE %q is not s3://bucket[/prefix]", cw, store.value)
			}
			port := int32(443)
			if ep := env["BUCKET_S3_ENDPOINT"]; ep.set {
				u, err := url.Parse(ep.value)
				if err != nil || u.Scheme != "https" || u.Hostname() == "" {
					p.add("%s: BUCKET_S3_ENDPOINT %q is not https://host[:port] (content travels over TLS only)", cw, ep.value)
				} else if u.Port() != "" {
					n, _ := strconv.Atoi(u.Port())
					port = int32(n)
				}
			}
			if !s.egressAllows(t.Labels, port) {
				p.add("%s: no NetworkPolicy lets it reach the object store on TCP %d", cw, port)
			}
			id := env["BUCKET_S3_ACCESS_KEY_ID"]
			if !id.set || id.secret == nil {
				p.add("%s: BUCKET_S3_ACCESS_KEY_ID must come from a Secret (secretKeyRef)", cw)
			}
			key := env["BUCKET_S3_SECRET_ACCESS_KEY"]
			path, isFile := strings.CutPrefix(key.value, "file:")
			switch {
			case !key.set:
				p.add("%s: BUCKET_CONTENT_STORE without BUCKET_S3_SECRET_ACCESS_KEY", cw)
			case key.secret != nil || !isFile:
				p.add("%s: BUCKET_S3_SECRET_ACCESS_KEY must be file:PATH to a mounted Secret, not a value in the environment", cw)
			default:
				v, k := mountedFile(&t.Spec, c, path)
				switch {
				case v == nil || v.Secret == nil:
					p.add("%s: BUCKET_S3_SECRET_ACCESS_KEY file %s is not a mounted Secret's key", cw, path)
				case id.secret != nil && v.Secret.SecretName != id.secret.Name:
					p.add("%s: the access key id is from Secret %s but the secret key from %s (one identity per container)", cw, id.secret.Name, v.Secret.SecretName)
				default:
					s.needSecret(p, cw, v.Secret.SecretName, k)
				}
			}
			if id.secret != nil {
				if identities[id.secret.Name] == nil {
					identities[id.secret.Name] = map[string][]string{}
				}
				identities[id.secret.Name][access] = append(identities[id.secret.Name][access], cw)
			}
			if ca := env["BUCKET_S3_CA_FILE"]; ca.set {
				v, k := mountedFile(&t.Spec, c, ca.value)
				switch {
				case v == nil:
					p.add("%s: BUCKET_S3_CA_FILE %q is on no mount", cw, ca.value)
				case v.ConfigMap != nil:
					if o := s.find("ConfigMap", v.ConfigMap.Name); o == nil || o.Value.(*corev1.ConfigMap).Data[k] == "" {
						p.add("%s: BUCKET_S3_CA_FILE %q: ConfigMap %s has no key %s", cw, ca.value, v.ConfigMap.Name, k)
					}
				case v.Secret != nil:
					s.needSecret(p, cw, v.Secret.SecretName, k)
				}
			}
		}
	}
	if len(stores) > 1 {
		var all []string
		for st := range stores {
			all = append(all, st)
		}
		sort.Strings(all)
		p.add("content stores differ between workloads: %s", strings.Join(all, ", "))
	}
	if len(stores) > 0 {
		for _, u := range users {
			if !u.hasStore {
				p.add("%s: content is in an object store, but this %s has no BUCKET_CONTENT_STORE", u.what, u.access)
			}
		}
	}
	for secret, byAccess := range identities {
		if len(byAccess) > 1 {
			var kinds []string
			for a, who := range byAccess {
				kinds = append(kinds, a+" ("+strings.Join(who, ", ")+")")
			}
			sort.Strings(kinds)
			p.add("S3 identity %s serves more than one kind of access: %s", secret, strings.Join(kinds, "; "))
		}
	}
}

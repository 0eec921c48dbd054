// Package validate renders the kustomize overlays of deploy/k8s and checks every object against
// the real API types (Kubernetes, KEDA, prometheus-operator; Strimzi's documented schema),
// strictly: an unknown field, a wrong type or a missing required field is an error. PromQL in
// alerts and dashboards is parsed by Prometheus' parser and may name only metrics the binary
// exports; environment variables only ones the binary reads; content-object settings are checked
// as objectstore.go says. Run from the repository: `cd tests/k8s-validate && go test ./...`.
package validate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Namespace of every object.
const Namespace = "bhiv-bucket"

// Object is one rendered manifest: its kind, name and the strictly decoded Go value.
type Object struct {
	Kind, Name string
	Raw        []byte
	Value      any
}

// newTyped returns an empty value of the Go type for apiVersion/kind, or nil if the kind is not
// one the manifests may use.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "batch/v1/Job":
		return &batchv1.Job{}
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/Ingress":
		return &networkingv1.Ingress{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "keda.sh/v1alpha1/ScaledObject":
		return &kedav1alpha1.ScaledObject{}
	case "keda.sh/v1alpha1/TriggerAuthentication":
		return &kedav1alpha1.TriggerAuthentication{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	case "monitoring.coreos.com/v1/PodMonitor":
		return &monitoringv1.PodMonitor{}
	case "kafka.strimzi.io/v1beta2/KafkaTopic":
		return &kafkaTopic{}
	case "kafka.strimzi.io/v1beta2/KafkaUser":
		return &kafkaUser{}
	}
	return nil
}

// Decode decodes one YAML document strictly into its Go type.
func Decode(doc []byte) (Object, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return Object{}, err
	}
	v := newTyped(head.APIVersion, head.Kind)
	if v == nil {
		return Object{}, fmt.Errorf("%s %s: kind %s/%s is not one the validator knows", head.Kind, head.Metadata.Name, head.APIVersion, head.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return Object{}, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
	}
	return Object{Kind: head.Kind, Name: head.Metadata.Name, Raw: doc, Value: v}, nil
}

// Render builds one kustomization directory as `kubectl apply -k` would (root-only loading).
func Render(dir string) ([][]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return docs, nil
}

// Set is every object of one rendering, plus the Secrets created outside it.
type Set struct {
	Objects []Object
	// Secrets names each Secret the objects may read and its keys (nil: any key).
	Secrets map[string]map[string]bool
	// Metrics is every series name the binary exports.
	Metrics map[string]bool
	// Env is every environment variable a flag of the binary reads (nil: not checked).
	Env map[string]bool
}

func (s *Set) find(kind, name string) *Object {
	for i := range s.Objects {
		if s.Objects[i].Kind == kind && s.Objects[i].Name == name {
			return &s.Objects[i]
		}
	}
	return nil
}

// problems collects findings.
type problems []string

func (p *problems) add(format string, a ...any) { *p = append(*p, fmt.Sprintf(format, a...)) }

// Check runs every cross-object and required-field check and returns what is wrong.
func (s *Set) Check(overlay string) []string {
	var p problems
	for _, o := range s.Objects {
		s.checkObject(&p, o, overlay)
	}
	s.checkObjectStore(&p)
	sort.Strings(p)
	return p
}

func (s *Set) checkObject(p *problems, o Object, overlay string) {
	what := o.Kind + " " + o.Name
	if o.Name == "" {
		p.add("%s: metadata.name is required", o.Kind)
	}
	if o.Kind != "Namespace" {
		var m struct {
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		_ = yaml.Unmarshal(o.Raw, &m)
		if m.Metadata.Namespace != Namespace {
			p.add("%s: namespace %q, want %q", what, m.Metadata.Namespace, Namespace)
		}
	}
	switch v := o.Value.(type) {
	case *appsv1.Deployment:
		s.checkWorkload(p, what, v.Spec.Selector, &v.Spec.Template)
	case *appsv1.StatefulSet:
		s.checkWorkload(p, what, v.Spec.Selector, &v.Spec.Template)
		if v.Spec.ServiceName == "" || s.find("Service", v.Spec.ServiceName) == nil {
			p.add("%s: serviceName %q is not a Service here", what, v.Spec.ServiceName)
		}
		for _, t := range v.Spec.VolumeClaimTemplates {
			if _, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || len(t.Spec.AccessModes) == 0 {
				p.add("%s: volume claim %s needs accessModes and a storage request", what, t.Name)
			}
		}
	case *batchv1.Job:
		s.checkPod(p, what, &v.Spec.Template.Spec, true)
	case *batchv1.CronJob:
		if v.Spec.Schedule == "" {
			p.add("%s: schedule is required", what)
		}
		s.checkPod(p, what, &v.Spec.JobTemplate.Spec.Template.Spec, true)
	case *corev1.Service:
		if len(v.Spec.Ports) == 0 {
			p.add("%s: no ports", what)
		}
		if !s.selectsPods(labels.SelectorFromSet(v.Spec.Selector)) {
			p.add("%s: selector %v selects no pod template", what, v.Spec.Selector)
		}
	case *policyv1.PodDisruptionBudget:
		if v.Spec.Selector == nil || !s.selectsPods(mustSelector(p, what, v.Spec.Selector)) {
			p.add("%s: selector selects no pod template", what)
		}
	case *corev1.PersistentVolumeClaim:
		if _, ok := v.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || len(v.Spec.AccessModes) == 0 {
			p.add("%s: needs accessModes and a storage request", what)
		}
	case *networkingv1.Ingress:
		if len(v.Spec.TLS) == 0 {
			p.add("%s: no TLS", what)
		}
		for _, t := range v.Spec.TLS {
			s.needSecret(p, what, t.SecretName, "tls.crt")
		}
		for _, r := range v.Spec.Rules {
			if r.Host == "" || r.HTTP == nil {
				p.add("%s: a rule needs a host and http paths", what)
				continue
			}
			for _, path := range r.HTTP.Paths {
				svc := s.find("Service", path.Backend.Service.Name)
				if svc == nil {
					p.add("%s: backend service %s does not exist", what, path.Backend.Service.Name)
					continue
				}
				found := false
				for _, port := range svc.Value.(*corev1.Service).Spec.Ports {
					found = found || port.Name == path.Backend.Service.Port.Name || port.Port == path.Backend.Service.Port.Number
				}
				if !found {
					p.add("%s: service %s has no port %v", what, svc.Name, path.Backend.Service.Port)
				}
			}
		}
	case *networkingv1.NetworkPolicy:
		if len(v.Spec.PolicyTypes) == 0 {
			p.add("%s: policyTypes is required", what)
		}
		if sel := mustSelector(p, what, v.Spec.PodSelector); !sel.Empty() && !s.selectsPods(sel) {
			p.add("%s: podSelector selects no pod template", what)
		}
	case *kedav1alpha1.ScaledObject:
		t := v.Spec.ScaleTargetRef
		kind := t.Kind
		if kind == "" {
			kind = "Deployment"
		}
		if t.Name == "" || s.find(kind, t.Name) == nil {
			p.add("%s: scaleTargetRef %s %s does not exist", what, kind, t.Name)
		}
		if len(v.Spec.Triggers) == 0 {
			p.add("%s: no triggers", what)
		}
		for _, tr := range v.Spec.Triggers {
			if tr.Type == "" || len(tr.Metadata) == 0 {
				p.add("%s: a trigger needs a type and metadata", what)
			}
			if tr.AuthenticationRef != nil && s.find("TriggerAuthentication", tr.AuthenticationRef.Name) == nil {
				p.add("%s: authenticationRef %s does not exist", what, tr.AuthenticationRef.Name)
			}
			if overlay == "production" && tr.AuthenticationRef == nil {
				p.add("%s: production triggers authenticate (TriggerAuthentication)", what)
			}
		}
	case *kedav1alpha1.TriggerAuthentication:
		if len(v.Spec.SecretTargetRef) == 0 {
			p.add("%s: no secretTargetRef", what)
		}
		for _, r := range v.Spec.SecretTargetRef {
			if r.Parameter == "" {
				p.add("%s: a secretTargetRef needs a parameter", what)
			}
			s.needSecret(p, what, r.Name, r.Key)
		}
	case *monitoringv1.PrometheusRule:
		s.checkRules(p, what, v, overlay)
	case *monitoringv1.PodMonitor:
		if len(v.Spec.PodMetricsEndpoints) == 0 {
			p.add("%s: no endpoints", what)
		}
		if !s.selectsPods(mustSelector(p, what, v.Spec.Selector)) {
			p.add("%s: selector selects no pod template", what)
		}
	case *corev1.ConfigMap:
		if v.Labels["grafana_dashboard"] == "1" {
			s.checkDashboards(p, what, v)
		}
	case *kafkaTopic:
		checkStrimziLabel(p, what, v.Labels)
		if v.Spec.Partitions == nil || *v.Spec.Partitions < 1 || v.Spec.Replicas == nil || *v.Spec.Replicas < 1 || v.Spec.TopicName == "" {
			p.add("%s: topicName, partitions and replicas are required", what)
		}
	case *kafkaUser:
		checkStrimziLabel(p, what, v.Labels)
		if v.Spec.Authentication == nil || !userAuthTypes[v.Spec.Authentication.Type] {
			p.add("%s: authentication.type must be one of scram-sha-512, tls, tls-external", what)
		}
		if a := v.Spec.Authorization; a != nil {
			if a.Type != "simple" {
				p.add("%s: authorization.type %q", what, a.Type)
			}
			for i, r := range a.Acls {
				if !aclResources[r.Resource.Type] {
					p.add("%s: acl %d: resource type %q", what, i, r.Resource.Type)
				}
				if r.Resource.Type != "cluster" && (r.Resource.Name == "" || !aclPatterns[r.Resource.PatternType]) {
					p.add("%s: acl %d: name and patternType literal|prefix are required", what, i)
				}
				if len(r.Operations) == 0 {
					p.add("%s: acl %d: no operations", what, i)
				}
				for _, op := range r.Operations {
					if !aclOperations[op] {
						p.add("%s: acl %d: operation %q", what, i, op)
					}
				}
			}
		}
	}
}

func checkStrimziLabel(p *problems, what string, l map[string]string) {
	if l["strimzi.io/cluster"] == "" {
		p.add("%s: the strimzi.io/cluster label is required", what)
	}
}

func mustSelector(p *problems, what string, sel any) labels.Selector {
	s, err := selectorOf(sel)
	if err != nil {
		p.add("%s: selector: %v", what, err)
		return labels.Nothing()
	}
	return s
}

func selectorOf(sel any) (labels.Selector, error) {
	switch v := sel.(type) {
	case *metav1.LabelSelector:
		if v == nil {
			return labels.Nothing(), fmt.Errorf("missing")
		}
		return metav1.LabelSelectorAsSelector(v)
	case metav1.LabelSelector:
		return metav1.LabelSelectorAsSelector(&v)
	}
	return labels.Nothing(), fmt.Errorf("not a selector: %T", sel)
}

// selectsPods reports whether sel matches the pod template labels of some workload.
func (s *Set) selectsPods(sel labels.Selector) bool {
	for _, o := range s.Objects {
		if t := podTemplate(o); t != nil && sel.Matches(labels.Set(t.Labels)) {
			return true
		}
	}
	return false
}

func podTemplate(o Object) *corev1.PodTemplateSpec {
	switch v := o.Value.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template
	case *appsv1.StatefulSet:
		return &v.Spec.Template
	case *batchv1.Job:
		return &v.Spec.Template
	case *batchv1.CronJob:
		return &v.Spec.JobTemplate.Spec.Template
	}
	return nil
}

func (s *Set) checkWorkload(p *problems, what string, sel *metav1.LabelSelector, t *corev1.PodTemplateSpec) {
	selector, err := selectorOf(sel)
	if err != nil || selector.Empty() {
		p.add("%s: spec.selector is required (%v)", what, err)
	} else if !selector.Matches(labels.Set(t.Labels)) {
		p.add("%s: selector does not match the pod template labels", what)
	}
	s.checkPod(p, what, &t.Spec, false)
}

func (s *Set) checkPod(p *problems, what string, pod *corev1.PodSpec, job bool) {
	if len(pod.Containers) == 0 {
		p.add("%s: no containers", what)
	}
	if job && pod.RestartPolicy != corev1.RestartPolicyOnFailure && pod.RestartPolicy != corev1.RestartPolicyNever {
		p.add("%s: a Job's restartPolicy must be OnFailure or Never", what)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		p.add("%s: runAsNonRoot is required", what)
	}
	vols := map[string]bool{}
	for _, v := range pod.Volumes {
		vols[v.Name] = true
		switch {
		case v.ConfigMap != nil:
			s.needConfigMap(p, what, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional)
		case v.Secret != nil:
			for _, it := range v.Secret.Items {
				s.needSecret(p, what, v.Secret.SecretName, it.Key)
			}
			if len(v.Secret.Items) == 0 {
				s.needSecret(p, what, v.Secret.SecretName, "")
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					s.needConfigMap(p, what, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional)
				}
				if src.Secret != nil {
					for _, it := range src.Secret.Items {
						s.needSecret(p, what, src.Secret.Name, it.Key)
					}
				}
			}
		case v.PersistentVolumeClaim != nil:
			if !s.claimExists(v.PersistentVolumeClaim.ClaimName) {
				p.add("%s: claim %s is neither a PersistentVolumeClaim nor a StatefulSet's claim", what, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	for _, c := range pod.Containers {
		cw := what + " container " + c.Name
		if c.Name == "" || c.Image == "" {
			p.add("%s: name and image are required", cw)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			p.add("%s: cpu and memory requests are required", cw)
		}
		if c.Resources.Limits.Memory().IsZero() {
			p.add("%s: a memory limit is required", cw)
		}
		ports := map[string]bool{}
		for _, port := range c.Ports {
			ports[port.Name] = true
		}
		for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if pr == nil {
				continue
			}
			if pr.HTTPGet != nil && pr.HTTPGet.Port.StrVal != "" && !ports[pr.HTTPGet.Port.StrVal] {
				p.add("%s: probe port %s is not declared", cw, pr.HTTPGet.Port.StrVal)
			}
			if pr.TCPSocket != nil && pr.TCPSocket.Port.StrVal != "" && !ports[pr.TCPSocket.Port.StrVal] {
				p.add("%s: probe port %s is not declared", cw, pr.TCPSocket.Port.StrVal)
			}
		}
		for _, m := range c.VolumeMounts {
			if !vols[m.Name] && !s.isClaimTemplate(m.Name) {
				p.add("%s: mount %s names no volume", cw, m.Name)
			}
		}
		seen := map[string]bool{}
		for _, e := range c.Env {
			if seen[e.Name] {
				p.add("%s: env %s twice", cw, e.Name)
			}
			seen[e.Name] = true
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				s.needSecret(p, cw, r.Name, r.Key)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				s.needConfigMap(p, cw, r.Name, []corev1.KeyToPath{{Key: r.Key}}, r.Optional)
			}
		}
	}
}

func (s *Set) isClaimTemplate(name string) bool {
	for _, o := range s.Objects {
		if st, ok := o.Value.(*appsv1.StatefulSet); ok {
			for _, t := range st.Spec.VolumeClaimTemplates {
				if t.Name == name {
					return true
				}
			}
		}
	}
	return false
}

func (s *Set) claimExists(name string) bool {
	if s.find("PersistentVolumeClaim", name) != nil {
		return true
	}
	for _, o := range s.Objects {
		if st, ok := o.Value.(*appsv1.StatefulSet); ok {
			for _, t := range st.Spec.VolumeClaimTemplates {
				if strings.HasPrefix(name, t.Name+"-"+st.Name+"-") {
					return true
				}
			}
		}
	}
	return false
}

func (s *Set) needConfigMap(p *problems, what, name string, items []corev1.KeyToPath, optional *bool) {
	o := s.find("ConfigMap", name)
	if o == nil {
		p.add("%s: ConfigMap %s does not exist", what, name)
		return
	}
	if optional != nil && *optional {
		return
	}
	cm := o.Value.(*corev1.ConfigMap)
	for _, it := range items {
		if _, ok := cm.Data[it.Key]; !ok {
			p.add("%s: ConfigMap %s has no key %s", what, name, it.Key)
		}
	}
}

func (s *Set) needSecret(p *problems, what, name, key string) {
	keys, ok := s.Secrets[name]
	if !ok {
		p.add("%s: Secret %s is neither in secrets.example.yaml nor written by Strimzi", what, name)
		return
	}
	if key != "" && keys != nil && !keys[key] {
		p.add("%s: Secret %s has no key %s", what, name, key)
	}
}

// Metrics returns the metric names a PromQL expression selects, or the parser's error.
func Metrics(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			if name == "" {
				for _, m := range vs.LabelMatchers {
					if m.Name == "__name__" {
						name = m.Value
					}
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

func (s *Set) checkExpr(p *problems, what, expr string) {
	names, err := Metrics(expr)
	if err != nil {
		p.add("%s: PromQL: %v", what, err)
		return
	}
	for _, n := range names {
		if !s.Metrics[n] && !platformMetrics[n] {
			p.add("%s: metric %s is not exported by the binary", what, n)
		}
	}
}

func (s *Set) checkRules(p *problems, what string, r *monitoringv1.PrometheusRule, overlay string) {
	seen := map[string]bool{}
	for _, g := range r.Spec.Groups {
		for _, rule := range g.Rules {
			rw := what + " alert " + rule.Alert
			if rule.Alert == "" || seen[rule.Alert] {
				p.add("%s: alert names are required and unique", rw)
			}
			seen[rule.Alert] = true
			s.checkExpr(p, rw, rule.Expr.String())
			switch rule.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				p.add("%s: severity must be critical, warning or info", rw)
			}
			if rule.Annotations["summary"] == "" {
				p.add("%s: a summary is required", rw)
			}
			u, err := url.Parse(rule.Annotations["runbook_url"])
			if err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != strings.ToLower(rule.Alert) {
				p.add("%s: runbook_url %q must be absolute (https) and end in #%s", rw, rule.Annotations["runbook_url"], strings.ToLower(rule.Alert))
			}
		}
	}
}

// dashboard is the part of Grafana's dashboard JSON model the checks read.
type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func (s *Set) checkDashboards(p *problems, what string, cm *corev1.ConfigMap) {
	if len(cm.Data) == 0 {
		p.add("%s: no dashboards", what)
	}
	for file, text := range cm.Data {
		var d dashboard
		if err := json.Unmarshal([]byte(text), &d); err != nil {
			p.add("%s: %s is not JSON: %v", what, file, err)
			continue
		}
		if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
			p.add("%s: %s needs uid, title and panels", what, file)
		}
		for _, panel := range d.Panels {
			if len(panel.Targets) == 0 {
				p.add("%s: %s panel %q has no query", what, file, panel.Title)
			}
			for _, t := range panel.Targets {
				s.checkExpr(p, what+" "+file+" panel "+panel.Title, t.Expr)
			}
		}
	}
}

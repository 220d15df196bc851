package k8s_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// object is one rendered Kubernetes object; spec and the other parts are
// kept raw and decoded by the check that needs them.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
	Data       map[string]string `json:"data"`
	StringData map[string]string `json:"stringData"`
}

// render returns the dev overlay's objects, rendered once per test binary.
// It skips only when the go command itself is missing; a kustomize that
// fails to build or render fails the test.
func render(t *testing.T) []object {
	t.Helper()
	renderOnce.Do(func() { renderedObjs, renderSkip, renderErr = renderDev() })
	if renderSkip != "" {
		t.Skip(renderSkip)
	}
	if renderErr != nil {
		t.Fatal(renderErr)
	}
	return renderedObjs
}

var (
	renderOnce   sync.Once
	renderedObjs []object
	renderSkip   string
	renderErr    error
)

// renderDev runs the pinned kustomize on the dev overlay, as "task k8s"
// does, and decodes every object it prints.
func renderDev() (objs []object, skip string, err error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return nil, "the go command is not available to run the pinned kustomize (go tool -modfile=tools/go.mod kustomize)", nil
		}
	}
	// kustomize reads the manifests in another process: read them here too,
	// so that go test's cache is invalidated when one changes.
	for _, dir := range []string{"base", "overlays/dev"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			return nil, "", fmt.Errorf("no manifests in %s: %v", dir, err)
		}
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				return nil, "", err
			}
		}
	}
	cmd := exec.Command(goBin, "tool", "-modfile=tools/go.mod", "kustomize", "build", "deploy/k8s/overlays/dev")
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("kustomize build deploy/k8s/overlays/dev: %v\n%s", err, stderr.Bytes())
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, "", fmt.Errorf("rendered YAML does not decode: %w", err)
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			return nil, "", fmt.Errorf("rendered object is not JSON-able: %w", err)
		}
		var o object
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, "", fmt.Errorf("rendered object: %w", err)
		}
		objs = append(objs, o)
	}
	return objs, "", nil
}

func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func find(objs []object, kind, name string) *object {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}

func decodeSpec(t *testing.T, o object, v any) {
	t.Helper()
	if err := json.Unmarshal(o.Spec, v); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

type probe struct {
	HTTPGet *struct {
		Path string `json:"path"`
		Port any    `json:"port"`
	} `json:"httpGet"`
	GRPC *struct {
		Port    int    `json:"port"`
		Service string `json:"service"`
	} `json:"grpc"`
	TCPSocket any `json:"tcpSocket"`
	Exec      any `json:"exec"`
}

type keyRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

type container struct {
	Name  string   `json:"name"`
	Image string   `json:"image"`
	Args  []string `json:"args"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	Env []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `json:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `json:"configMapKeyRef"`
		} `json:"valueFrom"`
	} `json:"env"`
	EnvFrom []struct {
		SecretRef    *keyRef `json:"secretRef"`
		ConfigMapRef *keyRef `json:"configMapRef"`
	} `json:"envFrom"`
	ReadinessProbe *probe `json:"readinessProbe"`
	LivenessProbe  *probe `json:"livenessProbe"`
	StartupProbe   *probe `json:"startupProbe"`
	Resources      struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	SecurityContext *securityContext `json:"securityContext"`
}

type securityContext struct {
	RunAsNonRoot             *bool `json:"runAsNonRoot"`
	RunAsUser                *int  `json:"runAsUser"`
	ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
	Capabilities             *struct {
		Drop []string `json:"drop"`
		Add  []string `json:"add"`
	} `json:"capabilities"`
	SeccompProfile *struct {
		Type string `json:"type"`
	} `json:"seccompProfile"`
}

type podSpec struct {
	SecurityContext securityContext `json:"securityContext"`
	Containers      []container     `json:"containers"`
	InitContainers  []container     `json:"initContainers"`
	Volumes         []struct {
		Name   string `json:"name"`
		Secret *struct {
			SecretName string `json:"secretName"`
		} `json:"secret"`
		ConfigMap *keyRef `json:"configMap"`
	} `json:"volumes"`
}

type workloadSpec struct {
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec podSpec `json:"spec"`
	} `json:"template"`
}

// pods returns every pod template in the render (Deployments and Jobs), by
// "Kind/name".
func pods(t *testing.T, objs []object) map[string]workloadSpec {
	t.Helper()
	out := map[string]workloadSpec{}
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "Job" && o.Kind != "StatefulSet" && o.Kind != "DaemonSet" {
			continue
		}
		var w workloadSpec
		decodeSpec(t, o, &w)
		out[o.Kind+"/"+o.Metadata.Name] = w
	}
	return out
}

func TestRenderHasEveryPart(t *testing.T) {
	t.Parallel()
	objs := render(t)
	for _, want := range []struct{ kind, name string }{
		{"Deployment", "productsvc"}, {"Deployment", "cartsvc"},
		{"Service", "productsvc"}, {"Service", "cartsvc"},
		{"PodDisruptionBudget", "productsvc"}, {"PodDisruptionBudget", "cartsvc"},
		{"HorizontalPodAutoscaler", "productsvc"}, {"HorizontalPodAutoscaler", "cartsvc"},
		{"Cluster", "product-db"}, {"Cluster", "cart-db"},
		{"Pooler", "product-db-pooler"}, {"Pooler", "cart-db-pooler"},
		{"ServiceMonitor", "shop"}, {"PrometheusRule", "shop"},
	} {
		if find(objs, want.kind, want.name) == nil {
			t.Errorf("the dev overlay renders no %s %q", want.kind, want.name)
		}
	}
	for _, o := range objs {
		if o.Kind != "Namespace" && o.Metadata.Namespace != "shop-dev" {
			t.Errorf("%s %s is in namespace %q, want shop-dev", o.Kind, o.Metadata.Name, o.Metadata.Namespace)
		}
	}
}

func TestContainersAreHardened(t *testing.T) {
	t.Parallel()
	objs := render(t)
	ps := pods(t, objs)
	if len(ps) == 0 {
		t.Fatal("no workloads rendered")
	}
	for name, w := range ps {
		pod := w.Template.Spec
		if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
		}
		if pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile is not RuntimeDefault", name)
		}
		if u := pod.SecurityContext.RunAsUser; u != nil && *u == 0 {
			t.Errorf("%s: pod runs as uid 0", name)
		}
		for i, c := range append(append([]container(nil), pod.Containers...), pod.InitContainers...) {
			where := name + " container " + c.Name
			if err := pinnedImage(c.Image); err != nil {
				t.Errorf("%s: %v", where, err)
			}
			serves := i < len(pod.Containers) // init containers run to completion: no probes
			switch {
			case serves && (c.ReadinessProbe == nil || c.LivenessProbe == nil):
				t.Errorf("%s: needs a readiness and a liveness probe", where)
			case serves && c.ReadinessProbe.GRPC == nil:
				t.Errorf("%s: readiness must be the gRPC health check (it turns NOT_SERVING while draining)", where)
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" {
					t.Errorf("%s: no %s request", where, r)
				}
			}
			if c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: no memory limit", where)
			}
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no securityContext", where)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: root filesystem is not read-only", where)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
				t.Errorf("%s: capabilities must drop ALL and add none", where)
			case sc.RunAsUser != nil && *sc.RunAsUser == 0:
				t.Errorf("%s: runs as uid 0", where)
			}
			if sc != nil && sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
				t.Errorf("%s: runAsNonRoot is overridden to false", where)
			}
			ports := map[string]int{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for _, pr := range []*probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if pr == nil {
					continue
				}
				if pr.GRPC != nil && !containsPort(ports, pr.GRPC.Port) {
					t.Errorf("%s: gRPC probe on port %d, which the container does not declare", where, pr.GRPC.Port)
				}
				if pr.HTTPGet != nil {
					if p, ok := pr.HTTPGet.Port.(string); ok && ports[p] == 0 {
						t.Errorf("%s: HTTP probe on port %q, which the container does not name", where, p)
					}
				}
			}
		}
	}
	for _, o := range ofKind(objs, "Cluster") {
		var spec struct {
			ImageName string `json:"imageName"`
		}
		decodeSpec(t, o, &spec)
		if spec.ImageName != "" {
			if err := pinnedImage(spec.ImageName); err != nil {
				t.Errorf("Cluster %s: %v", o.Metadata.Name, err)
			}
		}
	}
}

func containsPort(ports map[string]int, n int) bool {
	for _, p := range ports {
		if p == n {
			return true
		}
	}
	return false
}

// pinnedImage refuses an image without a tag or digest, or tagged latest.
func pinnedImage(image string) error {
	if image == "" {
		return errors.New("no image")
	}
	if _, digest, ok := strings.Cut(image, "@"); ok {
		if !strings.HasPrefix(digest, "sha256:") {
			return fmt.Errorf("image %q: digest is not sha256", image)
		}
		return nil
	}
	last := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("image %q has no tag: pin one", image)
	case tag == "latest":
		return fmt.Errorf("image %q is tagged latest: pin a version", image)
	}
	return nil
}

func TestPinnedImage(t *testing.T) {
	t.Parallel()
	for image, ok := range map[string]bool{
		"shop/productsvc:0.1.0":                             true,
		"localhost:5001/shop/cartsvc:0.1.0-dev":             true,
		"shop/productsvc@sha256:" + strings.Repeat("a", 64): true,
		"shop/productsvc":                                   false,
		"localhost:5001/shop/cartsvc":                       false,
		"shop/productsvc:latest":                            false,
		"":                                                  false,
	} {
		if err := pinnedImage(image); (err == nil) != ok {
			t.Errorf("pinnedImage(%q) = %v, want ok=%v", image, err, ok)
		}
	}
}

func TestReferencedSecretsAndConfigMapsExist(t *testing.T) {
	t.Parallel()
	objs := render(t)
	// keys returns the keys of a rendered Secret or ConfigMap, or nil when
	// there is none of that name.
	keys := func(kind, name string) map[string]bool {
		o := find(objs, kind, name)
		if o == nil {
			return nil
		}
		out := map[string]bool{}
		for k, v := range o.Data {
			if kind == "Secret" {
				if _, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(v, "\n", "")); err != nil {
					t.Errorf("Secret %s key %s is not base64: %v", name, k, err)
				}
			}
			out[k] = true
		}
		for k := range o.StringData {
			out[k] = true
		}
		return out
	}
	check := func(where, kind string, ref *keyRef) {
		if ref == nil {
			return
		}
		ks := keys(kind, ref.Name)
		if ks == nil {
			t.Errorf("%s references %s %q, which the render does not contain", where, kind, ref.Name)
			return
		}
		if ref.Key != "" && !ks[ref.Key] {
			t.Errorf("%s references key %q of %s %q, which has no such key", where, ref.Key, kind, ref.Name)
		}
	}
	references := 0
	for name, w := range pods(t, objs) {
		for _, c := range append(append([]container(nil), w.Template.Spec.Containers...), w.Template.Spec.InitContainers...) {
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					check(name+" env "+e.Name, "Secret", e.ValueFrom.SecretKeyRef)
					check(name+" env "+e.Name, "ConfigMap", e.ValueFrom.ConfigMapKeyRef)
					references++
				}
			}
			for _, e := range c.EnvFrom {
				check(name+" envFrom", "Secret", e.SecretRef)
				check(name+" envFrom", "ConfigMap", e.ConfigMapRef)
				references++
			}
		}
		for _, v := range w.Template.Spec.Volumes {
			if v.Secret != nil {
				check(name+" volume "+v.Name, "Secret", &keyRef{Name: v.Secret.SecretName})
			}
			check(name+" volume "+v.Name, "ConfigMap", v.ConfigMap)
		}
	}
	for _, o := range ofKind(objs, "Cluster") {
		var spec struct {
			Bootstrap struct {
				InitDB struct {
					Owner  string  `json:"owner"`
					Secret *keyRef `json:"secret"`
				} `json:"initdb"`
			} `json:"bootstrap"`
		}
		decodeSpec(t, o, &spec)
		if spec.Bootstrap.InitDB.Secret == nil {
			t.Errorf("Cluster %s: no owner Secret (bootstrap.initdb.secret)", o.Metadata.Name)
			continue
		}
		ref := *spec.Bootstrap.InitDB.Secret
		check("Cluster "+o.Metadata.Name, "Secret", &keyRef{Name: ref.Name, Key: "password"})
		if s := find(objs, "Secret", ref.Name); s != nil {
			user, _ := base64.StdEncoding.DecodeString(s.Data["username"])
			if string(user) != spec.Bootstrap.InitDB.Owner {
				t.Errorf("Cluster %s: owner %q, but Secret %s names user %q", o.Metadata.Name, spec.Bootstrap.InitDB.Owner, ref.Name, user)
			}
		}
		references++
	}
	if references == 0 {
		t.Fatal("no Secret or ConfigMap references found: the check saw nothing")
	}
}

// selects reports whether selector's labels all appear in labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestDisruptionBudgetsAndAutoscalersTargetDeployments(t *testing.T) {
	t.Parallel()
	objs := render(t)
	deployments := map[string]workloadSpec{}
	for name, w := range pods(t, objs) {
		if after, ok := strings.CutPrefix(name, "Deployment/"); ok {
			deployments[after] = w
		}
	}
	covered := map[string]int{}
	for _, o := range ofKind(objs, "PodDisruptionBudget") {
		var spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
		}
		decodeSpec(t, o, &spec)
		n := 0
		for name, d := range deployments {
			if selects(spec.Selector.MatchLabels, d.Template.Metadata.Labels) {
				covered[name]++
				n++
			}
		}
		if n == 0 {
			t.Errorf("PodDisruptionBudget %s selects no Deployment's pods", o.Metadata.Name)
		}
	}
	scaled := map[string]bool{}
	for _, o := range ofKind(objs, "HorizontalPodAutoscaler") {
		var spec struct {
			ScaleTargetRef struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"scaleTargetRef"`
			MinReplicas int `json:"minReplicas"`
			MaxReplicas int `json:"maxReplicas"`
		}
		decodeSpec(t, o, &spec)
		if _, ok := deployments[spec.ScaleTargetRef.Name]; spec.ScaleTargetRef.Kind != "Deployment" || !ok {
			t.Errorf("HorizontalPodAutoscaler %s scales %s %q, not a rendered Deployment", o.Metadata.Name, spec.ScaleTargetRef.Kind, spec.ScaleTargetRef.Name)
		}
		if spec.MinReplicas < 2 || spec.MaxReplicas < spec.MinReplicas {
			t.Errorf("HorizontalPodAutoscaler %s: replicas %d to %d, want at least 2 so a disruption leaves one serving", o.Metadata.Name, spec.MinReplicas, spec.MaxReplicas)
		}
		scaled[spec.ScaleTargetRef.Name] = true
	}
	for name, d := range deployments {
		if covered[name] != 1 {
			t.Errorf("Deployment %s is covered by %d PodDisruptionBudgets, want 1", name, covered[name])
		}
		if !scaled[name] {
			t.Errorf("Deployment %s has no HorizontalPodAutoscaler", name)
		}
		if !selects(d.Selector.MatchLabels, d.Template.Metadata.Labels) {
			t.Errorf("Deployment %s: its selector does not match its own pods", name)
		}
	}
}

func TestServiceMonitorScrapesAdminPorts(t *testing.T) {
	t.Parallel()
	objs := render(t)
	type servicePort struct {
		Name       string `json:"name"`
		Port       int    `json:"port"`
		TargetPort any    `json:"targetPort"`
	}
	type serviceSpec struct {
		Selector map[string]string `json:"selector"`
		Ports    []servicePort     `json:"ports"`
	}
	// The admin port of each Deployment, by pod labels.
	adminPorts := map[string]int{}
	for name, w := range pods(t, objs) {
		for _, c := range w.Template.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == "admin" {
					adminPorts[name] = p.ContainerPort
				}
			}
		}
	}
	monitors := ofKind(objs, "ServiceMonitor")
	if len(monitors) == 0 {
		t.Fatal("no ServiceMonitor rendered")
	}
	scraped := map[string]bool{}
	for _, m := range monitors {
		var spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		}
		decodeSpec(t, m, &spec)
		services := 0
		for _, s := range ofKind(objs, "Service") {
			if !selects(spec.Selector.MatchLabels, s.Metadata.Labels) {
				continue
			}
			services++
			var ss serviceSpec
			decodeSpec(t, s, &ss)
			for _, e := range spec.Endpoints {
				var port *servicePort
				for i := range ss.Ports {
					if ss.Ports[i].Name == e.Port {
						port = &ss.Ports[i]
					}
				}
				if port == nil {
					t.Errorf("ServiceMonitor %s scrapes port %q, which Service %s does not have", m.Metadata.Name, e.Port, s.Metadata.Name)
					continue
				}
				if e.Path != "/metrics" {
					t.Errorf("ServiceMonitor %s scrapes path %q, want /metrics", m.Metadata.Name, e.Path)
				}
				// The port must lead to a pod's admin listener.
				for name, w := range pods(t, objs) {
					if selects(ss.Selector, w.Template.Metadata.Labels) {
						if port.TargetPort != "admin" || adminPorts[name] == 0 {
							t.Errorf("Service %s port %s targets %v, not the admin port of %s", s.Metadata.Name, port.Name, port.TargetPort, name)
						}
						scraped[name] = true
					}
				}
			}
		}
		if services == 0 {
			t.Errorf("ServiceMonitor %s selects no Service", m.Metadata.Name)
		}
	}
	for name := range adminPorts {
		if !scraped[name] {
			t.Errorf("%s's admin port is scraped by no ServiceMonitor", name)
		}
	}
}

// Each Deployment migrates in an init container running its own image with
// --migrate-only and the same database Secret, and the service itself then
// skips migrating.
func TestMigrationsRunInAnInitContainer(t *testing.T) {
	t.Parallel()
	objs := render(t)
	for _, name := range []string{"productsvc", "cartsvc"} {
		w, ok := pods(t, objs)["Deployment/"+name]
		if !ok {
			t.Fatalf("no Deployment %s", name)
		}
		pod := w.Template.Spec
		if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
			t.Fatalf("%s: %d init containers and %d containers, want one of each", name, len(pod.InitContainers), len(pod.Containers))
		}
		init, svc := pod.InitContainers[0], pod.Containers[0]
		if init.Image != svc.Image || len(init.Args) != 1 || init.Args[0] != "--migrate-only" {
			t.Errorf("%s: init container runs %s %v, want the service's image %s with --migrate-only", name, init.Image, init.Args, svc.Image)
		}
		secretOf := func(c container, env string) string {
			for _, e := range c.Env {
				if e.Name == env && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
				}
			}
			return ""
		}
		if a, b := secretOf(init, "DATABASE_DIRECT_URL"), secretOf(svc, "DATABASE_DIRECT_URL"); a == "" || a != b {
			t.Errorf("%s: the init container migrates %q, the service uses %q: want the same direct URL", name, a, b)
		}
		for _, e := range svc.Env {
			if e.Name == "MIGRATE" && e.Value != "false" {
				t.Errorf("%s: MIGRATE=%q in the service container; the init container has migrated", name, e.Value)
			}
		}
	}
}

func TestServicesListenWhereTheManifestsSay(t *testing.T) {
	t.Parallel()
	objs := render(t)
	for name, w := range pods(t, objs) {
		for _, c := range w.Template.Spec.Containers {
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			ports := map[string]int{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if want := fmt.Sprintf(":%d", ports["http"]); env["ADDR"] != want {
				t.Errorf("%s: ADDR=%q but the http port is %d", name, env["ADDR"], ports["http"])
			}
			if want := fmt.Sprintf(":%d", ports["admin"]); env["ADMIN_ADDR"] != want {
				t.Errorf("%s: ADMIN_ADDR=%q, want %q (the default is loopback, which Prometheus cannot reach)", name, env["ADMIN_ADDR"], want)
			}
		}
	}
}

// The PrometheusRule carries exactly the groups of
// deploy/prometheus/shop.rules.yml, the file promtool tests.
func TestPrometheusRuleIsTheTestedRules(t *testing.T) {
	t.Parallel()
	objs := render(t)
	rule := find(objs, "PrometheusRule", "shop")
	if rule == nil {
		t.Fatal("no PrometheusRule shop rendered")
	}
	var rendered struct {
		Groups []any `json:"groups"`
	}
	decodeSpec(t, *rule, &rendered)
	data, err := os.ReadFile("../prometheus/shop.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(file["groups"])
	got, _ := json.Marshal(rendered.Groups)
	if len(rendered.Groups) == 0 || !bytes.Equal(got, want) {
		t.Errorf("base/prometheusrule.yaml's groups differ from deploy/prometheus/shop.rules.yml: regenerate it (see its header)")
	}
}

type networkPolicySpec struct {
	PodSelector struct {
		MatchLabels      map[string]string `json:"matchLabels"`
		MatchExpressions []struct {
			Key      string   `json:"key"`
			Operator string   `json:"operator"`
			Values   []string `json:"values"`
		} `json:"matchExpressions"`
	} `json:"podSelector"`
	Ingress []struct {
		From []struct {
			NamespaceSelector *struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"namespaceSelector"`
			PodSelector any `json:"podSelector"`
			IPBlock     any `json:"ipBlock"`
		} `json:"from"`
		Ports []struct {
			Port any `json:"port"`
		} `json:"ports"`
	} `json:"ingress"`
}

// selectsPod reports whether the policy's pod selector (labels and In
// expressions) picks a pod with labels; an empty selector counts as no.
func (p networkPolicySpec) selectsPod(labels map[string]string) bool {
	sel := p.PodSelector
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		return false
	}
	if len(sel.MatchLabels) > 0 && !selects(sel.MatchLabels, labels) {
		return false
	}
	for _, e := range sel.MatchExpressions {
		if e.Operator != "In" || !slices.Contains(e.Values, labels[e.Key]) {
			return false
		}
	}
	return true
}

// The admin listener serves pprof: only Prometheus's namespace may reach it,
// while the API port stays open.
func TestAdminPortsOnlyFromMonitoring(t *testing.T) {
	t.Parallel()
	objs := render(t)
	for name, w := range pods(t, objs) {
		covered := false
		for _, o := range ofKind(objs, "NetworkPolicy") {
			var p networkPolicySpec
			decodeSpec(t, o, &p)
			if !p.selectsPod(w.Template.Metadata.Labels) {
				continue
			}
			covered = true
			api, admin := false, false
			for _, r := range p.Ingress {
				for _, port := range r.Ports {
					switch port.Port {
					case "http":
						api = true
					case "admin":
						admin = true
						if len(r.From) == 0 {
							t.Errorf("NetworkPolicy %s opens %s's admin port to everyone", o.Metadata.Name, name)
						}
						for _, f := range r.From {
							if f.NamespaceSelector == nil || len(f.NamespaceSelector.MatchLabels) == 0 || f.PodSelector != nil || f.IPBlock != nil {
								t.Errorf("NetworkPolicy %s lets more than a labelled namespace reach %s's admin port", o.Metadata.Name, name)
							}
						}
					}
				}
			}
			if !api || !admin {
				t.Errorf("NetworkPolicy %s: %s's API port open: %v, admin port reachable by Prometheus: %v; want both", o.Metadata.Name, name, api, admin)
			}
		}
		if !covered {
			t.Errorf("%s: no NetworkPolicy guards its admin port", name)
		}
	}
}

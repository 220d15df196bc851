package k8s_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

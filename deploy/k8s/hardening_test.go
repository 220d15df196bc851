package k8s_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Every container runs hardened, from a pinned image.

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

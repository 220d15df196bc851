package k8s_test

import (
	"fmt"
	"testing"
)

// How the services start: migrations first, then listening where the
// manifests say.

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

package k8s_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Monitoring: what Prometheus scrapes, the alert rules it loads, and the
// admin ports only it may reach.

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

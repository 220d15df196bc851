package k8s_test

import (
	"encoding/base64"
	"strings"
	"testing"
)

// What the objects name exists: Secrets, ConfigMaps, and the Deployments
// that budgets and autoscalers target.

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

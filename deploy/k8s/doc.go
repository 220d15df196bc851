// Package k8s holds the shop's Kubernetes manifests: a kustomize base
// (base/) and a development overlay (overlays/dev/). Its test renders the
// overlay with the kustomize pinned in tools/go.mod and checks the objects
// an operator would apply.
package k8s

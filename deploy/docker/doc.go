// Package docker holds the container image build of the shop's services
// (Dockerfile, one image per service chosen by --build-arg SERVICE). Its
// test checks the Dockerfile's invariants, since CI has no Docker: every
// base image pinned, a static build, a distroless runtime, a non-root user.
package docker

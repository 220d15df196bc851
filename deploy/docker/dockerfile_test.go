package docker_test

import (
	"bufio"
	"go/version"
	"os"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its arguments, continuation
// lines joined.
type instruction struct {
	cmd, args string
}

func parse(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur += body + " "
			continue
		}
		cur += line
		cmd, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDockerfileInvariants(t *testing.T) {
	t.Parallel()
	ins := parse(t, "Dockerfile")
	var stages []string // base image of each stage
	lastUser := ""
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			image := strings.Fields(in.args)[0]
			stages = append(stages, image)
			lastUser = ""
			name, digest, hasDigest := strings.Cut(image, "@")
			last := name[strings.LastIndex(name, "/")+1:]
			_, tag, hasTag := strings.Cut(last, ":")
			if !hasDigest && (!hasTag || tag == "" || tag == "latest") {
				t.Errorf("FROM %s: pin the base image by tag (not latest) or digest", image)
			}
			if hasDigest && !strings.HasPrefix(digest, "sha256:") {
				t.Errorf("FROM %s: digest must be sha256", image)
			}
		case "USER":
			lastUser = in.args
		case "RUN":
			if strings.Contains(in.args, "go build") && !strings.Contains(in.args, "CGO_ENABLED=0") {
				t.Errorf("RUN %s: the binary must be static (CGO_ENABLED=0) for a distroless static image", in.args)
			}
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build (a Go stage and a runtime stage), got %d stages", len(stages))
	}
	runtime := stages[len(stages)-1]
	if !strings.HasPrefix(runtime, "gcr.io/distroless/static") && runtime != "scratch" {
		t.Errorf("runtime stage is %s, want distroless static or scratch", runtime)
	}
	if !strings.HasPrefix(stages[0], "golang:") {
		t.Errorf("build stage is %s, want golang", stages[0])
	}
	if lastUser == "" || lastUser == "root" || strings.HasPrefix(lastUser, "0:") || lastUser == "0" {
		t.Errorf("the runtime stage runs as %q, want a non-root USER (65532:65532)", lastUser)
	}
	// The manifests run as 65532 with runAsNonRoot: kubelet can only verify
	// a numeric user.
	if uid, _, _ := strings.Cut(lastUser, ":"); uid != "65532" {
		t.Errorf("USER %s: want the numeric uid 65532 the manifests run as", lastUser)
	}
}

// The image builds ./cmd/$SERVICE: both services must be there, with the Go
// version the build stage uses at least the one go.mod asks for.
func TestDockerfileBuildsEachService(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"productsvc", "cartsvc"} {
		if _, err := os.Stat("../../cmd/" + svc + "/main.go"); err != nil {
			t.Errorf("cmd/%s: %v", svc, err)
		}
	}
	goMod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, line := range strings.Split(string(goMod), "\n") {
		if v, ok := strings.CutPrefix(line, "go "); ok {
			want = strings.TrimSpace(v)
		}
	}
	var have string
	for _, in := range parse(t, "Dockerfile") {
		if in.cmd == "FROM" && strings.HasPrefix(in.args, "golang:") {
			tag := strings.TrimPrefix(strings.Fields(in.args)[0], "golang:")
			have, _, _ = strings.Cut(tag, "-")
		}
	}
	if have == "" || want == "" {
		t.Fatalf("Go versions: image %q, go.mod %q", have, want)
	}
	if version.Compare("go"+have, "go"+want) < 0 {
		t.Errorf("the build stage has Go %s, go.mod needs %s", have, want)
	}
}

package server_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/decoupledshop/shop/internal/server"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

func TestHealthzReadyzAndGRPCHealth(t *testing.T) {
	t.Parallel()
	var readyErr atomicError
	var checkHadDeadline atomic.Bool
	b := setup(t, server.Config{Ready: func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		checkHadDeadline.Store(ok)
		return readyErr.Load()
	}}, nil)
	health := grpchealth.NewClient(b.h2c, b.baseURL, connect.WithGRPC())
	check := func(service string) (grpchealth.Status, error) {
		res, err := health.Check(context.Background(), &grpchealth.CheckRequest{Service: service})
		if err != nil {
			return 0, err
		}
		return res.Status, nil
	}

	if status, body := b.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d %q, want 200", status, body)
	}
	if status, body := b.get(t, "/readyz"); status != http.StatusOK {
		t.Errorf("/readyz while the check passes: %d %q, want 200", status, body)
	}
	if !checkHadDeadline.Load() {
		t.Errorf("readiness check ran without a deadline, want its 1s timeout")
	}
	for _, service := range []string{"", testService} {
		if status, err := check(service); err != nil || status != grpchealth.StatusServing {
			t.Errorf("health Check(%q) while ready: %v, %v; want serving", service, status, err)
		}
	}
	if _, err := check("no.such.Service"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("health Check of an unknown service: %v, want NotFound", err)
	}
	watch := <-health.Watch(context.Background(), &grpchealth.CheckRequest{})
	if connect.CodeOf(watch.Err) != connect.CodeUnimplemented {
		t.Errorf("health Watch: %+v, want Unimplemented", watch)
	}

	readyErr.Store(errors.New("dial tcp db-7.internal:5432: connection refused"))
	status, body := b.get(t, "/readyz")
	if status != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the check fails: %d %q, want 503", status, body)
	}
	if strings.Contains(body, "db-7") {
		t.Errorf("/readyz body %q leaks the check's error", body)
	}
	if status, err := check(""); err != nil || status != grpchealth.StatusNotServing {
		t.Errorf("health Check while not ready: %v, %v; want not serving", status, err)
	}
	if status, _ := b.get(t, "/healthz"); status != http.StatusOK {
		t.Errorf("/healthz while not ready: %d, want 200 (liveness does not depend on readiness)", status)
	}
}

func TestMetricsAreNotOnTheAPIPort(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, server.Config{Registry: reg}, nil)
	if b.srv.Registry() != reg {
		t.Fatal("Registry() is not Config.Registry")
	}
	if status, _ := b.get(t, "/metrics"); status != http.StatusNotFound {
		t.Fatalf("/metrics on the API port: %d, want 404 (metrics belong on the admin listener)", status)
	}
}

func TestReflectionListsRegisteredServices(t *testing.T) {
	t.Parallel()
	b := setup(t, server.Config{}, func(s *server.Server) { s.RegisterServiceNames("test.v1.OtherService") })
	for _, version := range []string{"v1", "v1alpha"} {
		t.Run(version, func(t *testing.T) {
			got := listServices(t, b, "grpc.reflection."+version+".ServerReflection")
			want := []string{testService, "test.v1.OtherService"}
			if !slices.Equal(got, want) {
				t.Errorf("reflection %s lists %v, want %v", version, got, want)
			}
		})
	}
}

// listServices asks the reflection service for its service list over gRPC.
// grpcreflect registers the reflection messages globally under a
// "connectext." prefix; v1 and v1alpha messages are identical on the wire.
func listServices(t *testing.T, b *testBundle, service string) []string {
	t.Helper()
	desc, err := protoregistry.GlobalFiles.FindDescriptorByName("connectext.grpc.reflection.v1.ServerReflection.ServerReflectionInfo")
	if err != nil {
		t.Fatalf("find reflection descriptor: %v", err)
	}
	method := desc.(protoreflect.MethodDescriptor)
	client := connect.NewClient[dynamicpb.Message, dynamicpb.Message](b.h2c,
		b.baseURL+"/"+service+"/ServerReflectionInfo",
		connect.WithGRPC(),
		connect.WithSchema(method),
		connect.WithResponseInitializer(func(_ connect.Spec, msg any) error {
			*msg.(*dynamicpb.Message) = *dynamicpb.NewMessage(method.Output())
			return nil
		}),
	)
	stream := client.CallBidiStream(context.Background())
	req := dynamicpb.NewMessage(method.Input())
	req.Set(method.Input().Fields().ByName("list_services"), protoreflect.ValueOfString("*"))
	if err := stream.Send(req); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := stream.CloseRequest(); err != nil {
		t.Fatalf("close request: %v", err)
	}
	res, err := stream.Receive()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if err := stream.CloseResponse(); err != nil {
		t.Fatalf("close response: %v", err)
	}
	list := res.Get(method.Output().Fields().ByName("list_services_response")).Message()
	services := list.Get(list.Descriptor().Fields().ByName("service")).List()
	var names []string
	for i := range services.Len() {
		svc := services.Get(i).Message()
		names = append(names, svc.Get(svc.Descriptor().Fields().ByName("name")).String())
	}
	return names
}

package auth_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	_ "google.golang.org/protobuf/types/known/emptypb" // registers google/protobuf/empty.proto

	"github.com/decoupledshop/shop/internal/auth"
)

func testServiceProcedures(t *testing.T) []string {
	t.Helper()
	method := func(name string) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{
			Name:       proto.String(name),
			InputType:  proto.String(".google.protobuf.Empty"),
			OutputType: proto.String(".google.protobuf.Empty"),
		}
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:       proto.String("test/v1/test.proto"),
		Package:    proto.String("test.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/protobuf/empty.proto"},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:   proto.String("TestService"),
			Method: []*descriptorpb.MethodDescriptorProto{method("Public"), method("User"), method("Admin"), method("Service"), method("Unclassified")},
		}},
	}, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return auth.Procedures(fd.Services().Get(0))
}

func TestProceduresListsEveryMethod(t *testing.T) {
	t.Parallel()
	got := testServiceProcedures(t)
	want := []string{procPublic, procUser, procAdmin, procService, procUnclassified}
	if !slices.Equal(got, want) {
		t.Fatalf("Procedures = %v, want %v", got, want)
	}
}

func TestRulesCheck(t *testing.T) {
	t.Parallel()
	procedures := testServiceProcedures(t)

	err := testRules.Check(procedures)
	if err == nil || !strings.Contains(err.Error(), procUnclassified) {
		t.Fatalf("Check with an unclassified procedure = %v, want an error naming %s", err, procUnclassified)
	}
	if strings.Contains(err.Error(), procPublic) {
		t.Errorf("Check names a classified procedure: %v", err)
	}

	complete := auth.Rules{procUnclassified: auth.Admin}
	for p, a := range testRules {
		complete[p] = a
	}
	if err := complete.Check(procedures); err != nil {
		t.Fatalf("Check of complete rules = %v, want nil", err)
	}

	for name, bad := range map[string]auth.Rules{
		"zero access":    {procPublic: 0},
		"unknown access": {procPublic: auth.Service + 1},
		"no leading /":   {"test.v1.TestService/Public": auth.Public},
		"no method":      {"/test.v1.TestService/": auth.Public},
		"extra segment":  {"/test.v1.TestService/Public/x": auth.Public},
	} {
		if err := bad.Check(nil); err == nil {
			t.Errorf("%s: Check = nil, want an error", name)
		}
	}
}

func TestIdentityContext(t *testing.T) {
	t.Parallel()
	if _, ok := auth.FromContext(context.Background()); ok {
		t.Fatal("FromContext on an empty context reported an identity")
	}
	want := &auth.Identity{Subject: "u1", Roles: []string{"admin"}, Scopes: []string{"openid"}}
	got, ok := auth.FromContext(auth.WithIdentity(context.Background(), want))
	if !ok || got != want {
		t.Fatalf("FromContext = %v, %t; want the identity stored by WithIdentity", got, ok)
	}
	if !got.HasRole("admin") || got.HasRole("root") || !got.HasScope("openid") || got.HasScope("admin") {
		t.Errorf("HasRole/HasScope wrong for %+v", got)
	}
	var none *auth.Identity
	if none.HasRole("admin") || none.HasScope("openid") {
		t.Error("a nil Identity has a role or scope")
	}
	if _, ok := auth.FromContext(auth.WithIdentity(context.Background(), nil)); ok {
		t.Error("FromContext reports a nil identity as present")
	}
}

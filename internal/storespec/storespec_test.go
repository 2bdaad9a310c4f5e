package storespec_test

import (
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/storespec"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		want    storespec.Spec
		wantErr string // "" for success
	}{
		{spec: "memory", want: storespec.Spec{Kind: storespec.Memory}},
		{spec: "bolt:/var/lib/tusproxy/state.db", want: storespec.Spec{Kind: storespec.Bolt, Path: "/var/lib/tusproxy/state.db"}},
		{spec: "redis://:hunter2@localhost:6379/0", want: storespec.Spec{Kind: storespec.Redis, URL: "redis://:hunter2@localhost:6379/0"}},
		{spec: "rediss://redis.internal:6380", want: storespec.Spec{Kind: storespec.Redis, URL: "rediss://redis.internal:6380"}},
		{spec: "", wantErr: `"" is not a supported store`},
		{spec: "memory:x", wantErr: `"memory:x" is not a supported store`},
		{spec: "bolt", wantErr: `"bolt" is not a supported store`},
		{spec: "bolt:", wantErr: "needs a file path"},
		{spec: "bolt: ", wantErr: "needs a file path"},
		{spec: "redis://:hunter2@/0", wantErr: "is not a valid redis:// URL"},
		{spec: "redis://:hunter2@localhost/db", wantErr: "has a database that is not a number"},
		{spec: "postgres://u:hunter2@db/x", wantErr: "is not a supported store"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := storespec.Parse(tt.spec)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Parse = %+v, %v; want %+v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks a password", err)
			}
		})
	}
}

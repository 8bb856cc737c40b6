package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateCommand(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "schema.spacetimedb"), []byte("table T { a: u8 }\nreducer r(x: String);"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
	}{
		{"dir", []string{"generate", dir}, "Generated " + filepath.Join(dir, "spacetime_generated.go"), ""},
		{"flags after dir", []string{"generate", dir, "--out", out}, "Generated " + filepath.Join(out, "spacetime_generated.go"), ""},
		{"other language", []string{"generate", "--lang", "rust", dir}, "", "--lang rust is not supported yet"},
		{"typescript bindings", []string{"generate", "--lang", "typescript", dir, "--out", out}, "Generated " + filepath.Join(out, "index.ts"), ""},
		{"two dirs", []string{"generate", dir, dir}, "", "generate takes one directory"},
		{"no schema", []string{"generate", t.TempDir()}, "", "schema.spacetimedb: no such file"},
		{"unknown command", []string{"frobnicate"}, "", `unknown command "frobnicate"`},
		{"no command", nil, "", "no command given"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantOut)
			}
		})
	}
}

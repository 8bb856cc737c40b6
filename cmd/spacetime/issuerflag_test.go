package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseIssuerFlag(t *testing.T) {
	abs := func(p string) string { return filepath.Join("/base", p) }
	for _, tc := range []struct {
		spec    string
		db      string
		wantErr string
		check   func(t *testing.T, algs, auds, keys []string, jwks string)
	}{
		{spec: "iss=https://accounts.example.com/,alg=RS256,alg=ES256,aud=my-app,jwks=https://accounts.example.com/jwks",
			check: func(t *testing.T, algs, auds, keys []string, jwks string) {
				if strings.Join(algs, " ") != "RS256 ES256" || strings.Join(auds, " ") != "my-app" || jwks != "https://accounts.example.com/jwks" {
					t.Errorf("algs %v auds %v jwks %q", algs, auds, jwks)
				}
			}},
		{spec: "iss=https://club.example/,alg=ES256,key=club.pem,db=club,leeway=10s", db: "club",
			check: func(t *testing.T, _, _, keys []string, _ string) {
				if len(keys) != 1 || keys[0] != filepath.Join("/base", "club.pem") {
					t.Errorf("keys %v: relative paths resolve against the working directory", keys)
				}
			}},
		{spec: "alg=RS256,jwks=https://x.example/jwks", wantErr: "iss= is missing"},
		{spec: "iss=https://x.example/,algo=RS256", wantErr: `unknown key "algo"`},
		{spec: "iss=https://x.example/,alg", wantErr: "is not key=value"},
		{spec: "iss=https://x.example/,alg=ES256,key=k.pem,leeway=soon", wantErr: "leeway"},
		{spec: "iss=https://x.example/,alg=none,key=k.pem", wantErr: "none"},
		{spec: "iss=https://x.example/,alg=RS256", wantErr: "key"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			db, iss, err := parseIssuerFlag(tc.spec, abs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if db != tc.db {
				t.Errorf("db = %q, want %q", db, tc.db)
			}
			tc.check(t, iss.Algorithms, iss.Audiences, iss.PublicKeys, iss.JWKSURL)
		})
	}
}

// TestAuthConfigFromFlags: --issuer adds to the config file's issuers,
// server-wide or for one database, and --dev-issuer=false turns the
// development issuer off.
func TestAuthConfigFromFlags(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "spacetime.toml")
	os.WriteFile(cfgFile, []byte("[[auth.issuers]]\nissuer = \"https://file.example/\"\nalgorithms = [\"RS256\"]\njwks_url = \"https://file.example/jwks\"\n"), 0o600)
	a := &app{wd: dir, getenv: func(string) string { return "" }}
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	f := a.serverFlags(fs, false)
	if err := fs.Parse([]string{"--config", cfgFile, "--dev-issuer=false",
		"--issuer", "iss=https://flag.example/,alg=RS256,jwks=https://flag.example/jwks",
		"--issuer", "iss=https://club.example/,alg=RS256,jwks=https://club.example/jwks,db=club"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := a.authConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DevIssuer || len(cfg.Issuers) != 2 || cfg.Issuers[0].Issuer != "https://file.example/" || cfg.Issuers[1].Issuer != "https://flag.example/" ||
		len(cfg.Databases["club"]) != 1 {
		t.Fatalf("config = %+v", cfg)
	}
	if got := cfg.IssuersFor("club"); len(got) != 3 {
		t.Errorf("club trusts %d issuers, want 3", len(got))
	}

	// Without flags the server reads the config file itself.
	fs = flag.NewFlagSet("start", flag.ContinueOnError)
	f = a.serverFlags(fs, false)
	fs.Parse([]string{"--config", cfgFile})
	if cfg, err := a.authConfig(f); cfg != nil || err != nil {
		t.Errorf("no issuer flags: %+v, %v; want nil, nil", cfg, err)
	}
}

package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "keys"), 0o755)
	writeFile(t, filepath.Join(dir, "keys"), "auth.pem", pkixPEM(t, &k.rsa.PublicKey))
	writeFile(t, dir, "jwks.json", jwksJSON(t, jwkOf(t, &k.ec.PublicKey, "e1", "")))
	cfgPath := writeFile(t, dir, "spacetime.toml", []byte(`
[server]
listen = "127.0.0.1:3000"   # not ours: ignored

[[auth.issuers]]
issuer = "https://auth.example.com/"
audiences = ["my-app"]
algorithms = ["RS256", "PS256"]
public_keys = ["keys/auth.pem"]
leeway = "10s"

[[auth.issuers]]
issuer = "https://jwks.example.com/"
algorithms = ["ES256"]
jwks_file = "jwks.json"

[databases.chat.auth]
[[databases.chat.auth.issuers]]
issuer = "https://chat-idp.example.com/"
algorithms = ["ES256"]
jwks_url = "https://chat-idp.example.com/.well-known/jwks.json"
`))
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Issuers) != 2 || !cfg.DevIssuer {
		t.Fatalf("config %+v", cfg)
	}
	first := cfg.Issuers[0]
	if first.PublicKeys[0] != filepath.Join(dir, "keys", "auth.pem") {
		t.Fatalf("relative key path resolved to %q", first.PublicKeys[0])
	}
	if first.LeewayOrDefault() != 10*time.Second || cfg.Issuers[1].LeewayOrDefault() != DefaultLeeway {
		t.Fatalf("leeway %v / %v", first.LeewayOrDefault(), cfg.Issuers[1].LeewayOrDefault())
	}
	if cfg.Issuers[1].JWKSFile != filepath.Join(dir, "jwks.json") {
		t.Fatalf("jwks_file %q", cfg.Issuers[1].JWKSFile)
	}
	chat := cfg.IssuersFor("chat")
	if len(chat) != 3 || chat[2].Issuer != "https://chat-idp.example.com/" || len(cfg.IssuersFor("other")) != 2 {
		t.Fatalf("IssuersFor(chat) = %+v", chat)
	}
	// The loaded issuers build a working verifier.
	v, err := NewVerifier(WithIssuers(cfg.Issuers...), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, "RS256", k.rsa, "", claims("https://auth.example.com/", "aud", "my-app"))
	if _, err := v.VerifyToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// A database's own issuer is trusted by that database only.
	chatTok := sign(t, "ES256", k.ec, "", claims("https://chat-idp.example.com/"))
	other, err := NewVerifier(WithIssuers(cfg.IssuersFor("other")...), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.VerifyToken(context.Background(), chatTok); !errors.Is(err, ErrUnknownIssuer) {
		t.Fatalf("database other accepted chat's issuer: %v", err)
	}
	chatV, err := NewVerifier(WithIssuers(cfg.IssuersFor("chat")...), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if got := chatV.Issuers(); len(got) != 3 {
		t.Fatalf("chat trusts %q", got)
	}
}

func TestConfigDevIssuerSwitch(t *testing.T) {
	cfg, err := ParseConfig([]byte("[auth]\ndev_issuer = false\n"), t.TempDir())
	if err != nil || cfg.DevIssuer {
		t.Fatalf("dev_issuer=false: %+v, %v", cfg, err)
	}
	cfg, err = ParseConfig(nil, t.TempDir())
	if err != nil || !cfg.DevIssuer || len(cfg.Issuers) != 0 {
		t.Fatalf("empty config: %+v, %v", cfg, err)
	}
}

func TestConfigErrors(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	writeFile(t, dir, "rsa.pem", pkixPEM(t, &k.rsa.PublicKey))
	writeFile(t, dir, "ec.pem", pkixPEM(t, &k.ec.PublicKey))
	writeFile(t, dir, "private.pem", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	writeFile(t, dir, "junk.pem", []byte("not a pem"))
	t.Setenv("SHORT_SECRET", "tooshort")
	t.Setenv("GOOD_SECRET", hmacKey)

	cases := []struct {
		name string
		toml string
		want string // fragment of the error
		// loadErr: Validate passes, NewVerifier (which reads keys) fails.
		loadErr bool
	}{
		{"no issuer", `algorithms=["RS256"]
public_keys=["rsa.pem"]`, "issuer is empty", false},
		{"no algorithms", `issuer="i"
public_keys=["rsa.pem"]`, "algorithms is empty", false},
		{"none listed", `issuer="i"
algorithms=["RS256","none"]
public_keys=["rsa.pem"]`, `"none"`, false},
		{"unknown algorithm", `issuer="i"
algorithms=["RS257"]
public_keys=["rsa.pem"]`, `unknown algorithm "RS257"`, false},
		{"lower-case algorithm", `issuer="i"
algorithms=["rs256"]
public_keys=["rsa.pem"]`, "case-sensitive", false},
		{"no keys", `issuer="i"
algorithms=["RS256"]`, "has no keys", false},
		{"HMAC algorithm with a public key", `issuer="i"
algorithms=["HS256","RS256"]
public_keys=["rsa.pem"]`, "never an HMAC secret", false},
		{"HMAC secret with an RSA algorithm", `issuer="i"
algorithms=["RS256"]
hmac_secret_env="GOOD_SECRET"`, "HMAC secrets verify only", false},
		{"HMAC secret beside public keys", `issuer="i"
algorithms=["HS256"]
hmac_secret_env="GOOD_SECRET"
public_keys=["rsa.pem"]`, "cannot be combined", false},
		{"leeway too large", `issuer="i"
algorithms=["RS256"]
public_keys=["rsa.pem"]
leeway="1h"`, "leeway", false},
		{"leeway not a duration", `issuer="i"
algorithms=["RS256"]
public_keys=["rsa.pem"]
leeway="soon"`, "duration", false},
		{"misspelt setting", `issuer="i"
algorithms=["RS256"]
public_keys=["rsa.pem"]
audience=["my-app"]`, `unknown setting "auth.issuers.audience"`, false},
		{"http JWKS URL", `issuer="i"
algorithms=["RS256"]
jwks_url="http://idp.example.com/jwks"`, "https", false},
		{"missing env var", `issuer="i"
algorithms=["HS256"]
hmac_secret_env="SPACETIME_NO_SUCH_VAR"`, "SPACETIME_NO_SUCH_VAR, which is not set", true},
		{"short HMAC secret", `issuer="i"
algorithms=["HS256"]
hmac_secret_env="SHORT_SECRET"`, "at least 32", true},
		{"missing key file", `issuer="i"
algorithms=["RS256"]
public_keys=["nope.pem"]`, "nope.pem", true},
		{"private key given", `issuer="i"
algorithms=["RS256"]
public_keys=["private.pem"]`, "never a private key", true},
		{"not PEM", `issuer="i"
algorithms=["RS256"]
public_keys=["junk.pem"]`, "no PEM public key", true},
		{"RSA key with only EC algorithms", `issuer="i"
algorithms=["ES256"]
public_keys=["rsa.pem"]`, "RSA key cannot verify any of its algorithms ES256", true},
		{"EC key with only RSA algorithms", `issuer="i"
algorithms=["RS256"]
public_keys=["ec.pem"]`, "EC key cannot verify", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte("[[auth.issuers]]\n"+tc.toml+"\n"), dir)
			if !tc.loadErr {
				if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("ParseConfig error %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			_, err = NewVerifier(WithIssuers(cfg.Issuers...), WithLogger(quietLogger()))
			if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewVerifier error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigDuplicates(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	writeFile(t, dir, "rsa.pem", pkixPEM(t, &k.rsa.PublicKey))
	entry := "issuer=\"i\"\nalgorithms=[\"RS256\"]\npublic_keys=[\"rsa.pem\"]\n"
	_, err := ParseConfig([]byte("[[auth.issuers]]\n"+entry+"[[databases.db1.auth.issuers]]\n"+entry), dir)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate issuer: %v", err)
	}
	_, err = ParseConfig([]byte("[databases.db1.auth]\ndev_issuer = false\n"), dir)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("per-database dev_issuer: %v", err)
	}
	_, err = ParseConfig([]byte("[databases.db1.auth]\nissuer = \"x\"\n"), dir)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "unknown setting") {
		t.Fatalf("issuer fields directly under databases.db1.auth: %v", err)
	}
}

func TestHMACIssuerLogsDevelopmentOnly(t *testing.T) {
	t.Setenv("GOOD_SECRET", hmacKey)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	_, err := NewVerifier(WithLogger(log), WithIssuers(Issuer{Issuer: "dev", Algorithms: []string{"HS256"}, HMACSecretEnv: "GOOD_SECRET"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "development only") || !strings.Contains(buf.String(), "level=WARN") {
		t.Fatalf("log %q", buf.String())
	}
	if strings.Contains(buf.String(), hmacKey) {
		t.Fatal("the secret was logged")
	}
}

func TestPEMFormats(t *testing.T) {
	k := keys(t)
	var both []byte
	both = append(both, pkixPEM(t, &k.ec.PublicKey)...)
	both = append(both, pkcs1PEM(&k.rsa.PublicKey)...)
	ks, err := parsePublicKeyPEM(both)
	if err != nil || len(ks) != 2 {
		t.Fatalf("two keys in one file: %d, %v", len(ks), err)
	}
	weak := []byte("-----BEGIN RSA PUBLIC KEY-----\nMAgCAQUCAwEAAQ==\n-----END RSA PUBLIC KEY-----\n")
	if _, err := parsePublicKeyPEM(weak); err == nil {
		t.Fatal("accepted a tiny RSA key")
	}
}

func TestParseJWKS(t *testing.T) {
	k := keys(t)
	set := jwksJSON(t,
		jwkOf(t, &k.rsa.PublicKey, "r", "RS256"),
		jwkOf(t, &k.ec384.PublicKey, "e", ""),
		jwkOf(t, k.ed.Public(), "d", "EdDSA"),
		map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},                       // symmetric: never from a JWKS
		map[string]any{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB", "kid": "enc"}, // encryption key
		map[string]any{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "bad-point"},
		map[string]any{"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "x"},
		map[string]any{"kty": "RSA", "alg": "ES256", "n": "AQAB", "e": "AQAB", "kid": "mismatch"},
	)
	ks, skipped, err := parseJWKS(set)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 3 || len(skipped) != 5 {
		t.Fatalf("%d keys, skipped %q", len(ks), skipped)
	}
	if _, _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"eA"}]}`)); err == nil {
		t.Fatal("a JWKS with no usable key was accepted")
	}
}

func TestVerifiersShareIssuers(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	writeFile(t, dir, "ec.pem", pkixPEM(t, &k.ec.PublicKey))
	srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "r1", "RS256")))
	toml := `
[[auth.issuers]]
issuer = "https://idp.example.com/"
algorithms = ["RS256"]
jwks_url = "` + srv.URL + `/jwks"

[[databases.chat.auth.issuers]]
issuer = "https://chat.example.com/"
algorithms = ["ES256"]
public_keys = ["ec.pem"]

[[databases.blog.auth.issuers]]
issuer = "https://blog.example.com/"
algorithms = ["ES256"]
public_keys = ["ec.pem"]
`
	sk, err := OpenServerKey(t.TempDir(), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	devTok, _ := sk.Mint("alice", time.Hour, nil)
	idpTok := sign(t, "RS256", k.rsa, "r1", claims("https://idp.example.com/"))
	chatTok := sign(t, "ES256", k.ec, "", claims("https://chat.example.com/"))
	ctx := context.Background()

	for _, devOn := range []bool{true, false} {
		src := toml
		if !devOn {
			src = "[auth]\ndev_issuer = false\n" + toml
		}
		cfg, err := ParseConfig([]byte(src), dir)
		if err != nil {
			t.Fatal(err)
		}
		srv.fetches.Store(0)
		vs, err := NewVerifiers(cfg, sk, WithNow(testNow), WithLogger(quietLogger()), WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		for _, db := range []string{"chat", "blog", "no-own-issuers"} {
			v := vs.For(db)
			if _, err := v.VerifyToken(ctx, idpTok); err != nil {
				t.Fatalf("%s: server-wide issuer: %v", db, err)
			}
			_, err := v.VerifyToken(ctx, devTok)
			if devOn && err != nil || !devOn && !errors.Is(err, ErrUnknownIssuer) {
				t.Fatalf("%s: dev issuer (trusted=%v): %v", db, devOn, err)
			}
			_, err = v.VerifyToken(ctx, chatTok)
			if db == "chat" && err != nil || db != "chat" && !errors.Is(err, ErrUnknownIssuer) {
				t.Fatalf("%s: chat's own issuer: %v", db, err)
			}
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("the shared JWKS was fetched %d times for three databases, want 1", n)
		}
	}
}

package server

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacetime-go/spacetime/auth"
)

// jwksServer serves a JWK Set of RSA keys that a test can rotate, and
// counts the fetches.
type jwksServer struct {
	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetches atomic.Int64
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	j.fetches.Add(1)
	j.mu.Lock()
	defer j.mu.Unlock()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	for kid, k := range j.keys {
		set.Keys = append(set.Keys, map[string]string{
			"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set)
}

func (j *jwksServer) add(kid string, k *rsa.PublicKey) {
	j.mu.Lock()
	j.keys[kid] = k
	j.mu.Unlock()
}

func writePEM(t testing.TB, dir, name string, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuthAttackSuite runs every unsafe token the issue lists, and a valid
// token per algorithm, through the real server and the example-style auth
// reducer of the test module: a refused token fails the call with the
// verifier's reason (the module passes it on), a valid one commits, binds a
// session and records the identity row. Keys are generated here.
func TestAuthAttackSuite(t *testing.T) {
	dir := t.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwksKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	hmacSecret := strings.Repeat("h", 40)
	t.Setenv("AUTH_SUITE_HMAC", hmacSecret)

	jwks := &jwksServer{keys: map[string]*rsa.PublicKey{"k1": &jwksKey.PublicKey}}
	idp := httptest.NewServer(jwks)
	defer idp.Close()

	const (
		issRSA  = "https://rsa.example/"
		issEC   = "https://ec.example/"
		issEd   = "https://ed.example/"
		issHMAC = "https://hmac.example/"
		issJWKS = "https://jwks.example/"
	)
	cfg := filepath.Join(dir, "spacetime.toml")
	os.WriteFile(cfg, []byte(`
[[auth.issuers]]
issuer = "`+issRSA+`"
audiences = ["my-app"]
algorithms = ["RS256"]
public_keys = ["`+writePEM(t, dir, "rsa.pem", &rsaKey.PublicKey)+`"]

[[auth.issuers]]
issuer = "`+issEC+`"
algorithms = ["ES256"]
public_keys = ["`+writePEM(t, dir, "ec.pem", &ecKey.PublicKey)+`"]
leeway = "5s"

[[auth.issuers]]
issuer = "`+issEd+`"
algorithms = ["EdDSA"]
public_keys = ["`+writePEM(t, dir, "ed.pem", edPub)+`"]

[[auth.issuers]]
issuer = "`+issHMAC+`"
algorithms = ["HS256"]
hmac_secret_env = "AUTH_SUITE_HMAC"

[[auth.issuers]]
issuer = "`+issJWKS+`"
algorithms = ["RS256"]
jwks_url = "`+idp.URL+`/jwks"
`), 0o600)
	// The refresh interval is shortened so that the test can show both a
	// rotation being picked up and a flood being held back.
	const refresh = 2 * time.Second
	s := newServer(t, WithConfigFile(cfg), WithVerifierOptions(auth.WithJWKSRefreshInterval(refresh)))
	_, op := operator(t, s)
	publish(t, s, "app", op, buildModule(t, appModule), 201)

	now := time.Now()
	claims := func(iss string, kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss, "sub": "user-" + strings.TrimSuffix(strings.TrimPrefix(iss, "https://"), ".example/"), "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if iss == issRSA {
			c["aud"] = "my-app"
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	sign := func(m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaPubPEM, _ := os.ReadFile(filepath.Join(dir, "rsa.pem"))

	valid := []struct {
		name  string
		token string
		iss   string
	}{
		{"HS256", sign(jwt.SigningMethodHS256, []byte(hmacSecret), "", claims(issHMAC)), issHMAC},
		{"RS256", sign(jwt.SigningMethodRS256, rsaKey, "", claims(issRSA)), issRSA},
		{"ES256", sign(jwt.SigningMethodES256, ecKey, "", claims(issEC)), issEC},
		{"EdDSA", sign(jwt.SigningMethodEdDSA, edKey, "", claims(issEd)), issEd},
		{"RS256 from a JWKS URL", sign(jwt.SigningMethodRS256, jwksKey, "k1", claims(issJWKS)), issJWKS},
		{"nbf within the leeway", sign(jwt.SigningMethodES256, ecKey, "", claims(issEC, "nbf", now.Add(2*time.Second).Unix())), issEC},
	}
	for _, tc := range valid {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			m := mustCall(t, s, "app", "auth", "", tc.token)
			sub := claims(tc.iss)["sub"].(string)
			want := auth.IdentityFromClaims(tc.iss, sub).String()
			if m["identity"] != want || m["return"] != want || m["token"] == nil {
				t.Fatalf("auth answer %v, want identity %s and a session token", m, want)
			}
			// The session token carries the caller to later calls.
			if got := mustCall(t, s, "app", "whoami", m["token"].(string))["return"]; got != want {
				t.Fatalf("whoami with the session = %v, want %s", got, want)
			}
		})
	}

	var unsignedNone string
	{
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims(issRSA))
		unsignedNone, _ = tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	}
	refused := []struct {
		name   string
		token  string
		reason string // a fragment of the message the caller gets
	}{
		{"alg none", unsignedNone, "never accepted"},
		{"algorithm not on the issuer's list", sign(jwt.SigningMethodRS384, rsaKey, "", claims(issRSA)), "RS384"},
		{"RSA public key used as an HMAC secret", sign(jwt.SigningMethodHS256, rsaPubPEM, "", claims(issRSA)), "HS256"},
		{"bad signature", sign(jwt.SigningMethodRS256, otherRSA, "", claims(issRSA)), "signature"},
		{"unknown issuer", sign(jwt.SigningMethodES256, ecKey, "", claims("https://evil.example/")), "evil.example"},
		{"wrong audience", sign(jwt.SigningMethodRS256, rsaKey, "", claims(issRSA, "aud", "their-app")), "my-app"},
		{"missing exp", sign(jwt.SigningMethodES256, ecKey, "", claims(issEC, "exp", nil)), "exp"},
		{"past exp", sign(jwt.SigningMethodES256, ecKey, "", claims(issEC, "exp", now.Add(-time.Minute).Unix())), "expired"},
		{"nbf beyond the leeway", sign(jwt.SigningMethodES256, ecKey, "", claims(issEC, "nbf", now.Add(time.Minute).Unix())), "nbf"},
		{"over 8 KiB", sign(jwt.SigningMethodHS256, []byte(hmacSecret), "", claims(issHMAC, "pad", strings.Repeat("x", 8<<10))), "8192"},
		{"unknown kid after a refresh", sign(jwt.SigningMethodRS256, otherRSA, "k-unknown", claims(issJWKS)), "k-unknown"},
	}
	for _, tc := range refused {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			r := call(t, s, "app", "auth", "", tc.token)
			if r.code != 422 {
				t.Fatalf("auth: %d %s, want 422", r.code, r.body)
			}
			msg := r.errorText(t)
			if !strings.Contains(msg, "invalid token") || !strings.Contains(msg, tc.reason) {
				t.Fatalf("reason %q does not say why (%q)", msg, tc.reason)
			}
			if strings.Contains(string(r.body), `"token"`) {
				t.Fatalf("a refused auth returned a session: %s", r.body)
			}
		})
	}

	// Identity rows exist for exactly the identities that authenticated.
	_, rows := sql(t, s, "app", op, "SELECT * FROM identity")
	subjects := map[string]bool{}
	for _, r := range rows {
		subjects[r["subject"].(string)] = true
	}
	for _, want := range []string{"user-hmac", "user-rsa", "user-ec", "user-ed", "user-jwks"} {
		if !subjects[want] {
			t.Errorf("the identity table lacks %s: %v", want, rows)
		}
	}
	if len(rows) != 5 {
		t.Errorf("the identity table has %d rows, want 5: %v", len(rows), rows)
	}

	// Key rotation at the identity provider: a token signed with a new key
	// is accepted after one refresh (once the interval since the last one,
	// caused by the unknown kid above, has passed); a flood of unknown kids
	// then adds no fetch within the interval.
	jwks.add("k2", &rotated.PublicKey)
	time.Sleep(refresh)
	before := jwks.fetches.Load()
	mustCall(t, s, "app", "auth", "", sign(jwt.SigningMethodRS256, rotated, "k2", claims(issJWKS, "sub", "rotated")))
	if n := jwks.fetches.Load() - before; n > 1 {
		t.Errorf("%d fetches to pick up a rotated key, want at most 1", n)
	}
	before = jwks.fetches.Load()
	floodStart := time.Now()
	for i := range 20 {
		r := call(t, s, "app", "auth", "", sign(jwt.SigningMethodRS256, otherRSA, "flood-"+string(rune('a'+i)), claims(issJWKS)))
		if r.code != 422 {
			t.Fatalf("unknown kid accepted: %d %s", r.code, r.body)
		}
	}
	// At most one fetch per interval, whatever the machine's speed.
	if n, allowed := jwks.fetches.Load()-before, int64(time.Since(floodStart)/refresh); n > allowed {
		t.Errorf("a flood of 20 unknown kids over %v caused %d fetches; at most %d are allowed (one per %v)", time.Since(floodStart), n, allowed, refresh)
	}
}

// TestCallerClaimsAndReauth: the claims of the token behind a session reach
// later reducers (caller_claims), over HTTP and on a WebSocket; after the
// session lapses on a live connection, a new auth there restores it.
func TestCallerClaimsAndReauth(t *testing.T) {
	s := newServer(t, WithSessionTTL(1500*time.Millisecond))
	_, op := operator(t, s)
	publish(t, s, "app", op, buildModule(t, appModule), 201)
	tok, err := s.key.Mint("carol", time.Hour, map[string]any{"role": "admin"})
	if err != nil {
		t.Fatal(err)
	}
	m := mustCall(t, s, "app", "auth", "", tok)
	if got := mustCall(t, s, "app", "my_claim", m["token"].(string), "role")["return"]; got != "admin" {
		t.Fatalf("my_claim(role) over HTTP with the session = %v, want admin", got)
	}
	if got := mustCall(t, s, "app", "my_claim", "", "role")["return"]; got != nil {
		t.Fatalf("my_claim(role) without a session = %v, want null", got)
	}

	c, _ := connect(t, s, "app", "")
	c.send("CallReducer", map[string]any{"request_id": 1, "reducer": "auth", "args": []any{tok}})
	if r := c.expect("ReducerResult"); r["status"] != "committed" {
		t.Fatalf("auth: %v", r)
	}
	carol := c.expect("IdentityChanged")["identity"]
	c.send("CallReducer", map[string]any{"request_id": 2, "reducer": "my_claim", "args": []any{"role"}})
	if r := c.expect("ReducerResult"); r["return"] != "admin" {
		t.Fatalf("my_claim on the WebSocket after auth: %v", r)
	}
	if ic := c.expect("IdentityChanged"); !strings.Contains(r2s(ic["reason"]), "expired") {
		t.Fatalf("lapse: %v", ic)
	}
	c.send("CallReducer", map[string]any{"request_id": 3, "reducer": "my_claim", "args": []any{"role"}})
	if r := c.expect("ReducerResult"); r["return"] != nil {
		t.Fatalf("my_claim after the lapse: %v, want null", r)
	}
	c.send("CallReducer", map[string]any{"request_id": 4, "reducer": "auth", "args": []any{tok}})
	if r := c.expect("ReducerResult"); r["status"] != "committed" {
		t.Fatalf("auth again: %v", r)
	}
	if ic := c.expect("IdentityChanged"); ic["identity"] != carol || ic["reason"] != "auth" {
		t.Fatalf("restored identity: %v, want %v", ic, carol)
	}
	c.send("CallReducer", map[string]any{"request_id": 5, "reducer": "whoami", "args": []any{}})
	if r := c.expect("ReducerResult"); r["return"] != carol {
		t.Fatalf("whoami after auth again: %v", r)
	}
}

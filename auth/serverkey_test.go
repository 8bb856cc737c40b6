package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestServerKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := OpenServerKey(dir, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(a.Path())
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("key file is not PEM: %.40q", data)
	}
	b, err := OpenServerKey(dir, WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() != b.KeyID() || string(a.PublicKeyPEM()) != string(b.PublicKeyPEM()) {
		t.Fatal("reopening made a different key")
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries", len(entries))
	}
}

func TestServerKeyConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	kids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := OpenServerKey(dir, WithLogger(quietLogger()))
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = k.KeyID()
		}()
	}
	wg.Wait()
	for _, kid := range kids {
		if kid != kids[0] {
			t.Fatalf("concurrent opens disagree: %q", kids)
		}
	}
}

func TestServerKeyRefusesBadFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ServerKeyFile, []byte("garbage"))
	if _, err := OpenServerKey(dir, WithLogger(quietLogger())); err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("garbage key file: %v", err)
	}
}

func TestMint(t *testing.T) {
	sk, err := OpenServerKey(t.TempDir(), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string]any{}
	for _, arg := range []string{"role=admin", "level=3", `tags=["a","b"]`, `quoted="x=y"`, "email=alice@example.com", "empty="} {
		k, v, err := ParseClaimArg(arg)
		if err != nil {
			t.Fatal(err)
		}
		extra[k] = v
	}
	tok, err := sk.Mint("alice", 0, extra)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(WithIssuers(sk.Issuer()), WithNow(testNow))
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.VerifyToken(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(testNow.Add(DefaultTokenTTL)) {
		t.Fatalf("default ttl: exp %v", c.ExpiresAt)
	}
	var m map[string]any
	json.Unmarshal(c.JSON, &m)
	want := map[string]any{"role": "admin", "level": 3.0, "quoted": "x=y", "email": "alice@example.com", "empty": "", "iss": DevIssuerName, "sub": "alice"}
	for k, w := range want {
		if m[k] != w {
			t.Errorf("claim %s = %#v, want %#v", k, m[k], w)
		}
	}
	if tags, _ := m["tags"].([]any); len(tags) != 2 {
		t.Errorf("tags = %#v", m["tags"])
	}
	// An expired dev token is refused like any other.
	short, _ := sk.Mint("bob", time.Minute, nil)
	late, _ := NewVerifier(WithIssuers(sk.Issuer()), WithNow(testNow.Add(2*time.Minute)))
	if _, err := late.VerifyToken(context.Background(), short); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired dev token: %v", err)
	}
	for _, bad := range []struct {
		sub   string
		ttl   time.Duration
		extra map[string]any
	}{
		{"", time.Hour, nil},
		{strings.Repeat("x", 129), time.Hour, nil},
		{"a", -time.Hour, nil},
		{"a", time.Hour, map[string]any{"iss": "https://evil/"}},
		{"a", time.Hour, map[string]any{"exp": 1}},
	} {
		if _, err := sk.Mint(bad.sub, bad.ttl, bad.extra); err == nil {
			t.Errorf("Mint(%q, %v, %v) succeeded", bad.sub, bad.ttl, bad.extra)
		}
	}
	if _, _, err := ParseClaimArg("novalue"); err == nil {
		t.Error("ParseClaimArg accepted an argument without '='")
	}
}

func TestSessions(t *testing.T) {
	k := keys(t)
	clk := &clock{t: testNow}
	sk, err := NewServerKey(k.ec2, WithClock(clk.now), WithSessionTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, WithIssuers(sk.Issuer()), WithClock(clk.now))
	userTok := sign(t, "ES256", k.ec, "", claims(issEC, "exp", testNow.Add(3*time.Hour).Unix(), "email", "a@example.com"))
	c, err := v.VerifyToken(context.Background(), userTok)
	if err != nil {
		t.Fatal(err)
	}
	st, exp, err := sk.MintSession(c)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(testNow.Add(time.Hour)) {
		t.Fatalf("session expiry %v, want now+1h", exp)
	}
	s, err := sk.VerifySession(st)
	if err != nil {
		t.Fatal(err)
	}
	if s.Identity != c.Identity || s.Issuer != issEC || s.Subject != "alice" || !s.ExpiresAt.Equal(exp) {
		t.Fatalf("session %+v", s)
	}
	var orig map[string]any
	if err := json.Unmarshal(s.Claims, &orig); err != nil || orig["email"] != "a@example.com" {
		t.Fatalf("original claims %s: %v", s.Claims, err)
	}

	// A session never outlives its token.
	shortTok := sign(t, "ES256", k.ec, "", claims(issEC, "exp", testNow.Add(10*time.Minute).Unix()))
	sc, err := v.VerifyToken(context.Background(), shortTok)
	if err != nil {
		t.Fatal(err)
	}
	_, exp2, err := sk.MintSession(sc)
	if err != nil || !exp2.Equal(testNow.Add(10*time.Minute)) {
		t.Fatalf("session of a 10-minute token expires %v (%v)", exp2, err)
	}

	// Dev and external user tokens are not sessions.
	devTok, _ := sk.Mint("alice", time.Hour, nil)
	for name, tok := range map[string]string{"dev token": devTok, "external token": userTok} {
		if _, err := sk.VerifySession(tok); !errors.Is(err, ErrNotASession) {
			t.Errorf("%s as a session: %v", name, err)
		}
	}
	// A session is not a user token, even to a verifier trusting the server key.
	if _, err := v.VerifyToken(context.Background(), st); !errors.Is(err, ErrSessionAsUserToken) {
		t.Fatalf("session as a user token: %v", err)
	}
	// A token shaped like a session (typ, iss) but for another audience, or
	// signed by another key, or expired.
	forge := func(key any, mut func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"iss": SessionIssuer, "aud": SessionAudience, "sub": c.Identity.String(),
			"oiss": issEC, "osub": "alice", "claims": map[string]any{}, "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix()}
		mut(c)
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
		tok.Header["typ"] = sessionTyp
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		token string
		want  error
	}{
		{"other key", forge(k.ec, func(jwt.MapClaims) {}), ErrBadSignature},
		{"other audience", forge(k.ec2, func(c jwt.MapClaims) { c["aud"] = "my-app" }), ErrNotASession},
		{"no audience", forge(k.ec2, func(c jwt.MapClaims) { delete(c, "aud") }), ErrNotASession},
		{"identity not derived from oiss/osub", forge(k.ec2, func(c jwt.MapClaims) { c["osub"] = "mallory" }), ErrInvalidClaim},
		{"no expiry", forge(k.ec2, func(c jwt.MapClaims) { delete(c, "exp") }), ErrMissingExpiry},
		{"too large", strings.Repeat("a", MaxSessionTokenSize+1), ErrTokenTooLarge},
		{"garbage", "x.y.z", ErrMalformedToken},
	} {
		if _, err := sk.VerifySession(tc.token); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := sk.VerifySession(forge(k.ec2, func(jwt.MapClaims) {})); err != nil {
		t.Fatalf("the forge helper makes an invalid session even with the right key: %v", err)
	}

	// Expiry.
	clk.add(time.Hour + time.Minute)
	if _, err := sk.VerifySession(st); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired session: %v", err)
	}
	if _, _, err := sk.MintSession(sc); err == nil {
		t.Fatal("minted a session for an expired token")
	}
}

// TestPublicKeyServesAsJWKS checks that what GET /v1/identity/public-key
// serves lets another service verify this server's tokens.
func TestPublicKeyServesAsJWKS(t *testing.T) {
	sk, err := OpenServerKey(t.TempDir(), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := parsePublicKeyPEM(sk.PublicKeyPEM()); err != nil || len(ks) != 1 {
		t.Fatalf("PublicKeyPEM does not parse: %v", err)
	}
	srv := newJWKSServer(t, sk.JWKS())
	v, err := NewVerifier(
		WithIssuers(Issuer{Issuer: DevIssuerName, Algorithms: []string{"ES256"}, JWKSURL: srv.URL}),
		WithNow(testNow), WithHTTPClient(srv.Client()), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := sk.Mint("carol", time.Hour, nil)
	if _, err := v.VerifyToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if jwk := sk.JWK(); jwk["kid"] != sk.KeyID() || jwk["crv"] != "P-256" || jwk["alg"] != "ES256" {
		t.Fatalf("JWK %v", jwk)
	}
}

func TestDevIssuerNameAndTokenLimit(t *testing.T) {
	k := keys(t)
	sk, err := NewServerKey(k.ec2, WithNow(testNow), WithDevIssuerName("spacetime-dev://ci"))
	if err != nil {
		t.Fatal(err)
	}
	if sk.IssuerName() != "spacetime-dev://ci" || sk.Issuer().Issuer != "spacetime-dev://ci" {
		t.Fatalf("issuer name %q", sk.IssuerName())
	}
	tok, _ := sk.Mint("alice", time.Hour, nil)
	v, err := NewVerifier(WithIssuers(sk.Issuer()), WithNow(testNow), WithMaxTokenSize(len(tok)-1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyToken(context.Background(), tok); !errors.Is(err, ErrTokenTooLarge) {
		t.Fatalf("token one byte over a lowered limit: %v", err)
	}
	if _, err := NewServerKey(k.ec384); err == nil {
		t.Fatal("NewServerKey accepted a P-384 key")
	}
}

// TestSessionOfLargestToken: a session embeds the original claims, so the
// largest accepted token must still give a session VerifySession accepts.
func TestSessionOfLargestToken(t *testing.T) {
	k := keys(t)
	sk, err := NewServerKey(k.ec2, WithNow(testNow))
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t)
	var tok string
	for pad := 5000; ; pad += 16 {
		next := sign(t, "ES256", k.ec, "", claims(issEC, "pad", strings.Repeat("x", pad)))
		if len(next) > MaxTokenSize {
			break
		}
		tok = next
	}
	c, err := v.VerifyToken(context.Background(), tok)
	if err != nil {
		t.Fatalf("%d-byte token: %v", len(tok), err)
	}
	st, _, err := sk.MintSession(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.VerifySession(st); err != nil {
		t.Fatalf("session of a %d-byte token is %d bytes: %v", len(tok), len(st), err)
	}
	t.Logf("largest token %d bytes, its session %d bytes", len(tok), len(st))
}

// TestSessionIsPlainES256JWT: sessions are built without golang-jwt's signer,
// so check that an independent parse with only the public key (as served by
// GET /v1/identity/public-key) accepts them, that their header and payload
// are what the session format says, and that issuers and subjects needing
// JSON escapes come back exactly.
func TestSessionIsPlainES256JWT(t *testing.T) {
	k := keys(t)
	sk, err := NewServerKey(k.ec2, WithNow(testNow))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(sk.PublicKeyPEM())
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithTimeFunc(func() time.Time { return testNow }),
		jwt.WithIssuer(SessionIssuer), jwt.WithAudience(SessionAudience), jwt.WithExpirationRequired())
	for _, tc := range []struct{ name, iss, sub string }{
		{"plain", "https://issuer.example/", "alice"},
		{"quotes and backslashes", `https://a"b\c/`, `x"y\z`},
		{"control characters", "iss\n\r\t\x00\x1f", "sub\x01\x7f"},
		{"non-ASCII", "https://例え.jp/", "ünïcødé \u2028 <&>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, _ := json.Marshal(map[string]any{"iss": tc.iss, "sub": tc.sub, "role": "admin"})
			c := &Claims{Issuer: tc.iss, Subject: tc.sub, ExpiresAt: testNow.Add(10 * time.Minute), JSON: orig}
			st, exp, err := sk.MintSession(c)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := parser.Parse(st, func(*jwt.Token) (any, error) { return pub, nil })
			if err != nil {
				t.Fatalf("golang-jwt refuses the session: %v", err)
			}
			if tok.Header["kid"] != sk.KeyID() || tok.Header["typ"] != sessionTyp || tok.Header["alg"] != "ES256" {
				t.Errorf("header %v", tok.Header)
			}
			mc := tok.Claims.(jwt.MapClaims)
			id := IdentityFromClaims(tc.iss, tc.sub)
			if mc["sub"] != id.String() || mc["oiss"] != tc.iss || mc["osub"] != tc.sub ||
				mc["exp"] != float64(exp.Unix()) || mc["iat"] != float64(testNow.Unix()) {
				t.Errorf("payload %v", mc)
			}
			if cl, ok := mc["claims"].(map[string]any); !ok || cl["role"] != "admin" || cl["sub"] != tc.sub {
				t.Errorf("embedded claims %v", mc["claims"])
			}
			s, err := sk.VerifySession(st)
			if err != nil {
				t.Fatal(err)
			}
			if s.Identity != id || s.Issuer != tc.iss || s.Subject != tc.sub || !s.ExpiresAt.Equal(exp) || !bytes.Equal(s.Claims, orig) {
				t.Errorf("VerifySession = %+v", s)
			}
		})
	}
	if _, _, err := sk.MintSession(&Claims{Issuer: "i", Subject: "s", ExpiresAt: testNow.Add(time.Minute), JSON: []byte(`{"a":`)}); err == nil {
		t.Error("MintSession accepted claims that are not JSON")
	}
}

// BenchmarkMintSession is the session signature an auth call pays, beside
// golang-jwt's signer of the same claims (the previous implementation).
//
//	go test -run '^$' -bench BenchmarkMintSession -count 8 ./auth/ | benchstat -col /impl -
func BenchmarkMintSession(b *testing.B) {
	k := keys(b)
	sk, err := NewServerKey(k.ec2)
	if err != nil {
		b.Fatal(err)
	}
	c := &Claims{Issuer: "https://issuer.example/", Subject: "bench", ExpiresAt: time.Now().Add(2 * time.Hour),
		JSON: []byte(`{"iss":"https://issuer.example/","sub":"bench","exp":1900000000,"email":"bench@example.com","jti":"17"}`)}
	b.Run("impl=mint", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, _, err := sk.MintSession(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=golang-jwt", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			now := time.Now()
			sc := sessionClaims{
				RegisteredClaims: jwt.RegisteredClaims{Issuer: SessionIssuer, Subject: IdentityFromClaims(c.Issuer, c.Subject).String(),
					Audience: jwt.ClaimStrings{SessionAudience}, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(c.ExpiresAt)},
				OrigIssuer: c.Issuer, OrigSubject: c.Subject, OrigClaims: c.JSON,
			}
			if _, err := sk.sign(sc, sessionTyp); err != nil {
				b.Fatal(err)
			}
		}
	})
	digest := sha256.Sum256([]byte("x"))
	// The signature alone, hedged (a fresh DRBG per signature, what
	// golang-jwt uses) and deterministic (RFC 6979, what MintSession uses).
	b.Run("impl=ecdsa-hedged", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, _, err := ecdsa.Sign(rand.Reader, k.ec2, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=ecdsa-rfc6979", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := k.ec2.Sign(nil, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDERToRaw: the ASN.1 signatures of crypto/ecdsa become r || s, with
// the leading zero of a high-bit integer dropped and short integers padded;
// anything else is refused.
func TestDERToRaw(t *testing.T) {
	full := bytes.Repeat([]byte{0xaa}, 32)
	short := bytes.Repeat([]byte{0x11}, 31)
	der := func(r, s []byte) []byte {
		b := []byte{0x30, byte(4 + len(r) + len(s)), 0x02, byte(len(r))}
		b = append(b, r...)
		b = append(b, 0x02, byte(len(s)))
		return append(b, s...)
	}
	want := func(r, s []byte) []byte {
		out := make([]byte, 64)
		copy(out[32-len(r):], r)
		copy(out[64-len(s):], s)
		return out
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want []byte
	}{
		{"high bit, leading zero", der(append([]byte{0}, full...), append([]byte{0}, full...)), want(full, full)},
		{"short r", der(short, append([]byte{0}, full...)), want(short, full)},
		{"short s", der(append([]byte{0}, full...), short), want(full, short)},
		{"r too long", der(append([]byte{1}, full...), short), nil},
		{"trailing bytes", append(der(short, short), 0), nil},
		{"wrong outer tag", append([]byte{0x31}, der(short, short)[1:]...), nil},
		{"wrong integer tag", func() []byte { b := der(short, short); b[2] = 0x04; return b }(), nil},
		{"truncated", der(short, short)[:20], nil},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, 64)
			ok := derToRaw(tc.der, out)
			if ok != (tc.want != nil) || (ok && !bytes.Equal(out, tc.want)) {
				t.Fatalf("derToRaw = %v %x, want %x", ok, out, tc.want)
			}
		})
	}
	// Real signatures, many of them, since a short r or s comes once in
	// 128 or so: each must verify with the raw form.
	k := keys(t)
	for i := range 400 {
		digest := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		sig, err := k.ec2.Sign(nil, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, 64)
		if !derToRaw(sig, raw) {
			t.Fatalf("signature %d (%x) refused", i, sig)
		}
		r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
		if !ecdsa.Verify(&k.ec2.PublicKey, digest[:], r, s) {
			t.Fatalf("signature %d does not verify in raw form", i)
		}
	}
}

// TestSessionReuse: minting from the same verified claims again, within
// the same expiry step, returns the session already minted (no signature);
// other claims, a later step, or a lapsed session give a new one.
func TestSessionReuse(t *testing.T) {
	k := keys(t)
	clk := &clock{t: testNow}
	sk, err := NewServerKey(k.ec2, WithClock(clk.now), WithSessionTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	claimsOf := func(jti string, exp time.Time) *Claims {
		return &Claims{Issuer: issEC, Subject: "alice", ExpiresAt: exp,
			JSON: []byte(`{"iss":"` + issEC + `","sub":"alice","jti":"` + jti + `","exp":` + strconv.FormatInt(exp.Unix(), 10) + `}`)}
	}
	long, short := testNow.Add(3*time.Hour), testNow.Add(10*time.Minute)
	mint := func(c *Claims) (string, time.Time) {
		t.Helper()
		tok, exp, err := sk.MintSession(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sk.VerifySession(tok); err != nil {
			t.Fatalf("VerifySession: %v", err)
		}
		return tok, exp
	}
	first, exp1 := mint(claimsOf("1", long))
	for _, step := range []struct {
		name    string
		advance time.Duration
		claims  *Claims
		same    bool
	}{
		{"same token, seconds later", 20 * time.Second, claimsOf("1", long), true},
		{"another token of the same user", 0, claimsOf("2", long), false},
		{"same token, next expiry step", time.Minute, claimsOf("1", long), false},
		{"token shorter than the session TTL", 0, claimsOf("3", short), false},
	} {
		clk.t = clk.t.Add(step.advance)
		tok, exp := mint(step.claims)
		if (tok == first) != step.same {
			t.Errorf("%s: same session = %v, want %v", step.name, tok == first, step.same)
		}
		if step.same && !exp.Equal(exp1) {
			t.Errorf("%s: expiry %v, want %v", step.name, exp, exp1)
		}
	}
	// A session capped by its token's expiry is reused until that expiry,
	// and never past it.
	clk.t = testNow
	c := claimsOf("4", short)
	a, _ := mint(c)
	clk.t = testNow.Add(9 * time.Minute)
	if b, _ := mint(c); b != a {
		t.Error("a token-capped session was not reused before its expiry")
	}
	clk.t = short
	if _, _, err := sk.MintSession(c); err == nil {
		t.Error("minted a session from an expired token")
	}
}

package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	issRSA   = "https://rsa.example.com/"
	issRSA1  = "https://pkcs1.example.com/"
	issEC    = "https://ec.example.com/"
	issEd    = "https://ed.example.com/"
	issHMAC  = "https://hmac.example.com/"
	issJWKSF = "https://jwks-file.example.com/"
	hmacEnv  = "SPACETIME_TEST_HMAC_SECRET"
	hmacKey  = "0123456789abcdef0123456789abcdef-dev-only"
)

// newTestVerifier trusts one issuer per kind of key, all from real files.
func newTestVerifier(t *testing.T, extra ...Option) *Verifier {
	t.Helper()
	k := keys(t)
	dir := t.TempDir()
	t.Setenv(hmacEnv, hmacKey)
	jwks := jwksJSON(t,
		jwkOf(t, &k.ec.PublicKey, "ec-1", "ES256"),
		jwkOf(t, &k.rsa.PublicKey, "rsa-1", ""),
		jwkOf(t, &k.rsa2.PublicKey, "rsa-ps", "PS256"),
		jwkOf(t, k.ed.Public(), "ed-1", ""), // EdDSA is not allowed for this issuer: dropped
	)
	issuers := []Issuer{
		{Issuer: issRSA, Audiences: []string{"my-app", "other-app"}, Algorithms: []string{"RS256", "PS256"},
			PublicKeys: []string{writeFile(t, dir, "rsa.pem", pkixPEM(t, &k.rsa.PublicKey))}},
		{Issuer: issRSA1, Algorithms: []string{"RS256"},
			PublicKeys: []string{writeFile(t, dir, "rsa1.pem", pkcs1PEM(&k.rsa.PublicKey))}},
		// ES384 is allowed but the only key is P-256: an ES384 token must
		// meet a key-type refusal, not a verification attempt.
		{Issuer: issEC, Algorithms: []string{"ES256", "ES384"}, Leeway: Duration(10 * time.Second),
			PublicKeys: []string{writeFile(t, dir, "ec.pem", pkixPEM(t, &k.ec.PublicKey))}},
		{Issuer: issEd, Algorithms: []string{"EdDSA"},
			PublicKeys: []string{writeFile(t, dir, "ed.pem", pkixPEM(t, k.ed.Public()))}},
		{Issuer: issHMAC, Algorithms: []string{"HS256"}, HMACSecretEnv: hmacEnv},
		{Issuer: issJWKSF, Algorithms: []string{"ES256", "RS256", "PS256"}, JWKSFile: writeFile(t, dir, "jwks.json", jwks)},
	}
	opts := append([]Option{WithIssuers(issuers...), WithNow(testNow), WithLogger(quietLogger())}, extra...)
	v, err := NewVerifier(opts...)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerifyAccepts(t *testing.T) {
	k := keys(t)
	v := newTestVerifier(t)
	cases := []struct {
		name  string
		token string
		iss   string
	}{
		{"RS256 PKIX", sign(t, "RS256", k.rsa, "", claims(issRSA, "aud", "my-app")), issRSA},
		{"PS256", sign(t, "PS256", k.rsa, "", claims(issRSA, "aud", []string{"x", "other-app"})), issRSA},
		{"RS256 PKCS1", sign(t, "RS256", k.rsa, "", claims(issRSA1)), issRSA1},
		{"ES256", sign(t, "ES256", k.ec, "", claims(issEC)), issEC},
		{"EdDSA", sign(t, "EdDSA", k.ed, "", claims(issEd)), issEd},
		{"HS256", sign(t, "HS256", []byte(hmacKey), "", claims(issHMAC)), issHMAC},
		{"JWKS file ES256 by kid", sign(t, "ES256", k.ec, "ec-1", claims(issJWKSF)), issJWKSF},
		{"JWKS file RS256 by kid", sign(t, "RS256", k.rsa, "rsa-1", claims(issJWKSF)), issJWKSF},
		{"JWKS file PS256 by kid", sign(t, "PS256", k.rsa2, "rsa-ps", claims(issJWKSF)), issJWKSF},
		{"JWKS file without kid", sign(t, "ES256", k.ec, "", claims(issJWKSF)), issJWKSF},
		{"expired within leeway", sign(t, "ES256", k.ec, "", claims(issEC, "exp", testNow.Add(-5*time.Second).Unix())), issEC},
		{"nbf within leeway", sign(t, "ES256", k.ec, "", claims(issEC, "nbf", testNow.Add(5*time.Second).Unix())), issEC},
		{"iat within leeway", sign(t, "ES256", k.ec, "", claims(issEC, "iat", testNow.Add(5*time.Second).Unix())), issEC},
		{"no iat", sign(t, "ES256", k.ec, "", claims(issEC, "iat", nil)), issEC},
		{"128-byte sub", sign(t, "ES256", k.ec, "", claims(issEC, "sub", strings.Repeat("s", 128))), issEC},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.VerifyToken(context.Background(), tc.token)
			if err != nil {
				t.Fatalf("VerifyToken: %v", err)
			}
			if c.Issuer != tc.iss || c.Subject == "" {
				t.Fatalf("claims iss=%q sub=%q", c.Issuer, c.Subject)
			}
			if c.Identity != IdentityFromClaims(tc.iss, c.Subject) {
				t.Fatalf("identity %s is not IdentityFromClaims(iss, sub)", c.Identity)
			}
			if c.ExpiresAt.IsZero() {
				t.Fatal("ExpiresAt not set")
			}
			var m map[string]any
			if err := json.Unmarshal(c.JSON, &m); err != nil || m["iss"] != tc.iss {
				t.Fatalf("claims JSON %s: %v", c.JSON, err)
			}
			raw, err := v.Verify(context.Background(), tc.token)
			if err != nil || string(raw) != string(c.JSON) {
				t.Fatalf("Verify = %s, %v", raw, err)
			}
		})
	}
}

func TestVerifyKeepsExtraClaims(t *testing.T) {
	k := keys(t)
	v := newTestVerifier(t)
	tok := sign(t, "ES256", k.ec, "", claims(issEC, "email", "alice@example.com", "roles", []string{"admin"}))
	raw, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Email string   `json:"email"`
		Roles []string `json:"roles"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Email != "alice@example.com" || len(m.Roles) != 1 {
		t.Fatalf("claims %s: %v", raw, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := keys(t)
	sk, err := NewServerKey(k.ec2, WithNow(testNow))
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t, WithIssuers(sk.Issuer()))
	session, _, err := sk.MintSession(&Claims{Issuer: issEC, Subject: "alice", JSON: []byte(`{"iss":"x"}`), ExpiresAt: testNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := string(pkixPEM(t, &k.rsa.PublicKey))
	unsignedHeader := `{"alg":"none","typ":"JWT"}`
	goodPayload, _ := json.Marshal(claims(issRSA, "aud", "my-app"))

	cases := []struct {
		name   string
		token  string
		want   error
		reason string // a fragment the reason must contain
	}{
		{"over 8 KiB", sign(t, "ES256", k.ec, "", claims(issEC, "pad", strings.Repeat("x", MaxTokenSize))), ErrTokenTooLarge, "limit"},
		{"over 8 KiB garbage is not parsed", strings.Repeat("!", MaxTokenSize+1), ErrTokenTooLarge, "limit"},
		{"alg none unsigned", rawToken(unsignedHeader, string(goodPayload), ""), ErrAlgorithmNotAllowed, "never accepted"},
		{"alg none with a signature", rawToken(unsignedHeader, string(goodPayload), "c2ln"), ErrAlgorithmNotAllowed, "none"},
		{"alg NONE", rawToken(`{"alg":"NONE"}`, string(goodPayload), "c2ln"), ErrAlgorithmNotAllowed, "none"},
		{"algorithm not on the list", sign(t, "ES384", k.ec384, "", claims(issRSA, "aud", "my-app")), ErrAlgorithmNotAllowed, "ES384"},
		{"algorithm no issuer allows", sign(t, "RS512", k.rsa, "", claims(issRSA, "aud", "my-app")), ErrAlgorithmNotAllowed, "RS256, PS256"},
		{"algorithm no issuer allows, unknown issuer", sign(t, "RS512", k.rsa, "", claims("https://evil.example.com/")), ErrUnknownIssuer, "evil"},
		{"RSA public key as HMAC secret", sign(t, "HS256", []byte(rsaPubPEM), "", claims(issRSA, "aud", "my-app")), ErrAlgorithmNotAllowed, "HS256"},
		{"EC key of the wrong curve", sign(t, "ES384", k.ec384, "", claims(issEC)), ErrKeyTypeMismatch, "ES384"},
		{"JWKS kid of another key type", sign(t, "ES256", k.ec, "rsa-1", claims(issJWKSF)), ErrKeyTypeMismatch, "an RSA key"},
		{"JWK alg restriction", sign(t, "RS256", k.rsa2, "rsa-ps", claims(issJWKSF)), ErrKeyTypeMismatch, "PS256 only"},
		{"JWKS key dropped for its algorithm", sign(t, "EdDSA", k.ed, "ed-1", claims(issJWKSF)), ErrAlgorithmNotAllowed, "EdDSA"},
		{"signed by another RSA key", sign(t, "RS256", k.rsa2, "", claims(issRSA, "aud", "my-app")), ErrBadSignature, issRSA},
		{"signed by another EC key", sign(t, "ES256", k.ec2, "", claims(issEC)), ErrBadSignature, "signature"},
		{"signed by another Ed25519 key", sign(t, "EdDSA", k.ed2, "", claims(issEd)), ErrBadSignature, "signature"},
		{"wrong HMAC secret", sign(t, "HS256", []byte(strings.Repeat("z", 40)), "", claims(issHMAC)), ErrBadSignature, "signature"},
		{"payload swapped", swapPayload(sign(t, "ES256", k.ec, "", claims(issEC)), claims(issEC, "sub", "mallory")), ErrBadSignature, "signature"},
		{"unknown issuer", sign(t, "ES256", k.ec, "", claims("https://evil.example.com/")), ErrUnknownIssuer, "evil"},
		{"issuer differs by a slash", sign(t, "ES256", k.ec, "", claims(strings.TrimSuffix(issEC, "/"))), ErrUnknownIssuer, "not trusted"},
		{"no iss", sign(t, "ES256", k.ec, "", claims(issEC, "iss", nil)), ErrUnknownIssuer, "iss"},
		{"iss not a string", rawToken(`{"alg":"ES256"}`, `{"iss":42,"sub":"a","exp":1}`, "c2ln"), ErrMalformedToken, "iss"},
		{"wrong audience", sign(t, "RS256", k.rsa, "", claims(issRSA, "aud", "their-app")), ErrWrongAudience, "my-app"},
		{"no audience when audiences are set", sign(t, "RS256", k.rsa, "", claims(issRSA)), ErrWrongAudience, "audience"},
		{"no exp", sign(t, "ES256", k.ec, "", claims(issEC, "exp", nil)), ErrMissingExpiry, "exp"},
		{"expired", sign(t, "ES256", k.ec, "", claims(issEC, "exp", testNow.Add(-time.Minute).Unix())), ErrExpired, "expired"},
		{"nbf in the future", sign(t, "ES256", k.ec, "", claims(issEC, "nbf", testNow.Add(time.Minute).Unix())), ErrNotYetValid, "nbf"},
		{"iat in the future", sign(t, "ES256", k.ec, "", claims(issEC, "iat", testNow.Add(time.Minute).Unix())), ErrNotYetValid, "iat"},
		{"no sub", sign(t, "ES256", k.ec, "", claims(issEC, "sub", nil)), ErrMissingSubject, "sub"},
		{"empty sub", sign(t, "ES256", k.ec, "", claims(issEC, "sub", "")), ErrMissingSubject, "sub"},
		{"sub over 128 bytes", sign(t, "ES256", k.ec, "", claims(issEC, "sub", strings.Repeat("s", 129))), ErrInvalidClaim, "128"},
		{"unknown kid in a JWKS file", sign(t, "ES256", k.ec, "nope", claims(issJWKSF)), ErrUnknownKey, "nope"},
		{"duplicate sub", signRawPayload(t, k, `{"iss":"`+issEC+`","sub":"alice","sub":"bob","exp":`+expStr+`}`), ErrInvalidClaim, "twice"},
		{"SUB beside sub", signRawPayload(t, k, `{"iss":"`+issEC+`","sub":"alice","SUB":"bob","exp":`+expStr+`}`), ErrInvalidClaim, "only in case"},
		{"two parts", "abc.def", ErrMalformedToken, "3"},
		{"JWE shape", "a.b.c.d.e", ErrMalformedToken, "JWE"},
		{"empty", "", ErrMalformedToken, "empty"},
		{"header not base64", "!!!.e30.c2ln", ErrMalformedToken, "base64"},
		{"header not JSON", rawToken("nope", "{}", "c2ln"), ErrMalformedToken, "JSON"},
		{"payload not an object", rawToken(`{"alg":"ES256"}`, `[1,2]`, "c2ln"), ErrMalformedToken, "object"},
		{"payload null", rawToken(`{"alg":"ES256"}`, `null`, "c2ln"), ErrMalformedToken, "object"},
		{"no alg", rawToken(`{"typ":"JWT"}`, `{}`, "c2ln"), ErrMalformedToken, "alg"},
		{"crit header", rawToken(`{"alg":"ES256","crit":["exp"]}`, string(goodPayload), "c2ln"), ErrMalformedToken, "crit"},
		{"signature not base64", rawToken(`{"alg":"ES256"}`, string(mustJSON(claims(issEC))), "!!"), ErrMalformedToken, "malformed"},
		{"session token as a user token", session, ErrSessionAsUserToken, "session"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.VerifyToken(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason == "" {
				t.Fatalf("error %T is not a *TokenError with a reason", err)
			}
			t.Logf("reason: %s", te.Reason)
			if !strings.Contains(te.Reason, tc.reason) {
				t.Fatalf("reason %q does not mention %q", te.Reason, tc.reason)
			}
			if _, err := v.Verify(context.Background(), tc.token); !errors.Is(err, tc.want) {
				t.Fatalf("Verify error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestKeyForChecksKeyType reaches the key function's own check, which config
// validation normally makes unreachable (an issuer cannot list HS256 beside a
// public key): it is the second line against RSA-key-as-HMAC-secret.
func TestKeyForChecksKeyType(t *testing.T) {
	k := keys(t)
	ti := &trustedIssuer{cfg: Issuer{Issuer: "x"}, static: []verificationKey{{key: &k.rsa.PublicKey}, {key: k.ed.Public()}}}
	for _, alg := range []string{"HS256", "HS512", "ES256"} {
		if _, err := ti.keyFor(context.Background(), alg, ""); !errors.Is(err, ErrKeyTypeMismatch) {
			t.Errorf("keyFor(%s) = %v, want ErrKeyTypeMismatch", alg, err)
		}
	}
	got, err := ti.keyFor(context.Background(), "RS256", "")
	if err != nil || got != any(&k.rsa.PublicKey) {
		t.Fatalf("keyFor(RS256) = %v, %v", got, err)
	}
	hm := &trustedIssuer{cfg: Issuer{Issuer: "h"}, static: []verificationKey{{key: []byte(hmacKey)}}}
	if _, err := hm.keyFor(context.Background(), "RS256", ""); !errors.Is(err, ErrKeyTypeMismatch) {
		t.Errorf("HMAC secret offered for RS256: %v", err)
	}
}

func TestVerifyDevIssuer(t *testing.T) {
	sk, err := OpenServerKey(t.TempDir(), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(WithIssuers(sk.Issuer()), WithNow(testNow))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sk.Mint("alice", time.Hour, map[string]any{"aud": "my-app"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.VerifyToken(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != DevIssuerName || c.Subject != "alice" || !c.ExpiresAt.Equal(testNow.Add(time.Hour)) {
		t.Fatalf("claims %+v", c)
	}
	// Another server's dev token has the same iss but another key.
	other, err := OpenServerKey(t.TempDir(), WithNow(testNow), WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := other.Mint("alice", time.Hour, nil)
	if _, err := v.VerifyToken(context.Background(), tok2); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another server's dev token: %v, want ErrBadSignature", err)
	}
}

func swapPayload(token string, c jwt.MapClaims) string {
	parts := strings.Split(token, ".")
	other := rawToken("{}", string(mustJSON(c)), "")
	parts[1] = strings.Split(other, ".")[1]
	return strings.Join(parts, ".")
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var expStr = strconv.FormatInt(testNow.Add(time.Hour).Unix(), 10)

// signRawPayload signs a literal payload (for JSON no encoder would produce)
// with the test EC key.
func signRawPayload(t *testing.T, k testKeys, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodES256.Sign(signing, k.ec)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc(sig)
}

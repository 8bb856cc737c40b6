package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzPreParse: whatever the bytes, pre-parsing never panics, refuses with a
// TokenError, and never reads a token over the size limit.
func FuzzPreParse(f *testing.F) {
	f.Add("")
	f.Add("a.b.c")
	f.Add(rawToken(`{"alg":"ES256","kid":"k"}`, `{"iss":"https://i/","sub":"s","exp":1}`, "c2ln"))
	f.Add(rawToken(`{"alg":"none"}`, `{"iss":"x"}`, ""))
	f.Add(rawToken(`{"alg":["ES256"]}`, `{"iss":{}}`, "c2ln"))
	f.Fuzz(func(t *testing.T, token string) {
		p, err := preParse(token, MaxTokenSize)
		if err != nil {
			te, ok := err.(*TokenError)
			if !ok || te.Reason == "" || te.Err == nil {
				t.Fatalf("error %#v is not a TokenError with a reason", err)
			}
			if !utf8.ValidString(te.Reason) && utf8.ValidString(token) {
				t.Fatalf("reason is not UTF-8: %q", te.Reason)
			}
			return
		}
		if len(token) > MaxTokenSize {
			t.Fatal("accepted a token over the limit")
		}
		if p.header.Alg == "" || strings.EqualFold(p.header.Alg, "none") || strings.Count(token, ".") != 2 {
			t.Fatalf("pre-parse let through %q (alg %q)", token, p.header.Alg)
		}
	})
}

// FuzzVerify runs whole tokens through a verifier with real keys. Nothing
// may panic, and nothing may be accepted except the valid seeds themselves.
func FuzzVerify(f *testing.F) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// Fixed keys and deterministic algorithms (Ed25519, HMAC; not ECDSA,
	// whose signatures are randomised): every fuzz worker process must mint
	// byte-identical valid seeds.
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	f.Setenv(hmacEnv, hmacKey)
	v, err := NewVerifier(WithNow(t0), WithLogger(quietLogger()), WithIssuers(
		Issuer{Issuer: issEd, Algorithms: []string{"EdDSA"}, Keys: []crypto.PublicKey{priv.Public()}},
		Issuer{Issuer: issHMAC, Algorithms: []string{"HS256"}, HMACSecretEnv: hmacEnv, Audiences: []string{"app"}},
	))
	if err != nil {
		f.Fatal(err)
	}
	valid := map[string]bool{}
	for _, tok := range []string{
		sign(f, "EdDSA", priv, "", claims(issEd)),
		sign(f, "HS256", []byte(hmacKey), "k", claims(issHMAC, "aud", []string{"app"})),
	} {
		if _, err := v.VerifyToken(context.Background(), tok); err != nil {
			f.Fatalf("seed does not verify: %v", err)
		}
		valid[tok] = true
		f.Add(tok)
	}
	f.Add(sign(f, "HS256", []byte(hmacKey), "", claims(issHMAC, "aud", "other")))
	f.Add(sign(f, "EdDSA", priv, "", claims(issEd, "exp", nil)))
	f.Fuzz(func(t *testing.T, token string) {
		c, err := v.VerifyToken(context.Background(), token)
		if err == nil && !valid[token] {
			t.Fatalf("accepted a token that was never signed as such: %q (%+v)", token, c)
		}
		if err != nil {
			if _, ok := err.(*TokenError); !ok {
				t.Fatalf("error %T is not a *TokenError: %v", err, err)
			}
		}
	})
}

// refTopLevelKeys walks an object with json.Decoder: the slow, obviously
// right way, to check the scanner against.
func refTopLevelKeys(b []byte) ([]string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		keys = append(keys, t.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
	}
	return keys, true
}

// FuzzTopLevelKeys: on every valid JSON object the scanner finds the same
// keys as encoding/json, and on any input it never panics.
func FuzzTopLevelKeys(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,"}",{"c":"\""}]},"\u0073ub":"x" , "d" : null}`,
		`{"a":"\\"}`, `[1]`, `{"a":1,}`, `{"iss":"x","iss":"y"}`, ` { "k" : [ [ ] ] } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := topLevelKeys(b)
		if !json.Valid(b) {
			return // callers only pass payloads encoding/json accepted
		}
		want, wantOK := refTopLevelKeys(b)
		if ok != wantOK || !slices.Equal(got, want) {
			t.Fatalf("topLevelKeys(%q) = %q, %v; encoding/json: %q, %v", b, got, ok, want, wantOK)
		}
	})
}

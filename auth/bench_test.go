package auth

import (
	"context"
	"crypto"
	"runtime"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify compares the Verifier (pre-parse, issuer selection, key
// selection, every check) with a bare jwt.Parse given the key directly, per
// algorithm, in the same run.
//
//	go test -run '^$' -bench BenchmarkVerify -count 8 ./auth/ | benchstat -col /impl -
func BenchmarkVerify(b *testing.B) {
	k := keys(b)
	b.Setenv(hmacEnv, hmacKey)
	cases := []struct {
		alg     string
		signKey any
		pubKey  any
	}{
		{"HS256", []byte(hmacKey), []byte(hmacKey)},
		{"RS256", k.rsa, &k.rsa.PublicKey},
		{"ES256", k.ec, &k.ec.PublicKey},
		{"EdDSA", k.ed, k.ed.Public()},
	}
	for _, tc := range cases {
		iss := "https://bench.example.com/" + tc.alg
		cfg := Issuer{Issuer: iss, Algorithms: []string{tc.alg}, Audiences: []string{"app"}}
		if tc.alg == "HS256" {
			cfg.HMACSecretEnv = hmacEnv
		} else {
			cfg.Keys = []crypto.PublicKey{tc.pubKey}
		}
		v, err := NewVerifier(WithIssuers(cfg), WithNow(testNow), WithLogger(quietLogger()))
		if err != nil {
			b.Fatal(err)
		}
		tok := sign(b, tc.alg, tc.signKey, "", claims(iss, "aud", "app", "email", "alice@example.com"))
		ctx := context.Background()
		b.Run("alg="+tc.alg+"/impl=verifier", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		parser := jwt.NewParser(jwt.WithValidMethods([]string{tc.alg}), jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(func() time.Time { return testNow }), jwt.WithIssuer(iss), jwt.WithAudience("app"))
		b.Run("alg="+tc.alg+"/impl=jwt.Parse", func(b *testing.B) {
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := parser.Parse(tok, func(*jwt.Token) (any, error) { return tc.pubKey, nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU adds a cpu-ns/op metric: the benchmark goroutine's thread CPU
// time per operation, which stays meaningful when other processes load the
// machine. Call as `defer reportCPU(b)()`.
func reportCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start, ok := threadCPUTime()
	return func() {
		end, _ := threadCPUTime()
		runtime.UnlockOSThread()
		if ok && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

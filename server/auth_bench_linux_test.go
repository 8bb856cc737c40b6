package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/spacetime-go/spacetime/auth"
)

// processCPU is the CPU time of the whole process (RUSAGE_SELF): in these
// benchmarks the server, its store and the HTTP client all run in it, so
// the per-call figure holds everything an auth call costs the machine,
// which wall-clock time on a shared 2-core machine does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportProcessCPU(b *testing.B) func() {
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

// BenchmarkAuth is an auth reducer call through the real server (HTTP,
// argument decoding, the Go guest's auth reducer calling jwt_verify, the
// identity and User rows, the durable commit, the session token) beside the
// verifier alone on the same token, per algorithm, in the same run.
//
//	go test -run '^$' -bench BenchmarkAuth -count 6 ./server | benchstat -col /impl -
func BenchmarkAuth(b *testing.B) {
	dir := b.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const issRSA, issEC = "https://rsa.example/", "https://ec.example/"
	cfg := filepath.Join(dir, "spacetime.toml")
	os.WriteFile(cfg, []byte(`
[[auth.issuers]]
issuer = "`+issRSA+`"
algorithms = ["RS256"]
public_keys = ["`+writePEM(b, dir, "rsa.pem", &rsaKey.PublicKey)+`"]

[[auth.issuers]]
issuer = "`+issEC+`"
algorithms = ["ES256"]
public_keys = ["`+writePEM(b, dir, "ec.pem", &ecKey.PublicKey)+`"]
`), 0o600)
	s := newServer(b, WithConfigFile(cfg))
	_, op := operator(b, s)
	publish(b, s, "app", op, buildModule(b, appModule), 201)

	for _, tc := range []struct {
		alg    string
		method jwt.SigningMethod
		key    any
		pub    crypto.PublicKey
		iss    string
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey, &rsaKey.PublicKey, issRSA},
		{"ES256", jwt.SigningMethodES256, ecKey, &ecKey.PublicKey, issEC},
	} {
		tok, err := jwt.NewWithClaims(tc.method, jwt.MapClaims{
			"iss": tc.iss, "sub": "bench", "exp": time.Now().Add(time.Hour).Unix(), "email": "bench@example.com",
		}).SignedString(tc.key)
		if err != nil {
			b.Fatal(err)
		}
		v, err := auth.NewVerifier(auth.WithIssuers(auth.Issuer{Issuer: tc.iss, Algorithms: []string{tc.alg}, Keys: []crypto.PublicKey{tc.pub}}), auth.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run("alg="+tc.alg+"/impl=verifier", func(b *testing.B) {
			defer reportProcessCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(context.Background(), tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		body, _ := json.Marshal([]string{tok})
		b.Run("alg="+tc.alg+"/impl=server", func(b *testing.B) {
			benchCalls(b, s.URL()+"/v1/database/app/call/auth", body)
		})
		// Over a WebSocket, as an app's client calls auth: no HTTP request
		// per call on either side.
		b.Run("alg="+tc.alg+"/impl=ws", func(b *testing.B) {
			benchWSCalls(b, s, "auth", func(int) []any { return []any{tok} })
		})
		b.Run("alg="+tc.alg+"/impl=ws-noop", func(b *testing.B) {
			benchWSCalls(b, s, "whoami", func(int) []any { return []any{} })
		})
		// A call that writes one row and so waits for a durable commit, as
		// auth does (its identity row): the difference to impl=ws is what
		// verifying, deriving and the session cost.
		b.Run("alg="+tc.alg+"/impl=ws-write", func(b *testing.B) {
			// Every call writes a new value, so every commit goes to the disk.
			var n atomic.Int64
			benchWSCalls(b, s, "set_setting", func(int) []any { return []any{"k", fmt.Sprint(n.Add(1))} })
		})
		// The same route with a reducer that does nothing of its own (it
		// returns the caller): the difference to impl=server is what auth
		// itself costs, beside the verifier.
		b.Run("alg="+tc.alg+"/impl=server-noop", func(b *testing.B) {
			benchCalls(b, s.URL()+"/v1/database/app/call/whoami", []byte("[]"))
		})
	}
}

// benchCalls posts body to url from many callers at once, as many clients
// would: the durable commits are grouped, and the figure is the machine's
// cost per call rather than one caller's wait for the disk.
func benchCalls(b *testing.B, url string, body []byte) {
	defer reportProcessCPU(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := http.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("%s: %d", url, res.StatusCode)
				return
			}
		}
	})
}

// benchWSCalls calls reducer with args over one WebSocket per parallel
// caller, waiting for each ReducerResult (other messages, such as the
// IdentityChanged after auth, are read and skipped).
func benchWSCalls(b *testing.B, s *Server, reducer string, args func(id int) []any) {
	defer reportProcessCPU(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		c, err := dialWS(b, s, "app", "")
		if err != nil {
			b.Error(err)
			return
		}
		if _, _, err := c.next(); err != nil { // InitialConnection
			b.Error(err)
			return
		}
		for id := 0; pb.Next(); id++ {
			msg, _ := json.Marshal(map[string]any{"CallReducer": map[string]any{"request_id": id, "reducer": reducer, "args": args(id)}})
			if err := c.c.WriteMessage(websocket.TextMessage, msg); err != nil {
				b.Error(err)
				return
			}
			for {
				typ, body, err := c.next()
				if err != nil {
					b.Error(err)
					return
				}
				if typ != "ReducerResult" {
					continue
				}
				if body["status"] != "committed" {
					b.Errorf("%s: %v", reducer, body)
					return
				}
				break
			}
		}
	})
}

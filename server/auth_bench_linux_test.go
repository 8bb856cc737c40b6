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
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/runtime"
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

// authTokenPool is how many distinct tokens the cases that mint no session
// (verifier, runtime) cycle through. Nothing on the auth path caches a
// verification, so every token presented is checked in full, signature
// included. The cases that mint a session (call, ws, http) present tokens
// never seen before, each with its own jti, so no session is reused; the
// *-repeat cases present one token every time and are labelled so.
const authTokenPool = 1000

// BenchmarkAuth is an auth reducer call beside the verifier alone on the
// same tokens, per algorithm, in the same run: in process (the runtime call
// alone, then the server's call path with the session token), over a
// WebSocket, and over HTTP, with a no-op and a durable one-row write over
// the WebSocket for scale. Every call presents a token of the same subject
// (a returning user) that must be verified.
//
//	go test -run '^$' -bench BenchmarkAuth -benchtime 2000x -count 6 ./server | benchstat -col /impl -
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
	// The per-connection and per-address call rates would refuse a fast
	// benchmark's calls; they are not what is measured.
	s := newServer(b, WithConfigFile(cfg), WithCallRate(1e9, 1<<20), WithHTTPCallRate(1e9, 1<<20))
	_, op := operator(b, s)
	publish(b, s, "app", op, buildModule(b, appModule), 201)
	d, ok := s.lookup("app")
	if !ok {
		b.Fatal("database app is missing")
	}

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
		exp := time.Now().Add(2 * time.Hour).Unix()
		var minted atomic.Int64
		mint := func() string {
			tok, err := jwt.NewWithClaims(tc.method, jwt.MapClaims{
				"iss": tc.iss, "sub": "bench", "exp": exp, "email": "bench@example.com", "jti": fmt.Sprint(minted.Add(1)),
			}).SignedString(tc.key)
			if err != nil {
				b.Fatal(err)
			}
			return tok
		}
		toks := make([]string, authTokenPool)
		for i := range toks {
			toks[i] = mint()
		}
		var next atomic.Uint64
		token := func() string { return toks[next.Add(1)%authTokenPool] }
		// fresh returns b.N tokens never presented before: where a session
		// is minted, a token seen before would find its session already
		// made. They are minted up front for the three cases that use them
		// (call, ws, http) at -benchtime Nx: minting thousands of RS256
		// tokens just before a measurement was seen to raise its figure by
		// a third (caches, or the host's clock); a longer run mints the rest
		// on the way.
		spare := make([]string, 0, 3*(benchtimeN()+1))
		for range cap(spare) {
			spare = append(spare, mint())
		}
		var used atomic.Int64
		fresh := func(b *testing.B) func() string {
			ts := make([]string, b.N)
			for i := range ts {
				if j := used.Add(1) - 1; j < int64(len(spare)) {
					ts[i] = spare[j]
				} else {
					ts[i] = mint()
				}
			}
			// As testing does before each run: the minting's garbage is
			// the benchmark's, not auth's.
			goruntime.GC()
			var n atomic.Int64
			return func() string { return ts[n.Add(1)-1] }
		}
		v, err := auth.NewVerifier(auth.WithIssuers(auth.Issuer{Issuer: tc.iss, Algorithms: []string{tc.alg}, Keys: []crypto.PublicKey{tc.pub}}), auth.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run("alg="+tc.alg+"/impl=verifier", func(b *testing.B) {
			defer reportProcessCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(context.Background(), token()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		// The runtime call alone: arguments, the guest's auth reducer and
		// jwt_verify, the identity row, the commit; no session, no transport.
		b.Run("alg="+tc.alg+"/impl=runtime", func(b *testing.B) {
			benchInProcess(b, func() error {
				var w abi.Writer
				w.WriteString(token())
				res, err := d.rdb.Call(context.Background(), runtime.CallRequest{Reducer: "auth", Args: w.Bytes()})
				if err == nil && res.Verified == nil {
					err = fmt.Errorf("auth verified no identity")
				}
				return err
			})
		})
		// The same runtime call of a reducer that does nothing (it returns
		// the caller): what any call costs in process.
		b.Run("alg="+tc.alg+"/impl=runtime-noop", func(b *testing.B) {
			benchInProcess(b, func() error {
				_, err := d.rdb.Call(context.Background(), runtime.CallRequest{Reducer: "whoami"})
				return err
			})
		})
		// The server's call path without a transport: the runtime call, the
		// answer, and the session token.
		b.Run("alg="+tc.alg+"/impl=call", func(b *testing.B) {
			token := fresh(b)
			benchInProcess(b, func() error {
				body, _ := json.Marshal([]string{token()})
				out := s.call(context.Background(), d, "auth", body, abi.Identity{}, nil, abi.ConnectionID{})
				if out.Token == "" {
					return fmt.Errorf("auth: %s %s", out.Status, out.Error)
				}
				return nil
			})
		})
		// The same token on every call, as a client calling auth again on
		// each reconnect: still verified in full each time, but the session
		// minted for it is reused (auth.ServerKey keeps sessions by claims
		// and expiry), so no signature.
		b.Run("alg="+tc.alg+"/impl=call-repeat", func(b *testing.B) {
			body, _ := json.Marshal([]string{toks[0]})
			benchInProcess(b, func() error {
				out := s.call(context.Background(), d, "auth", body, abi.Identity{}, nil, abi.ConnectionID{})
				if out.Token == "" {
					return fmt.Errorf("auth: %s %s", out.Status, out.Error)
				}
				return nil
			})
		})
		// Over a WebSocket, as an app's client calls auth: no HTTP request
		// per call on either side.
		b.Run("alg="+tc.alg+"/impl=ws", func(b *testing.B) {
			token := fresh(b)
			benchWSCalls(b, s, "auth", func(int) []any { return []any{token()} })
		})
		b.Run("alg="+tc.alg+"/impl=ws-repeat", func(b *testing.B) {
			benchWSCalls(b, s, "auth", func(int) []any { return []any{toks[0]} })
		})
		b.Run("alg="+tc.alg+"/impl=ws-noop", func(b *testing.B) {
			benchWSCalls(b, s, "whoami", func(int) []any { return []any{} })
		})
		// A call that writes one row and so waits for a durable commit, as
		// a first login does (its User and identity rows).
		b.Run("alg="+tc.alg+"/impl=ws-write", func(b *testing.B) {
			// Every call writes a new value, so every commit goes to the disk.
			var n atomic.Int64
			benchWSCalls(b, s, "set_setting", func(int) []any { return []any{"k", fmt.Sprint(n.Add(1))} })
		})
		b.Run("alg="+tc.alg+"/impl=http", func(b *testing.B) {
			token := fresh(b)
			benchCalls(b, s.URL()+"/v1/database/app/call/auth", func() []byte {
				body, _ := json.Marshal([]string{token()})
				return body
			})
		})
	}
}

// benchtimeN is N of -test.benchtime Nx, or 2000.
func benchtimeN() int {
	if f := flag.Lookup("test.benchtime"); f != nil {
		if n, err := strconv.Atoi(strings.TrimSuffix(f.Value.String(), "x")); err == nil && strings.HasSuffix(f.Value.String(), "x") {
			return n
		}
	}
	return 2000
}

// benchInProcess runs call from eight goroutines at once, as eight
// connections would, so that durable commits are grouped as they are over
// a transport.
func benchInProcess(b *testing.B, call func() error) {
	b.ResetTimer()
	defer reportProcessCPU(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchCalls posts body to url from many callers at once, as many clients
// would: the durable commits are grouped, and the figure is the machine's
// cost per call rather than one caller's wait for the disk.
func benchCalls(b *testing.B, url string, body func() []byte) {
	b.ResetTimer()
	defer reportProcessCPU(b)()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := http.Post(url, "application/json", bytes.NewReader(body()))
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
// IdentityChanged after auth, are read and skipped). The client reads the
// answers without decoding them whole: its CPU counts in the figure, and a
// real client runs elsewhere.
func benchWSCalls(b *testing.B, s *Server, reducer string, args func(id int) []any) {
	b.ResetTimer()
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
			a, _ := json.Marshal(args(id))
			msg := fmt.Appendf(nil, `{"CallReducer":{"request_id":%d,"reducer":%q,"args":%s}}`, id, reducer, a)
			if err := c.c.WriteMessage(websocket.TextMessage, msg); err != nil {
				b.Error(err)
				return
			}
			for {
				_, data, err := c.c.ReadMessage()
				if err != nil {
					b.Error(err)
					return
				}
				if !bytes.HasPrefix(data, []byte(`{"ReducerResult"`)) {
					continue
				}
				if !bytes.Contains(data, []byte(`"status":"committed"`)) {
					b.Errorf("%s: %s", reducer, data)
					return
				}
				break
			}
		}
	})
}

package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// jwksServer is a real HTTP server publishing a JWKS that tests can rotate,
// break, slow down, and whose fetches they count.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	status  int
	fetches atomic.Int32
	gate    chan struct{} // when set, each request waits for it
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, gate := s.body, s.status, s.gate
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, status int) {
	s.mu.Lock()
	s.body, s.status = body, status
	s.mu.Unlock()
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const issURL = "https://idp.example.com/"

func newURLVerifier(t *testing.T, srv *jwksServer, clk *clock) *Verifier {
	t.Helper()
	v, err := NewVerifier(
		WithIssuers(Issuer{Issuer: issURL, Algorithms: []string{"RS256", "ES256"}, JWKSURL: srv.URL + "/.well-known/jwks.json"}),
		WithClock(clk.now), WithLogger(quietLogger()), WithHTTPClient(srv.Client()),
		WithJWKSRefreshInterval(time.Minute),
	)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWKSURL(t *testing.T) {
	k := keys(t)
	ctx := context.Background()
	urlClaims := func(kv ...any) map[string]any {
		c := claims(issURL, kv...)
		c["exp"] = testNow.Add(24 * time.Hour).Unix()
		return c
	}
	tokA := sign(t, "RS256", k.rsa, "a", urlClaims())
	tokB := sign(t, "ES256", k.ec, "b", urlClaims())

	t.Run("fetched once on first use, then cached", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "RS256")))
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		if srv.fetches.Load() != 0 {
			t.Fatal("fetched before first use")
		}
		for range 5 {
			if _, err := v.VerifyToken(ctx, tokA); err != nil {
				t.Fatal(err)
			}
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
	})

	t.Run("unknown kid refreshes, at most once per interval", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "")))
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatal(err)
		}
		// kid "b" is unknown; the last fetch was just now, so no refetch.
		clk.add(30 * time.Second)
		for range 3 {
			if _, err := v.VerifyToken(ctx, tokB); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("unknown kid: %v", err)
			}
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches within the interval, want 1", n)
		}
		// The issuer rotates in key b; after the interval one refetch finds it.
		srv.set(jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", ""), jwkOf(t, &k.ec.PublicKey, "b", "")), http.StatusOK)
		clk.add(31 * time.Second)
		if _, err := v.VerifyToken(ctx, tokB); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
		if n := srv.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		// A kid still unknown after a refresh is refused with that reason.
		clk.add(2 * time.Minute)
		_, err := v.VerifyToken(ctx, sign(t, "ES256", k.ec, "zzz", urlClaims()))
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "refreshed") {
			t.Fatalf("unknown kid after refresh: %v", err)
		}
		if n := srv.fetches.Load(); n != 3 {
			t.Fatalf("%d fetches, want 3", n)
		}
	})

	t.Run("a known key that fails to verify never refetches", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "")))
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatal(err)
		}
		forged := sign(t, "RS256", k.rsa2, "a", urlClaims())
		for range 5 {
			clk.add(2 * time.Minute) // the interval would allow a fetch
			if _, err := v.VerifyToken(ctx, forged); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("forged: %v", err)
			}
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
	})

	t.Run("a failed refresh keeps the cached keys", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "")))
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatal(err)
		}
		for _, broken := range []struct {
			body   string
			status int
		}{{"oops", http.StatusInternalServerError}, {"not json", http.StatusOK}, {`{"keys":[]}`, http.StatusOK}} {
			srv.set([]byte(broken.body), broken.status)
			clk.add(2 * time.Minute)
			if _, err := v.VerifyToken(ctx, tokB); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("unknown kid during outage: %v", err)
			}
			if _, err := v.VerifyToken(ctx, tokA); err != nil {
				t.Fatalf("cached key lost after a failed refresh (%d %q): %v", broken.status, broken.body, err)
			}
		}
		if n := srv.fetches.Load(); n != 4 {
			t.Fatalf("%d fetches, want 4", n)
		}
	})

	t.Run("keys older than the max age are refreshed in the background", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "")))
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatal(err)
		}
		// The issuer withdraws key a.
		srv.set(jwksJSON(t, jwkOf(t, &k.ec.PublicKey, "b", "")), http.StatusOK)
		clk.add(59 * time.Minute)
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatalf("before the max age: %v", err)
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches before the max age, want 1", n)
		}
		clk.add(2 * time.Minute)
		// Past the max age the cached key still answers, and a refresh starts.
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatalf("stale key: %v", err)
		}
		waitFetchDone(t, v, issURL)
		if n := srv.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches after the max age, want 2", n)
		}
		if _, err := v.VerifyToken(ctx, tokA); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("withdrawn key still trusted: %v", err)
		}
		if _, err := v.VerifyToken(ctx, tokB); err != nil {
			t.Fatalf("new key: %v", err)
		}
	})

	t.Run("issuer unreachable at first use", func(t *testing.T) {
		srv := newJWKSServer(t, []byte("down"))
		srv.set([]byte("down"), http.StatusServiceUnavailable)
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		_, err := v.VerifyToken(ctx, tokA)
		if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "could not be fetched") {
			t.Fatalf("unreachable: %v", err)
		}
		srv.set(jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "")), http.StatusOK)
		if _, err := v.VerifyToken(ctx, tokA); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("refetched within the interval: %v", err)
		}
		clk.add(time.Minute)
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
		if n := srv.fetches.Load(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
	})

	t.Run("concurrent misses share one fetch", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", ""), jwkOf(t, &k.ec.PublicKey, "b", "")))
		gate := make(chan struct{})
		srv.mu.Lock()
		srv.gate = gate
		srv.mu.Unlock()
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		const n = 32
		errs := make(chan error, n)
		var started sync.WaitGroup
		for i := range n {
			started.Add(1)
			go func() {
				started.Done()
				tok := tokA
				if i%2 == 1 {
					tok = tokB
				}
				_, err := v.VerifyToken(ctx, tok)
				errs <- err
			}()
		}
		started.Wait()
		// Let the goroutines pile up on the in-flight fetch before it answers.
		deadline := time.Now().Add(5 * time.Second)
		for srv.fetches.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		close(gate)
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if got := srv.fetches.Load(); got != 1 {
			t.Fatalf("%d fetches for %d concurrent misses, want 1", got, n)
		}
	})

	t.Run("a waiter's cancelled context does not fail the fetch", func(t *testing.T) {
		srv := newJWKSServer(t, jwksJSON(t, jwkOf(t, &k.rsa.PublicKey, "a", "")))
		gate := make(chan struct{})
		srv.mu.Lock()
		srv.gate = gate
		srv.mu.Unlock()
		clk := &clock{t: testNow}
		v := newURLVerifier(t, srv, clk)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := v.VerifyToken(cctx, tokA); done <- err }()
		for srv.fetches.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, ErrUnknownKey) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		close(gate)
		// The fetch went on without the cancelled caller; the next caller
		// either joins it or finds its keys.
		if _, err := v.VerifyToken(ctx, tokA); err != nil {
			t.Fatal(err)
		}
		if n := srv.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
	})
}

func TestJWKSURLScheme(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://idp.example.com/jwks", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://localhost/jwks", true},
		{"http://[::1]:9/jwks", true},
		{"http://idp.example.com/jwks", false},
		{"http://10.0.0.1/jwks", false},
		{"file:///etc/jwks.json", false},
		{"https:///nohost", false},
	} {
		err := Issuer{Issuer: "i", Algorithms: []string{"RS256"}, JWKSURL: tc.url}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.url, err)
		}
	}
}

// waitFetchDone waits until the issuer's JWKS has no fetch in flight.
func waitFetchDone(t *testing.T, v *Verifier, iss string) {
	t.Helper()
	r := v.issuers[iss].remote
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		call := r.inflight
		r.mu.Unlock()
		if call == nil {
			return
		}
		<-call.done
	}
	t.Fatal("JWKS fetch did not finish")
}

package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// maxOverRate is how many calls in a row a WebSocket may make over its
// rate limit (or its burst, when larger) before it is disconnected.
const maxOverRate = 100

// addrConns counts the open WebSockets of each client address, across all
// databases, so that one client cannot take every database's connection
// slots (and the goroutines and queues behind them) for itself.
type addrConns struct {
	mu sync.Mutex
	n  map[netip.Addr]int
}

// clientKey is the address a connection counts against: the peer's IP, or
// its /64 for IPv6, since one IPv6 client commonly holds a whole /64. When
// the peer is a trusted proxy (WithTrustedProxies), the client is the
// nearest address in X-Forwarded-For that is not one. ok is false for an
// address the limit does not apply to: loopback, unless the server counts
// it (a proxy on the same host that is not trusted makes every client
// loopback, and one bucket for all of them would let one client starve the
// rest), or an unparsable one.
func (s *Server) clientKey(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	if s.trusted(a) {
		a = s.forwardedFor(r, a)
	}
	if a.IsLoopback() && !s.cfg.limitLoopback {
		return netip.Addr{}, false
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a, true
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.trustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor walks X-Forwarded-For from the right (the entries the
// trusted proxies appended) to the first address that is not a trusted
// proxy: entries left of it are the client's to write, so it is the
// rightmost one a client cannot forge. peer is kept when the header is
// missing or malformed.
func (s *Server) forwardedFor(r *http.Request, peer netip.Addr) netip.Addr {
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		parts := strings.Split(vals[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer
			}
			if a = a.Unmap(); !s.trusted(a) {
				return a
			}
		}
	}
	return peer
}

// acquire counts one more connection from a, unless it already has limit.
func (c *addrConns) acquire(a netip.Addr, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	if c.n[a] >= limit {
		return false
	}
	c.n[a]++
	return true
}

func (c *addrConns) release(a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[a] <= 1 {
		delete(c.n, a)
		return
	}
	c.n[a]--
}

// rateKind is what an address's bucket counts: HTTP calls and HTTP
// queries have buckets of their own, so that a client's queries do not
// spend its calls.
type rateKind uint8

const (
	rateHTTPCall rateKind = iota
	rateHTTPQuery
)

type rateKey struct {
	addr netip.Addr
	kind rateKind
}

// addrBucket is one address's bucket of one kind.
type addrBucket struct {
	tokenBucket
	// full is how long the bucket takes to refill from empty: past it the
	// bucket carries no state worth keeping.
	full time.Duration
	// over counts the requests refused in a row.
	over int
}

// addrRates are the token buckets of HTTP reducer calls and queries, one
// per client address and kind. Full buckets are swept once the map grows,
// so an attacker with many addresses cannot grow it without bound.
type addrRates struct {
	mu    sync.Mutex
	b     map[rateKey]*addrBucket
	swept time.Time
	// inflight counts each address's HTTP calls and queries running: a
	// rate alone would let one address park a burst's worth of calls on
	// its database's writer slot, a queue the database's other clients
	// wait in too.
	inflight addrConns
}

// sweepAbove is the number of buckets past which full ones are swept.
const sweepAbove = 10_000

// take spends one token of addr's bucket of kind; over is how many requests
// in a row it has refused, this one included (0 when it is allowed).
func (a *addrRates) take(addr netip.Addr, kind rateKind, rate float64, burst int, now time.Time) (ok bool, over int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.b == nil {
		a.b = map[rateKey]*addrBucket{}
	}
	if len(a.b) > sweepAbove && now.Sub(a.swept) > time.Second {
		for k, b := range a.b {
			if now.Sub(b.last) > b.full {
				delete(a.b, k)
			}
		}
		a.swept = now
	}
	k := rateKey{addr, kind}
	b := a.b[k]
	if b == nil {
		b = &addrBucket{}
		a.b[k] = b
	}
	b.full = time.Duration(float64(burst) / rate * float64(time.Second))
	if b.take(rate, burst, now) {
		b.over = 0
		return true, 0
	}
	b.over++
	return false, b.over
}

// enterHTTP counts one more call or query of r's client address running,
// unless it has its limit running already; then it answers 429 and returns
// false. done must be called when the request ends.
func (s *Server) enterHTTP(w http.ResponseWriter, r *http.Request) (done func(), ok bool) {
	a, counted := s.clientKey(r)
	if !counted {
		return func() {}, true
	}
	if !s.httpRates.inflight.acquire(a, s.cfg.maxInFlight) {
		s.metrics.refusals.WithLabelValues("http_in_flight").Inc()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "too many requests in flight: client address %s has its limit of %d reducer calls and SQL queries running on this server; wait for their answers before sending more", a, s.cfg.maxInFlight)
		return nil, false
	}
	return func() { s.httpRates.inflight.release(a) }, true
}

// refuseOverRate answers a request over its address's rate: 429 with
// Retry-After, and, once the address has been refused more than
// maxOverRate times in a row, Connection: close, so that a client that keeps
// going pays a new connection for each refusal (HTTP's nearest thing to the
// WebSocket's disconnect).
func (s *Server) refuseOverRate(w http.ResponseWriter, metric string, over int, format string, args ...any) {
	s.metrics.refusals.WithLabelValues(metric).Inc()
	w.Header().Set("Retry-After", "1")
	if over > maxOverRate {
		w.Header().Set("Connection", "close")
	}
	writeError(w, http.StatusTooManyRequests, format, args...)
}

// count is how many connections a holds (tests).
func (c *addrConns) count(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[a]
}

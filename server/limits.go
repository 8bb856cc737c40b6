package server

import (
	"net"
	"net/http"
	"net/netip"
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
// its /64 for IPv6, since one IPv6 client commonly holds a whole /64. ok is
// false for an address the limit does not apply to: loopback, unless the
// server counts it (a proxy on the same host makes every client loopback,
// so limiting per address is then the proxy's job), or an unparsable one.
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
	if a.IsLoopback() && !s.cfg.limitLoopback {
		return netip.Addr{}, false
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a, true
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

// addrRates are the token buckets of HTTP reducer calls, one per client
// address. A bucket that has refilled carries no state worth keeping, so
// such buckets are swept once the map grows, and an attacker with many
// addresses cannot grow it without bound.
type addrRates struct {
	mu    sync.Mutex
	b     map[netip.Addr]*tokenBucket
	swept time.Time
}

// sweepAbove is the number of buckets past which full ones are swept.
const sweepAbove = 10_000

func (a *addrRates) take(addr netip.Addr, rate float64, burst int, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.b == nil {
		a.b = map[netip.Addr]*tokenBucket{}
	}
	if len(a.b) > sweepAbove && now.Sub(a.swept) > time.Second {
		full := time.Duration(float64(burst) / rate * float64(time.Second))
		for k, b := range a.b {
			if now.Sub(b.last) > full {
				delete(a.b, k)
			}
		}
		a.swept = now
	}
	b := a.b[addr]
	if b == nil {
		b = &tokenBucket{}
		a.b[addr] = b
	}
	return b.take(rate, burst, now)
}

// count is how many connections a holds (tests).
func (c *addrConns) count(a netip.Addr) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[a]
}

package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

const (
	// DefaultJWKSRefreshInterval is the least time between two fetches of
	// one JWKS URL.
	DefaultJWKSRefreshInterval = time.Minute
	// DefaultJWKSMaxAge is how long fetched keys are used before a refresh
	// is started in the background, so a key the issuer withdrew (rotated
	// out, or compromised) stops being trusted without a restart.
	DefaultJWKSMaxAge = time.Hour
	// jwksFetchTimeout bounds one fetch, whoever is waiting for it.
	jwksFetchTimeout = 10 * time.Second
	// maxJWKSSize bounds the body read from a JWKS URL.
	maxJWKSSize = 1 << 20
)

// remoteKeySet is the cached keys of one JWKS URL.
//
// It fetches when a token names a kid it does not hold (or before the first
// use), at most once per interval, and concurrent misses share one fetch. A
// failed fetch keeps the cached keys. A known key whose signature check fails
// never causes a fetch: the caller only asks for keys, and a present kid is
// answered from the cache.
type remoteKeySet struct {
	issuer   string
	url      string
	algs     []string
	client   *http.Client
	interval time.Duration
	maxAge   time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu        sync.Mutex
	keys      []verificationKey
	loaded    bool      // keys came from at least one successful fetch
	lastFetch time.Time // start of the last fetch attempt, successful or not
	loadedAt  time.Time // start of the fetch that gave the current keys
	inflight  *fetchCall
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// lookup returns the keys for kid ("" = every key). It fetches when kid is
// unknown, or nothing was ever loaded, and the interval allows it.
func (r *remoteKeySet) lookup(ctx context.Context, kid string) ([]verificationKey, error) {
	fetched := false
	for {
		r.mu.Lock()
		if ks := r.match(kid); len(ks) > 0 {
			// Stale keys still answer now; a refresh starts behind them,
			// within the same once-per-interval budget.
			if now := r.now(); r.inflight == nil && now.Sub(r.loadedAt) >= r.maxAge && now.Sub(r.lastFetch) >= r.interval {
				r.startFetch(ctx, now)
			}
			r.mu.Unlock()
			return ks, nil
		}
		call := r.inflight
		if call == nil {
			if fetched || (!r.lastFetch.IsZero() && r.now().Sub(r.lastFetch) < r.interval) {
				loaded := r.loaded
				r.mu.Unlock()
				return nil, r.missError(kid, loaded)
			}
			call = r.startFetch(ctx, r.now())
			r.mu.Unlock()
		} else {
			r.mu.Unlock()
		}
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, refuseCause(ErrUnknownKey, ctx.Err(), "the keys of issuer %q could not be fetched in time: try again", r.issuer)
		}
		fetched = true
	}
}

// startFetch begins a fetch. Caller holds r.mu.
func (r *remoteKeySet) startFetch(ctx context.Context, now time.Time) *fetchCall {
	call := &fetchCall{done: make(chan struct{})}
	r.inflight = call
	r.lastFetch = now
	// The fetch belongs to every waiter, so one caller's cancellation must
	// not fail the others.
	go r.fetch(context.WithoutCancel(ctx), call, now)
	return call
}

func (r *remoteKeySet) missError(kid string, loaded bool) error {
	if !loaded {
		return refuse(ErrUnknownKey, "the keys of issuer %q could not be fetched from its JWKS URL: try again later, or ask the operator to check jwks_url", r.issuer)
	}
	if kid == "" {
		return refuse(ErrUnknownKey, "issuer %q publishes no key for this token's algorithm", r.issuer)
	}
	return refuse(ErrUnknownKey, "issuer %q has no key with kid %q (its JWKS was refreshed): the token was not signed by this issuer's current keys", r.issuer, truncate(kid, 64))
}

// match returns the cached keys with this kid, or all of them for "".
// Caller holds r.mu.
func (r *remoteKeySet) match(kid string) []verificationKey {
	var out []verificationKey
	for _, k := range r.keys {
		if kid == "" || k.kid == kid {
			out = append(out, k)
		}
	}
	return out
}

func (r *remoteKeySet) fetch(ctx context.Context, call *fetchCall, started time.Time) {
	keys, err := r.download(ctx)
	r.mu.Lock()
	if err == nil {
		r.keys, r.loaded, r.loadedAt = keys, true, started
	}
	r.inflight = nil
	call.err = err
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("auth: JWKS fetch failed; keeping the cached keys", "issuer", r.issuer, "url", r.url, "err", err)
	} else {
		r.log.Info("auth: JWKS fetched", "issuer", r.issuer, "url", r.url, "keys", len(keys))
	}
	close(call.done)
}

func (r *remoteKeySet) download(ctx context.Context) ([]verificationKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %s", r.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("GET %s: JWKS larger than %d bytes", r.url, maxJWKSSize)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return nil, err
	}
	for _, s := range skipped {
		r.log.Debug("auth: skipping a JWKS key", "issuer", r.issuer, "reason", s)
	}
	var usable []verificationKey
	for _, k := range keys {
		for _, a := range r.algs {
			if k.fits(a) {
				usable = append(usable, k)
				break
			}
		}
	}
	if len(usable) == 0 {
		return nil, errors.New("JWKS has no key for the issuer's algorithms")
	}
	return usable, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package auth

import (
	"log/slog"
	"net/http"
	"time"
)

// Option configures a Verifier or a ServerKey. Options that do not apply to
// what is being built are ignored, so one option list can serve both.
type Option func(*options)

type options struct {
	issuers         []Issuer
	now             func() time.Time
	log             *slog.Logger
	client          *http.Client
	refreshInterval time.Duration
	jwksMaxAge      time.Duration
	maxTokenSize    int
	devIssuerName   string
	sessionTTL      time.Duration
}

func buildOptions(opts []Option) options {
	o := options{
		now:             time.Now,
		log:             slog.Default(),
		client:          &http.Client{Timeout: jwksFetchTimeout},
		refreshInterval: DefaultJWKSRefreshInterval,
		jwksMaxAge:      DefaultJWKSMaxAge,
		maxTokenSize:    MaxTokenSize,
		devIssuerName:   DevIssuerName,
		sessionTTL:      DefaultSessionTTL,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithIssuers adds trusted issuers to a Verifier.
func WithIssuers(issuers ...Issuer) Option {
	return func(o *options) { o.issuers = append(o.issuers, issuers...) }
}

// WithClock sets the clock used for exp/nbf/iat checks and for minting (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithNow fixes the clock at t (tests).
func WithNow(t time.Time) Option { return WithClock(func() time.Time { return t }) }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithHTTPClient sets the client that fetches JWKS URLs.
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) {
		if c != nil {
			o.client = c
		}
	}
}

// WithJWKSRefreshInterval sets the least time between two fetches of one
// JWKS URL (default one minute).
func WithJWKSRefreshInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.refreshInterval = d
		}
	}
}

// WithMaxTokenSize lowers (or raises) the token size limit, MaxTokenSize by default.
func WithMaxTokenSize(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxTokenSize = n
		}
	}
}

// WithDevIssuerName sets the "iss" of tokens minted by a ServerKey
// (DevIssuerName by default).
func WithDevIssuerName(name string) Option {
	return func(o *options) {
		if name != "" {
			o.devIssuerName = name
		}
	}
}

// WithSessionTTL sets the lifetime of session tokens (DefaultSessionTTL by
// default); a session never outlives the token it was made from.
func WithSessionTTL(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.sessionTTL = d
		}
	}
}

// WithJWKSMaxAge sets how long fetched JWKS keys are used before a
// background refresh (DefaultJWKSMaxAge by default).
func WithJWKSMaxAge(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.jwksMaxAge = d
		}
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/runtime"
	"github.com/spacetime-go/spacetime/store"
)

// Server is one database server: a store, a runtime, the databases they
// serve, and the HTTP and WebSocket front end.
type Server struct {
	cfg       config
	log       *slog.Logger
	st        *store.Store
	rt        *runtime.Runtime
	key       *auth.ServerKey
	authCfg   *auth.Config
	verifiers *auth.Verifiers
	metrics   *metrics
	handler   http.Handler
	// addrs counts the WebSockets of each client address; httpRates
	// bound the HTTP reducer calls of each.
	addrs     addrConns
	httpRates addrRates
	// slowDrops counts clients disconnected for being too slow (tests).
	slowDrops atomic.Int64

	// publishMu serialises publishes and deletes: they are rare, and doing
	// them one at a time keeps "create or update" decisions simple.
	publishMu sync.Mutex
	mu        sync.RWMutex
	dbs       map[string]*database

	// closing is closed when Close starts: long polls (logs -f) and
	// WebSockets end then.
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	httpSrv  *http.Server
	listener net.Listener
	serveErr chan error
}

// New opens the data directory and reopens every database in it. It does not
// listen yet: see Start, or use Handler in tests.
func New(ctx context.Context, opts ...Option) (*Server, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.logger,
		dbs:     map[string]*database{},
		closing: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			s.release(context.WithoutCancel(ctx))
		}
	}()

	authCfg := cfg.authConfig
	if authCfg == nil && cfg.configFile != "" {
		c, err := auth.LoadConfig(cfg.configFile)
		if err != nil {
			return nil, fmt.Errorf("server: reading the config file: %w", err)
		}
		authCfg = c
	}
	if authCfg == nil {
		authCfg = &auth.Config{DevIssuer: true}
	}
	if cfg.configFile != "" {
		fromFile, err := loadDatabaseLimits(cfg.configFile)
		if err != nil {
			return nil, fmt.Errorf("server: reading the config file %s: %w", cfg.configFile, err)
		}
		for name, l := range cfg.dbLimits {
			fromFile[name] = l
		}
		s.cfg.dbLimits = fromFile
	}
	s.authCfg = authCfg

	var err error
	keyOpts := []auth.Option{auth.WithLogger(s.log)}
	if cfg.sessionTTL > 0 {
		keyOpts = append(keyOpts, auth.WithSessionTTL(cfg.sessionTTL))
	}
	s.key, err = auth.OpenServerKey(cfg.dataDir, keyOpts...)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	// Build the verifiers now, so that a broken issuer config fails at
	// start rather than at the first auth call.
	var devKey *auth.ServerKey
	if cfg.devIssuer {
		devKey = s.key
	}
	if s.verifiers, err = auth.NewVerifiers(authCfg, devKey, append([]auth.Option{auth.WithLogger(s.log)}, cfg.verifierOpts...)...); err != nil {
		return nil, fmt.Errorf("server: token issuers: %w", err)
	}
	s.metrics = newMetrics()

	s.st, err = store.Open(ctx, filepath.Join(cfg.dataDir, "data"), store.WithLogger(s.log))
	if err != nil {
		return nil, fmt.Errorf("server: opening the store in %s: %w", filepath.Join(cfg.dataDir, "data"), err)
	}
	rtOpts := append([]runtime.Option{
		runtime.WithCompilationCacheDir(filepath.Join(cfg.dataDir, "cache")),
		runtime.WithLogger(s.log),
	}, cfg.rtOpts...)
	s.rt, err = runtime.New(ctx, rtOpts...)
	if err != nil {
		return nil, fmt.Errorf("server: starting the runtime: %w", err)
	}
	if err := s.reopenDatabases(ctx); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	ok = true
	return s, nil
}

// Handler returns the server's HTTP handler (for tests with httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Start listens on the configured address and serves in the background. It
// returns once the listener is open.
func (s *Server) Start(ctx context.Context) error {
	if s.listener != nil {
		return errors.New("server: already started")
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", s.cfg.listenAddr)
	if err != nil {
		return fmt.Errorf("server: listening on %s: %w (is another server running? choose another address with --listen)", s.cfg.listenAddr, err)
	}
	s.listener = l
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.httpSrv.Serve(l) }()
	s.log.Info("server listening", "addr", l.Addr().String(), "data_dir", s.cfg.dataDir)
	return nil
}

// Addr is the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// URL is the server's base URL, such as "http://127.0.0.1:3000".
func (s *Server) URL() string {
	if s.listener == nil {
		return ""
	}
	return "http://" + s.Addr()
}

// Close shuts the server down gracefully: it stops accepting, lets HTTP
// requests in flight finish (until ctx is done), closes every WebSocket with
// a reason and runs client_disconnected, then closes the databases and the
// store once its last commit is durable.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.closing)
		var errs []error
		if s.httpSrv != nil {
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("server: shutting down HTTP: %w", err))
				s.httpSrv.Close()
			}
		}
		s.mu.RLock()
		dbs := make([]*database, 0, len(s.dbs))
		for _, d := range s.dbs {
			dbs = append(dbs, d)
		}
		s.mu.RUnlock()
		for _, d := range dbs {
			d.closeConnections(websocketGoingAway, "server shutting down")
		}
		for _, d := range dbs {
			d.waitConnections(ctx)
		}
		errs = append(errs, s.release(ctx))
		s.closeErr = errors.Join(errs...)
		s.log.Info("server stopped")
	})
	return s.closeErr
}

// release closes what New opened, in reverse order.
func (s *Server) release(ctx context.Context) error {
	var errs []error
	s.mu.Lock()
	for name, d := range s.dbs {
		d.close(ctx)
		delete(s.dbs, name)
	}
	s.mu.Unlock()
	if s.rt != nil {
		if err := s.rt.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.st != nil {
		if err := s.st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: closing the store: %w", err))
		}
	}
	return errors.Join(errs...)
}

// verifierFor returns the token verifier of a database: the server-wide
// issuers, the database's own ([databases.NAME.auth]), and the server's dev
// issuer unless turned off. auth.Verifiers shares the server-wide issuers
// (and their JWKS caches) between databases.
func (s *Server) verifierFor(name string) (*auth.Verifier, error) {
	return s.verifiers.For(name), nil
}

func (s *Server) lookup(name string) (*database, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.dbs[name]
	return d, ok
}

package server

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/runtime"
)

// Defaults of the server's settings.
const (
	DefaultDataDir    = ".spacetime"
	DefaultListenAddr = "127.0.0.1:3000"
	// DefaultMaxCallBody bounds the JSON arguments of an HTTP call. JSON is
	// larger than the BSATN the runtime accepts (runtime.DefaultMaxArgsBytes),
	// so it gets some room.
	DefaultMaxCallBody = 4 << 20
	// DefaultMaxQueryBody bounds the text of a SQL query.
	DefaultMaxQueryBody = 64 << 10
	// DefaultMaxMessage bounds one WebSocket message from a client.
	DefaultMaxMessage = 4 << 20
	// DefaultSendQueue is how many messages may wait for one slow client
	// before the server gives up on it.
	DefaultSendQueue = 1024
	// DefaultPingInterval is how often the server pings an idle WebSocket;
	// a client that does not answer within two intervals is dropped.
	DefaultPingInterval = 20 * time.Second
	// DefaultMaxMalformed is how many malformed messages in a row a
	// connection may send before the server closes it as abusive.
	DefaultMaxMalformed = 16
	// DefaultMaxConnections bounds the WebSockets open on one database.
	DefaultMaxConnections = 10_000
	// DefaultMaxConnectionsPerAddress bounds the WebSockets one client
	// address (an IPv4 address, or an IPv6 /64) holds open across all
	// databases. Loopback is not counted unless WithLoopbackAddressLimit.
	DefaultMaxConnectionsPerAddress = 100
	// DefaultLogBytesPerMinute is each database's module log budget
	// (runtime.DefaultLogBytesPerMinute).
	DefaultLogBytesPerMinute = runtime.DefaultLogBytesPerMinute
	// DefaultHTTPCallRate and DefaultHTTPCallBurst bound the HTTP reducer
	// calls of one client address, across all databases (loopback is not
	// counted unless WithLoopbackAddressLimit).
	DefaultHTTPCallRate  = 1000
	DefaultHTTPCallBurst = 200
	// DefaultCallRate and DefaultCallBurst bound the reducer calls of one
	// WebSocket connection: a sustained rate per second, and a burst.
	DefaultCallRate  = 1000
	DefaultCallBurst = 200
	// DefaultQueryRate and DefaultQueryBurst bound the one-off queries of
	// one WebSocket (OneOffQuery), and DefaultHTTPQueryRate and
	// DefaultHTTPQueryBurst the SQL queries of one client address over
	// HTTP. A query may read up to MaxSQLRows rows, so they are a tenth of
	// the call rates.
	DefaultQueryRate      = 100
	DefaultQueryBurst     = 20
	DefaultHTTPQueryRate  = 100
	DefaultHTTPQueryBurst = 20
	// DefaultMaxHTTPInFlight bounds the HTTP reducer calls and SQL queries
	// one client address has running at once, across all databases.
	DefaultMaxHTTPInFlight = 32
	// DefaultOperatorTokenTTL is the lifetime of an operator token.
	DefaultOperatorTokenTTL = 10 * 365 * 24 * time.Hour
)

type config struct {
	dataDir       string
	listenAddr    string
	logger        *slog.Logger
	authConfig    *auth.Config
	verifierOpts  []auth.Option
	configFile    string
	devIssuer     bool
	rtOpts        []runtime.Option
	maxModule     int
	maxCallBody   int64
	maxQueryBody  int64
	maxMessage    int64
	sendQueue     int
	pingInterval  time.Duration
	maxMalformed  int
	operatorTTL   time.Duration
	sessionTTL    time.Duration
	maxConns      int
	maxPerAddr    int
	limitLoopback bool
	logPerMinute  int
	httpRate      float64
	httpBurst     int
	dbLimits      map[string]DatabaseLimits
	callRate      float64
	callBurst     int
	queryRate     float64
	queryBurst    int
	httpQRate     float64
	httpQBurst    int
	maxInFlight   int
	// trustedProxies are the peers whose X-Forwarded-For names the client.
	trustedProxies []netip.Prefix
	version        string
}

func defaultConfig() config {
	return config{
		dataDir:      DefaultDataDir,
		listenAddr:   DefaultListenAddr,
		logger:       slog.New(slog.DiscardHandler),
		devIssuer:    true,
		maxModule:    runtime.DefaultMaxModuleSize,
		maxCallBody:  DefaultMaxCallBody,
		maxQueryBody: DefaultMaxQueryBody,
		maxMessage:   DefaultMaxMessage,
		sendQueue:    DefaultSendQueue,
		pingInterval: DefaultPingInterval,
		maxMalformed: DefaultMaxMalformed,
		operatorTTL:  DefaultOperatorTokenTTL,
		maxConns:     DefaultMaxConnections,
		maxPerAddr:   DefaultMaxConnectionsPerAddress,
		logPerMinute: DefaultLogBytesPerMinute,
		httpRate:     DefaultHTTPCallRate,
		httpBurst:    DefaultHTTPCallBurst,
		callRate:     DefaultCallRate,
		callBurst:    DefaultCallBurst,
		queryRate:    DefaultQueryRate,
		queryBurst:   DefaultQueryBurst,
		httpQRate:    DefaultHTTPQueryRate,
		httpQBurst:   DefaultHTTPQueryBurst,
		maxInFlight:  DefaultMaxHTTPInFlight,
		version:      "dev",
	}
}

// Option configures a Server.
type Option func(*config)

// WithDataDir sets the data directory (DefaultDataDir): the store (data/),
// the compilation cache (cache/) and the server key live there.
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithListenAddr sets the address Start listens on (DefaultListenAddr);
// "127.0.0.1:0" picks a free port (see Server.Addr).
func WithListenAddr(addr string) Option { return func(c *config) { c.listenAddr = addr } }

// WithLogger sets the logger of the server and of the store and runtime it
// opens.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithAuthConfig sets the trusted token issuers (server-wide and per
// database). It takes precedence over WithConfigFile.
func WithAuthConfig(cfg *auth.Config) Option { return func(c *config) { c.authConfig = cfg } }

// WithVerifierOptions passes options to the token verifiers of every
// database, for example auth.WithJWKSRefreshInterval or auth.WithClock.
func WithVerifierOptions(opts ...auth.Option) Option {
	return func(c *config) { c.verifierOpts = append(c.verifierOpts, opts...) }
}

// WithConfigFile reads the trusted issuers from a TOML file (DESIGN.md,
// "Config contract"); relative key paths resolve against its directory.
func WithConfigFile(path string) Option { return func(c *config) { c.configFile = path } }

// WithDevIssuer says whether modules trust the server's own issuer (tokens
// from `spacetime token mint`). Default true; `[auth] dev_issuer = false` in
// the config file turns it off as well.
func WithDevIssuer(on bool) Option { return func(c *config) { c.devIssuer = on } }

// WithRuntimeOptions passes options to the runtime (limits, deadlines). The
// server sets the compilation cache and logger first, so these override them.
func WithRuntimeOptions(opts ...runtime.Option) Option {
	return func(c *config) { c.rtOpts = append(c.rtOpts, opts...) }
}

// WithMaxModuleSize bounds an uploaded module (runtime.DefaultMaxModuleSize);
// a larger body is refused with 413 before it is read.
func WithMaxModuleSize(n int) Option {
	return func(c *config) {
		c.maxModule = n
		c.rtOpts = append(c.rtOpts, runtime.WithMaxModuleSize(n))
	}
}

// WithMaxMessageSize bounds one WebSocket message from a client and the body
// of an HTTP reducer call.
func WithMaxMessageSize(n int64) Option {
	return func(c *config) { c.maxMessage, c.maxCallBody = n, n }
}

// WithSendQueue sets how many outgoing messages may wait for one WebSocket
// client; when a client falls further behind, its connection is closed
// ("too slow") so that it cannot hold the others back.
func WithSendQueue(n int) Option { return func(c *config) { c.sendQueue = max(n, 1) } }

// WithPingInterval sets the WebSocket keepalive interval.
func WithPingInterval(d time.Duration) Option { return func(c *config) { c.pingInterval = d } }

// WithVersion sets the version reported by GET /v1/ping.
func WithVersion(v string) Option { return func(c *config) { c.version = v } }

// WithSessionTTL sets the lifetime of the session tokens minted after auth
// (auth.DefaultSessionTTL); a session never outlives the token it came from.
// When a WebSocket's session expires, its identity lapses to the
// unauthenticated one and the client is told (IdentityChanged).
func WithSessionTTL(d time.Duration) Option { return func(c *config) { c.sessionTTL = d } }

// WithMaxConnections bounds the WebSockets open on one database
// (DefaultMaxConnections); past it, new connections are closed with 1013
// (try again later) and a reason.
func WithMaxConnections(n int) Option { return func(c *config) { c.maxConns = max(n, 1) } }

// WithCallRate bounds the reducer calls of one WebSocket connection to
// perSecond on average, with bursts of up to burst calls (DefaultCallRate,
// DefaultCallBurst). A call over the limit fails at once with a message
// saying so; the connection stays open.
func WithCallRate(perSecond float64, burst int) Option {
	return func(c *config) { c.callRate, c.callBurst = perSecond, max(burst, 1) }
}

// WithMaxConnectionsPerAddress bounds the WebSockets one client address (an
// IPv4 address or an IPv6 /64) may hold open across all databases
// (DefaultMaxConnectionsPerAddress). Past it, a new connection is refused
// with 429 Too Many Requests before the upgrade. Loopback clients are not
// counted (see WithLoopbackAddressLimit): behind a reverse proxy on the same
// host every client is loopback, and the proxy must limit them.
func WithMaxConnectionsPerAddress(n int) Option {
	return func(c *config) { c.maxPerAddr = max(n, 1) }
}

// WithLoopbackAddressLimit counts loopback clients against
// WithMaxConnectionsPerAddress too (off by default; tests use it).
func WithLoopbackAddressLimit(on bool) Option { return func(c *config) { c.limitLoopback = on } }

// WithLogBytesPerMinute sets each database's module log budget
// (DefaultLogBytesPerMinute): lines past it are dropped, and one line says
// how many were when the budget allows logging again. A config file's
// [databases.NAME.limits] log_bytes_per_minute overrides it per database.
func WithLogBytesPerMinute(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.logPerMinute = n
		}
	}
}

// WithHTTPCallRate bounds the HTTP reducer calls of one client address (an
// IPv4 address or an IPv6 /64), across all databases, to perSecond on
// average with bursts of burst (DefaultHTTPCallRate, DefaultHTTPCallBurst).
// A call over it is answered 429 with Retry-After, before its body is read.
// Loopback clients are not counted (see WithLoopbackAddressLimit).
func WithHTTPCallRate(perSecond float64, burst int) Option {
	return func(c *config) {
		if perSecond > 0 {
			c.httpRate, c.httpBurst = perSecond, max(burst, 1)
		}
	}
}

// WithQueryRate bounds the one-off queries (OneOffQuery) of one WebSocket
// to perSecond on average, with bursts of burst (DefaultQueryRate,
// DefaultQueryBurst); a database's query_rate and query_burst override it.
// A query over it is answered with an error at once, and a connection that
// keeps going is closed, as with WithCallRate.
func WithQueryRate(perSecond float64, burst int) Option {
	return func(c *config) {
		if perSecond > 0 {
			c.queryRate, c.queryBurst = perSecond, max(burst, 1)
		}
	}
}

// WithHTTPQueryRate bounds the SQL queries (POST /v1/database/NAME/sql) of
// one client address, across all databases, to perSecond on average with
// bursts of burst (DefaultHTTPQueryRate, DefaultHTTPQueryBurst). A query
// over it is answered 429 with Retry-After before its body is read.
// Loopback clients are not counted (see WithLoopbackAddressLimit).
func WithHTTPQueryRate(perSecond float64, burst int) Option {
	return func(c *config) {
		if perSecond > 0 {
			c.httpQRate, c.httpQBurst = perSecond, max(burst, 1)
		}
	}
}

// WithTrustedProxies names the reverse proxies in front of the server: for
// a request from one of them, the per-address limits (WebSockets per
// address, HTTP call and query rates) count the client address the proxies
// appended to X-Forwarded-For rather than the proxy's own. Without it a
// proxy on the same host makes every client loopback, which the limits do
// not count; a proxy elsewhere would share one budget among all clients.
// Only list proxies that overwrite or append to X-Forwarded-For: the
// header is the client's to forge otherwise.
func WithTrustedProxies(prefixes ...netip.Prefix) Option {
	return func(c *config) { c.trustedProxies = append(c.trustedProxies, prefixes...) }
}

// WithMaxHTTPInFlight bounds the HTTP reducer calls and SQL queries one
// client address (an IPv4 address or an IPv6 /64) has running at once,
// across all databases (DefaultMaxHTTPInFlight). Past it a request is
// answered 429 at once: calls waiting for a database's writer slot wait in
// a queue its other clients share, and the call rate alone would let one
// address put a whole burst there. Loopback clients are not counted (see
// WithLoopbackAddressLimit).
func WithMaxHTTPInFlight(n int) Option { return func(c *config) { c.maxInFlight = max(n, 1) } }

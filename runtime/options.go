package runtime

import (
	"log/slog"
	goruntime "runtime"
	"time"

	"github.com/spacetime-go/spacetime/hostfuncs"
)

// Defaults of the runtime's limits.
const (
	DefaultMaxModuleSize    = 32 << 20 // a Go guest is about 2 MB
	DefaultMemoryLimitPages = 1024     // 64 MiB per instance
	DefaultDeadline         = 5 * time.Second
	DefaultSetupTimeout     = 10 * time.Second
	DefaultMaxArgsBytes     = 1 << 20
	DefaultMaxIdle          = 2
	DefaultLogLines         = 10_000
)

type config struct {
	cacheDir       string
	maxModuleSize  int
	memoryPages    uint32
	deadline       time.Duration
	setupTimeout   time.Duration
	maxArgs        int
	maxIdle        int
	logLines       int
	limits         hostfuncs.Limits
	verifier       hostfuncs.TokenVerifier
	logger         *slog.Logger
	compileWorkers int
	// noCloseOnDone turns deadlines off; only benchmarks use it, to measure
	// what WithCloseOnContextDone costs.
	noCloseOnDone bool
}

func defaultConfig() config {
	return config{
		maxModuleSize: DefaultMaxModuleSize,
		memoryPages:   DefaultMemoryLimitPages,
		deadline:      DefaultDeadline,
		setupTimeout:  DefaultSetupTimeout,
		maxArgs:       DefaultMaxArgsBytes,
		maxIdle:       DefaultMaxIdle,
		logLines:      DefaultLogLines,
		limits:        hostfuncs.DefaultLimits,
		logger:        slog.New(slog.DiscardHandler),
		// Half the CPUs: compiling a Go guest takes about a second of CPU,
		// and the other half keeps serving reducers meanwhile.
		compileWorkers: max(1, goruntime.GOMAXPROCS(0)/2),
	}
}

// Option configures a [Runtime].
type Option func(*config)

// WithCompilationCacheDir keeps compiled machine code in dir, so that a
// restart compiles a module in tens of milliseconds instead of about a
// second. Without it, the cache lives in memory only.
func WithCompilationCacheDir(dir string) Option { return func(c *config) { c.cacheDir = dir } }

// WithMaxModuleSize bounds the size of an uploaded binary.
func WithMaxModuleSize(n int) Option { return func(c *config) { c.maxModuleSize = n } }

// WithMemoryLimitPages bounds the linear memory of every instance, in 64 KiB
// pages. At the limit memory.grow fails (a Go guest then traps with "out of
// memory").
func WithMemoryLimitPages(pages uint32) Option { return func(c *config) { c.memoryPages = pages } }

// WithDeadline sets the default wall-clock deadline of a reducer call.
func WithDeadline(d time.Duration) Option { return func(c *config) { c.deadline = d } }

// WithSetupTimeout bounds _initialize and __describe_module__.
func WithSetupTimeout(d time.Duration) Option { return func(c *config) { c.setupTimeout = d } }

// WithMaxArgsBytes bounds the BSATN arguments of one call.
func WithMaxArgsBytes(n int) Option { return func(c *config) { c.maxArgs = n } }

// WithCompileWorkers sets how many goroutines compile one module
// (wazero's experimental compilation workers). FIELD_NOTES measured a Go
// guest at 0.6 s with one and 0.33 s with two.
func WithCompileWorkers(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.compileWorkers = n
		}
	}
}

// WithMaxIdleInstances sets how many idle instances a database keeps per
// module version. Reducer calls on one database run one at a time, so one or
// two suffice; more only cost memory (about 3 MiB each for a Go guest).
func WithMaxIdleInstances(n int) Option { return func(c *config) { c.maxIdle = n } }

// WithLogLines sets how many lines each database's module log keeps.
func WithLogLines(n int) Option { return func(c *config) { c.logLines = n } }

// WithLimits sets the limits of host functions per call; zero fields keep
// their defaults.
func WithLimits(l hostfuncs.Limits) Option { return func(c *config) { c.limits = l.WithDefaults() } }

// WithTokenVerifier sets the verifier jwt_verify uses for databases that do
// not set their own (see [WithDatabaseVerifier]).
func WithTokenVerifier(v hostfuncs.TokenVerifier) Option { return func(c *config) { c.verifier = v } }

// WithLogger sets the logger of the runtime's own events (compiles, traps,
// deadlines). Module logs go to each database's [LogBuffer].
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// DatabaseOption configures one [Database].
type DatabaseOption func(*dbConfig)

type dbConfig struct {
	verifier hostfuncs.TokenVerifier
	deadline time.Duration
}

// WithDatabaseVerifier sets the token verifier of one database (its own
// issuers added to the server's).
func WithDatabaseVerifier(v hostfuncs.TokenVerifier) DatabaseOption {
	return func(c *dbConfig) { c.verifier = v }
}

// WithDatabaseDeadline sets the default deadline of this database's calls.
func WithDatabaseDeadline(d time.Duration) DatabaseOption {
	return func(c *dbConfig) { c.deadline = d }
}

package runtime

import (
	"log/slog"
	goruntime "runtime"
	"time"

	"github.com/spacetime-go/spacetime/hostfuncs"
	"github.com/spacetime-go/spacetime/runtime/internal/fuel"
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
	// DefaultEnergyBudget is a reducer call's fuel: one unit per wasm
	// instruction executed. 1e9 units measured about 130 ms of a Go guest's
	// code, and 1.5 s of the worst case, a loop of one instruction
	// (BENCHMARKS.md, "Metering").
	DefaultEnergyBudget = 1_000_000_000
	// DefaultSetupEnergy bounds _initialize and __describe_module__ (a Go
	// guest's _initialize takes well under 1% of it).
	DefaultSetupEnergy = 1_000_000_000
	// DefaultMaxCallDepth bounds how deep wasm calls nest. Go guests keep
	// one wasm frame per Go frame; 50,000 is far beyond ordinary code and
	// keeps the host stack of a runaway recursion to a few MiB (wazero's own
	// ceiling lets it reach about 160 MiB).
	DefaultMaxCallDepth = 50_000
	// DefaultHostCallEnergy is charged for each host function call on top
	// of its instruction: a host call costs 40 ns to a few µs, a few hundred
	// instructions of guest code.
	DefaultHostCallEnergy = 200
	// DefaultEnergySlice is how much of a call's energy the guest gets at a
	// time: when a slice runs out, the guest calls the host for the next
	// (package fuel, Meter), and that host call is where a Go
	// stop-the-world waiting on the guest can proceed. 500k units are at
	// most ~0.75 ms of the slowest guest code per unit (a loop of one
	// instruction, ~1.5 ns a unit), and a refuel (~90 ns) costs under 0.4%
	// of the fastest (a tight arithmetic loop, ~0.05 ns a unit)
	// (BENCHMARKS.md, "Slices and safepoints").
	DefaultEnergySlice = 500_000
	// DefaultCompileTimeout bounds compiling one module (a Go guest takes
	// about 0.6 s of CPU).
	DefaultCompileTimeout = time.Minute
	// DefaultMaxIdleModules is how many compiled modules no database uses
	// are kept, in case the same bytes are published again.
	DefaultMaxIdleModules = 4
)

// ModuleLimits bound the shape of an uploaded module (functions, body
// sizes, locals, nesting, tables, data); zero fields take their defaults.
type ModuleLimits = fuel.Limits

// DefaultModuleLimits are the module shape limits used when none are set.
var DefaultModuleLimits = fuel.DefaultLimits

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
	energy         int64
	setupEnergy    int64
	hostCallEnergy int64
	energySlice    int64
	maxCallDepth   uint32
	compileTimeout time.Duration
	maxIdleModules int
	moduleLimits   ModuleLimits
	// closeOnDone turns on wazero's WithCloseOnContextDone (see
	// WithCloseOnContextDone).
	closeOnDone bool
	// noMetering compiles modules as uploaded; only benchmarks use it, to
	// measure what metering costs.
	noMetering bool
	// noRefuel meters without slices (the whole budget in __fuel, no
	// refuel import), as before slices; only benchmarks use it.
	noRefuel bool
}

func defaultConfig() config {
	return config{
		maxModuleSize:  DefaultMaxModuleSize,
		memoryPages:    DefaultMemoryLimitPages,
		deadline:       DefaultDeadline,
		setupTimeout:   DefaultSetupTimeout,
		maxArgs:        DefaultMaxArgsBytes,
		maxIdle:        DefaultMaxIdle,
		logLines:       DefaultLogLines,
		energy:         DefaultEnergyBudget,
		setupEnergy:    DefaultSetupEnergy,
		hostCallEnergy: DefaultHostCallEnergy,
		energySlice:    DefaultEnergySlice,
		maxCallDepth:   DefaultMaxCallDepth,
		compileTimeout: DefaultCompileTimeout,
		maxIdleModules: DefaultMaxIdleModules,
		limits:         hostfuncs.DefaultLimits,
		logger:         slog.New(slog.DiscardHandler),
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
// pages: the default of databases, and the most any database may set
// ([WithDatabaseMemoryLimitPages]). At the limit memory.grow fails (a Go
// guest then traps with "out of memory").
func WithMemoryLimitPages(pages uint32) Option { return func(c *config) { c.memoryPages = pages } }

// WithDeadline sets the default wall-clock deadline of a reducer call. The
// guest's computation is bounded by its energy budget; the deadline is
// checked at every host call that does real work and when the guest returns
// (and, with [WithCloseOnContextDone], at loop heads).
func WithDeadline(d time.Duration) Option { return func(c *config) { c.deadline = d } }

// WithEnergyBudget sets the default energy (fuel) of a reducer call: one
// unit per wasm instruction executed, counted by instrumenting the module
// at upload. A call that uses it all fails with [ErrOutOfEnergy].
func WithEnergyBudget(units int64) Option {
	return func(c *config) {
		if units > 0 {
			c.energy = units
		}
	}
}

// WithSetupEnergy sets the energy of _initialize and __describe_module__.
func WithSetupEnergy(units int64) Option {
	return func(c *config) {
		if units > 0 {
			c.setupEnergy = units
		}
	}
}

// WithHostCallEnergy sets the energy charged for each host function call
// on top of its instruction (0 keeps the default; it takes effect for
// modules compiled afterwards).
func WithHostCallEnergy(units int64) Option {
	return func(c *config) {
		if units > 0 {
			c.hostCallEnergy = units
		}
	}
}

// WithEnergySlice sets how many units of a call's energy the guest gets at
// a time (0 or less keeps the default). Guest code compiled to machine
// code cannot be preempted by Go, so every garbage collection's
// stop-the-world waits for the running guest to reach a host call: the
// next slice is one. Smaller slices shorten that wait, larger ones make
// fewer host calls; neither changes the energy a call uses.
func WithEnergySlice(units int64) Option {
	return func(c *config) {
		if units > 0 {
			c.energySlice = units
		}
	}
}

// WithMaxCallDepth bounds how deep wasm calls nest in a reducer call; a
// call that goes deeper fails with [ErrCallDepth].
func WithMaxCallDepth(n uint32) Option {
	return func(c *config) {
		if n > 0 {
			c.maxCallDepth = n
		}
	}
}

// WithCompileTimeout bounds compiling one uploaded module.
func WithCompileTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.compileTimeout = d
		}
	}
}

// WithModuleLimits bounds the shape of uploaded modules; zero fields keep
// their defaults ([DefaultModuleLimits]).
func WithModuleLimits(l ModuleLimits) Option { return func(c *config) { c.moduleLimits = l } }

// WithMaxIdleModules sets how many compiled modules that no database uses
// stay in memory (least recently released are closed first).
func WithMaxIdleModules(n int) Option {
	return func(c *config) {
		if n >= 0 {
			c.maxIdleModules = n
		}
	}
}

// WithCloseOnContextDone turns on wazero's WithCloseOnContextDone: the
// guest is also stopped at loop heads when its deadline passes. It is off
// by default: energy already bounds a call's computation, and
// FIELD_NOTES/BENCHMARKS measured it at a goroutine per call and loops
// several times slower (RATIONALE.md, "Runtime").
func WithCloseOnContextDone(on bool) Option { return func(c *config) { c.closeOnDone = on } }

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
	verifier     hostfuncs.TokenVerifier
	deadline     time.Duration
	energy       int64
	memoryPages  uint32
	maxCallDepth uint32
	// limits and maxArgs are the database's own; zero fields keep the
	// runtime's (see Database.callLimits, Database.maxArgs).
	limits  hostfuncs.Limits
	maxArgs int
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

// WithDatabaseEnergyBudget sets the default energy of this database's calls.
func WithDatabaseEnergyBudget(units int64) DatabaseOption {
	return func(c *dbConfig) {
		if units > 0 {
			c.energy = units
		}
	}
}

// WithDatabaseMemoryLimitPages bounds the memory of this database's
// instances, in 64 KiB pages; it cannot exceed the runtime's
// [WithMemoryLimitPages].
func WithDatabaseMemoryLimitPages(pages uint32) DatabaseOption {
	return func(c *dbConfig) {
		if pages > 0 {
			c.memoryPages = pages
		}
	}
}

// WithDatabaseMaxCallDepth bounds how deep wasm calls nest in this
// database's calls.
func WithDatabaseMaxCallDepth(n uint32) DatabaseOption {
	return func(c *dbConfig) {
		if n > 0 {
			c.maxCallDepth = n
		}
	}
}

// WithDatabaseLimits sets the host function limits of this database's calls
// (rows and bytes written per transaction, one row's size, iterators open
// at once, log bytes per call, result and token sizes); zero fields keep the
// runtime's ([WithLimits]). Unlike memory, these may be higher than the
// runtime's: they bound the database's own transactions.
func WithDatabaseLimits(l hostfuncs.Limits) DatabaseOption {
	return func(c *dbConfig) { c.limits = l }
}

// WithDatabaseMaxArgsBytes bounds the BSATN arguments of one of this
// database's calls (0 keeps the runtime's [WithMaxArgsBytes]).
func WithDatabaseMaxArgsBytes(n int) DatabaseOption {
	return func(c *dbConfig) {
		if n > 0 {
			c.maxArgs = n
		}
	}
}

package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/runtime"
)

// DatabaseLimits are one database's own limits, lower (or higher, where the
// server allows) than the server's; zero fields keep the server's. In the
// config file they are written
//
//	[databases.NAME.limits]
//	energy_budget = 100_000_000      # a reducer call's fuel, wasm instructions
//	memory_pages = 256               # 64 KiB pages per instance; at most the server's
//	max_call_depth = 10_000          # wasm call nesting
//	deadline = "2s"                  # a reducer call's wall clock
//	call_rate = 50                   # reducer calls per second per WebSocket
//	call_burst = 20
//	max_connections = 500            # WebSockets open on the database
//	log_bytes_per_minute = 1_048_576 # module log budget
//	max_subscriptions = 100          # subscribed queries per WebSocket
//
// They take effect when the database is created or the server starts.
type DatabaseLimits struct {
	EnergyBudget      int64         `toml:"energy_budget"`
	MemoryPages       uint32        `toml:"memory_pages"`
	MaxCallDepth      uint32        `toml:"max_call_depth"`
	Deadline          auth.Duration `toml:"deadline"`
	CallRate          float64       `toml:"call_rate"`
	CallBurst         int           `toml:"call_burst"`
	MaxConnections    int           `toml:"max_connections"`
	LogBytesPerMinute int           `toml:"log_bytes_per_minute"`
	MaxSubscriptions  int           `toml:"max_subscriptions"`
}

// WithDatabaseLimits sets the limits of database name; they take precedence
// over the config file's [databases.NAME.limits].
func WithDatabaseLimits(name string, l DatabaseLimits) Option {
	return func(c *config) {
		if c.dbLimits == nil {
			c.dbLimits = map[string]DatabaseLimits{}
		}
		c.dbLimits[name] = l
	}
}

var errBadLimits = errors.New("invalid limits")

// loadDatabaseLimits reads the [databases.NAME.limits] sections of the
// config file (the auth sections are auth.LoadConfig's).
func loadDatabaseLimits(path string) (map[string]DatabaseLimits, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadLimits, err)
	}
	var f struct {
		Databases map[string]struct {
			Limits *DatabaseLimits `toml:"limits"`
		} `toml:"databases"`
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadLimits, err)
	}
	// A misspelt limit would silently leave the server's in place.
	for _, k := range md.Undecoded() {
		if len(k) > 3 && k[0] == "databases" && k[2] == "limits" {
			return nil, fmt.Errorf("%w: unknown setting %q: the limits of a database are energy_budget, memory_pages, max_call_depth, deadline, call_rate, call_burst, max_connections, log_bytes_per_minute and max_subscriptions", errBadLimits, k.String())
		}
	}
	out := map[string]DatabaseLimits{}
	for name, sect := range f.Databases {
		if sect.Limits == nil {
			continue
		}
		l := *sect.Limits
		if l.EnergyBudget < 0 || l.CallRate < 0 || l.CallBurst < 0 || l.MaxConnections < 0 || l.LogBytesPerMinute < 0 || l.Deadline < 0 || l.MaxSubscriptions < 0 {
			return nil, fmt.Errorf("%w: [databases.%s.limits]: limits must be positive (0 or absent keeps the server's)", errBadLimits, name)
		}
		out[name] = l
	}
	return out, nil
}

// limitsFor returns database name's limits with the server's in the fields
// it does not set.
func (s *Server) limitsFor(name string) DatabaseLimits {
	l := s.cfg.dbLimits[name]
	if l.CallRate == 0 {
		l.CallRate = s.cfg.callRate
		if l.CallBurst == 0 {
			l.CallBurst = s.cfg.callBurst
		}
	}
	if l.CallBurst == 0 {
		l.CallBurst = max(1, int(min(l.CallRate/5, 1e9)))
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = s.cfg.maxConns
	}
	if l.LogBytesPerMinute == 0 {
		l.LogBytesPerMinute = s.cfg.logPerMinute
	}
	return l
}

// runtimeOptions are the runtime's settings of database name; the runtime
// keeps memory_pages within its own WithMemoryLimitPages.
func (s *Server) runtimeOptions(name string, v *auth.Verifier) []runtime.DatabaseOption {
	l := s.cfg.dbLimits[name]
	opts := []runtime.DatabaseOption{runtime.WithDatabaseVerifier(v)}
	if l.EnergyBudget > 0 {
		opts = append(opts, runtime.WithDatabaseEnergyBudget(l.EnergyBudget))
	}
	if l.MemoryPages > 0 {
		opts = append(opts, runtime.WithDatabaseMemoryLimitPages(l.MemoryPages))
	}
	if l.MaxCallDepth > 0 {
		opts = append(opts, runtime.WithDatabaseMaxCallDepth(l.MaxCallDepth))
	}
	if l.Deadline > 0 {
		opts = append(opts, runtime.WithDatabaseDeadline(time.Duration(l.Deadline)))
	}
	return opts
}

// String lists the limits set, for the log.
func (l DatabaseLimits) String() string {
	var parts []string
	add := func(k string, v any, set bool) {
		if set {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	add("energy_budget", l.EnergyBudget, l.EnergyBudget > 0)
	add("memory_pages", l.MemoryPages, l.MemoryPages > 0)
	add("max_call_depth", l.MaxCallDepth, l.MaxCallDepth > 0)
	add("deadline", time.Duration(l.Deadline), l.Deadline > 0)
	add("call_rate", l.CallRate, l.CallRate > 0)
	add("call_burst", l.CallBurst, l.CallBurst > 0)
	add("max_connections", l.MaxConnections, l.MaxConnections > 0)
	add("log_bytes_per_minute", l.LogBytesPerMinute, l.LogBytesPerMinute > 0)
	add("max_subscriptions", l.MaxSubscriptions, l.MaxSubscriptions > 0)
	return strings.Join(parts, " ")
}

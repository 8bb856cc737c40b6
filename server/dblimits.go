package server

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/hostfuncs"
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
//	max_rows_written = 10_000        # rows inserted, updated or deleted per transaction
//	max_bytes_written = 4_194_304    # bytes of rows written per transaction
//	max_row_bytes = 65_536           # one row
//	max_iterators = 64               # iterators open at once in a call
//	log_bytes_per_call = 16_384      # module log per call
//	max_result_bytes = 1_048_576     # a reducer's return value
//	max_token_bytes = 4096           # a token given to jwt_verify
//	max_args_bytes = 65_536          # a call's arguments (BSATN)
//	max_message_bytes = 262_144      # a WebSocket message, an HTTP call's body
//	query_rate = 20                  # one-off queries per second per WebSocket
//	query_burst = 5
//
// They take effect when the database is created or the server starts, and
// stay through republishes.
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
	MaxRowsWritten    int           `toml:"max_rows_written"`
	MaxBytesWritten   int           `toml:"max_bytes_written"`
	MaxRowBytes       int           `toml:"max_row_bytes"`
	MaxIterators      int           `toml:"max_iterators"`
	LogBytesPerCall   int           `toml:"log_bytes_per_call"`
	MaxResultBytes    int           `toml:"max_result_bytes"`
	MaxTokenBytes     int           `toml:"max_token_bytes"`
	MaxArgsBytes      int           `toml:"max_args_bytes"`
	MaxMessageBytes   int64         `toml:"max_message_bytes"`
	QueryRate         float64       `toml:"query_rate"`
	QueryBurst        int           `toml:"query_burst"`
}

// limitKeys lists the settings of [databases.NAME.limits], for the error
// about one it does not know.
func limitKeys() string {
	t := reflect.TypeFor[DatabaseLimits]()
	keys := make([]string, t.NumField())
	for i := range keys {
		keys[i] = t.Field(i).Tag.Get("toml")
	}
	return strings.Join(keys[:len(keys)-1], ", ") + " and " + keys[len(keys)-1]
}

// check refuses values no database can run with.
func (l DatabaseLimits) check() error {
	v := reflect.ValueOf(l)
	for i := range v.NumField() {
		neg := false
		switch f := v.Field(i); f.Kind() {
		case reflect.Int, reflect.Int64:
			neg = f.Int() < 0
		case reflect.Float64:
			neg = f.Float() < 0
		}
		if neg {
			return fmt.Errorf("%s is negative: limits must be positive (0 or absent keeps the server's)", v.Type().Field(i).Tag.Get("toml"))
		}
	}
	if l.MaxIterators > 0 && l.MaxIterators < 3 {
		return fmt.Errorf("max_iterators = %d is too low: every call holds 3 handles (arguments, return value, error message); set 3 or more", l.MaxIterators)
	}
	return nil
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
			return nil, fmt.Errorf("%w: unknown setting %q: the limits of a database are %s", errBadLimits, k.String(), limitKeys())
		}
	}
	out := map[string]DatabaseLimits{}
	for name, sect := range f.Databases {
		if sect.Limits == nil {
			continue
		}
		l := *sect.Limits
		if err := l.check(); err != nil {
			return nil, fmt.Errorf("%w: [databases.%s.limits]: %w", errBadLimits, name, err)
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
	if l.MaxMessageBytes == 0 {
		l.MaxMessageBytes = s.cfg.maxMessage
	}
	if l.QueryRate == 0 {
		l.QueryRate = s.cfg.queryRate
		if l.QueryBurst == 0 {
			l.QueryBurst = s.cfg.queryBurst
		}
	}
	if l.QueryBurst == 0 {
		l.QueryBurst = max(1, int(min(l.QueryRate/5, 1e9)))
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
	if l.MaxArgsBytes > 0 {
		opts = append(opts, runtime.WithDatabaseMaxArgsBytes(l.MaxArgsBytes))
	}
	hl := hostfuncs.Limits{
		MaxHandles:      l.MaxIterators,
		MaxSinkBytes:    l.MaxResultBytes,
		MaxLogBytes:     l.LogBytesPerCall,
		MaxRowsWritten:  l.MaxRowsWritten,
		MaxBytesWritten: l.MaxBytesWritten,
		MaxTokenBytes:   l.MaxTokenBytes,
		MaxRowBytes:     l.MaxRowBytes,
	}
	if hl != (hostfuncs.Limits{}) {
		opts = append(opts, runtime.WithDatabaseLimits(hl))
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
	add("max_rows_written", l.MaxRowsWritten, l.MaxRowsWritten > 0)
	add("max_bytes_written", l.MaxBytesWritten, l.MaxBytesWritten > 0)
	add("max_row_bytes", l.MaxRowBytes, l.MaxRowBytes > 0)
	add("max_iterators", l.MaxIterators, l.MaxIterators > 0)
	add("log_bytes_per_call", l.LogBytesPerCall, l.LogBytesPerCall > 0)
	add("max_result_bytes", l.MaxResultBytes, l.MaxResultBytes > 0)
	add("max_token_bytes", l.MaxTokenBytes, l.MaxTokenBytes > 0)
	add("max_args_bytes", l.MaxArgsBytes, l.MaxArgsBytes > 0)
	add("max_message_bytes", l.MaxMessageBytes, l.MaxMessageBytes > 0)
	add("query_rate", l.QueryRate, l.QueryRate > 0)
	add("query_burst", l.QueryBurst, l.QueryBurst > 0)
	return strings.Join(parts, " ")
}

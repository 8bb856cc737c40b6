package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are one Server's Prometheus metrics, in a registry of its own: two
// servers in one process (tests, or an embedding program) never share
// counters, and nothing registers globally.
type metrics struct {
	reg           *prometheus.Registry
	calls         *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	energy        *prometheus.CounterVec
	connections   *prometheus.GaugeVec
	subscriptions *prometheus.GaugeVec
	commits       *prometheus.CounterVec
	publishes     *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	// refusals counts what the server's limits refused, by limit; it has
	// no database label, since the per-address limits apply to none.
	refusals *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spacetime_reducer_calls_total",
			Help: "Reducer calls by database, reducer and status (committed or failed).",
		}, []string{"database", "reducer", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "spacetime_reducer_duration_seconds",
			Help:    "Time spent in the guest per reducer call.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 4, 10), // 20 µs .. 5 s
		}, []string{"database", "reducer"}),
		energy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spacetime_reducer_energy_total",
			Help: "Energy used by reducer calls (the runtime's fuel: about one unit per wasm instruction), by database and reducer.",
		}, []string{"database", "reducer"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spacetime_websocket_connections",
			Help: "Open WebSocket connections by database.",
		}, []string{"database"}),
		subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "spacetime_subscriptions",
			Help: "Active subscription query sets by database.",
		}, []string{"database"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spacetime_commits_total",
			Help: "Durable transactions by database.",
		}, []string{"database"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spacetime_publishes_total",
			Help: "Module publishes by database and result (created, updated, refused, failed).",
		}, []string{"database", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spacetime_websocket_slow_disconnects_total",
			Help: "WebSocket clients disconnected because their outgoing queue was full.",
		}, []string{"database"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spacetime_limit_refusals_total",
			Help: "Requests refused by a limit: connections_per_address, connections_per_database, http_call_rate, http_query_rate, http_in_flight, websocket_call_rate, websocket_call_rate_disconnect, websocket_query_rate, websocket_query_rate_disconnect.",
		}, []string{"limit"}),
	}
	m.reg.MustRegister(m.calls, m.duration, m.energy, m.connections, m.subscriptions, m.commits, m.publishes, m.dropped, m.refusals,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// forget drops a deleted database's series.
func (m *metrics) forget(db string) {
	l := prometheus.Labels{"database": db}
	m.calls.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.energy.DeletePartialMatch(l)
	m.connections.DeletePartialMatch(l)
	m.subscriptions.DeletePartialMatch(l)
	m.commits.DeletePartialMatch(l)
	m.dropped.DeletePartialMatch(l)
}

package server

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/server/adminui"
)

// adminRoutes registers the admin page (server/adminui) and the owner-only
// endpoints it reads besides the public API. Every one of them checks the
// operator token here, on the server: the page is a client like any other.
func (s *Server) adminRoutes(mux *http.ServeMux) {
	ui, err := adminui.New()
	if err != nil {
		// Only a broken build gets here; the API still serves.
		s.log.Error("admin page unavailable", "error", err)
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusInternalServerError, "the admin page is unavailable in this build (%v); the API under /v1/ works", err)
		})
	} else {
		mux.HandleFunc("GET /{$}", ui.ServeIndex)
		mux.HandleFunc("GET "+adminui.AssetPrefix+"{file}", ui.ServeAsset)
	}
	mux.HandleFunc("GET /v1/identity/databases", s.handleOwnedDatabases)
	mux.HandleFunc("GET /v1/database/{name}/tables", s.handleAdminTables)
	mux.HandleFunc("GET /v1/database/{name}/clients", s.handleClients)
	mux.HandleFunc("GET /v1/database/{name}/stats", s.handleStats)
}

// handleOwnedDatabases is GET /v1/identity/databases: who the operator token
// is, and the databases it owns.
func (s *Server) handleOwnedDatabases(w http.ResponseWriter, r *http.Request) {
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	if p.Operator.IsZero() {
		writeError(w, http.StatusUnauthorized, "listing your databases needs an operator token (Authorization: Bearer <token from POST /v1/identity>; `spacetime login` keeps one in credentials.json)")
		return
	}
	s.mu.RLock()
	list := []dbInfo{}
	for _, d := range s.dbs {
		if d.isOwner(p) {
			list = append(list, d.info())
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(list, func(a, b dbInfo) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"identity": p.Operator, "databases": list})
}

// adminTable is a table as the admin page shows it: the store's definition
// (with the indexes that keys imply), its row count and its grants.
type adminTable struct {
	abi.TableDef
	Rows   uint64   `json:"rows"`
	Grants []string `json:"grants"`
}

// handleAdminTables is GET /v1/database/:name/tables (owner).
func (s *Server) handleAdminTables(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	if _, ok := s.owner(w, r, d, "listing the tables"); !ok {
		return
	}
	def := d.def()
	sdb := d.rdb.Store()
	snap := sdb.Snapshot()
	out := []adminTable{}
	for _, t := range sdb.Tables() {
		at := adminTable{TableDef: t, Grants: []string{}}
		if id, err := sdb.TableID(t.Name); err == nil {
			at.Rows, _ = snap.Count(id)
		}
		for _, g := range def.Grants {
			if g.Table == t.Name {
				at.Grants = append(at.Grants, grantText(g))
			}
		}
		out = append(out, at)
	}
	writeJSON(w, http.StatusOK, map[string]any{"database": d.name, "offset": snap.Offset(), "tables": out})
}

func grantText(g abi.GrantDef) string {
	if g.To != "" {
		return "grant_access " + g.Table + " to " + g.To + ";"
	}
	return "grant_access " + g.Table + " where " + g.Where + ";"
}

// adminClient is one open WebSocket.
type adminClient struct {
	ConnectionID string       `json:"connection_id"`
	Identity     abi.Identity `json:"identity"`
	// Owner marks a connection opened with the owner's operator token (it
	// reads every table).
	Owner      bool   `json:"owner"`
	RemoteAddr string `json:"remote_addr"`
}

// handleClients is GET /v1/database/:name/clients (owner): the open
// WebSockets and the identity each runs as.
func (s *Server) handleClients(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	if _, ok := s.owner(w, r, d, "listing the connected clients"); !ok {
		return
	}
	d.connMu.Lock()
	conns := make([]*wsConn, 0, len(d.conns))
	for _, c := range d.conns {
		conns = append(conns, c)
	}
	d.connMu.Unlock()
	out := make([]adminClient, 0, len(conns))
	for _, c := range conns {
		id, _ := c.currentIdentity()
		out = append(out, adminClient{ConnectionID: c.id.String(), Identity: id, Owner: c.owner, RemoteAddr: c.ws.RemoteAddr().String()})
	}
	slices.SortFunc(out, func(a, b adminClient) int { return strings.Compare(a.ConnectionID, b.ConnectionID) })
	writeJSON(w, http.StatusOK, map[string]any{"database": d.name, "clients": out})
}

// Stats are cumulative counters: a client that polls takes differences to
// get rates, and merges histogram buckets to estimate quantiles over its
// own window. Keeping no per-reader state on the server keeps any number of
// open admin pages free.
type (
	adminStats struct {
		Database      string          `json:"database"`
		Time          time.Time       `json:"time"`
		Offset        uint64          `json:"offset"`
		Commits       uint64          `json:"commits"`
		Connections   int             `json:"connections"`
		Subscriptions int             `json:"subscriptions"`
		Reducers      []reducerStats  `json:"reducers"`
		Tables        []tableRowCount `json:"tables"`
		// Energy is the total of the reducers' energy (the runtime's fuel).
		Energy uint64 `json:"energy"`
	}
	reducerStats struct {
		Reducer   string  `json:"reducer"`
		Committed uint64  `json:"committed"`
		Failed    uint64  `json:"failed"`
		Energy    uint64  `json:"energy"`
		Count     uint64  `json:"duration_count"`
		SumSec    float64 `json:"duration_sum_seconds"`
		// Buckets are cumulative counts of calls that took at most LE
		// seconds (the last one is +Inf, written as null).
		Buckets []bucket `json:"duration_buckets"`
	}
	bucket struct {
		LE    *float64 `json:"le"`
		Count uint64   `json:"count"`
	}
	tableRowCount struct {
		Table string `json:"table"`
		Rows  uint64 `json:"rows"`
	}
)

// handleStats is GET /v1/database/:name/stats (owner).
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	if _, ok := s.owner(w, r, d, "reading the statistics"); !ok {
		return
	}
	st := adminStats{Database: d.name, Time: time.Now().UTC(), Reducers: []reducerStats{}, Tables: []tableRowCount{}}
	sdb := d.rdb.Store()
	snap := sdb.Snapshot()
	st.Offset = snap.Offset()
	for _, t := range sdb.Tables() {
		if id, err := sdb.TableID(t.Name); err == nil {
			n, _ := snap.Count(id)
			st.Tables = append(st.Tables, tableRowCount{Table: t.Name, Rows: n})
		}
	}
	d.connMu.Lock()
	st.Connections = len(d.conns)
	d.connMu.Unlock()
	st.Subscriptions = d.subs.engine.Stats().QuerySets

	byName := map[string]*reducerStats{}
	for _, rd := range d.def().Reducers {
		byName[rd.Name] = &reducerStats{Reducer: rd.Name, Buckets: []bucket{}}
	}
	fams, err := s.metrics.reg.Gather()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "gathering metrics: %v", err)
		return
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["database"] != d.name {
				continue
			}
			rs := byName[labels["reducer"]]
			switch f.GetName() {
			case "spacetime_commits_total":
				st.Commits = uint64(m.GetCounter().GetValue())
			case "spacetime_reducer_calls_total":
				if rs == nil {
					continue
				}
				if labels["status"] == "committed" {
					rs.Committed = uint64(m.GetCounter().GetValue())
				} else {
					rs.Failed += uint64(m.GetCounter().GetValue())
				}
			case "spacetime_reducer_energy_total":
				if rs != nil {
					rs.Energy = uint64(m.GetCounter().GetValue())
					st.Energy += rs.Energy
				}
			case "spacetime_reducer_duration_seconds":
				if rs == nil {
					continue
				}
				h := m.GetHistogram()
				rs.Count, rs.SumSec = h.GetSampleCount(), h.GetSampleSum()
				for _, b := range h.GetBucket() {
					le := b.GetUpperBound()
					if math.IsInf(le, 1) {
						continue
					}
					rs.Buckets = append(rs.Buckets, bucket{LE: &le, Count: b.GetCumulativeCount()})
				}
				rs.Buckets = append(rs.Buckets, bucket{Count: h.GetSampleCount()})
			}
		}
	}
	for _, rd := range d.def().Reducers {
		st.Reducers = append(st.Reducers, *byName[rd.Name])
	}
	writeJSON(w, http.StatusOK, st)
}

// asIdentity reads the ?as= parameter the admin page's "view as" and "call
// as" send: only the database owner may act as another identity. ok is
// false when the request has been answered (refused).
func (s *Server) asIdentity(w http.ResponseWriter, r *http.Request, d *database, p principal, what string) (id abi.Identity, set, ok bool) {
	q := r.URL.Query()
	if !q.Has("as") {
		return id, false, true
	}
	if p.Operator.IsZero() {
		writeError(w, http.StatusUnauthorized, "%s as another identity (?as=) needs the database owner's operator token (Authorization: Bearer <token>; `spacetime login`)", what)
		return id, false, false
	}
	if !d.isOwner(p) {
		writeError(w, http.StatusForbidden, "%s as another identity (?as=): identity %s does not own database %s", what, p.Operator, d.name)
		return id, false, false
	}
	v := strings.TrimSpace(q.Get("as"))
	if v == "" || v == "anonymous" {
		return abi.Identity{}, true, true
	}
	id, err := abi.ParseIdentity(v)
	if err != nil {
		writeError(w, http.StatusBadRequest, "as=%q: %v; give 64 hex digits, or as=anonymous for the zero identity", truncate(v, 80), err)
		return id, false, false
	}
	return id, true, true
}

// sqlReader decides whose view a SQL request reads: with ?as=<identity>
// (owner only), exactly that identity's under the grants, through the same
// read path as any client; otherwise the requester's own.
func (s *Server) sqlReader(w http.ResponseWriter, r *http.Request, d *database, p principal, text string) (caller abi.Identity, owner, ok bool) {
	as, set, ok := s.asIdentity(w, r, d, p, "reading")
	if !ok {
		return caller, false, false
	}
	if !set {
		return p.caller(), d.isOwner(p), true
	}
	s.log.Info("sql: the owner reads as another identity", "database", d.name, "owner", p.Operator, "as", as, "query", truncate(text, 200))
	w.Header().Set("Spacetime-Read-As", as.String())
	return as, false, true
}

// reducerCaller decides who a reducer call over HTTP runs as: with
// ?as=<identity> (owner only) that identity, without claims (caller_claims
// finds none); otherwise the session's identity, or the zero one.
func (s *Server) reducerCaller(w http.ResponseWriter, r *http.Request, d *database, p principal) (caller abi.Identity, claims []byte, ok bool) {
	as, set, ok := s.asIdentity(w, r, d, p, "calling a reducer")
	if !ok {
		return caller, nil, false
	}
	if !set {
		return p.caller(), p.claims(), true
	}
	s.log.Info("call: the owner calls a reducer as another identity", "database", d.name, "reducer", r.PathValue("reducer"), "owner", p.Operator, "as", as)
	return as, nil, true
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/query"
	"github.com/spacetime-go/spacetime/server/subscription"
)

// MaxSQLRows bounds the rows one SQL query returns: the answer is built in
// memory, and a query that needs more should filter or count. It is the
// subscription engine's limit on one-off rows.
const MaxSQLRows = subscription.DefaultMaxInitialRows

// sqlResult is one statement's result.
type sqlResult struct {
	Table   string            `json:"table"`
	Columns []string          `json:"columns"`
	Rows    []json.RawMessage `json:"rows"`
	// AsOwner says the database owner read tables clients cannot.
	AsOwner bool `json:"as_owner,omitempty"`
	// Offset is the transaction offset the rows are as of.
	Offset uint64 `json:"offset"`
}

func (s *Server) handleSQL(w http.ResponseWriter, r *http.Request) {
	// As for HTTP calls: per client address, before anything costs.
	if a, counted := s.clientKey(r); counted {
		if ok, over := s.httpRates.take(a, rateHTTPQuery, s.cfg.httpQRate, s.cfg.httpQBurst, time.Now()); !ok {
			s.refuseOverRate(w, "http_query_rate", over, "rate limit: client address %s may run at most %g SQL queries per second over HTTP (bursts of %d); slow down and retry", a, s.cfg.httpQRate, s.cfg.httpQBurst)
			return
		}
	}
	done, ok := s.enterHTTP(w, r)
	if !ok {
		return
	}
	defer done()
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	body, ok := readBody(w, r, s.cfg.maxQueryBody, "query")
	if !ok {
		return
	}
	text := string(body)
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		var req struct {
			Query *string `json:"query"`
		}
		if err := json.Unmarshal(t, &req); err != nil || req.Query == nil {
			writeError(w, http.StatusBadRequest, "a JSON body must be {\"query\": \"SELECT ...\"}; or send the query as text/plain")
			return
		}
		text = *req.Query
	}
	if strings.TrimSpace(text) == "" {
		writeError(w, http.StatusBadRequest, "empty query: send a SELECT statement, such as SELECT * FROM Post")
		return
	}
	caller, owner, ok := s.sqlReader(w, r, d, p, text) // ?as= (owner only; admin.go)
	if !ok {
		return
	}
	res, code, err := s.runSQL(d, text, caller, owner)
	if err != nil {
		writeError(w, code, "%v", err)
		return
	}
	if owner {
		w.Header().Set("Spacetime-As-Owner", "true")
	}
	writeJSON(w, http.StatusOK, []*sqlResult{res})
}

// runSQL runs one query against the latest durable state of d under the
// reader's grants (the subscription engine's Query: the same rules as
// one-off queries and subscriptions). The owner reads every row; the
// engine logs each such read of rows clients could not read, and the
// result says so (as_owner).
func (s *Server) runSQL(d *database, text string, caller abi.Identity, owner bool) (*sqlResult, int, error) {
	res, err := d.subs.engine.Query(context.Background(), subscription.Reader{Caller: caller, Owner: owner}, text)
	if err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, query.ErrSyntax), errors.Is(err, query.ErrUnknownTable), errors.Is(err, query.ErrUnknownColumn),
			errors.Is(err, query.ErrType), errors.Is(err, subscription.ErrUnsupported):
			code = http.StatusBadRequest
		case errors.Is(err, subscription.ErrPrivateTable):
			code = http.StatusForbidden
		case errors.Is(err, subscription.ErrLimit):
			code = http.StatusUnprocessableEntity
			err = fmt.Errorf("the query matches more than %d rows: add a WHERE clause, or count with SELECT COUNT(*)", MaxSQLRows)
		case errors.Is(err, subscription.ErrClosed):
			code = http.StatusServiceUnavailable
			err = fmt.Errorf("the database is closing; retry in a moment")
		default:
			err = fmt.Errorf("running the query: %w", err)
		}
		return nil, code, err
	}
	return &sqlResult{Table: res.Table, Columns: res.Columns, Rows: res.Rows, AsOwner: res.AsOwner, Offset: res.Offset}, 0, nil
}

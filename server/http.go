package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/runtime"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/identity", s.handleNewIdentity)
	mux.HandleFunc("GET /v1/identity/public-key", s.handlePublicKey)
	mux.HandleFunc("GET /v1/ping", s.handlePing)
	mux.HandleFunc("GET /v1/database", s.handleList)
	mux.HandleFunc("PUT /v1/database/{name}", s.handlePublish)
	mux.HandleFunc("DELETE /v1/database/{name}", s.handleDelete)
	mux.HandleFunc("POST /v1/database/{name}/call/{reducer}", s.handleCall)
	mux.HandleFunc("GET /v1/database/{name}/schema", s.handleSchema)
	mux.HandleFunc("POST /v1/database/{name}/sql", s.handleSQL)
	mux.HandleFunc("GET /v1/database/{name}/logs", s.handleLogs)
	mux.HandleFunc("GET /v1/database/{name}/subscribe", s.handleSubscribe)
	mux.Handle("GET /metrics", s.metrics.handler())
	s.adminRoutes(mux) // the admin page and its owner-only endpoints (admin.go)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			// The mux would answer 404 or 405 in plain text; every error of
			// this API is JSON.
			cw := &statusOnly{h: w.Header()}
			h, _ := mux.Handler(r)
			h.ServeHTTP(cw, r)
			if cw.code == http.StatusMethodNotAllowed {
				writeError(w, cw.code, "%s is not allowed on %s (allowed: %s); see docs/http-api.md", r.Method, r.URL.Path, w.Header().Get("Allow"))
				return
			}
			writeError(w, http.StatusNotFound, "no such route: %s %s; see docs/http-api.md for the API", r.Method, r.URL.Path)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// statusOnly records the status a handler chose and discards its body.
type statusOnly struct {
	h    http.Header
	code int
}

func (c *statusOnly) Header() http.Header         { return c.h }
func (c *statusOnly) Write(b []byte) (int, error) { return len(b), nil }
func (c *statusOnly) WriteHeader(code int)        { c.code = code }

// errorBody is every error's JSON.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"the server could not encode its answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// readBody reads a request body of at most limit bytes. Too large → 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, bool) {
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "%s of %d bytes is too large: at most %d bytes are accepted", what, r.ContentLength, limit)
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "%s is too large: at most %d bytes are accepted", what, limit)
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "reading the %s: %v", what, err)
		return nil, false
	}
	return b, true
}

// validName keeps database names safe in URLs, file names and metric labels.
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("database name %q must have 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("database name %q may use only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// database finds the route's database, or answers 404.
func (s *Server) database(w http.ResponseWriter, r *http.Request) (*database, bool) {
	name := r.PathValue("name")
	d, ok := s.lookup(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no database named %q on this server; publish one with `spacetime publish %s` (GET /v1/database lists them)", name, name)
		return nil, false
	}
	return d, true
}

// principal authenticates the request, or answers 401.
func (s *Server) principal(w http.ResponseWriter, r *http.Request) (principal, bool) {
	p, err := s.authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "%v", err)
		return principal{}, false
	}
	return p, true
}

// owner checks that the request carries the database owner's operator
// token: 401 without an operator token, 403 with another identity's.
func (s *Server) owner(w http.ResponseWriter, r *http.Request, d *database, what string) (principal, bool) {
	p, ok := s.principal(w, r)
	if !ok {
		return p, false
	}
	if p.Operator.IsZero() {
		writeError(w, http.StatusUnauthorized, "%s needs the database owner's operator token (Authorization: Bearer <token from POST /v1/identity>; `spacetime login`)", what)
		return p, false
	}
	if !d.isOwner(p) {
		writeError(w, http.StatusForbidden, "%s: identity %s does not own database %s", what, p.Operator, d.name)
		return p, false
	}
	return p, true
}

func (s *Server) handleNewIdentity(w http.ResponseWriter, r *http.Request) {
	id, tok, err := s.key.MintOperator(s.cfg.operatorTTL)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	s.log.Info("operator identity created", "identity", id)
	writeJSON(w, http.StatusOK, map[string]any{"identity": id, "token": tok})
}

func (s *Server) handlePublicKey(w http.ResponseWriter, r *http.Request) {
	switch f := r.URL.Query().Get("format"); f {
	case "", "pem":
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(s.key.PublicKeyPEM())
	case "jwks":
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(s.key.JWKS())
	default:
		writeError(w, http.StatusBadRequest, "unknown format %q: use format=pem or format=jwks", f)
	}
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "version": s.cfg.version})
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	list := make([]dbInfo, 0, len(s.dbs))
	for _, d := range s.dbs {
		list = append(list, d.info())
	}
	s.mu.RUnlock()
	slices.SortFunc(list, func(a, b dbInfo) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"databases": list})
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validName(name); err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	if p.Operator.IsZero() {
		writeError(w, http.StatusUnauthorized, "publishing needs an operator token: get one with POST /v1/identity (`spacetime login`) and send it as Authorization: Bearer <token>")
		return
	}
	wasm, ok := readBody(w, r, int64(s.cfg.maxModule), "module")
	if !ok {
		s.metrics.publishes.WithLabelValues(name, "refused").Inc()
		return
	}
	if !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		writeError(w, http.StatusBadRequest, "the body is not a WebAssembly module (it does not start with \\0asm): send the .wasm file that `spacetime build` wrote")
		return
	}
	res, err := s.publish(r.Context(), name, p.Operator, wasm)
	if err != nil {
		code := http.StatusInternalServerError
		var rerr *runtime.ReducerError
		switch {
		case errors.Is(err, errNotOwner):
			code = http.StatusForbidden
		case errors.Is(err, runtime.ErrModuleTooLarge):
			code = http.StatusRequestEntityTooLarge
		case errors.Is(err, runtime.ErrInvalidModule):
			code = http.StatusBadRequest
		case errors.Is(err, errSchemaRefused):
			code = http.StatusConflict
		case errors.As(err, &rerr):
			code = http.StatusUnprocessableEntity
		}
		s.metrics.publishes.WithLabelValues(name, "refused").Inc()
		s.log.Info("publish refused", "database", name, "status", code, "error", err)
		writeError(w, code, "%v", err)
		return
	}
	code, result := http.StatusOK, "updated"
	if res.Created {
		code, result = http.StatusCreated, "created"
	}
	s.metrics.publishes.WithLabelValues(name, result).Inc()
	writeJSON(w, code, res)
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	p, ok := s.owner(w, r, d, "deleting a database")
	if !ok {
		return
	}
	if err := s.deleteDatabase(r.Context(), d.name, p); err != nil {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, errNoSuchDB):
			code = http.StatusNotFound
		case errors.Is(err, errNotOwner):
			code = http.StatusForbidden
		}
		writeError(w, code, "%v", err)
		return
	}
	s.metrics.forget(d.name)
	writeJSON(w, http.StatusOK, map[string]any{"database": d.name, "deleted": true})
}

func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	// First, before a token's signature is checked or the body read: a
	// refusal must cost the flood less than a call.
	if a, counted := s.clientKey(r); counted {
		if ok, over := s.httpRates.take(a, rateHTTPCall, s.cfg.httpRate, s.cfg.httpBurst, time.Now()); !ok {
			s.refuseOverRate(w, "http_call_rate", over, "rate limit: client address %s may call at most %g reducers per second over HTTP (bursts of %d); slow down and retry", a, s.cfg.httpRate, s.cfg.httpBurst)
			return
		}
	}
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	done, ok := s.enterHTTP(w, r)
	if !ok {
		return
	}
	defer done()
	maxBody := s.cfg.maxCallBody
	if own := s.cfg.dbLimits[d.name].MaxMessageBytes; own > 0 {
		maxBody = own
	}
	body, ok := readBody(w, r, maxBody, "argument list (max_message_bytes)")
	if !ok {
		return
	}
	body = bytes.TrimSpace(body)
	if len(body) > 0 && !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		writeError(w, http.StatusBadRequest, "the body is not valid JSON (%v): send a JSON array of arguments, such as [\"Hello\", 42]", err)
		return
	}
	if len(body) > 0 && body[0] != '[' {
		writeError(w, http.StatusBadRequest, "the body must be a JSON array of the reducer's arguments, such as [\"Hello\", 42]; got %s", truncate(string(body), 40))
		return
	}
	caller, claims, ok := s.reducerCaller(w, r, d, p) // ?as= (owner only; admin.go)
	if !ok {
		return
	}
	out := s.call(r.Context(), d, r.PathValue("reducer"), body, caller, claims, [16]byte{})
	writeJSON(w, out.code, out)
}

func (s *Server) handleSchema(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	info := d.info()
	writeJSON(w, http.StatusOK, map[string]any{
		"database":     d.name,
		"module_hash":  info.ModuleHash,
		"published_at": info.PublishedAt,
		"owner":        info.Owner,
		"module":       d.def(),
	})
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	d, ok := s.database(w, r)
	if !ok {
		return
	}
	if _, ok := s.owner(w, r, d, "reading the logs"); !ok {
		return
	}
	q := r.URL.Query()
	n := 100
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "n=%q must be a number of lines (0 or more)", v)
			return
		}
	}
	follow := false
	if v, ok := q["follow"]; ok {
		follow = len(v) == 0 || v[0] == "" || v[0] == "true" || v[0] == "1"
	}
	buf := d.rdb.Logs()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	var seq uint64
	if last := buf.Last(1); len(last) > 0 {
		seq = last[0].Seq
	}
	for _, l := range buf.Last(n) {
		enc.Encode(l)
	}
	flush(w)
	if !follow {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if err := buf.Wait(ctx, seq); err != nil {
			return
		}
		lines, missed := buf.Since(seq)
		if missed > 0 {
			enc.Encode(map[string]any{"missed": missed, "time": time.Now().UTC()})
		}
		for _, l := range lines {
			if enc.Encode(l) != nil {
				return
			}
			seq = l.Seq
		}
		flush(w)
	}
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

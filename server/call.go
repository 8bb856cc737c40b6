package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/hostfuncs"
	"github.com/spacetime-go/spacetime/runtime"
)

// callOutcome is a reducer call's result, shared by the HTTP route and the
// WebSocket's ReducerResult.
type callOutcome struct {
	code       int             // HTTP status
	Status     string          `json:"status"` // "committed" or "failed"
	Error      string          `json:"error,omitempty"`
	Return     json.RawMessage `json:"return"`
	Offset     uint64          `json:"offset,omitempty"`
	DurationUS int64           `json:"duration_us"`
	// EnergyUsed is the energy the call spent (about one unit per wasm
	// instruction), also when it failed.
	EnergyUsed uint64 `json:"energy_used,omitempty"`
	// Identity and Token are set after a successful auth reducer.
	Identity *abi.Identity `json:"identity,omitempty"`
	Token    string        `json:"token,omitempty"`
	// TokenExpiresAt is when Token expires.
	TokenExpiresAt *time.Time `json:"token_expires_at,omitempty"`
	// Warning explains a missing token after auth.
	Warning string `json:"warning,omitempty"`
	// Limit names the host limit (and the setting that raises it) the call
	// was refused at before it failed: the module only saw LIMIT_EXCEEDED,
	// so its own message may not say.
	Limit string `json:"limit,omitempty"`

	session *auth.Session // the new session, after auth
}

func failed(code int, format string, args ...any) *callOutcome {
	return &callOutcome{code: code, Status: "failed", Error: fmt.Sprintf(format, args...), Return: json.RawMessage("null")}
}

// call runs a reducer with JSON arguments on behalf of caller.
func (s *Server) call(ctx context.Context, d *database, reducer string, argsJSON []byte, caller abi.Identity, claims []byte, conn abi.ConnectionID) *callOutcome {
	rd, args, out := s.prepareCall(d, reducer, argsJSON)
	if out != nil {
		return out
	}
	return s.runCall(ctx, d, rd, args, caller, claims, conn)
}

// prepareCall finds the reducer and converts its arguments to BSATN; out
// is set when the call cannot run.
func (s *Server) prepareCall(d *database, reducer string, argsJSON []byte) (rd *abi.ReducerDef, args []byte, out *callOutcome) {
	def := d.def()
	rd, _, ok := def.Reducer(reducer)
	if !ok {
		return nil, nil, failed(http.StatusNotFound, "database %s has no reducer %q (see GET /v1/database/%s/schema for its reducers)", d.name, reducer, d.name)
	}
	if rd.Lifecycle != "" {
		return nil, nil, failed(http.StatusBadRequest, "%s is the %s lifecycle reducer, which only the server calls", rd.Name, rd.Lifecycle)
	}
	if len(argsJSON) == 0 || string(argsJSON) == "null" {
		argsJSON = []byte("[]")
	}
	args, err := abi.ArgsFromJSON(rd.Params, argsJSON)
	if err != nil {
		return nil, nil, failed(http.StatusBadRequest, "bad arguments for reducer %s(%s): %v", rd.Name, paramList(rd), err)
	}
	return rd, args, nil
}

// runCall runs a prepared call and waits for its outcome.
func (s *Server) runCall(ctx context.Context, d *database, rd *abi.ReducerDef, args []byte, caller abi.Identity, claims []byte, conn abi.ConnectionID) *callOutcome {
	res, err := d.rdb.Call(ctx, runtime.CallRequest{Reducer: rd.Name, Args: args, Caller: caller, Claims: claims, Connection: conn})
	return s.outcome(ctx, d, rd, res, err)
}

// callAsync runs a prepared call and returns once its transaction is
// ordered; done gets the outcome once it is durable (runtime.CallAsync:
// done must not block). Not for auth reducers, whose outcome binds a
// session.
func (s *Server) callAsync(ctx context.Context, d *database, rd *abi.ReducerDef, args []byte, caller abi.Identity, claims []byte, conn abi.ConnectionID, done func(*callOutcome)) {
	d.rdb.CallAsync(ctx, runtime.CallRequest{Reducer: rd.Name, Args: args, Caller: caller, Claims: claims, Connection: conn}, func(res *runtime.CallResult, err error) {
		done(s.outcome(ctx, d, rd, res, err))
	})
}

// outcome turns a call's result or error into its answer, and counts it.
func (s *Server) outcome(ctx context.Context, d *database, rd *abi.ReducerDef, res *runtime.CallResult, err error) (out *callOutcome) {
	status := "committed"
	switch {
	case err == nil:
		out = &callOutcome{code: http.StatusOK, Status: status, Offset: res.Commit.Offset, DurationUS: res.Duration.Microseconds(), EnergyUsed: res.Energy, Return: json.RawMessage("null")}
		if rd.Return != nil && res.Return != nil {
			vals, derr := abi.DecodeRow([]abi.Type{*rd.Return}, res.Return)
			if derr == nil && len(vals) == 1 {
				out.Return = abi.AppendJSON(nil, *rd.Return, vals[0])
				if rd.IsAuth() {
					s.bindSession(out, vals[0], res.Verified)
				}
			}
		}
	default:
		status = "failed"
		defer func() {
			if le := (*hostfuncs.LimitError)(nil); errors.As(err, &le) {
				out.Limit = le.Error()
			}
		}()
		var rerr *runtime.ReducerError
		switch {
		case errors.As(err, &rerr):
			out = failed(http.StatusUnprocessableEntity, "%s", rerr.Message)
		case errors.Is(err, runtime.ErrDeadline):
			out = failed(http.StatusGatewayTimeout, "%v", err)
		case errors.Is(err, runtime.ErrTrap):
			// The runtime's message starts with "module trapped: ...".
			out = failed(http.StatusInternalServerError, "the %v", err)
		case errors.Is(err, runtime.ErrBadReturn):
			out = failed(http.StatusInternalServerError, "%v", err)
		case errors.Is(err, runtime.ErrInvalidArguments):
			out = failed(http.StatusBadRequest, "%v", err)
		case errors.Is(err, runtime.ErrNoSuchReducer):
			out = failed(http.StatusNotFound, "%v", err)
		case errors.Is(err, runtime.ErrClosed):
			out = failed(http.StatusServiceUnavailable, "database %s is closing; try again", d.name)
		case ctx.Err() != nil:
			out = failed(499, "the call was cancelled: %v", err)
		default:
			s.log.Error("reducer call failed", "database", d.name, "reducer", rd.Name, "error", err)
			out = failed(http.StatusInternalServerError, "%v", err)
		}
	}
	s.metrics.calls.WithLabelValues(d.name, rd.Name, status).Inc()
	if res != nil {
		s.metrics.duration.WithLabelValues(d.name, rd.Name).Observe(res.Duration.Seconds())
		s.metrics.energy.WithLabelValues(d.name, rd.Name).Add(float64(res.Energy))
	} else if energy, ok := runtime.EnergyUsed(err); ok {
		out.EnergyUsed = energy
		s.metrics.energy.WithLabelValues(d.name, rd.Name).Add(float64(energy))
	}
	return out
}

// bindSession fills in the identity an auth reducer returned and, when the
// runtime verified the token it came from during the call (v), a session
// token.
func (s *Server) bindSession(out *callOutcome, ret abi.Value, v *runtime.VerifiedIdentity) {
	var id abi.Identity
	if len(ret.Str) != len(id) {
		return
	}
	copy(id[:], ret.Str)
	if id.IsZero() {
		return
	}
	out.Identity = &id
	if v == nil || v.Identity != id {
		out.Warning = "no session token: the identity auth returned does not come from a token verified with jwt_verify during the call, so the server cannot vouch for it on later calls"
		return
	}
	c := &auth.Claims{Issuer: v.Issuer, Subject: v.Subject, ExpiresAt: v.ExpiresAt, Identity: v.Identity, JSON: v.Claims}
	tok, exp, err := s.key.MintSession(c)
	if err != nil {
		out.Warning = "no session token: " + err.Error()
		return
	}
	out.Token, out.TokenExpiresAt = tok, &exp
	out.session = &auth.Session{Identity: id, Issuer: c.Issuer, Subject: c.Subject, Claims: c.JSON, IssuedAt: time.Now(), ExpiresAt: exp}
}

func paramList(rd *abi.ReducerDef) string {
	var b []byte
	for i, p := range rd.Params {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "%s: %s", p.Name, p.Type)
	}
	return string(b)
}

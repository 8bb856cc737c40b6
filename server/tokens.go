package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
)

// ErrUnauthorized is wrapped by bearer-token refusals.
var ErrUnauthorized = errors.New("unauthorized")

// principal is who sent a request, from its bearer token.
type principal struct {
	// Operator is set for an operator token.
	Operator abi.Identity
	// Session is set for a session token; its Identity is the caller of
	// reducers.
	Session *auth.Session
	// HasToken reports that a token was presented.
	HasToken bool
}

// caller is the identity reducers see: the session's, else zero. Operator
// tokens identify who manages databases, not an end user of a module, so a
// reducer called with one runs unauthenticated (DESIGN.md: an operator
// identity is distinct from the end users that a module authenticates).
func (p principal) caller() abi.Identity {
	if p.Session != nil {
		return p.Session.Identity
	}
	return abi.Identity{}
}

func (p principal) claims() []byte {
	if p.Session != nil {
		return p.Session.Claims
	}
	return nil
}

// bearer returns the request's token from the Authorization header, or from
// the token query parameter (browsers cannot set headers on a WebSocket).
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return r.URL.Query().Get("token"), nil
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: the Authorization header must be \"Bearer <token>\"", ErrUnauthorized)
	}
	return strings.TrimSpace(tok), nil
}

// authenticate reads the request's bearer token, if any. A token that is
// present but invalid is an error: silently treating it as anonymous would
// turn an expired session into confusing "not logged in" failures.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	tok, err := bearer(r)
	if err != nil || tok == "" {
		return principal{}, err
	}
	// Operator and session tokens differ in their header's typ, so each
	// check refuses the other kind before touching a signature.
	id, err := s.key.VerifyOperator(tok)
	if err == nil {
		return principal{Operator: id, HasToken: true}, nil
	}
	if !errors.Is(err, auth.ErrNotOperator) {
		return principal{}, fmt.Errorf("%w: invalid bearer token: %v", ErrUnauthorized, err)
	}
	sess, err := s.key.VerifySession(tok)
	if err != nil {
		var te *auth.TokenError
		if errors.As(err, &te) && errors.Is(err, auth.ErrNotASession) {
			return principal{}, fmt.Errorf("%w: the bearer token is neither an operator token (POST /v1/identity) nor a session token from an auth reducer call; to authenticate as a user, call the auth reducer with your token", ErrUnauthorized)
		}
		return principal{}, fmt.Errorf("%w: invalid bearer token: %v", ErrUnauthorized, err)
	}
	return principal{Session: sess, HasToken: true}, nil
}

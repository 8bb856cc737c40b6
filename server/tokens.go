package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/hostfuncs"
)

// Operator tokens are signed by the server key, like dev and session tokens,
// but under an issuer, audience and typ of their own: the module verifier
// refuses them (unknown issuer) and so does VerifySession (wrong issuer and
// audience), so an operator token never passes for an end user's token or
// the other way round.
const (
	OperatorIssuer   = "spacetime-operator://local"
	OperatorAudience = "spacetime-operator"
	operatorTyp      = "spacetime-operator+jwt"
)

// ErrUnauthorized is wrapped by bearer-token refusals.
var ErrUnauthorized = errors.New("unauthorized")

type operatorKeys struct {
	key    *ecdsa.PrivateKey
	kid    string
	parser *jwt.Parser
}

// newOperatorKeys reads the server key's private half from its file: the auth
// package does not expose it, and operator tokens must be signed by the same
// key the public-key endpoint publishes.
func newOperatorKeys(sk *auth.ServerKey) (*operatorKeys, error) {
	data, err := os.ReadFile(sk.Path())
	if err != nil {
		return nil, fmt.Errorf("server: reading the server key for operator tokens: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("server: %s is not a PEM file", sk.Path())
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", sk.Path(), err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("server: %s is not an ECDSA P-256 key", sk.Path())
	}
	return &operatorKeys{
		key: ek,
		kid: sk.KeyID(),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"ES256"}),
			jwt.WithExpirationRequired(),
			jwt.WithIssuer(OperatorIssuer),
			jwt.WithAudience(OperatorAudience),
			jwt.WithLeeway(5*time.Second),
		),
	}, nil
}

// mint creates a new operator identity and its token.
func (o *operatorKeys) mint(ttl time.Duration) (abi.Identity, string, error) {
	var b [16]byte
	rand.Read(b[:])
	sub := hex.EncodeToString(b[:])
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer:    OperatorIssuer,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{OperatorAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	})
	t.Header["kid"] = o.kid
	t.Header["typ"] = operatorTyp
	tok, err := t.SignedString(o.key)
	if err != nil {
		return abi.Identity{}, "", fmt.Errorf("server: signing an operator token: %w", err)
	}
	return auth.IdentityFromClaims(OperatorIssuer, sub), tok, nil
}

// verify checks an operator token and returns its identity.
func (o *operatorKeys) verify(token string) (abi.Identity, error) {
	if len(token) > auth.MaxTokenSize {
		return abi.Identity{}, errors.New("token too large")
	}
	var rc jwt.RegisteredClaims
	t, err := o.parser.ParseWithClaims(token, &rc, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != operatorTyp {
			return nil, errors.New("not an operator token")
		}
		return &o.key.PublicKey, nil
	})
	if err != nil || !t.Valid {
		return abi.Identity{}, err
	}
	if rc.Subject == "" {
		return abi.Identity{}, errors.New("operator token without a subject")
	}
	return auth.IdentityFromClaims(OperatorIssuer, rc.Subject), nil
}

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
	if id, oerr := s.ops.verify(tok); oerr == nil {
		return principal{Operator: id, HasToken: true}, nil
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

// recordingVerifier is the jwt_verify back end of one database. It wraps
// auth.Verifier to remember the claims verified during a call whose context
// carries a claimsRecorder: after an auth reducer returns an identity, the
// server mints a session from the claims that identity came from.
type recordingVerifier struct{ v *auth.Verifier }

var _ hostfuncs.TokenVerifier = recordingVerifier{}

type claimsRecorderKey struct{}

type claimsRecorder struct{ claims []*auth.Claims }

func (rv recordingVerifier) Verify(ctx context.Context, token string) ([]byte, error) {
	c, err := rv.v.VerifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if rec, ok := ctx.Value(claimsRecorderKey{}).(*claimsRecorder); ok && len(rec.claims) < 8 {
		rec.claims = append(rec.claims, c)
	}
	return c.JSON, nil
}

// find returns the verified claims whose identity is id.
func (rec *claimsRecorder) find(id abi.Identity) *auth.Claims {
	for _, c := range rec.claims {
		if c.Identity == id {
			return c
		}
	}
	return nil
}

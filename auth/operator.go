package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacetime-go/spacetime/abi"
)

// Operator tokens identify who manages a server's databases (publish,
// delete, logs): the identities of POST /v1/identity. They are signed by the
// server key, like dev and session tokens, under an issuer, audience and typ
// of their own, so that the Verifier (unknown issuer) and VerifySession
// (wrong issuer and audience) refuse them, and VerifyOperator refuses both
// of those.
const (
	OperatorIssuer   = "spacetime-operator://local"
	OperatorAudience = "spacetime-operator"
	operatorTyp      = "spacetime-operator+jwt"
	// DefaultOperatorTTL is the lifetime of an operator token when none is
	// given: an operator identity is meant to last, like a CLI login.
	DefaultOperatorTTL = 10 * 365 * 24 * time.Hour
)

// ErrNotOperator: the token is not an operator token of this server.
var ErrNotOperator = errors.New("auth: not an operator token")

// MintOperator creates a new operator identity (IdentityFromClaims of
// OperatorIssuer and a random subject) and a token for it, valid for ttl
// (DefaultOperatorTTL if zero).
func (s *ServerKey) MintOperator(ttl time.Duration) (abi.Identity, string, error) {
	if ttl <= 0 {
		ttl = DefaultOperatorTTL
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return abi.Identity{}, "", err
	}
	sub := hex.EncodeToString(b[:])
	now := s.o.now()
	tok, err := s.sign(jwt.RegisteredClaims{
		Issuer:    OperatorIssuer,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{OperatorAudience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}, operatorTyp)
	if err != nil {
		return abi.Identity{}, "", err
	}
	return IdentityFromClaims(OperatorIssuer, sub), tok, nil
}

// VerifyOperator checks an operator token minted by this key and returns its
// identity. Refusals are *TokenError values; a dev, session or foreign token
// is ErrNotOperator.
func (s *ServerKey) VerifyOperator(token string) (abi.Identity, error) {
	// The session bound: a server tries this first on every bearer token,
	// and a session token may be larger than a user token.
	p, err := preParse(token, MaxSessionTokenSize)
	if err != nil {
		return abi.Identity{}, err
	}
	if p.header.Typ != operatorTyp {
		return abi.Identity{}, refuse(ErrNotOperator, "this is not an operator token of this server: get one with POST /v1/identity (spacetime login)")
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(sessionLeeway),
		jwt.WithTimeFunc(s.o.now),
		jwt.WithIssuer(OperatorIssuer),
		jwt.WithAudience(OperatorAudience),
	)
	var rc jwt.RegisteredClaims
	if _, err := parser.ParseWithClaims(token, &rc, func(*jwt.Token) (any, error) { return &s.key.PublicKey, nil }); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return abi.Identity{}, refuseCause(ErrBadSignature, err, "operator token was not signed by this server (was its key replaced?): get a new one with POST /v1/identity")
		case errors.Is(err, jwt.ErrTokenExpired):
			return abi.Identity{}, refuseCause(ErrExpired, err, "operator token expired: get a new one with POST /v1/identity")
		case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenInvalidIssuer):
			return abi.Identity{}, refuseCause(ErrNotOperator, err, "token is not an operator token (iss/aud)")
		}
		return abi.Identity{}, refuseCause(ErrInvalidClaim, err, "operator token is invalid: %v", err)
	}
	if rc.Subject == "" || len(rc.Subject) > MaxClaimLength {
		return abi.Identity{}, refuse(ErrInvalidClaim, "operator token has no valid subject")
	}
	return IdentityFromClaims(OperatorIssuer, rc.Subject), nil
}

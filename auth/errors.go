package auth

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every refusal of [Verifier.Verify] and [ServerKey.VerifySession]
// is a *[TokenError] that wraps exactly one of the token sentinels, so callers
// can branch with errors.Is while the module sees the TokenError's reason.
var (
	ErrTokenTooLarge       = errors.New("auth: token too large")
	ErrMalformedToken      = errors.New("auth: malformed token")
	ErrUnknownIssuer       = errors.New("auth: unknown issuer")
	ErrAlgorithmNotAllowed = errors.New("auth: algorithm not allowed")
	ErrUnknownKey          = errors.New("auth: unknown signing key")
	ErrKeyTypeMismatch     = errors.New("auth: key type does not match algorithm")
	ErrBadSignature        = errors.New("auth: bad signature")
	ErrExpired             = errors.New("auth: token expired")
	ErrMissingExpiry       = errors.New("auth: token has no expiry")
	ErrNotYetValid         = errors.New("auth: token not yet valid")
	ErrWrongAudience       = errors.New("auth: wrong audience")
	ErrMissingSubject      = errors.New("auth: token has no subject")
	ErrInvalidClaim        = errors.New("auth: invalid claim")
	ErrNotASession         = errors.New("auth: not a session token")
	ErrSessionAsUserToken  = errors.New("auth: session token presented as a user token")

	// ErrInvalidConfig is wrapped by every configuration error (LoadConfig,
	// Issuer validation, NewVerifier).
	ErrInvalidConfig = errors.New("auth: invalid configuration")
)

// TokenError is a refused token. Reason is a complete sentence meant for the
// module (jwt_verify hands it to the guest) and the client: it says what was
// wrong and, where it helps, what to do. It never contains key material.
type TokenError struct {
	Reason string
	Err    error // one of the sentinels above
	Cause  error // the underlying library error, if any
}

func (e *TokenError) Error() string { return e.Reason }

// Unwrap lets errors.Is match the sentinel and the underlying cause.
func (e *TokenError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

func refuse(sentinel error, format string, args ...any) *TokenError {
	return &TokenError{Err: sentinel, Reason: fmt.Sprintf(format, args...)}
}

func refuseCause(sentinel, cause error, format string, args ...any) *TokenError {
	return &TokenError{Err: sentinel, Cause: cause, Reason: fmt.Sprintf(format, args...)}
}

// configErrorf wraps ErrInvalidConfig with a message that says what to fix.
func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

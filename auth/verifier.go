package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacetime-go/spacetime/abi"
)

// MaxTokenSize is the largest token the verifier reads, in bytes. Longer
// tokens are refused before any decoding, so a hostile client cannot make the
// host spend on base64 or JSON.
const MaxTokenSize = 8 << 10

// Claims is a verified token.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ExpiresAt time.Time
	IssuedAt  time.Time // zero when the token has no iat
	NotBefore time.Time // zero when the token has no nbf
	// Identity is IdentityFromClaims(Issuer, Subject).
	Identity abi.Identity
	// JSON is the token's payload exactly as signed: every claim,
	// including the ones this package does not interpret.
	JSON json.RawMessage
}

// Verifier checks tokens from trusted external issuers (and the server's own
// dev issuer, when given its Issuer). It is safe for concurrent use.
type Verifier struct {
	issuers map[string]*trustedIssuer
	o       options
	// parser decodes and checks signatures for every issuer, allowing the
	// union of their algorithms (each issuer's own list is enforced in the
	// key function); claims are then validated by the issuer's validator.
	// One decode of the payload serves issuer selection and validation.
	parser *jwt.Parser
}

type trustedIssuer struct {
	cfg       Issuer
	static    []verificationKey
	remote    *remoteKeySet
	validator *jwt.Validator
}

// NewVerifier builds a verifier for the issuers given WithIssuers. It reads
// PEM files, JWKS files and HMAC secrets now, so a broken config fails at
// start; JWKS URLs are fetched on first use.
func NewVerifier(opts ...Option) (*Verifier, error) {
	o := buildOptions(opts)
	var issuers []*trustedIssuer
	for _, cfg := range o.issuers {
		ti, err := newTrustedIssuer(cfg, o)
		if err != nil {
			return nil, err
		}
		issuers = append(issuers, ti)
	}
	return newVerifier(issuers, o)
}

// newTrustedIssuer validates cfg and loads its static keys.
func newTrustedIssuer(cfg Issuer, o options) (*trustedIssuer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	static, err := cfg.loadStaticKeys(o.log)
	if err != nil {
		return nil, err
	}
	ti := &trustedIssuer{cfg: cfg, static: static}
	if cfg.JWKSURL != "" {
		ti.remote = &remoteKeySet{
			issuer: cfg.Issuer, url: cfg.JWKSURL, algs: cfg.Algorithms,
			client: o.client, interval: o.refreshInterval, maxAge: o.jwksMaxAge, now: o.now, log: o.log,
		}
	}
	vopts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.LeewayOrDefault()),
		jwt.WithTimeFunc(o.now),
		jwt.WithIssuer(cfg.Issuer),
	}
	if len(cfg.Audiences) > 0 {
		vopts = append(vopts, jwt.WithAudience(cfg.Audiences...))
	}
	ti.validator = jwt.NewValidator(vopts...)
	return ti, nil
}

// newVerifier assembles a verifier from built issuers, which may be shared
// with other verifiers (and so share their JWKS caches).
func newVerifier(issuers []*trustedIssuer, o options) (*Verifier, error) {
	v := &Verifier{issuers: make(map[string]*trustedIssuer, len(issuers)), o: o}
	var union []string
	for _, ti := range issuers {
		if _, dup := v.issuers[ti.cfg.Issuer]; dup {
			return nil, configErrorf("issuer %q is configured twice: merge its keys and audiences into one entry", ti.cfg.Issuer)
		}
		v.issuers[ti.cfg.Issuer] = ti
		for _, a := range ti.cfg.Algorithms {
			if !slices.Contains(union, a) {
				union = append(union, a)
			}
		}
	}
	if len(union) == 0 {
		union = []string{"ES256"} // no issuer: every token is refused as unknown-issuer
	}
	v.parser = jwt.NewParser(jwt.WithValidMethods(union), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	return v, nil
}

// Verifiers holds the verifier of every database of a server config. The
// server-wide issuers (and the server's own, when the config trusts it) are
// built once and shared, so a JWKS URL is fetched once for all databases.
type Verifiers struct {
	o        options
	shared   []*trustedIssuer
	perDB    map[string]*Verifier
	fallback *Verifier
}

// NewVerifiers builds the verifiers for cfg. devKey, when not nil and
// cfg.DevIssuer is true, is trusted as the dev issuer by every database.
// Options are those of NewVerifier (WithIssuers is ignored: cfg says which
// issuers to trust).
func NewVerifiers(cfg *Config, devKey *ServerKey, opts ...Option) (*Verifiers, error) {
	o := buildOptions(opts)
	vs := &Verifiers{o: o, perDB: map[string]*Verifier{}}
	server := slices.Clone(cfg.Issuers)
	if devKey != nil && cfg.DevIssuer {
		server = append(server, devKey.Issuer())
	}
	for _, ic := range server {
		ti, err := newTrustedIssuer(ic, o)
		if err != nil {
			return nil, err
		}
		vs.shared = append(vs.shared, ti)
	}
	var err error
	if vs.fallback, err = newVerifier(vs.shared, o); err != nil {
		return nil, err
	}
	for db, ics := range cfg.Databases {
		issuers := slices.Clone(vs.shared)
		for _, ic := range ics {
			ti, err := newTrustedIssuer(ic, o)
			if err != nil {
				return nil, fmt.Errorf("database %q: %w", db, err)
			}
			issuers = append(issuers, ti)
		}
		if vs.perDB[db], err = newVerifier(issuers, o); err != nil {
			return nil, fmt.Errorf("database %q: %w", db, err)
		}
	}
	return vs, nil
}

// For returns the verifier of database: the server-wide issuers plus the
// database's own. A database without its own issuers gets the server-wide
// verifier.
func (vs *Verifiers) For(database string) *Verifier {
	if v, ok := vs.perDB[database]; ok {
		return v
	}
	return vs.fallback
}

// Issuers lists the trusted issuer strings.
func (v *Verifier) Issuers() []string {
	out := make([]string, 0, len(v.issuers))
	for k := range v.issuers {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Verify is what jwt_verify calls: on success it returns the token's claims
// as JSON; on failure a *TokenError whose Error() is the reason for the guest.
func (v *Verifier) Verify(ctx context.Context, token string) ([]byte, error) {
	c, err := v.VerifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	return c.JSON, nil
}

// VerifyToken verifies token fully and returns its claims. Every refusal is a
// *TokenError wrapping one sentinel (ErrTokenTooLarge, ErrMalformedToken,
// ErrUnknownIssuer, ErrAlgorithmNotAllowed, ErrUnknownKey, ErrKeyTypeMismatch,
// ErrBadSignature, ErrExpired, ErrMissingExpiry, ErrNotYetValid,
// ErrWrongAudience, ErrMissingSubject, ErrInvalidClaim, ErrSessionAsUserToken).
func (v *Verifier) VerifyToken(ctx context.Context, token string) (*Claims, error) {
	p, err := preParse(token, v.o.maxTokenSize)
	if err != nil {
		return nil, err
	}
	if p.session {
		return nil, refuse(ErrSessionAsUserToken, "this is a server session token: present it as a bearer token to the server, and give auth the token from your identity provider")
	}
	// The key function runs after the payload is decoded and before the
	// signature is checked. The unverified iss in it only chooses which
	// issuer's algorithms, keys and rules apply; the signature is then
	// checked over the very bytes iss was decoded from, and the issuer's
	// validator pins iss (WithIssuer). A forged iss can only select a key
	// set that then fails to verify it.
	var (
		rc jwt.RegisteredClaims
		ti *trustedIssuer
	)
	tok, err := v.parser.ParseWithClaims(token, &rc, func(t *jwt.Token) (any, error) {
		if rc.Issuer == "" {
			return nil, errNoIssuer()
		}
		var ok bool
		if ti, ok = v.issuers[rc.Issuer]; !ok {
			return nil, errUntrustedIssuer(rc.Issuer)
		}
		alg := t.Method.Alg()
		if !slices.Contains(ti.cfg.Algorithms, alg) {
			return nil, refuse(ErrAlgorithmNotAllowed, "algorithm %q is not allowed for issuer %q (allowed: %s)", alg, ti.cfg.Issuer, strings.Join(ti.cfg.Algorithms, ", "))
		}
		// alg and kid as the library read them (exact-case keys), not as
		// the pre-parse's case-insensitive struct decode did.
		kid, _ := t.Header["kid"].(string)
		return ti.keyFor(ctx, alg, kid)
	})
	if err == nil {
		err = ti.validator.Validate(&rc)
	}
	if err != nil {
		return nil, v.mapError(err, ti, tok, p, rc.Issuer)
	}
	if err := checkClaimKeys(p.payload); err != nil {
		return nil, err
	}
	if rc.Subject == "" {
		return nil, refuse(ErrMissingSubject, "token has no \"sub\" claim: the identity is derived from iss and sub, so sub is required")
	}
	if len(rc.Subject) > MaxClaimLength {
		return nil, refuse(ErrInvalidClaim, "token \"sub\" is %d bytes, longer than the %d allowed", len(rc.Subject), MaxClaimLength)
	}
	c := &Claims{
		Issuer:   rc.Issuer,
		Subject:  rc.Subject,
		Audience: rc.Audience,
		Identity: IdentityFromClaims(rc.Issuer, rc.Subject),
		JSON:     json.RawMessage(p.payload),
	}
	if rc.ExpiresAt != nil {
		c.ExpiresAt = rc.ExpiresAt.Time
	}
	if rc.IssuedAt != nil {
		c.IssuedAt = rc.IssuedAt.Time
	}
	if rc.NotBefore != nil {
		c.NotBefore = rc.NotBefore.Time
	}
	return c, nil
}

// keyFor picks the keys that may verify a token signed with alg under kid.
func (ti *trustedIssuer) keyFor(ctx context.Context, alg, kid string) (any, error) {
	var candidates []verificationKey
	kidKnown := false
	for _, k := range ti.static {
		if kid == "" || k.kid == "" || k.kid == kid {
			candidates = append(candidates, k)
			kidKnown = kidKnown || (kid != "" && k.kid == kid)
		}
	}
	if ti.remote != nil && !kidKnown {
		ks, err := ti.remote.lookup(ctx, kid)
		if err != nil && len(candidates) == 0 {
			return nil, err
		}
		candidates = append(candidates, ks...)
	}
	if len(candidates) == 0 {
		return nil, refuse(ErrUnknownKey, "issuer %q has no key with kid %q", ti.cfg.Issuer, truncate(kid, 64))
	}
	keys := make([]jwt.VerificationKey, 0, len(candidates))
	for _, k := range candidates {
		if k.fits(alg) {
			keys = append(keys, k.key)
		}
	}
	switch len(keys) {
	case 0:
		what := "an " + familyOf(candidates[0].key).String() // every family name starts with a vowel sound
		if a := candidates[0].alg; a != "" {
			what += " published for " + a + " only"
		}
		return nil, refuse(ErrKeyTypeMismatch, "token is signed with %s but issuer %q's key%s is %s: refusing to use it for %s", alg, ti.cfg.Issuer, kidNote(kid), what, alg)
	case 1:
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

func kidNote(kid string) string {
	if kid == "" {
		return ""
	}
	return fmt.Sprintf(" %q", truncate(kid, 64))
}

// mapError turns the library's error into a TokenError with a reason. ti is
// nil when the error came before an issuer was chosen.
func (v *Verifier) mapError(err error, ti *trustedIssuer, tok *jwt.Token, p *peeked, iss string) error {
	var te *TokenError
	if errors.As(err, &te) {
		return te
	}
	if ti == nil {
		switch {
		case errors.Is(err, jwt.ErrTokenMalformed) && strings.Contains(err.Error(), "decode claim"):
			msg := err.Error()
			if i := strings.Index(msg, "decode claim: "); i >= 0 {
				msg = msg[i+len("decode claim: "):]
			}
			return refuseCause(ErrMalformedToken, err, "token payload must be a JSON object with string iss and sub, aud a string or array of strings, and numeric exp, nbf and iat (%s)", msg)
		case errors.Is(err, jwt.ErrTokenMalformed):
			return refuseCause(ErrMalformedToken, err, "%v", err)
		case tok != nil && tok.Method != nil && errors.Is(err, jwt.ErrTokenSignatureInvalid):
			// The only signature error before the key function: an
			// algorithm no trusted issuer allows. The claims were decoded
			// already; name the more basic problem first.
			alg := truncate(p.header.Alg, 32)
			if iss == "" {
				return errNoIssuer()
			}
			if other, ok := v.issuers[iss]; ok {
				return refuseCause(ErrAlgorithmNotAllowed, err, "algorithm %q is not allowed for issuer %q (allowed: %s)", alg, iss, strings.Join(other.cfg.Algorithms, ", "))
			}
			return errUntrustedIssuer(iss)
		case errors.Is(err, jwt.ErrTokenUnverifiable):
			return refuseCause(ErrAlgorithmNotAllowed, err, "algorithm %q is not supported", truncate(p.header.Alg, 32))
		}
		return refuseCause(ErrMalformedToken, err, "token cannot be read: %v", err)
	}
	name := ti.cfg.Issuer
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuseCause(ErrMalformedToken, err, "token is malformed: %v", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuseCause(ErrBadSignature, err, "token signature does not verify with the keys of issuer %q", name)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return refuseCause(ErrAlgorithmNotAllowed, err, "token cannot be verified: %v", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuseCause(ErrExpired, err, "token expired at %s: sign in again to get a fresh token", p.timeClaim("exp"))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && !p.has("exp"):
		return refuseCause(ErrMissingExpiry, err, "token has no \"exp\" claim: tokens without an expiry are refused")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuseCause(ErrNotYetValid, err, "token is not valid before %s (nbf): check the clocks of the issuer and the server", p.timeClaim("nbf"))
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuseCause(ErrNotYetValid, err, "token is issued in the future (iat %s): check the clocks of the issuer and the server", p.timeClaim("iat"))
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && !p.has("aud"):
		return refuseCause(ErrWrongAudience, err, "token audience is not one of %s accepted for issuer %q", strings.Join(ti.cfg.Audiences, ", "), name)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuseCause(ErrUnknownIssuer, err, "token issuer does not match %q", name)
	}
	return refuseCause(ErrInvalidClaim, err, "token claims are invalid: %v", err)
}

// peeked is what is read from a token before its signature is checked. It
// selects the issuer and shapes error messages; nothing in it is trusted.
type peeked struct {
	header  tokenHeader
	session bool
	payload []byte
	fields  map[string]json.RawMessage // decoded lazily, for error messages only
}

type tokenHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// claim returns one raw claim. The full map is decoded only on this
// (refusal) path, keeping the accepting path to one small struct decode.
func (p *peeked) claim(name string) (json.RawMessage, bool) {
	if p.fields == nil {
		if err := json.Unmarshal(p.payload, &p.fields); err != nil {
			return nil, false
		}
	}
	v, ok := p.fields[name]
	return v, ok
}

func (p *peeked) has(claim string) bool {
	v, ok := p.claim(claim)
	return ok && string(v) != "null"
}

func (p *peeked) timeClaim(claim string) string {
	var n json.Number
	raw, _ := p.claim(claim)
	if err := json.Unmarshal(raw, &n); err != nil {
		return "(unreadable)"
	}
	f, err := n.Float64()
	if err != nil {
		return "(unreadable)"
	}
	return time.Unix(int64(f), 0).UTC().Format(time.RFC3339)
}

// preParse checks a token's size and shape and decodes its header and payload
// without verifying anything. It must never panic on any input (fuzzed).
func preParse(token string, maxSize int) (*peeked, error) {
	if len(token) > maxSize {
		return nil, refuse(ErrTokenTooLarge, "token is %d bytes, over the %d-byte limit", len(token), maxSize)
	}
	if token == "" {
		return nil, refuse(ErrMalformedToken, "token is empty")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, refuse(ErrMalformedToken, "token is an encrypted JWE: give a signed JWT (three base64url parts)")
		}
		return nil, refuse(ErrMalformedToken, "token has %d parts separated by '.', a signed JWT has 3", len(parts))
	}
	if parts[2] == "" {
		return nil, refuse(ErrAlgorithmNotAllowed, "token has no signature: unsigned tokens are never accepted")
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil {
		return nil, refuseCause(ErrMalformedToken, err, "token header is not base64url: %v", err)
	}
	p := &peeked{}
	if err := json.Unmarshal(hb, &p.header); err != nil {
		return nil, refuseCause(ErrMalformedToken, err, "token header is not a JSON object with string alg/kid/typ: %v", err)
	}
	if strings.EqualFold(p.header.Alg, "none") {
		return nil, refuse(ErrAlgorithmNotAllowed, "algorithm \"none\" (an unsigned token) is never accepted")
	}
	if p.header.Alg == "" {
		return nil, refuse(ErrMalformedToken, "token header has no \"alg\"")
	}
	if len(p.header.Crit) > 0 && string(p.header.Crit) != "null" {
		return nil, refuse(ErrMalformedToken, "token header has \"crit\" extensions, which this server does not support")
	}
	p.payload, err = base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return nil, refuseCause(ErrMalformedToken, err, "token payload is not base64url: %v", err)
	}
	// The payload's JSON is decoded once, by the parser; only "null"
	// (which would decode into an empty claims struct) is caught here.
	if bytes.Equal(bytes.TrimSpace(p.payload), []byte("null")) {
		return nil, refuse(ErrMalformedToken, "token payload is not a JSON object")
	}
	if p.header.Typ == sessionTyp {
		p.session = true
	}
	return p, nil
}

// registeredClaims are the names the host interprets.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat"}

// checkClaimKeys refuses payloads that two JSON readers could read
// differently: a duplicate top-level key (encoding/json keeps the last, other
// parsers the first) or a key that differs from a registered claim only in
// case (encoding/json matches struct fields case-insensitively). Without it,
// {"sub":"alice","SUB":"bob"} would give the host bob while a module reading
// the claims JSON with a map sees alice.
func checkClaimKeys(payload []byte) error {
	keys, ok := topLevelKeys(payload)
	if !ok {
		return refuse(ErrMalformedToken, "token payload is not a valid JSON object")
	}
	for i, key := range keys {
		for _, prev := range keys[:i] {
			if key == prev {
				return refuse(ErrInvalidClaim, "token payload has the claim %q twice", truncate(key, 64))
			}
		}
		for _, r := range registeredClaims {
			if key != r && len(key) == len(r) && strings.EqualFold(key, r) {
				return refuse(ErrInvalidClaim, "token payload has a claim %q that differs from %q only in case", truncate(key, 64), r)
			}
		}
	}
	return nil
}

// topLevelKeys lists the keys of a JSON object without decoding its values:
// a small scanner, because a json.Decoder token walk tripled the allocations
// of a whole verification. Keys are compared as encoding/json reads them.
func topLevelKeys(b []byte) ([]string, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	keys := make([]string, 0, 8)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return keys, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		end, escaped := scanString(b, i)
		if end < 0 {
			return nil, false
		}
		var key string
		// encoding/json unescapes and replaces invalid UTF-8 with U+FFFD;
		// compare keys as it reads them.
		if escaped || !utf8.Valid(b[i+1:end-1]) {
			if json.Unmarshal(b[i:end], &key) != nil {
				return nil, false
			}
		} else {
			key = string(b[i+1 : end-1])
		}
		keys = append(keys, key)
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipValue(b, skipSpace(b, i+1))
		if i < 0 {
			return nil, false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return keys, true
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i] == '"'
// (or -1), and whether it contains escapes.
func scanString(b []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped
		}
	}
	return -1, escaped
}

// skipValue returns the index just past the JSON value at b[i] (or -1). The
// payload has already been validated by encoding/json; this only has to find
// the value's end, tracking strings and nesting.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch c := b[i]; c {
		case '"':
			end, _ := scanString(b, i)
			if end < 0 {
				return -1
			}
			i = end
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	if depth == 0 {
		return i
	}
	return -1
}

func errNoIssuer() *TokenError {
	return refuse(ErrUnknownIssuer, "token has no \"iss\" claim: the issuer is needed to choose its keys")
}

func errUntrustedIssuer(iss string) *TokenError {
	return refuse(ErrUnknownIssuer, "token issuer %q is not trusted by this server: ask the operator to add it under [[auth.issuers]]", truncate(iss, MaxClaimLength))
}

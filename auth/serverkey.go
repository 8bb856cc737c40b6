package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/spacetime-go/spacetime/abi"
)

const (
	// DevIssuerName is the "iss" of tokens minted by `spacetime token mint`.
	// Every server uses the same name, so "alice" has the same identity on
	// every dev server (and after the data directory is reset); what a
	// server trusts is its own key, not the name.
	DevIssuerName = "spacetime-dev://local"
	// ServerKeyFile is the server's private key inside the data directory.
	ServerKeyFile = "server_key.pem"
	// DefaultTokenTTL is the lifetime of a minted dev token when none is given.
	DefaultTokenTTL = 24 * time.Hour

	// SessionIssuer, SessionAudience and sessionTyp mark session tokens.
	// They differ from the dev issuer in all three, so a session token is
	// never taken for a user token by the Verifier, nor a user token for a
	// session by VerifySession, although the same key signs both.
	SessionIssuer   = "spacetime-session://local"
	SessionAudience = "spacetime-session"
	sessionTyp      = "spacetime-session+jwt"
	// DefaultSessionTTL is the lifetime of a session token; it is cut short
	// by the expiry of the token the session was made from.
	DefaultSessionTTL = time.Hour
	// MaxSessionTokenSize bounds what VerifySession reads: a session embeds
	// the original token's claims (at most MaxTokenSize before base64).
	MaxSessionTokenSize = 16 << 10
	// sessionLeeway tolerates only tiny skew: the same server signs and checks.
	sessionLeeway = 5 * time.Second
)

// ServerKey is the server's own signing key: it is the dev issuer (tokens for
// `spacetime token mint`) and it signs session tokens. Keep it in the data
// directory; whoever can read the file can mint tokens.
type ServerKey struct {
	key     *ecdsa.PrivateKey
	kid     string
	path    string
	o       options
	session *jwt.Parser
	// sessionHeader is what every session token of this key starts with.
	sessionHeader []byte
	sessions      sessionCache
}

// OpenServerKey loads the server key from dataDir/ServerKeyFile, creating it
// (ECDSA P-256, PKCS#8 PEM, mode 0600) the first time. Two processes starting
// at once both end up with the same key: creation is write-then-link, which
// fails if another process won the race.
func OpenServerKey(dataDir string, opts ...Option) (*ServerKey, error) {
	o := buildOptions(opts)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: create data directory for the server key: %w", err)
	}
	path := filepath.Join(dataDir, ServerKeyFile)
	key, err := readServerKey(path, o)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createServerKey(path)
		if err == nil {
			o.log.Info("auth: created the server's signing key", "path", path)
		}
	}
	if err != nil {
		return nil, err
	}
	return newServerKey(key, path, o)
}

// NewServerKey wraps an existing key (tests, or a key kept elsewhere).
func NewServerKey(key *ecdsa.PrivateKey, opts ...Option) (*ServerKey, error) {
	if key == nil || key.Curve != elliptic.P256() {
		return nil, errors.New("auth: the server key must be an ECDSA P-256 key")
	}
	return newServerKey(key, "", buildOptions(opts))
}

func newServerKey(key *ecdsa.PrivateKey, path string, o options) (*ServerKey, error) {
	s := &ServerKey{key: key, path: path, o: o}
	s.kid = thumbprint(&key.PublicKey)
	s.sessionHeader = sessionHeader(s.kid)
	s.session = jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(sessionLeeway),
		jwt.WithTimeFunc(o.now),
		jwt.WithIssuer(SessionIssuer),
		jwt.WithAudience(SessionAudience),
		jwt.WithStrictDecoding(),
	)
	return s, nil
}

func readServerKey(path string, o options) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		o.log.Warn("auth: the server key is readable by other users, who could mint tokens: chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: %s is not a PKCS#8 PEM private key: move it aside to have a new key created", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: %s holds a %T; the server key must be ECDSA P-256", path, k)
	}
	return ek, nil
}

func createServerKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate server key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: encode server key: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".server_key-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("auth: write server key: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod states the intent.
	err = errors.Join(
		tmp.Chmod(0o600),
		pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		tmp.Sync(),
		tmp.Close(),
	)
	if err != nil {
		return nil, fmt.Errorf("auth: write server key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use theirs.
			return readServerKey(path, buildOptions(nil))
		}
		return nil, fmt.Errorf("auth: install server key: %w", err)
	}
	return key, nil
}

// thumbprint is the RFC 7638 JWK thumbprint, used as the key's kid.
func thumbprint(pub *ecdsa.PublicKey) string {
	j := publicJWK(pub, "")
	// RFC 7638: the required members only, in lexicographic order.
	canon := fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, j["crv"], j["x"], j["y"])
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Path is the key file ("" for a key given to NewServerKey).
func (s *ServerKey) Path() string { return s.path }

// KeyID is the key's kid (its RFC 7638 thumbprint).
func (s *ServerKey) KeyID() string { return s.kid }

// IssuerName is the "iss" of the dev tokens this key mints.
func (s *ServerKey) IssuerName() string { return s.o.devIssuerName }

// Issuer returns the configuration under which a Verifier trusts the dev
// tokens this key mints.
func (s *ServerKey) Issuer() Issuer {
	return Issuer{
		Issuer:     s.o.devIssuerName,
		Algorithms: []string{"ES256"},
		Keys:       []crypto.PublicKey{&s.key.PublicKey},
	}
}

// PublicKeyPEM is the public key as a PKIX PEM block.
func (s *ServerKey) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&s.key.PublicKey)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWK is the public key as a JWK (kty, crv, x, y, kid, alg, use).
func (s *ServerKey) JWK() map[string]string { return publicJWK(&s.key.PublicKey, s.kid) }

// JWKS is the public key as a JWK Set, ready to serve: another service can
// point a jwks_url at it to trust this server's tokens.
func (s *ServerKey) JWKS() []byte {
	b, _ := json.Marshal(map[string]any{"keys": []any{s.JWK()}})
	return b
}

// reservedClaims cannot be set through extra claims: they are what makes the
// token mean what Mint was asked for.
var reservedClaims = []string{"iss", "sub", "exp", "iat", "nbf"}

// Mint signs a dev-issuer token for subject sub, valid for ttl
// (DefaultTokenTTL if zero), with extra claims (e.g. "aud", "email").
func (s *ServerKey) Mint(sub string, ttl time.Duration, extra map[string]any) (string, error) {
	if sub == "" {
		return "", errors.New("auth: mint: a subject is required (--sub)")
	}
	if len(sub) > MaxClaimLength {
		return "", fmt.Errorf("auth: mint: subject is %d bytes, at most %d allowed", len(sub), MaxClaimLength)
	}
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 {
		return "", fmt.Errorf("auth: mint: ttl %s is negative", ttl)
	}
	claims := jwt.MapClaims{}
	for k, v := range extra {
		for _, r := range reservedClaims {
			if k == r {
				return "", fmt.Errorf("auth: mint: claim %q is set by the issuer; use --sub and --ttl instead", k)
			}
		}
		claims[k] = v
	}
	now := s.o.now()
	claims["iss"] = s.o.devIssuerName
	claims["sub"] = sub
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(ttl).Unix()
	return s.sign(claims, "JWT")
}

func (s *ServerKey) sign(claims jwt.Claims, typ string) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.kid
	t.Header["typ"] = typ
	tok, err := t.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return tok, nil
}

// ParseClaimArg parses a --claim KEY=VALUE argument. VALUE is taken as JSON
// when it is valid JSON (numbers, booleans, arrays, objects, quoted strings),
// else as a plain string, so `--claim role=admin` and `--claim level=3` both
// do what they look like.
func ParseClaimArg(arg string) (string, any, error) {
	k, v, ok := strings.Cut(arg, "=")
	if !ok || k == "" {
		return "", nil, fmt.Errorf("auth: claim %q: write it as KEY=VALUE", arg)
	}
	var val any
	if json.Valid([]byte(v)) {
		if err := json.Unmarshal([]byte(v), &val); err == nil {
			return k, val, nil
		}
	}
	return k, v, nil
}

// Session is a verified session token.
type Session struct {
	Identity abi.Identity
	// Issuer and Subject are those of the token the session was made from.
	Issuer  string
	Subject string
	// Claims are that token's claims, as JSON.
	Claims    json.RawMessage
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// sessionClaims is the payload of a session token. sub is the identity (hex),
// so any JWT tool shows who the session is for.
type sessionClaims struct {
	jwt.RegisteredClaims
	OrigIssuer  string          `json:"oiss"`
	OrigSubject string          `json:"osub"`
	OrigClaims  json.RawMessage `json:"claims"`
}

// MintSession signs a session token for a verified token's claims. It
// expires after the session TTL or when the original token does, whichever
// comes first; it returns the token and its expiry.
//
// It runs on every auth call, so it builds the token directly rather than
// through golang-jwt's generic signer: the header is encoded once per key,
// the payload is appended without reflection (the original claims are
// embedded as they were signed), and the signature is one ECDSA P-256
// signature. The result is an ordinary ES256 JWT: VerifySession, or any JWT
// library given the public key, checks it.
func (s *ServerKey) MintSession(c *Claims) (string, time.Time, error) {
	if c == nil || c.Issuer == "" || c.Subject == "" {
		return "", time.Time{}, errors.New("auth: mint session: needs verified claims with iss and sub")
	}
	now := s.o.now()
	// A session's own lifetime ends on a step of at most a minute, so that
	// sessions minted from the same token within that step are the same
	// session (reused below); NumericDate has whole seconds anyway.
	exp := now.Add(s.o.sessionTTL).Truncate(min(time.Minute, max(time.Second, s.o.sessionTTL/60)))
	if !c.ExpiresAt.IsZero() && c.ExpiresAt.Before(exp) {
		exp = c.ExpiresAt.Truncate(time.Second)
	}
	if !exp.After(now) {
		return "", time.Time{}, errors.New("auth: mint session: the token has already expired")
	}
	orig := []byte(c.JSON)
	if len(orig) == 0 {
		orig = []byte("{}")
	}
	if !json.Valid(orig) {
		return "", time.Time{}, errors.New("auth: mint session: the claims are not valid JSON")
	}
	key := sessionKey(c.Issuer, c.Subject, orig, exp)
	if tok, ok := s.sessions.get(key, now); ok {
		return tok, exp, nil
	}
	id := c.Identity
	if id.IsZero() {
		id = IdentityFromClaims(c.Issuer, c.Subject)
	}
	payload := make([]byte, 0, 160+len(c.Issuer)+len(c.Subject)+len(orig))
	payload = append(payload, `{"iss":"`+SessionIssuer+`","sub":"`...)
	payload = hex.AppendEncode(payload, id[:])
	payload = append(payload, `","aud":["`+SessionAudience+`"],"exp":`...)
	payload = strconv.AppendInt(payload, exp.Unix(), 10)
	payload = append(payload, `,"iat":`...)
	payload = strconv.AppendInt(payload, now.Unix(), 10)
	payload = append(payload, `,"oiss":`...)
	payload = abi.AppendJSONString(payload, c.Issuer)
	payload = append(payload, `,"osub":`...)
	payload = abi.AppendJSONString(payload, c.Subject)
	payload = append(payload, `,"claims":`...)
	payload = append(payload, orig...)
	payload = append(payload, '}')

	enc := base64.RawURLEncoding
	tok := make([]byte, 0, len(s.sessionHeader)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(2*p256Bytes))
	tok = append(tok, s.sessionHeader...)
	tok = enc.AppendEncode(tok, payload)
	digest := sha256.Sum256(tok)
	// A nil rand makes the signature deterministic (RFC 6979): the nonce
	// is derived from the key and the digest, which costs a quarter less
	// than the hedged nonce (a fresh DRBG per signature) and is as safe for
	// a key that never leaves this process.
	der, err := s.key.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	var sig [2 * p256Bytes]byte
	if !derToRaw(der, sig[:]) {
		return "", time.Time{}, fmt.Errorf("auth: sign: unexpected ECDSA signature encoding (%d bytes)", len(der))
	}
	tok = append(tok, '.')
	tok = enc.AppendEncode(tok, sig[:])
	st := string(tok)
	s.sessions.put(key, st, exp, now)
	return st, exp, nil
}

// maxCachedSessions bounds the sessions kept for reuse: about 600 bytes
// each for a typical token, so at most a few megabytes.
const maxCachedSessions = 4096

// sessionCache keeps the sessions minted lately by what they were minted
// from. An auth call with the same token (a client that calls auth again on
// every reconnect) then gets the same session back without a signature: the
// token was verified again in that call, and the session says nothing a
// fresh one would not, but its iat. A fresh token always has other claims
// (its own iat, exp or jti) and so a session of its own.
type sessionCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cachedSession
}

type cachedSession struct {
	token string
	exp   time.Time
}

// sessionKey identifies what a session says: the original issuer, subject
// and claims, and the expiry.
func sessionKey(iss, sub string, claims []byte, exp time.Time) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, b := range [][]byte{[]byte(iss), []byte(sub), claims} {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	binary.BigEndian.PutUint64(n[:], uint64(exp.Unix()))
	h.Write(n[:])
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (sc *sessionCache) get(k [sha256.Size]byte, now time.Time) (string, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.m[k]
	if !ok || !e.exp.After(now) {
		return "", false
	}
	return e.token, true
}

func (sc *sessionCache) put(k [sha256.Size]byte, tok string, exp, now time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.m == nil {
		sc.m = make(map[[sha256.Size]byte]cachedSession)
	}
	if len(sc.m) >= maxCachedSessions {
		for k, e := range sc.m {
			if !e.exp.After(now) {
				delete(sc.m, k)
			}
		}
		if len(sc.m) >= maxCachedSessions {
			clear(sc.m)
		}
	}
	sc.m[k] = cachedSession{token: tok, exp: exp}
}

// p256Bytes is the size of a P-256 scalar: an ES256 signature is r and s,
// each this long, big-endian (RFC 7518 section 3.4).
const p256Bytes = 32

// derToRaw converts an ASN.1 ECDSA signature, SEQUENCE { INTEGER r,
// INTEGER s }, to the fixed-size r || s of JWS (RFC 7518 section 3.4). For
// P-256 every length fits one byte, so the short DER form is all there is.
func derToRaw(der, out []byte) bool {
	n := len(out) / 2
	if len(der) < 2 || der[0] != 0x30 || int(der[1]) != len(der)-2 {
		return false
	}
	rest := der[2:]
	for i := range 2 {
		if len(rest) < 2 || rest[0] != 0x02 || int(rest[1]) > len(rest)-2 {
			return false
		}
		v := rest[2 : 2+int(rest[1])]
		rest = rest[2+int(rest[1]):]
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > n {
			return false
		}
		copy(out[i*n+n-len(v):(i+1)*n], v)
	}
	return len(rest) == 0
}

// sessionHeader is the encoded JOSE header of session tokens and the dot
// after it: the same for every session of a key.
func sessionHeader(kid string) []byte {
	h, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": kid, "typ": sessionTyp})
	return append(base64.RawURLEncoding.AppendEncode(nil, h), '.')
}

// VerifySession checks a session token minted by this key. Refusals are
// *TokenError values like the Verifier's; a user token (dev or external) is
// ErrNotASession.
func (s *ServerKey) VerifySession(token string) (*Session, error) {
	if len(token) > MaxSessionTokenSize {
		return nil, refuse(ErrTokenTooLarge, "session token is %d bytes, over the %d-byte limit", len(token), MaxSessionTokenSize)
	}
	p, err := preParse(token, MaxSessionTokenSize)
	if err != nil {
		return nil, err
	}
	if !p.session {
		return nil, refuse(ErrNotASession, "this is not a session token of this server: call auth with it to start a session")
	}
	var sc sessionClaims
	_, err = s.session.ParseWithClaims(token, &sc, func(t *jwt.Token) (any, error) {
		return &s.key.PublicKey, nil
	})
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return nil, refuseCause(ErrBadSignature, err, "session token was not signed by this server (was its key replaced?): call auth again")
		case errors.Is(err, jwt.ErrTokenExpired):
			return nil, refuseCause(ErrExpired, err, "session expired: call auth again with a fresh token")
		case errors.Is(err, jwt.ErrTokenMalformed):
			return nil, refuseCause(ErrMalformedToken, err, "session token is malformed: %v", err)
		case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenInvalidIssuer),
			errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && !p.has("aud"):
			return nil, refuseCause(ErrNotASession, err, "token is not meant as a session token (aud)")
		case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return nil, refuseCause(ErrMissingExpiry, err, "session token has no expiry")
		case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			return nil, refuseCause(ErrNotYetValid, err, "session token is not valid yet")
		}
		return nil, refuseCause(ErrInvalidClaim, err, "session token is invalid: %v", err)
	}
	id, err := abi.ParseIdentity(sc.Subject)
	if err != nil || id != IdentityFromClaims(sc.OrigIssuer, sc.OrigSubject) || sc.OrigSubject == "" {
		return nil, refuse(ErrInvalidClaim, "session token's identity does not match its issuer and subject")
	}
	sess := &Session{
		Identity:  id,
		Issuer:    sc.OrigIssuer,
		Subject:   sc.OrigSubject,
		Claims:    sc.OrigClaims,
		ExpiresAt: sc.ExpiresAt.Time,
	}
	if sc.IssuedAt != nil {
		sess.IssuedAt = sc.IssuedAt.Time
	}
	return sess, nil
}

package auth

import (
	"bytes"
	"crypto"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Issuer is one trusted token issuer, as written in the server config:
//
//	[[auth.issuers]]
//	issuer = "https://auth.example.com/"
//	audiences = ["my-app"]
//	algorithms = ["RS256", "ES256"]
//	public_keys = ["keys/auth.pem"]   # or jwks_file, jwks_url, hmac_secret_env
//	leeway = "30s"
//
// Exactly one kind of key source is used: PEM public keys and/or a JWKS file
// and/or a JWKS URL (asymmetric algorithms), or an HMAC secret taken from an
// environment variable (HS* algorithms; development only).
type Issuer struct {
	// Issuer is the exact "iss" the tokens carry (no normalisation: a
	// trailing slash matters).
	Issuer string `toml:"issuer"`
	// Audiences, when set, is what "aud" must contain at least one of.
	Audiences []string `toml:"audiences"`
	// Algorithms is the allow-list of "alg" values; "none" is never allowed.
	Algorithms []string `toml:"algorithms"`
	// PublicKeys are PEM files (PKIX, PKCS#1 or certificates). Relative
	// paths are resolved against the config file's directory by LoadConfig.
	PublicKeys []string `toml:"public_keys"`
	// JWKSFile is a JWK Set on disk, read once at start.
	JWKSFile string `toml:"jwks_file"`
	// JWKSURL is a JWK Set fetched over HTTPS (plain HTTP only for loopback
	// addresses), refreshed when a token names an unknown "kid".
	JWKSURL string `toml:"jwks_url"`
	// HMACSecretEnv names the environment variable holding an HMAC secret.
	HMACSecretEnv string `toml:"hmac_secret_env"`
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means
	// DefaultLeeway; it may not exceed MaxLeeway.
	Leeway Duration `toml:"leeway"`

	// Keys are public keys given in code rather than files (the server's
	// own issuer uses this). Not read from TOML.
	Keys []crypto.PublicKey `toml:"-"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler for TOML.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration such as \"30s\" or \"1m\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

const (
	// DefaultLeeway is the clock skew tolerated when an issuer sets none.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway bounds the configurable leeway: a large one would keep
	// expired tokens alive.
	MaxLeeway = 5 * time.Minute
	// MaxClaimLength is the longest iss or sub accepted, as in SpacetimeDB.
	MaxClaimLength = 128
	// minHMACSecret is RFC 7518 §3.2's minimum for HS256.
	minHMACSecret = 32
)

// Config is the authentication part of the server config file.
type Config struct {
	// Issuers are trusted by every database.
	Issuers []Issuer
	// Databases holds the issuers that only one database trusts, in
	// addition to Issuers.
	Databases map[string][]Issuer
	// DevIssuer says whether the server's own issuer is trusted
	// ([auth] dev_issuer = false turns it off). Default true.
	DevIssuer bool
}

// IssuersFor returns the issuers a database trusts: the server-wide ones
// followed by its own.
func (c *Config) IssuersFor(database string) []Issuer {
	return append(slices.Clone(c.Issuers), c.Databases[database]...)
}

type authSection struct {
	DevIssuer *bool    `toml:"dev_issuer"`
	Issuers   []Issuer `toml:"issuers"`
}

type configFile struct {
	Auth      authSection `toml:"auth"`
	Databases map[string]struct {
		Auth authSection `toml:"auth"`
	} `toml:"databases"`
}

// LoadConfig reads the [auth] and [databases.NAME.auth] sections of a TOML
// config file. Other sections are left to their owners. Relative key paths
// resolve against the file's directory. The issuers are validated (see
// Issuer.Validate) but no key is loaded and no JWKS URL fetched yet: that is
// NewVerifier's job.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read config: %w", ErrInvalidConfig, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cfg, err := ParseConfig(data, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig is LoadConfig on bytes; baseDir resolves relative key paths.
func ParseConfig(data []byte, baseDir string) (*Config, error) {
	var f configFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	// A misspelt key inside an issuer ("audience", "algorithm") would
	// silently drop a check, so unknown keys under auth are errors.
	for _, k := range md.Undecoded() {
		if isAuthKey(k) {
			return nil, configErrorf("unknown setting %q: the issuer settings are issuer, audiences, algorithms, public_keys, jwks_file, jwks_url, hmac_secret_env and leeway", k.String())
		}
	}
	cfg := &Config{DevIssuer: true, Databases: map[string][]Issuer{}}
	if f.Auth.DevIssuer != nil {
		cfg.DevIssuer = *f.Auth.DevIssuer
	}
	for i := range f.Auth.Issuers {
		iss := f.Auth.Issuers[i].resolve(baseDir)
		if err := iss.Validate(); err != nil {
			return nil, fmt.Errorf("[[auth.issuers]] #%d: %w", i+1, err)
		}
		cfg.Issuers = append(cfg.Issuers, iss)
	}
	for db, sect := range f.Databases {
		if sect.Auth.DevIssuer != nil {
			return nil, configErrorf("[databases.%s.auth] dev_issuer: the server's own issuer is switched on or off for the whole server, in [auth]", db)
		}
		for i := range sect.Auth.Issuers {
			iss := sect.Auth.Issuers[i].resolve(baseDir)
			if err := iss.Validate(); err != nil {
				return nil, fmt.Errorf("[[databases.%s.auth.issuers]] #%d: %w", db, i+1, err)
			}
			cfg.Databases[db] = append(cfg.Databases[db], iss)
		}
	}
	if err := checkDuplicates(cfg.Issuers); err != nil {
		return nil, err
	}
	for db := range cfg.Databases {
		if err := checkDuplicates(cfg.IssuersFor(db)); err != nil {
			return nil, fmt.Errorf("database %q: %w", db, err)
		}
	}
	return cfg, nil
}

func isAuthKey(k toml.Key) bool {
	if len(k) > 0 && k[0] == "auth" {
		return true
	}
	return len(k) > 2 && k[0] == "databases" && k[2] == "auth"
}

func checkDuplicates(issuers []Issuer) error {
	seen := map[string]bool{}
	for _, iss := range issuers {
		if seen[iss.Issuer] {
			return configErrorf("issuer %q is configured twice: merge its keys and audiences into one entry", iss.Issuer)
		}
		seen[iss.Issuer] = true
	}
	return nil
}

func (iss Issuer) resolve(baseDir string) Issuer {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	iss.PublicKeys = slices.Clone(iss.PublicKeys)
	for i, p := range iss.PublicKeys {
		iss.PublicKeys[i] = abs(p)
	}
	iss.JWKSFile = abs(iss.JWKSFile)
	return iss
}

// LeewayOrDefault is the leeway the verifier applies for this issuer.
func (iss Issuer) LeewayOrDefault() time.Duration {
	if iss.Leeway == 0 {
		return DefaultLeeway
	}
	return time.Duration(iss.Leeway)
}

// Validate checks the issuer's settings without touching files, the
// environment or the network: the issuer string, the algorithms (known, never
// "none", one key family per issuer), that there is a key source and that it
// matches the algorithms, the leeway and the JWKS URL's scheme.
func (iss Issuer) Validate() error {
	if iss.Issuer == "" {
		return configErrorf("issuer is empty: set issuer to the exact \"iss\" its tokens carry")
	}
	if len(iss.Issuer) > MaxClaimLength {
		return configErrorf("issuer %q is longer than %d bytes", iss.Issuer, MaxClaimLength)
	}
	name := fmt.Sprintf("issuer %q", iss.Issuer)
	if len(iss.Algorithms) == 0 {
		return configErrorf("%s: algorithms is empty: list the algorithms its tokens use, e.g. [\"RS256\"]", name)
	}
	families := map[keyFamily]bool{}
	for _, a := range iss.Algorithms {
		if strings.EqualFold(a, "none") {
			return configErrorf("%s: algorithm \"none\" means unsigned tokens and is never accepted: remove it", name)
		}
		spec, ok := algorithms[a]
		if !ok {
			return configErrorf("%s: unknown algorithm %q: supported are %s (names are case-sensitive)", name, a, strings.Join(SupportedAlgorithms(), ", "))
		}
		families[spec.family] = true
	}
	asym := len(iss.PublicKeys) > 0 || iss.JWKSFile != "" || iss.JWKSURL != "" || len(iss.Keys) > 0
	hmac := iss.HMACSecretEnv != ""
	switch {
	case !asym && !hmac:
		return configErrorf("%s has no keys: set public_keys, jwks_file, jwks_url or (for development) hmac_secret_env", name)
	case asym && hmac:
		return configErrorf("%s: hmac_secret_env cannot be combined with public keys or a JWKS: use one issuer entry per kind of key", name)
	case hmac && !onlyFamily(families, familyHMAC):
		return configErrorf("%s: hmac_secret_env is an HMAC secret but algorithms lists %s: HMAC secrets verify only HS256, HS384 and HS512", name, strings.Join(notFamily(iss.Algorithms, familyHMAC), ", "))
	case asym && families[familyHMAC]:
		return configErrorf("%s: algorithms lists %s but its keys are public keys: a public key is never an HMAC secret (remove the HS* algorithms, or use hmac_secret_env)", name, strings.Join(inFamily(iss.Algorithms, familyHMAC), ", "))
	}
	if iss.Leeway < 0 || time.Duration(iss.Leeway) > MaxLeeway {
		return configErrorf("%s: leeway %s is out of range: use 0 (default %s) up to %s", name, time.Duration(iss.Leeway), DefaultLeeway, MaxLeeway)
	}
	for _, a := range iss.Audiences {
		if a == "" {
			return configErrorf("%s: audiences contains an empty string", name)
		}
	}
	if iss.JWKSURL != "" {
		if err := checkJWKSURL(iss.JWKSURL); err != nil {
			return configErrorf("%s: jwks_url: %v", name, err)
		}
	}
	return nil
}

func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "https":
	case "http":
		// Keys fetched in the clear could be swapped by anyone on the path;
		// loopback is allowed for local identity providers and tests.
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("%q must use https (plain http is allowed only for localhost)", raw)
		}
	default:
		return fmt.Errorf("%q: scheme must be https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

func onlyFamily(fams map[keyFamily]bool, f keyFamily) bool {
	return len(fams) == 1 && fams[f]
}

func inFamily(algs []string, f keyFamily) []string {
	var out []string
	for _, a := range algs {
		if algorithms[a].family == f {
			out = append(out, a)
		}
	}
	return out
}

func notFamily(algs []string, f keyFamily) []string {
	var out []string
	for _, a := range algs {
		if algorithms[a].family != f {
			out = append(out, a)
		}
	}
	return out
}

// loadStaticKeys reads the issuer's PEM files, JWKS file, in-code keys and
// HMAC secret, and checks that every key can verify at least one of the
// allowed algorithms (a key that never could is a configuration mistake).
func (iss Issuer) loadStaticKeys(log *slog.Logger) ([]verificationKey, error) {
	name := fmt.Sprintf("issuer %q", iss.Issuer)
	var keys []verificationKey
	for _, path := range iss.PublicKeys {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: public key: %w", ErrInvalidConfig, name, err)
		}
		pubs, err := parsePublicKeyPEM(data)
		if err != nil {
			return nil, configErrorf("%s: public key %s: %v", name, path, err)
		}
		for _, p := range pubs {
			keys = append(keys, verificationKey{key: p})
		}
	}
	for _, p := range iss.Keys {
		if err := checkPublicKey(p); err != nil {
			return nil, configErrorf("%s: %v", name, err)
		}
		keys = append(keys, verificationKey{key: p})
	}
	// A PEM key that fits none of the algorithms (an RSA key with only
	// ES256 allowed) is a mistake the operator should hear about now, not
	// as "bad signature" on every login.
	for _, k := range keys {
		if !slices.ContainsFunc(iss.Algorithms, k.fits) {
			return nil, configErrorf("%s: its %s cannot verify any of its algorithms %s: add the matching algorithm or remove the key",
				name, familyOf(k.key), strings.Join(iss.Algorithms, ", "))
		}
	}
	if iss.JWKSFile != "" {
		data, err := os.ReadFile(iss.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: jwks_file: %w", ErrInvalidConfig, name, err)
		}
		ks, skipped, err := parseJWKS(data)
		if err != nil {
			return nil, configErrorf("%s: jwks_file %s: %v", name, iss.JWKSFile, err)
		}
		for _, s := range skipped {
			log.Warn("auth: skipping a JWKS key that cannot verify signatures", "issuer", iss.Issuer, "file", iss.JWKSFile, "reason", s)
		}
		// A JWKS often holds keys for several algorithms; those the
		// allow-list rules out are simply never used.
		usable := slices.DeleteFunc(ks, func(k verificationKey) bool { return !slices.ContainsFunc(iss.Algorithms, k.fits) })
		if len(usable) == 0 {
			return nil, configErrorf("%s: jwks_file %s has no key for its algorithms %s", name, iss.JWKSFile, strings.Join(iss.Algorithms, ", "))
		}
		keys = append(keys, usable...)
	}
	if iss.HMACSecretEnv != "" {
		secret, ok := os.LookupEnv(iss.HMACSecretEnv)
		if !ok || secret == "" {
			return nil, configErrorf("%s: hmac_secret_env names %s, which is not set: export it, or remove the issuer", name, iss.HMACSecretEnv)
		}
		if len(secret) < minHMACSecret {
			return nil, configErrorf("%s: the HMAC secret in %s is %d bytes; use at least %d (e.g. `openssl rand -hex 32`)", name, iss.HMACSecretEnv, len(secret), minHMACSecret)
		}
		log.Warn("auth: HMAC issuer configured; HMAC secrets are for development only, use public keys or a JWKS in production",
			"issuer", iss.Issuer, "env", iss.HMACSecretEnv)
		keys = append(keys, verificationKey{key: []byte(secret)})
	}
	return keys, nil
}

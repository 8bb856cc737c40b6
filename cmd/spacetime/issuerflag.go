package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spacetime-go/spacetime/auth"
)

// issuerFlagHelp is the usage of --issuer, shared by start and dev.
const issuerFlagHelp = `trust a token issuer, in addition to the config file's (repeatable): ` +
	`comma-separated key=value pairs: iss=URL (required), alg=NAME (repeatable), aud=AUDIENCE (repeatable), ` +
	`one or more of key=PEM-FILE, jwks=URL, jwks-file=FILE, hmac-env=VAR (development only), ` +
	`and optionally leeway=DURATION and db=DATABASE (trusted by that database only)`

// parseIssuerFlag reads one --issuer value, such as
//
//	iss=https://accounts.example.com/,alg=RS256,aud=my-app,jwks=https://accounts.example.com/jwks
//
// into the issuer and the database it is for ("" for every database). The
// issuer is validated as a config file's would be.
func parseIssuerFlag(spec string, abs func(string) string) (string, auth.Issuer, error) {
	var (
		iss auth.Issuer
		db  string
	)
	for part := range strings.SplitSeq(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return "", iss, fmt.Errorf("--issuer %q: %q is not key=value; %s", spec, part, issuerFlagHelp)
		}
		switch k {
		case "iss":
			iss.Issuer = v
		case "alg":
			iss.Algorithms = append(iss.Algorithms, v)
		case "aud":
			iss.Audiences = append(iss.Audiences, v)
		case "key":
			iss.PublicKeys = append(iss.PublicKeys, abs(v))
		case "jwks":
			iss.JWKSURL = v
		case "jwks-file":
			iss.JWKSFile = abs(v)
		case "hmac-env":
			iss.HMACSecretEnv = v
		case "leeway":
			d, err := time.ParseDuration(v)
			if err != nil {
				return "", iss, fmt.Errorf("--issuer %q: leeway: %w", spec, err)
			}
			iss.Leeway = auth.Duration(d)
		case "db":
			db = v
		default:
			return "", iss, fmt.Errorf("--issuer %q: unknown key %q; %s", spec, k, issuerFlagHelp)
		}
	}
	if iss.Issuer == "" {
		return "", iss, fmt.Errorf("--issuer %q: iss= is missing; %s", spec, issuerFlagHelp)
	}
	if err := iss.Validate(); err != nil {
		return "", iss, fmt.Errorf("--issuer %q: %w", spec, err)
	}
	return db, iss, nil
}

// authConfig merges the config file's issuers (if any) with the --issuer
// flags and --dev-issuer. It returns nil when there is nothing to merge, so
// that the server reads the config file itself.
func (a *app) authConfig(f serverFlags) (*auth.Config, error) {
	if len(*f.issuers) == 0 && *f.devIssuer {
		return nil, nil
	}
	cfg := &auth.Config{DevIssuer: true}
	if *f.config != "" {
		c, err := auth.LoadConfig(a.abs(*f.config))
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if !*f.devIssuer {
		cfg.DevIssuer = false
	}
	for _, spec := range *f.issuers {
		db, iss, err := parseIssuerFlag(spec, a.abs)
		if err != nil {
			return nil, err
		}
		if db == "" {
			cfg.Issuers = append(cfg.Issuers, iss)
			continue
		}
		if cfg.Databases == nil {
			cfg.Databases = map[string][]auth.Issuer{}
		}
		cfg.Databases[db] = append(cfg.Databases[db], iss)
	}
	return cfg, nil
}

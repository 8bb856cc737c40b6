package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spacetime-go/spacetime/auth"
)

const defaultDataDir = ".spacetime"

// dataDirFlag registers --data-dir with its environment default.
func (a *app) dataDirFlag(fsAdd func(p *string, name, value, usage string)) *string {
	d := a.getenv("SPACETIME_DATA_DIR")
	if d == "" {
		d = defaultDataDir
	}
	p := new(string)
	fsAdd(p, "data-dir", d, "the server's data directory (env SPACETIME_DATA_DIR)")
	return p
}

func cmdToken(ctx context.Context, a *app, args []string) error {
	if len(args) == 0 || args[0] != "mint" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(a.stdout, "usage: spacetime "+commandSummary("token"))
			return nil
		}
		return usagef("usage: spacetime %s", commandSummary("token"))
	}
	fs := a.flagSet("token")
	sub := fs.String("sub", "", "the token's subject: the user it names (required)")
	ttl := fs.Duration("ttl", auth.DefaultTokenTTL, "how long the token is valid")
	var claims multiFlag
	fs.Var(&claims, "claim", "an extra claim KEY=VALUE (VALUE as JSON when it parses, else a string); repeatable")
	dataDir := a.dataDirFlag(fs.StringVar)
	pos, err := parseFlags(fs, args[1:], false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("token mint takes no arguments (got %q); give the subject with --sub", pos)
	}
	if *sub == "" {
		return usagef("token mint needs --sub SUBJECT, the user the token names: spacetime token mint --sub alice")
	}
	if *ttl <= 0 {
		return usagef("--ttl must be positive, such as 1h or 30m")
	}
	extra := map[string]any{}
	for _, c := range claims {
		k, v, err := auth.ParseClaimArg(c)
		if err != nil {
			return usagef("--claim %s: %v", c, err)
		}
		extra[k] = v
	}
	dir := a.abs(*dataDir)
	// OpenServerKey creates a key when there is none; a key no server uses
	// would sign tokens nobody accepts, so refuse instead.
	if _, err := os.Stat(filepath.Join(dir, auth.ServerKeyFile)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no server key in %s: give the data directory of the server that should accept the token (--data-dir DIR or SPACETIME_DATA_DIR; `spacetime start` and `spacetime dev` create it, by default in ./%s)", dir, defaultDataDir)
	}
	key, err := auth.OpenServerKey(dir)
	if err != nil {
		return fmt.Errorf("reading the server key: %w", err)
	}
	tok, err := key.Mint(*sub, *ttl, extra)
	if err != nil {
		return fmt.Errorf("signing the token: %w", err)
	}
	if a.json {
		return a.printJSON(map[string]any{
			"token":      tok,
			"issuer":     key.IssuerName(),
			"subject":    *sub,
			"identity":   auth.IdentityFromClaims(key.IssuerName(), *sub),
			"expires_at": time.Now().Add(*ttl).UTC().Truncate(time.Second),
		})
	}
	fmt.Fprintln(a.stdout, tok)
	return nil
}

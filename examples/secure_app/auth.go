package main

import (
	"encoding/json"
	"fmt"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

// tokenClaims are the profile claims a first login reads. The host has
// already checked the signature, issuer, audience and expiry before
// VerifyToken returns them.
type tokenClaims struct {
	PreferredUsername string `json:"preferred_username"`
	Name              string `json:"name"`
	Email             string `json:"email"`
}

// Auth is the tutorial's auth reducer with real tokens: the host verifies
// the token against the issuers it trusts (jwt_verify), the identity derives
// from the token's issuer and subject, and the caller gets a User row the
// first time. The host binds the returned identity to the connection, so
// every later call sees it as ctx.Caller.
func Auth(ctx *stdb.ReducerContext, token string) (stdb.Identity, error) {
	// VerifyToken reads the issuer and subject without encoding/json, which
	// would cost the guest more than the rest of this reducer.
	tok, err := stdb.VerifyToken(token)
	if err != nil {
		// The reason (expired, wrong issuer, bad signature...) is the
		// host's; the token itself is never echoed into errors or logs.
		return stdb.Identity{}, fmt.Errorf("Invalid or malformed authentication token: %w", err)
	}
	id := tok.Identity
	// An existing profile is kept as it is: update_profile may have changed
	// it since the first login.
	if _, ok := UserTable.FilterByIdentityID(id); !ok {
		var c tokenClaims
		if err := json.Unmarshal(tok.Claims, &c); err != nil {
			return stdb.Identity{}, fmt.Errorf("Invalid or malformed authentication token: claims: %w", err)
		}
		username := firstNonEmpty(c.PreferredUsername, c.Name, tok.Subject)
		if _, err := UserTable.Insert(User{
			IdentityID: id,
			Username:   username,
			Email:      c.Email,
			CreatedAt:  uint64(ctx.Timestamp.Micros()),
		}); err != nil {
			return stdb.Identity{}, err
		}
		stdb.Infof("New user %s (identity %s)", username, id)
	}
	// The issuer, which the host verified, may assert the admin role. A
	// role is never removed here: a token without the claim keeps what
	// make_admin granted.
	if role, _ := tok.StringClaim("role"); role == roleAdmin && !isAdmin(id) {
		if err := grantAdmin(ctx, id, stdb.Identity{}); err != nil {
			return stdb.Identity{}, err
		}
	}
	stdb.Infof("Authenticated identity: %s", id)
	return id, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

package auth_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/spacetime-go/spacetime/auth"
)

// The whole flow: the server key mints a dev token (`spacetime token mint`),
// the verifier behind jwt_verify accepts it, and the server turns the
// verified claims into a session token for later HTTP calls.
func Example() {
	dataDir, err := os.MkdirTemp("", "spacetime-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	key, err := auth.OpenServerKey(dataDir) // dataDir/server_key.pem, created once
	if err != nil {
		log.Fatal(err)
	}
	cfg := &auth.Config{DevIssuer: true} // in the server: auth.LoadConfig(path)
	verifiers, err := auth.NewVerifiers(cfg, key)
	if err != nil {
		log.Fatal(err)
	}

	role, value, _ := auth.ParseClaimArg("role=admin")
	token, err := key.Mint("alice", time.Hour, map[string]any{role: value})
	if err != nil {
		log.Fatal(err)
	}

	claims, err := verifiers.For("chat").VerifyToken(context.Background(), token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.Issuer, claims.Subject, claims.Identity.String()[:4])

	session, _, err := key.MintSession(claims)
	if err != nil {
		log.Fatal(err)
	}
	s, err := key.VerifySession(session)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.Identity == claims.Identity)

	_, err = verifiers.For("chat").Verify(context.Background(), session)
	fmt.Println(err)
	// Output:
	// spacetime-dev://local alice c200
	// true
	// this is a server session token: present it as a bearer token to the server, and give auth the token from your identity provider
}

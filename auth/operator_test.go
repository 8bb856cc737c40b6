package auth

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestOperatorTokens(t *testing.T) {
	key, err := OpenServerKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenServerKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, tok, err := key.MintOperator(0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := key.VerifyOperator(tok)
	if err != nil || got != id || id.IsZero() {
		t.Fatalf("VerifyOperator = %s, %v; want %s", got, err, id)
	}
	id2, _, _ := key.MintOperator(time.Hour)
	if id2 == id {
		t.Fatal("two operator identities are equal")
	}

	dev, _ := key.Mint("alice", time.Hour, nil)
	// A token minted two days ago for an hour, by the same key.
	past, err := OpenServerKey(filepath.Dir(key.Path()), WithNow(time.Now().Add(-48*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	_, oldTok, _ := past.MintOperator(time.Hour)
	_, foreign, _ := other.MintOperator(0)
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"dev token", dev, ErrNotOperator},
		{"another server's", foreign, ErrBadSignature},
		{"expired", oldTok, ErrExpired},
		{"garbage", "x.y", ErrMalformedToken},
	} {
		if _, err := key.VerifyOperator(tc.token); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Neither the module verifier nor the session check takes one.
	v, err := NewVerifier(WithIssuers(key.Issuer()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyToken(context.Background(), tok); err == nil {
		t.Error("the verifier accepted an operator token")
	}
	if _, err := key.VerifySession(tok); err == nil {
		t.Error("VerifySession accepted an operator token")
	}
}

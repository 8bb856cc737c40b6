package runtime

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
)

// TestIdentitySystemTable: a successful auth writes the caller's row in the
// identity system table in the same transaction (first_seen kept, last_seen
// moved on), guests read it through the SDK, and cannot write it.
func TestIdentitySystemTable(t *testing.T) {
	key, v := newDevVerifier(t)
	db := newGoDatabase(t, sdkTestModule, WithTokenVerifier(v))
	ctx := context.Background()
	minted := time.Now()
	token, err := key.Mint("alice", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice := auth.IdentityFromClaims(key.IssuerName(), "alice")
	authAt := func(ts time.Time) *CallResult {
		t.Helper()
		res, err := db.Call(ctx, CallRequest{Reducer: "auth", Timestamp: ts, Args: args(func(w *abi.Writer) { w.WriteString(token) })})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	type row struct {
		id                  abi.Identity
		issuer, subject     string
		firstSeen, lastSeen int64
	}
	rows := func() []row {
		t.Helper()
		it, err := db.Store().Snapshot().Scan(mustTable(t, db, abi.IdentityTableName))
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var out []row
		for b, ok := it.Next(); ok; b, ok = it.Next() {
			r := abi.NewReader(b)
			out = append(out, row{r.ReadIdentity(), r.ReadString(), r.ReadString(), r.ReadTimestamp(), r.ReadTimestamp()})
		}
		return out
	}

	t1, t2 := time.UnixMicro(1_700_000_000_000_000), time.UnixMicro(1_700_000_600_000_000)
	res := authAt(t1)
	if res.Verified == nil || res.Verified.Identity != alice || res.Verified.Subject != "alice" || res.Verified.Issuer != key.IssuerName() {
		t.Fatalf("Verified = %+v, want alice from %s", res.Verified, key.IssuerName())
	}
	if !tableInDelta(res, abi.IdentityTableName) {
		t.Error("the identity row is not in the auth call's commit delta")
	}
	want := row{alice, key.IssuerName(), "alice", t1.UnixMicro(), t1.UnixMicro()}
	if got := rows(); len(got) != 1 || got[0] != want {
		t.Fatalf("identity rows after the first auth = %+v, want [%+v]", got, want)
	}
	// last_seen moves only once it is LastSeenResolution old: a returning
	// identity's auth within it writes nothing, so its commit needs no disk.
	for _, step := range []struct {
		name     string
		at       time.Time
		lastSeen time.Time
		written  bool
	}{
		{"within the resolution", t1.Add(LastSeenResolution - time.Microsecond), t1, false},
		{"at the resolution", t1.Add(LastSeenResolution), t1.Add(LastSeenResolution), true},
		{"later", t2, t2, true},
		{"clock gone back", t1, t2, false},
	} {
		res := authAt(step.at)
		if res.Verified == nil || res.Verified.Identity != alice {
			t.Fatalf("%s: Verified = %+v, want alice", step.name, res.Verified)
		}
		if got := tableInDelta(res, abi.IdentityTableName); got != step.written {
			t.Errorf("%s: identity row in the commit delta = %v, want %v", step.name, got, step.written)
		}
		want.lastSeen = step.lastSeen.UnixMicro()
		if got := rows(); len(got) != 1 || got[0] != want {
			t.Fatalf("identity rows after an auth %s = %+v, want [%+v]", step.name, got, want)
		}
	}
	if exp := res.Verified.ExpiresAt; exp.Before(minted.Add(time.Hour-time.Second)) || exp.After(minted.Add(time.Hour+time.Second)) {
		t.Errorf("Verified.ExpiresAt = %v, want the token's exp, about %v", exp, minted.Add(time.Hour))
	}

	lookup := func(id abi.Identity) (string, bool) {
		t.Helper()
		res, err := db.Call(ctx, CallRequest{Reducer: "identity_subject", Args: args(func(w *abi.Writer) { w.WriteIdentity(id) })})
		if err != nil {
			t.Fatal(err)
		}
		opt := abi.NewReader(res.Return).ReadValue(abi.OptionOf(abi.TypeString))
		if len(opt.Elems) == 0 {
			return "", false
		}
		return opt.Elems[0].Str, true
	}
	if sub, ok := lookup(alice); !ok || sub != "alice" {
		t.Errorf("identity_subject(alice) = %q, %v; want alice", sub, ok)
	}
	if sub, ok := lookup(abi.Identity{9}); ok {
		t.Errorf("identity_subject(unknown) = %q, want none", sub)
	}

	_, err = db.Call(ctx, CallRequest{Reducer: "write_identity"})
	var rerr *ReducerError
	if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "READ_ONLY") || !strings.Contains(rerr.Message, "system table") {
		t.Fatalf("a guest inserting into the identity table: err = %v, want a reducer error with READ_ONLY", err)
	}
	if got := rows(); len(got) != 1 {
		t.Fatalf("%d identity rows after a forged insert, want 1", len(got))
	}

	// A failed auth (bad token) changes nothing.
	if _, err := db.Call(ctx, CallRequest{Reducer: "auth", Args: args(func(w *abi.Writer) { w.WriteString(token + "x") })}); err == nil {
		t.Fatal("auth with a tampered token succeeded")
	}
	if got := rows(); len(got) != 1 || got[0] != want {
		t.Fatalf("identity rows after a refused auth = %+v, want [%+v]", got, want)
	}
}

func tableInDelta(res *CallResult, name string) bool {
	if res.Commit.Delta == nil {
		return false
	}
	for _, td := range res.Commit.Delta.Tables {
		if td.Name == name && len(td.Inserts) == 1 {
			return true
		}
	}
	return false
}

// TestVerifiedIdentity: the host vouches only for an identity derived from
// claims jwt_verify accepted in the same call.
func TestVerifiedIdentity(t *testing.T) {
	alice := auth.IdentityFromClaims("https://issuer.example/", "alice")
	claims := []byte(`{"iss":"https://issuer.example/","sub":"alice","exp":1}`)
	other := []byte(`{"iss":"https://issuer.example/","sub":"bob"}`)
	for _, tc := range []struct {
		name     string
		ret      []byte
		verified [][]byte
		want     bool
	}{
		{"matching token", alice[:], [][]byte{claims}, true},
		{"second of two tokens", alice[:], [][]byte{other, claims}, true},
		{"no token verified", alice[:], nil, false},
		{"another subject's token", alice[:], [][]byte{other}, false},
		{"zero identity", make([]byte, abi.IdentitySize), [][]byte{claims}, false},
		{"short return", alice[:5], [][]byte{claims}, false},
		{"claims not JSON", alice[:], [][]byte{[]byte("{")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := verifiedIdentity(tc.ret, tc.verified)
			if (got != nil) != tc.want {
				t.Fatalf("verifiedIdentity = %+v, want found=%v", got, tc.want)
			}
			if got != nil && (got.Identity != alice || got.Subject != "alice") {
				t.Fatalf("verifiedIdentity = %+v", got)
			}
		})
	}
}

// gateVerifier counts verifications, and can hold them until released.
type gateVerifier struct {
	v       *auth.Verifier
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (g *gateVerifier) Verify(ctx context.Context, token string) ([]byte, error) {
	g.calls.Add(1)
	if g.entered != nil {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.v.Verify(ctx, token)
}

// TestAuthVerifiesBeforeTheWriterSlot: an auth reducer's token is verified
// once per call, before the call takes the database's writer slot, so a
// slow verification (a JWKS fetch, or just a signature) does not hold up
// other transactions; a refused token is refused with the same reason.
func TestAuthVerifiesBeforeTheWriterSlot(t *testing.T) {
	key, v := newDevVerifier(t)
	g := &gateVerifier{v: v}
	db := newGoDatabase(t, sdkTestModule, WithTokenVerifier(g))
	ctx := context.Background()
	token, err := key.Mint("alice", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	authWith := func(tok string) (*CallResult, error) {
		return db.Call(ctx, CallRequest{Reducer: "auth", Args: args(func(w *abi.Writer) { w.WriteString(tok) })})
	}
	for _, tc := range []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"valid token", token, true},
		{"tampered token", token[:len(token)-2] + "AA", false},
	} {
		g.calls.Store(0)
		res, err := authWith(tc.token)
		if got := g.calls.Load(); got != 1 {
			t.Errorf("%s: %d verifications, want 1", tc.name, got)
		}
		if ok := err == nil && res.Verified != nil; ok != tc.wantOK {
			t.Fatalf("%s: verified = %v (%v), want %v", tc.name, ok, err, tc.wantOK)
		}
		if !tc.wantOK && !strings.Contains(err.Error(), "signature") {
			t.Errorf("%s: error %v does not give the verifier's reason", tc.name, err)
		}
	}

	// While a verification is held, another transaction commits.
	g.entered, g.release = make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() { _, err := authWith(token); done <- err }()
	<-g.entered
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	tx, err := db.Store().Begin(wctx)
	cancel()
	if err != nil {
		t.Fatalf("the writer slot is held while the token is verified: %v", err)
	}
	tx.Rollback()
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

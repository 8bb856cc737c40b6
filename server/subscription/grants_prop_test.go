package subscription

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

var grantQueryPool = []string{
	"SELECT * FROM User",
	"SELECT * FROM User WHERE role = 'admin'",
	"SELECT * FROM Msg",
	"SELECT * FROM Msg WHERE sender = :caller",
	"SELECT * FROM Msg WHERE text = 'a'",
	"SELECT * FROM Msg WHERE recipient = :caller OR text = 'b'",
	"SELECT * FROM Note",
	"SELECT * FROM Note WHERE body != 'x'",
	"SELECT * FROM Board",
	"SELECT * FROM Pub",
}

// The property of issue 6: several identities subscribe with random
// queries while random transactions insert, update and delete rows, roles
// change, connections re-authenticate and the module is republished with
// other grants. After every transaction (and at
// every message a client receives) each client's cache equals a fresh query
// of its subscriptions under its grants at that offset, which also means no
// client ever holds a row its grants do not allow; a delete is only ever of
// a row the client has (the client helper checks it). A subscription to a
// table the reader may not read fails; a set whose table becomes unreadable
// is dropped with a SubscriptionError.
func TestGrantsProperty(t *testing.T) {
	s, err := store.Open(context.Background(), t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var iter, flips, revokes, windows, republishes atomic.Int64
	defer func() {
		t.Logf("%d cases, %d role changes, %d republishes, %d revocations, %d commits folded in", iter.Load(), flips.Load(), republishes.Load(), revokes.Load(), windows.Load())
	}()
	rapid.Check(t, func(rt *rapid.T) {
		var opts []Option
		if rapid.IntRange(0, 4).Draw(rt, "brute force") == 0 {
			opts = append(opts, WithEqualityIndex(false))
		}
		gf := newGrantFixture(t, s, fmt.Sprintf("p%d", iter.Add(1)), opts...)
		defer gf.close()
		type live struct {
			c      *client
			caller *abi.Identity
			owner  bool
		}
		var conns []*live
		all := func() []*client {
			var cs []*client
			for _, l := range conns {
				cs = append(cs, l.c)
			}
			return cs
		}
		idn := func(label string) abi.Identity { return ident(rapid.IntRange(0, 3).Draw(rt, label)) }
		member := func(label string) abi.Identity { return ident(rapid.IntRange(1, 3).Draw(rt, label)) }
		write := func(tx *store.Tx) {
			switch rapid.IntRange(0, 8).Draw(rt, "write") {
			case 0, 1:
				gf.upsert(tx, "Msg", msgRow(uint64(rapid.IntRange(1, 6).Draw(rt, "msg")), member("from"), member("to"), rapid.SampledFrom([]string{"a", "b"}).Draw(rt, "text"))...)
			case 2:
				gf.del(tx, "Msg", abi.U64(uint64(rapid.IntRange(1, 6).Draw(rt, "msg"))))
			case 3:
				gf.upsert(tx, "Note", abi.U64(uint64(rapid.IntRange(1, 4).Draw(rt, "note"))), abi.IdentityValue(member("owner")), abi.String(rapid.SampledFrom([]string{"x", "y"}).Draw(rt, "body")))
			case 4:
				gf.del(tx, "Note", abi.U64(uint64(rapid.IntRange(1, 4).Draw(rt, "note"))))
			case 5:
				gf.upsert(tx, "Board", abi.U64(uint64(rapid.IntRange(1, 3).Draw(rt, "board"))), abi.String(rapid.SampledFrom([]string{"p", "q"}).Draw(rt, "body")))
			case 6:
				gf.del(tx, "Board", abi.U64(uint64(rapid.IntRange(1, 3).Draw(rt, "board"))))
			case 7:
				gf.upsert(tx, "Pub", abi.U64(uint64(rapid.IntRange(1, 3).Draw(rt, "pub"))), abi.String("v"))
			case 8:
				gf.del(tx, "Pub", abi.U64(uint64(rapid.IntRange(1, 3).Draw(rt, "pub"))))
			}
		}
		changeRole := func(tx *store.Tx) {
			flips.Add(1)
			who := member("who")
			if rapid.IntRange(0, 3).Draw(rt, "remove user") == 0 {
				gf.del(tx, "User", abi.IdentityValue(who))
			} else {
				gf.upsert(tx, "User", role(who, rapid.SampledFrom([]string{"admin", "member"}).Draw(rt, "role"))...)
			}
		}
		// inWindow sometimes commits a transaction (often a role change)
		// while a Subscribe or SetIdentity has read its rows and not yet
		// gone live, so that it is folded in.
		inWindow := func() {
			if rapid.IntRange(0, 2).Draw(rt, "commit in the window") != 0 {
				return
			}
			gf.e.afterInitial = func() {
				gf.e.afterInitial = nil
				off := gf.tx(func(tx *store.Tx) {
					if rapid.Bool().Draw(rt, "window role") {
						changeRole(tx)
					}
					write(tx)
				})
				waitEngine(t, gf.e, off)
				windows.Add(1)
			}
		}
		republished := false
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for step := 0; step < steps; step++ {
			switch kind := rapid.IntRange(0, 9).Draw(rt, "kind"); {
			case kind == 0 && len(conns) < 4 || len(conns) == 0:
				caller := idn("caller")
				owner := rapid.IntRange(0, 7).Draw(rt, "owner") == 0
				l := &live{caller: &caller, owner: owner}
				l.c = gf.connect(len(conns)+1, l.caller, owner)
				conns = append(conns, l)
			case kind <= 2:
				l := conns[rapid.IntRange(0, len(conns)-1).Draw(rt, "conn")]
				set := uint32(rapid.IntRange(1, 2).Draw(rt, "set"))
				qs := rapid.SliceOfN(rapid.SampledFrom(grantQueryPool), 1, 2).Draw(rt, "queries")
				l.c.mu.Lock()
				caller := *l.caller
				l.c.mu.Unlock()
				_, wantErr := gf.freshGrants(gf.e.Stats().Offset, caller, l.owner, qs...)
				inWindow()
				_, err := l.c.subscribe(gf.e, set, qs...)
				gf.e.afterInitial = nil
				if (err != nil) != (wantErr != nil) || err != nil && !errors.Is(err, ErrPrivateTable) {
					t.Fatalf("subscribe %q as %s: err %v, want %v", qs, caller, err, wantErr)
				}
			case kind == 3:
				l := conns[rapid.IntRange(0, len(conns)-1).Draw(rt, "conn")]
				set := uint32(rapid.IntRange(1, 2).Draw(rt, "set"))
				l.c.mu.Lock()
				_, has := l.c.cache[set]
				l.c.mu.Unlock()
				if has {
					if err := gf.e.Unsubscribe(l.c.id, set); err != nil {
						t.Fatal(err)
					}
					l.c.dropSet(set)
				}
			case kind <= 6:
				gf.tx(func(tx *store.Tx) {
					for i := rapid.IntRange(1, 3).Draw(rt, "writes"); i > 0; i-- {
						write(tx)
					}
					if rapid.IntRange(0, 3).Draw(rt, "with a role change") == 0 {
						changeRole(tx)
					}
				})
			case kind == 7:
				gf.tx(changeRole)
			case kind == 8 && rapid.IntRange(0, 2).Draw(rt, "republish") == 0:
				// A republish that changes the grants: views are recomputed,
				// sets on a table no longer open are dropped.
				republished = !republished
				if republished {
					gf.mod.set(altGrantDefs())
				} else {
					gf.mod.set(grantDefs())
				}
				revokes.Add(int64(len(gf.e.ModuleChanged())))
				republishes.Add(1)
			default:
				// Re-authentication (or a session lapsing to anonymous).
				l := conns[rapid.IntRange(0, len(conns)-1).Draw(rt, "conn")]
				next := idn("new caller")
				l.c.mu.Lock()
				l.c.nextCaller = &next
				l.c.mu.Unlock()
				inWindow()
				revokes.Add(int64(len(gf.e.SetIdentity(l.c.id, next))))
				gf.e.afterInitial = nil
				gf.settleAll(all()...)
				l.c.mu.Lock()
				*l.caller, l.c.nextCaller = next, nil
				l.c.mu.Unlock()
			}
			off := gf.settleAll(all()...)
			for _, l := range conns {
				gf.checkNow(l.c, off, *l.caller, l.owner)
			}
		}
	})
}

// altGrantDefs are the grants of a republished module: some narrower, some
// wider, one table closed.
func altGrantDefs() []abi.GrantDef {
	return []abi.GrantDef{
		{Table: "User", Where: "identity_id = :caller"},
		{Table: "Msg", Where: "recipient = :caller or sender = :caller"}, // read through two indexes
		{Table: "Note", To: "public"},
		{Table: "Board", Where: ":caller in (select identity_id from User where role = 'member')"},
	}
}

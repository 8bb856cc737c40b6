package subscription

import (
	"reflect"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/store"
)

func TestLiveUpdates(t *testing.T) {
	alice, bob := ident(1), ident(2)
	cases := []struct {
		name    string
		caller  abi.Identity
		queries []string
	}{
		{"whole table", alice, []string{"SELECT * FROM Post"}},
		{"literal equality", alice, []string{"SELECT * FROM Post WHERE topic = 'go'"}},
		{"caller equality", alice, []string{"SELECT * FROM Post WHERE owner = :caller"}},
		{"range and or", bob, []string{"SELECT * FROM Post WHERE n > 5 OR topic = 'rust'"}},
		{"not", bob, []string{"SELECT * FROM Post WHERE NOT (owner = :caller) AND n <= 20"}},
		{"overlapping queries in one set", alice, []string{"SELECT * FROM Post WHERE topic = 'go'", "SELECT * FROM Post WHERE n >= 10", "SELECT * FROM Post"}},
		{"two tables", alice, []string{"SELECT * FROM Post WHERE owner = :caller", "SELECT * FROM Log WHERE a = 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.tx(func(tx *store.Tx) {
				must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, alice, "go", 1)))
				must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, bob, "rust", 10)))
				must[[]byte](t)(tx.Insert(f.log, logRow(t, 1, "x")))
			})
			c := newClient(t, connID(1))
			f.e.Connect(c.id, tc.caller, false, c.send)
			a, err := c.subscribe(f.e, 7, tc.queries...)
			if err != nil {
				t.Fatal(err)
			}
			// Commit returns once durable; the engine may not have seen the
			// commit yet, and then delivers it as an update.
			if a.Offset > 1 || a.QuerySetID != 7 {
				t.Fatalf("applied at offset %d set %d, want <= 1 and 7", a.Offset, a.QuerySetID)
			}
			want := f.fresh(a.Offset, tc.caller, tc.queries...)
			for _, tb := range a.Tables {
				if got := sortedRows(tb.Rows); !reflect.DeepEqual(got, want[tb.Table]) {
					t.Fatalf("initial %s = %v, want %v", tb.Table, got, want[tb.Table])
				}
			}
			var last uint64
			steps := []func(tx *store.Tx){
				func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.post, postRow(t, 0, alice, "go", 30))) },
				func(tx *store.Tx) { must[[]byte](t)(tx.Update(f.pk, postRow(t, 1, alice, "rust", 15))) },
				func(tx *store.Tx) { must[[]byte](t)(tx.Update(f.pk, postRow(t, 2, alice, "go", 3))) },
				func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.pk, u64Key(3))) },
				func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.log, logRow(t, 1, "x"))) },
				func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.logA, u32Key(1))) },
				func(tx *store.Tx) { must[int](t)(tx.DeleteByKey(f.pk, u64Key(1))) },
			}
			for i, step := range steps {
				last = f.tx(step)
				f.settle(c, last)
				want := f.fresh(last, tc.caller, tc.queries...)
				for table, rows := range want {
					if got := c.rows(7, table); !equalRows(got, rows) {
						t.Fatalf("step %d (offset %d): %s = %v, want %v", i, last, table, got, rows)
					}
				}
				// A commit to a table nobody watches sends nothing.
				n := len(c.updates())
				off := f.tx(func(tx *store.Tx) { must[[]byte](t)(tx.Insert(f.sec, postSecret(t, last))) })
				f.settle(c, off)
				if len(c.updates()) != n {
					t.Fatalf("a commit to Secret sent an update")
				}
			}
		})
	}
}

func postSecret(t testing.TB, id uint64) []byte {
	r, err := abi.EncodeRow(nil, testTables()[2].ColumnTypes(), []abi.Value{abi.U64(id), abi.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func equalRows(a, b []string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

func waitEngine(t testing.TB, e *Engine, off uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats().Offset < off {
		if time.Now().After(deadline) {
			t.Fatalf("engine stuck at offset %d, want %d", e.Stats().Offset, off)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// settle waits until the engine has processed offset off and the client's
// outbox is drained.
func (f *fixture) settle(c *client, off uint64) {
	f.t.Helper()
	waitEngine(f.t, f.e, off)
	deadline := time.Now().Add(30 * time.Second)
	for !f.e.idle(c.id) {
		if time.Now().After(deadline) {
			f.t.Fatalf("client %s outbox never drained", c.id)
		}
		time.Sleep(100 * time.Microsecond)
	}
	c.check()
}

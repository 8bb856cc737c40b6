package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCowTreeModel runs random sets, deletes, loads and copies against a
// sorted slice per tree, and checks every copy still holds exactly what it
// held when it was taken (copy-on-write never leaks a change into a copy).
func TestCowTreeModel(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keys, ops int
		seed      uint64
	}{
		{"tiny key space", 8, 2000, 1},
		{"one node", 40, 5000, 2},
		{"three levels", 3000, 40000, 3},
		{"wide", 100000, 60000, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, 99))
			tr := newCowTree(func(a, b int) bool { return a < b })
			var model []int
			type snap struct {
				tree  *cowTree[int]
				items []int
			}
			var snaps []snap
			check := func(tr *cowTree[int], want []int) {
				t.Helper()
				if tr.Len() != len(want) {
					t.Fatalf("Len %d, want %d", tr.Len(), len(want))
				}
				it := tr.Iter()
				var got []int
				for ok := it.First(); ok; ok = it.Next() {
					got = append(got, it.Item())
				}
				if !slices.Equal(got, want) {
					t.Fatalf("iteration gives %d items, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
				}
			}
			for op := 0; op < tc.ops; op++ {
				k := r.IntN(tc.keys)
				i, found := slices.BinarySearch(model, k)
				switch x := r.IntN(100); {
				case x < 50:
					prev, replaced := tr.Set(k)
					if replaced != found || replaced && prev != k {
						t.Fatalf("op %d: Set(%d) = %d, %v; model has it: %v", op, k, prev, replaced, found)
					}
					if !found {
						model = slices.Insert(model, i, k)
					}
				case x < 85:
					prev, ok := tr.Delete(k)
					if ok != found || ok && prev != k {
						t.Fatalf("op %d: Delete(%d) = %d, %v; model has it: %v", op, k, prev, ok, found)
					}
					if found {
						model = slices.Delete(model, i, i+1)
					}
				case x < 95:
					got, ok := tr.Get(k)
					if ok != found || ok && got != k {
						t.Fatalf("op %d: Get(%d) = %d, %v; model has it: %v", op, k, got, ok, found)
					}
					it := tr.Iter()
					ok = it.Seek(k)
					if ok != (i < len(model)) || ok && it.Item() != model[i] {
						t.Fatalf("op %d: Seek(%d) = %v; model says the next is at %d of %d", op, k, ok, i, len(model))
					}
				case x < 97:
					if len(snaps) < 30 {
						snaps = append(snaps, snap{tr.Copy(), slices.Clone(model)})
					}
				default:
					// Append a run larger than everything (bulk load).
					top := tc.keys
					if len(model) > 0 {
						top = max(top, model[len(model)-1]+1)
					}
					for j := 0; j < 40; j++ {
						tr.Load(top + j)
						model = append(model, top+j)
					}
				}
				if op%(tc.ops/20) == 0 {
					check(tr, model)
					checkShape(t, tr)
				}
			}
			check(tr, model)
			for _, s := range snaps {
				check(s.tree, s.items)
			}
			// Empty it entirely.
			for _, k := range slices.Clone(model) {
				if _, ok := tr.Delete(k); !ok {
					t.Fatalf("Delete(%d) of a present item failed", k)
				}
			}
			check(tr, nil)
			if tr.root != nil {
				t.Fatal("an empty tree keeps a root")
			}
		})
	}
}

// checkShape checks what iteration cannot see: every leaf at the same
// depth, and no node but the root without items.
func checkShape(t *testing.T, tr *cowTree[int]) {
	t.Helper()
	leafDepth := -1
	var walk func(n *node[int], depth int)
	walk = func(n *node[int], depth int) {
		if n.n == 0 && n != tr.root {
			t.Fatalf("an empty node at depth %d", depth)
		}
		if n.kids == nil {
			if leafDepth >= 0 && depth != leafDepth {
				t.Fatalf("leaves at depths %d and %d", leafDepth, depth)
			}
			leafDepth = depth
			return
		}
		for i := 0; i <= n.n; i++ {
			walk(n.kids[i], depth+1)
		}
	}
	if tr.root != nil {
		walk(tr.root, 0)
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

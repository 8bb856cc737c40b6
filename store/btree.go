package store

import "sync/atomic"

// cowTree is an ordered set kept in a copy-on-write B-tree: Copy is O(1), and
// the first write to a node after a Copy copies that node (and the path to
// it) instead of changing what the other copies see.
//
// It replaces github.com/tidwall/btree here because a one-row transaction
// path-copies every tree it touches, and tidwall's copy of a node takes four
// allocations (node, items, children slice and a pointer to it) at their
// full capacity. Here a node is one allocation: items and children live in
// arrays inside it. That is most of the allocations and bytes of a one-row
// transaction, and of the garbage collection they cause.
//
// The set holds distinct items by less; it is not safe for concurrent
// writes, but any number of goroutines may read a tree nobody writes.
type cowTree[T any] struct {
	root  *node[T]
	count int
	gen   uint64 // nodes with this generation belong to this tree alone
	less  func(a, b T) bool
	gens  *atomic.Uint64 // generation source shared by the tree's copies
}

const (
	// maxItems is the most items a node holds; minItems the fewest a node
	// other than the root keeps after a delete (the CLRS B-tree with t=16).
	maxItems = 31
	minItems = maxItems / 2
)

type node[T any] struct {
	gen   uint64
	n     int
	items [maxItems]T
	kids  *[maxItems + 1]*node[T] // nil for a leaf; else points into the branch holding this node
}

// branch is an inner node: its children array shares the node's allocation.
type branch[T any] struct {
	node[T]
	kidArr [maxItems + 1]*node[T]
}

func newCowTree[T any](less func(a, b T) bool) *cowTree[T] {
	gens := new(atomic.Uint64)
	return &cowTree[T]{less: less, gens: gens, gen: gens.Add(1)}
}

// Len returns the number of items.
func (t *cowTree[T]) Len() int { return t.count }

// Copy returns a copy of the tree in O(1). Afterwards both trees copy a node
// before their first change to it.
func (t *cowTree[T]) Copy() *cowTree[T] {
	return t.copyTo(new(cowTree[T]))
}

// copyTo is Copy into dst, which the caller provides (inside a larger
// allocation).
func (t *cowTree[T]) copyTo(dst *cowTree[T]) *cowTree[T] {
	*dst = *t
	dst.gen = t.gens.Add(1)
	t.gen = t.gens.Add(1)
	return dst
}

func (t *cowTree[T]) newLeaf() *node[T] { return &node[T]{gen: t.gen} }

func (t *cowTree[T]) newBranch() *node[T] {
	b := &branch[T]{}
	b.gen = t.gen
	b.kids = &b.kidArr
	return &b.node
}

// own returns n itself when this tree owns it, else a copy the tree owns.
func (t *cowTree[T]) own(n *node[T]) *node[T] {
	if n.gen == t.gen {
		return n
	}
	if n.kids == nil {
		c := &node[T]{}
		*c = *n
		c.gen = t.gen
		return c
	}
	b := &branch[T]{}
	b.node = *n
	b.kidArr = *n.kids
	b.kids = &b.kidArr
	b.gen = t.gen
	return &b.node
}

// search returns the index of the first item of n not less than key, and
// whether it equals key.
func (t *cowTree[T]) search(n *node[T], key T) (int, bool) {
	lo, hi := 0, n.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.less(n.items[m], key) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n.n && !t.less(key, n.items[lo])
}

// Get returns the item equal to key.
func (t *cowTree[T]) Get(key T) (T, bool) {
	n := t.root
	for n != nil {
		i, found := t.search(n, key)
		if found {
			return n.items[i], true
		}
		if n.kids == nil {
			break
		}
		n = n.kids[i]
	}
	var zero T
	return zero, false
}

// Set inserts item, replacing an equal one, and returns the one replaced.
func (t *cowTree[T]) Set(item T) (T, bool) { return t.set(item, false) }

// Load adds item, which is expected to be greater than every item in the
// tree (bulk loading in order): it then goes to the right edge without
// searching, and full nodes split so that the left part stays full. An item
// out of order is inserted like Set.
func (t *cowTree[T]) Load(item T) {
	if t.root != nil {
		n := t.root
		for n.kids != nil {
			n = n.kids[n.n]
		}
		if n.n == 0 || !t.less(n.items[n.n-1], item) {
			t.set(item, false)
			return
		}
	}
	t.set(item, true)
}

func (t *cowTree[T]) set(item T, appending bool) (T, bool) {
	var zero T
	if t.root == nil {
		t.root = t.newLeaf()
		t.root.items[0] = item
		t.root.n = 1
		t.count = 1
		return zero, false
	}
	t.root = t.own(t.root)
	if t.root.n == maxItems {
		r := t.newBranch()
		r.kids[0] = t.root
		t.splitChild(r, 0, appending)
		t.root = r
	}
	n := t.root
	for {
		var i int
		if appending {
			i = n.n
		} else {
			var found bool
			if i, found = t.search(n, item); found {
				prev := n.items[i]
				n.items[i] = item
				return prev, true
			}
		}
		if n.kids == nil {
			copy(n.items[i+1:n.n+1], n.items[i:n.n])
			n.items[i] = item
			n.n++
			t.count++
			return zero, false
		}
		c := t.own(n.kids[i])
		n.kids[i] = c
		if c.n == maxItems {
			t.splitChild(n, i, appending)
			switch {
			case t.less(n.items[i], item):
				i++
			case !t.less(item, n.items[i]):
				prev := n.items[i]
				n.items[i] = item
				return prev, true
			}
			c = n.kids[i]
		}
		n = c
	}
}

// splitChild splits the full child i of p (both owned) around an item that
// moves up into p. When appending, the left part keeps all but one item, so
// that a tree loaded in order ends up with full nodes.
func (t *cowTree[T]) splitChild(p *node[T], i int, appending bool) {
	c := p.kids[i]
	m := maxItems / 2
	if appending {
		m = maxItems - 2
	}
	var r *node[T]
	if c.kids == nil {
		r = t.newLeaf()
	} else {
		r = t.newBranch()
		copy(r.kids[:], c.kids[m+1:c.n+1])
		clear(c.kids[m+1 : c.n+1])
	}
	copy(r.items[:], c.items[m+1:c.n])
	r.n = c.n - m - 1
	mid := c.items[m]
	clear(c.items[m:c.n])
	c.n = m
	copy(p.items[i+1:p.n+1], p.items[i:p.n])
	p.items[i] = mid
	copy(p.kids[i+2:p.n+2], p.kids[i+1:p.n+1])
	p.kids[i+1] = r
	p.n++
}

// Delete removes the item equal to key and returns it.
func (t *cowTree[T]) Delete(key T) (T, bool) {
	var zero T
	if t.root == nil {
		return zero, false
	}
	t.root = t.own(t.root)
	prev, ok := t.delete(t.root, key)
	if t.root.n == 0 {
		if t.root.kids == nil {
			t.root = nil
		} else {
			t.root = t.root.kids[0]
		}
	}
	if ok {
		t.count--
	}
	return prev, ok
}

// delete removes key from the subtree of n, which the tree owns and which,
// unless it is the root, holds more than minItems items (CLRS B-TREE-DELETE).
func (t *cowTree[T]) delete(n *node[T], key T) (T, bool) {
	var zero T
	for {
		i, found := t.search(n, key)
		if n.kids == nil {
			if !found {
				return zero, false
			}
			prev := n.items[i]
			copy(n.items[i:n.n-1], n.items[i+1:n.n])
			n.n--
			n.items[n.n] = zero
			return prev, true
		}
		if found {
			prev := n.items[i]
			left, right := n.kids[i], n.kids[i+1]
			switch {
			case left.n > minItems:
				left = t.own(left)
				n.kids[i] = left
				// Replace the item by its predecessor, then delete that.
				p := left
				for p.kids != nil {
					p = p.kids[p.n]
				}
				pred := p.items[p.n-1]
				n.items[i] = pred
				n, key = left, pred
			case right.n > minItems:
				right = t.own(right)
				n.kids[i+1] = right
				s := right
				for s.kids != nil {
					s = s.kids[0]
				}
				succ := s.items[0]
				n.items[i] = succ
				n, key = right, succ
			default:
				left = t.merge(n, i)
				n = left
			}
			if _, ok := t.delete(n, key); !ok {
				panic("store: cowTree lost an item it had just found")
			}
			return prev, true
		}
		n = t.fill(n, i)
	}
}

// fill makes child i of n (owned) hold more than minItems items, borrowing
// from a sibling or merging with one, and returns the child to descend into.
func (t *cowTree[T]) fill(n *node[T], i int) *node[T] {
	c := t.own(n.kids[i])
	n.kids[i] = c
	if c.n > minItems {
		return c
	}
	if i > 0 && n.kids[i-1].n > minItems {
		l := t.own(n.kids[i-1])
		n.kids[i-1] = l
		// Rotate right: n.items[i-1] comes down to c, l's last goes up.
		copy(c.items[1:c.n+1], c.items[:c.n])
		c.items[0] = n.items[i-1]
		if c.kids != nil {
			copy(c.kids[1:c.n+2], c.kids[:c.n+1])
			c.kids[0] = l.kids[l.n]
			l.kids[l.n] = nil
		}
		c.n++
		n.items[i-1] = l.items[l.n-1]
		var zero T
		l.items[l.n-1] = zero
		l.n--
		return c
	}
	if i < n.n && n.kids[i+1].n > minItems {
		r := t.own(n.kids[i+1])
		n.kids[i+1] = r
		// Rotate left: n.items[i] comes down to c, r's first goes up.
		c.items[c.n] = n.items[i]
		if c.kids != nil {
			c.kids[c.n+1] = r.kids[0]
			copy(r.kids[:r.n], r.kids[1:r.n+1])
			r.kids[r.n] = nil
		}
		c.n++
		n.items[i] = r.items[0]
		copy(r.items[:r.n-1], r.items[1:r.n])
		var zero T
		r.items[r.n-1] = zero
		r.n--
		return c
	}
	if i < n.n {
		return t.merge(n, i)
	}
	return t.merge(n, i-1)
}

// merge joins children i and i+1 of n (owned) around n.items[i] into child
// i, removes both from n and returns the merged child (owned).
func (t *cowTree[T]) merge(n *node[T], i int) *node[T] {
	l := t.own(n.kids[i])
	n.kids[i] = l
	r := n.kids[i+1]
	l.items[l.n] = n.items[i]
	copy(l.items[l.n+1:], r.items[:r.n])
	if l.kids != nil {
		copy(l.kids[l.n+1:], r.kids[:r.n+1])
	}
	l.n += r.n + 1
	copy(n.items[i:n.n-1], n.items[i+1:n.n])
	copy(n.kids[i+1:n.n], n.kids[i+2:n.n+1])
	n.n--
	var zero T
	n.items[n.n] = zero
	n.kids[n.n+1] = nil
	return l
}

// cowIter walks a tree in order. The tree must not change while it is in
// use (callers iterate over a Copy when it might).
type cowIter[T any] struct {
	t     *cowTree[T]
	stack []iterFrame[T]
	buf   [12]iterFrame[T]
}

// iterFrame is a node on the path to the current item: the current item is
// items[i] of the top frame; in the frames below, i is the child the path
// goes through, and items[i] comes after it.
type iterFrame[T any] struct {
	n *node[T]
	i int
}

// Iter returns an iterator; call First or Seek before Item.
func (t *cowTree[T]) Iter() cowIter[T] { return cowIter[T]{t: t} }

func (it *cowIter[T]) reset() {
	if it.stack == nil {
		it.stack = it.buf[:0]
	}
	it.stack = it.stack[:0]
}

// First moves to the smallest item.
func (it *cowIter[T]) First() bool {
	it.reset()
	n := it.t.root
	if n == nil || n.n == 0 {
		return false
	}
	it.leftmost(n)
	return true
}

func (it *cowIter[T]) leftmost(n *node[T]) {
	for n.kids != nil {
		it.stack = append(it.stack, iterFrame[T]{n, 0})
		n = n.kids[0]
	}
	it.stack = append(it.stack, iterFrame[T]{n, 0})
}

// Seek moves to the smallest item not less than key.
func (it *cowIter[T]) Seek(key T) bool {
	it.reset()
	n := it.t.root
	for n != nil {
		i, found := it.t.search(n, key)
		it.stack = append(it.stack, iterFrame[T]{n, i})
		if found || n.kids == nil {
			break
		}
		n = n.kids[i]
	}
	return it.settle()
}

// settle pops finished frames until the top one has a current item.
func (it *cowIter[T]) settle() bool {
	for len(it.stack) > 0 {
		f := &it.stack[len(it.stack)-1]
		if f.i < f.n.n {
			return true
		}
		it.stack = it.stack[:len(it.stack)-1]
	}
	return false
}

// Next moves to the next item.
func (it *cowIter[T]) Next() bool {
	if len(it.stack) == 0 {
		return false
	}
	f := &it.stack[len(it.stack)-1]
	f.i++
	if f.n.kids != nil {
		it.leftmost(f.n.kids[f.i])
		return true
	}
	return it.settle()
}

// Item returns the current item.
func (it *cowIter[T]) Item() T {
	f := &it.stack[len(it.stack)-1]
	return f.n.items[f.i]
}

// Release drops the iterator's path.
func (it *cowIter[T]) Release() {
	clear(it.stack)
	it.stack = it.stack[:0]
}

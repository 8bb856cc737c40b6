// Command sdktest is the Go SDK's test module. Each reducer exercises one
// path of the SDK and the host; the runtime's end-to-end tests call them.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spacetime-go/spacetime/modules/go/stdb"
)

func bump(key string) (uint64, error) {
	c, ok := CounterTable.FilterByKey(key)
	if !ok {
		_, err := CounterTable.Insert(Counter{Key: key, Value: 1})
		return 1, err
	}
	c.Value++
	return c.Value, CounterTable.UpdateByKey(c)
}

func Init(ctx *stdb.ReducerContext) error {
	_, err := bump("init")
	return err
}

func ClientConnected(ctx *stdb.ReducerContext) error {
	_, err := bump("client_connected")
	return err
}

func ClientDisconnected(ctx *stdb.ReducerContext) error {
	_, err := bump("client_disconnected")
	return err
}

// InsertItem inserts an item owned by the caller and returns its id.
func InsertItem(ctx *stdb.ReducerContext, name string, score int32, note *string, tags []string) (uint64, error) {
	it, err := ItemTable.Insert(Item{Name: name, Score: score, Owner: ctx.Caller, Note: note, Tags: tags, At: ctx.Timestamp})
	return it.ID, err
}

// InsertBig inserts an item whose data is size bytes, larger than the SDK's
// first iterator buffer when size > 4096.
func InsertBig(ctx *stdb.ReducerContext, name string, size uint32) error {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	_, err := ItemTable.Insert(Item{Name: name, Owner: ctx.Caller, Data: data, At: ctx.Timestamp})
	return err
}

func UpdateScore(ctx *stdb.ReducerContext, name string, score int32) error {
	it, ok := ItemTable.FilterByName(name)
	if !ok {
		return fmt.Errorf("no item named %q", name)
	}
	it.Score = score
	return ItemTable.UpdateByID(it)
}

func DeleteItem(ctx *stdb.ReducerContext, name string) (bool, error) {
	return ItemTable.DeleteByName(name)
}

func DeleteByScore(ctx *stdb.ReducerContext, score int32) (uint32, error) {
	return ItemTable.DeleteByScore(score)
}

func CountItems(ctx *stdb.ReducerContext) (uint64, error) { return ItemTable.Count(), nil }

// SumScores iterates over every row.
func SumScores(ctx *stdb.ReducerContext) (int64, error) {
	var sum int64
	for it := range ItemTable.Iter() {
		sum += int64(it.Score)
	}
	return sum, nil
}

// NamesInScoreRange returns the names with lo <= score < hi, in score order.
func NamesInScoreRange(ctx *stdb.ReducerContext, lo, hi int32) ([]string, error) {
	var names []string
	for it := range ItemTable.RangeByScore(stdb.Inclusive(lo), stdb.Exclusive(hi)) {
		names = append(names, it.Name)
	}
	return names, nil
}

func NamesByOwnerScore(ctx *stdb.ReducerContext, owner stdb.Identity, score int32) ([]string, error) {
	var names []string
	for it := range ItemTable.FilterByOwnerScore(owner, score) {
		names = append(names, it.Name)
	}
	return names, nil
}

// GetItem returns the item's note, or none when there is no such item.
func GetItem(ctx *stdb.ReducerContext, name string) (*string, error) {
	it, ok := ItemTable.FilterByName(name)
	if !ok {
		return nil, nil
	}
	s := fmt.Sprintf("%d:%s:%d:%s", it.ID, it.Name, it.Score, strings.Join(it.Tags, ","))
	if it.Note != nil {
		s += ":" + *it.Note
	}
	return &s, nil
}

// TotalDataLen iterates over every row, including big ones.
func TotalDataLen(ctx *stdb.ReducerContext) (uint64, error) {
	var n uint64
	for it := range ItemTable.Iter() {
		n += uint64(len(it.Data))
	}
	return n, nil
}

func InsertMany(ctx *stdb.ReducerContext, n uint32, score int32) error {
	base := ItemTable.Count()
	for i := range n {
		if _, err := ItemTable.Insert(Item{Name: fmt.Sprintf("many-%d", base+uint64(i)), Score: score, Owner: ctx.Caller, At: ctx.Timestamp}); err != nil {
			return err
		}
	}
	return nil
}

func Incr(ctx *stdb.ReducerContext, key string) (uint64, error) { return bump(key) }

func Noop(ctx *stdb.ReducerContext) error { return nil }

func Whoami(ctx *stdb.ReducerContext) (stdb.Identity, error) { return ctx.Caller, nil }

func Now(ctx *stdb.ReducerContext) (stdb.Timestamp, error) { return ctx.Timestamp, nil }

// Echo returns its arguments' BSATN-visible content as bytes: b, then a
// line with the others, so a test sees every type decoded.
func Echo(ctx *stdb.ReducerContext, b []byte, f float64, flag bool, small int8, list []*uint16) ([]byte, error) {
	var parts []string
	for _, v := range list {
		if v == nil {
			parts = append(parts, "none")
		} else {
			parts = append(parts, fmt.Sprint(*v))
		}
	}
	return fmt.Appendf(append([]byte(nil), b...), "|%g|%t|%d|%s", f, flag, small, strings.Join(parts, ",")), nil
}

func Fail(ctx *stdb.ReducerContext, msg string) error { return errors.New(msg) }

func Panic(ctx *stdb.ReducerContext, msg string) error { panic(msg) }

var nilItem *Item

func NilDeref(ctx *stdb.ReducerContext) error {
	_ = nilItem.Name
	return nil
}

// InsertThenFail writes and then fails: the host must keep nothing.
func InsertThenFail(ctx *stdb.ReducerContext, name string) error {
	if _, err := ItemTable.Insert(Item{Name: name, Owner: ctx.Caller}); err != nil {
		return err
	}
	return fmt.Errorf("failing after inserting %s", name)
}

// DuplicateInsert inserts name twice; the second insert fails with the
// SDK's unique-violation error, which the reducer returns.
func DuplicateInsert(ctx *stdb.ReducerContext, name string) error {
	if _, err := ItemTable.Insert(Item{Name: name}); err != nil {
		return err
	}
	_, err := ItemTable.Insert(Item{Name: name})
	if !errors.Is(err, stdb.ErrUniqueViolation) {
		return fmt.Errorf("second insert: got %v, want a unique violation", err)
	}
	return err
}

func UpdateMissing(ctx *stdb.ReducerContext, name string) error {
	err := ItemTable.UpdateByName(Item{ID: 1 << 62, Name: name})
	if !errors.Is(err, stdb.ErrNotFound) {
		return fmt.Errorf("update of a missing row: got %v, want not found", err)
	}
	return err
}

var sink uint64

// InfiniteLoop never returns: the host's deadline must stop it.
func InfiniteLoop(ctx *stdb.ReducerContext) error {
	for i := uint64(0); ; i++ {
		sink += i
	}
}

// Recurse recurses depth levels; a large depth overflows the stack.
func Recurse(ctx *stdb.ReducerContext, depth uint64) (uint64, error) {
	return recurse(depth), nil
}

func recurse(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	return recurse(n-1) + 1
}

var hold [][]byte

// Alloc allocates and keeps mib MiB in one piece, to reach the host's
// memory limit at once: the Go runtime then aborts with "out of memory",
// which traps. (Many small allocations would make the runtime collect
// garbage again and again near the limit, which takes seconds.)
func Alloc(ctx *stdb.ReducerContext, mib uint32) (uint32, error) {
	b := make([]byte, int(mib)<<20)
	b[len(b)-1] = 1
	hold = append(hold, b)
	return uint32(len(hold)), nil
}

func Log(ctx *stdb.ReducerContext, level uint32, msg string) error {
	stdb.Log(level, msg)
	return nil
}

// Auth verifies a token with the host and returns the identity of its
// issuer and subject.
func Auth(ctx *stdb.ReducerContext, token string) (stdb.Identity, error) {
	claims, err := stdb.VerifyJWT(token)
	if err != nil {
		return stdb.Identity{}, err
	}
	iss, sub := jsonField(claims, "iss"), jsonField(claims, "sub")
	return stdb.IdentityFromClaims(iss, sub)
}

func IdentityOf(ctx *stdb.ReducerContext, issuer, subject string) (stdb.Identity, error) {
	return stdb.IdentityFromClaims(issuer, subject)
}

func CallerClaims(ctx *stdb.ReducerContext) (*string, error) {
	b, ok, err := stdb.CallerClaims()
	if err != nil || !ok {
		return nil, err
	}
	s := string(b)
	return &s, nil
}

// IdentitySubject reads the identity system table through the SDK: the
// subject of id's token, and also checks the table scan agrees.
func IdentitySubject(ctx *stdb.ReducerContext, id stdb.Identity) (*string, error) {
	row, ok := stdb.LookupIdentity(id)
	if !ok {
		return nil, nil
	}
	seen := false
	for r := range stdb.Identities() {
		if r.Identity == id {
			seen = r.Subject == row.Subject && r.FirstSeen == row.FirstSeen && r.LastSeen == row.LastSeen
		}
	}
	if !seen {
		return nil, errors.New("LookupIdentity and Identities disagree")
	}
	s := row.Subject
	return &s, nil
}

// WriteIdentity tries to forge a row in the identity system table; the host
// must refuse it.
func WriteIdentity(ctx *stdb.ReducerContext) error {
	w := stdb.Scratch()
	w.WriteIdentity(stdb.Identity{1})
	w.WriteString("https://forged.example/")
	w.WriteString("mallory")
	w.WriteTimestamp(0)
	w.WriteTimestamp(0)
	return stdb.NewTable("identity", "identity").Insert(w.Bytes())
}

func jsonField(b []byte, key string) string {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

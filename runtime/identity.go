package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/auth"
	"github.com/spacetime-go/spacetime/hostfuncs"
	"github.com/spacetime-go/spacetime/store"
)

// withSystemTables returns def with the host's system tables appended after
// the module's own, so that the store creates them, and every reader of the
// schema (SQL, subscriptions, the schema endpoint) finds them like any other
// table. The module itself never declares them (validateDef refuses that).
func withSystemTables(def *abi.ModuleDef) *abi.ModuleDef {
	out := *def
	out.Tables = append(append([]abi.TableDef(nil), def.Tables...), abi.SystemTables()...)
	return &out
}

// readOnlyTables resolves the system tables, and the indexes on them, to
// their ids in sdb: the ids hostfuncs refuses guest writes to. The list
// comes from the host's own definitions, not from the store's catalog.
func readOnlyTables(sdb *store.Database) hostfuncs.ReadOnlyTables {
	var ro hostfuncs.ReadOnlyTables
	for _, t := range abi.SystemTables() {
		if !t.System {
			continue
		}
		if id, err := sdb.TableID(t.Name); err == nil {
			ro.Tables = append(ro.Tables, id)
		}
		for _, ix := range t.ImpliedIndexes() {
			if id, err := sdb.IndexID(ix.Name); err == nil {
				ro.Indexes = append(ro.Indexes, id)
			}
		}
	}
	return ro
}

// preverify verifies the token argument of an auth reducer (one String
// parameter) before the call takes the database's writer slot: a signature
// check takes tens of microseconds, and inside the call it would hold up
// every other transaction of the database. jwt_verify, given the same token
// during the call, answers from this result; the token is still verified
// once per call, with the verifier the call would use.
func (d *Database) preverify(ctx context.Context, rd *abi.ReducerDef, args []byte) *hostfuncs.Preverified {
	if d.cfg.verifier == nil || !rd.IsAuth() || len(rd.Params) != 1 || rd.Params[0].Type.Kind != abi.KindString {
		return nil
	}
	r := abi.NewReader(args)
	token := r.ReadString()
	if r.Err() != nil || token == "" || len(token) > auth.MaxTokenSize {
		return nil
	}
	claims, err := d.cfg.verifier.Verify(ctx, token)
	if err != nil && ctx.Err() != nil {
		// The caller left: the call itself will stop; nothing to reuse.
		return nil
	}
	return &hostfuncs.Preverified{Token: token, Claims: claims, Err: err}
}

// LastSeenResolution is how precise the identity table's last_seen is: an
// auth moves it only when it is at least this old. A returning user's auth
// then writes nothing (the row, like the module's User row, is unchanged),
// and its transaction commits without a disk sync; last_seen says "active
// within the last minute", which is what it is read for.
const LastSeenResolution = time.Minute

// VerifiedIdentity is what the host learned from a successful auth call: the
// identity the reducer returned, and the verified token it derives from.
type VerifiedIdentity struct {
	Identity abi.Identity
	Issuer   string
	Subject  string
	// ExpiresAt is the token's exp: a session made from it must not outlive it.
	ExpiresAt time.Time
	// Claims is the token's claims as JSON.
	Claims []byte
}

// verifiedIdentity finds, among the claims jwt_verify accepted during the
// call, the token whose (iss, sub) derive the identity in ret (the BSATN of
// the auth reducer's return value). It returns nil when the reducer returned
// an identity it did not verify: the host then vouches for nothing.
func verifiedIdentity(ret []byte, verified [][]byte) *VerifiedIdentity {
	var id abi.Identity
	if len(ret) != len(id) || len(verified) == 0 {
		return nil
	}
	copy(id[:], ret)
	if id.IsZero() {
		return nil
	}
	for _, claims := range verified {
		var c struct {
			Iss string      `json:"iss"`
			Sub string      `json:"sub"`
			Exp json.Number `json:"exp"`
		}
		if json.Unmarshal(claims, &c) != nil {
			continue
		}
		if auth.IdentityFromClaims(c.Iss, c.Sub) == id {
			v := &VerifiedIdentity{Identity: id, Issuer: c.Iss, Subject: c.Sub, Claims: claims}
			// The verifier requires exp; it is a JSON number, possibly with
			// a fraction (RFC 7519 NumericDate).
			if exp, err := c.Exp.Float64(); err == nil {
				v.ExpiresAt = time.Unix(0, int64(exp*float64(time.Second)))
			}
			return v
		}
	}
	return nil
}

// recordIdentity upserts v's row in the identity system table within tx:
// first_seen is kept, last_seen set to ts unless the row's last_seen is
// within LastSeenResolution of ts, in which case nothing is written.
func recordIdentity(tx *store.Tx, sdb *store.Database, v *VerifiedIdentity, ts time.Time) error {
	table, err := sdb.TableID(abi.IdentityTableName)
	if err != nil {
		return fmt.Errorf("the %s system table is missing: %w", abi.IdentityTableName, err)
	}
	pk, err := sdb.IndexID(abi.IndexName(abi.IdentityTableName, "identity"))
	if err != nil {
		return fmt.Errorf("the %s system table has no primary key: %w", abi.IdentityTableName, err)
	}
	now := ts.UnixMicro()
	firstSeen := now
	it, err := tx.ScanPoint(pk, v.Identity[:])
	if err != nil {
		return err
	}
	old, found := it.Next()
	if found {
		r := abi.NewReader(old)
		r.ReadIdentity()
		iss, sub := r.ReadString(), r.ReadString()
		first, last := r.ReadTimestamp(), r.ReadTimestamp()
		if r.Err() == nil {
			firstSeen = first
			if iss == v.Issuer && sub == v.Subject && now-last < LastSeenResolution.Microseconds() {
				it.Close()
				return nil
			}
		}
	}
	it.Close()
	var w abi.Writer
	w.WriteIdentity(v.Identity)
	w.WriteString(v.Issuer)
	w.WriteString(v.Subject)
	w.WriteTimestamp(firstSeen)
	w.WriteTimestamp(now)
	if found {
		_, err = tx.Update(pk, w.Bytes())
	} else {
		_, err = tx.Insert(table, w.Bytes())
	}
	return err
}

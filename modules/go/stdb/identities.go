package stdb

import (
	"iter"

	"github.com/spacetime-go/spacetime/abi"
)

// IdentityRow is a row of the host's identity system table: an identity
// that has authenticated to this database, with the token issuer and
// subject it derives from. The host writes the row when an auth reducer
// returns an identity it verified with jwt_verify; modules only read it.
type IdentityRow struct {
	Identity  Identity
	Issuer    string
	Subject   string
	FirstSeen Timestamp
	LastSeen  Timestamp
}

var (
	identityTable = NewTable(abi.IdentityTableName, "identity")
	identityByID  = NewIndex(abi.IndexName(abi.IdentityTableName, "identity"), abi.IdentityTableName, "identity")
)

func decodeIdentityRow(r *abi.Reader, row *IdentityRow) {
	row.Identity = r.ReadIdentity()
	row.Issuer = r.ReadString()
	row.Subject = r.ReadString()
	row.FirstSeen = Timestamp(r.ReadTimestamp())
	row.LastSeen = Timestamp(r.ReadTimestamp())
}

// LookupIdentity returns the identity system table's row for id, as the
// transaction sees it. A row written by the host during the current auth
// call is not visible yet: the host writes it after the reducer returns.
func LookupIdentity(id Identity) (IdentityRow, bool) {
	w := Scratch()
	w.WriteIdentity(id)
	var row IdentityRow
	b := identityByID.FindRow(w.Bytes())
	if b == nil {
		return row, false
	}
	r := abi.NewReader(b)
	decodeIdentityRow(r, &row)
	if err := r.Err(); err != nil {
		panic(identityByID.DecodeError(err))
	}
	return row, true
}

// Identities iterates over the identity system table.
func Identities() iter.Seq[IdentityRow] {
	return Seq(identityTable.Scan, decodeIdentityRow)
}

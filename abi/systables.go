package abi

import "strings"

// IdentityTableName is the name of the identity system table. The host
// keeps one row per identity that has authenticated to the database: a
// successful auth reducer call whose returned identity comes from a token
// verified with jwt_verify during that call inserts the row (first_seen)
// or updates it (last_seen), in the same transaction as the call.
const IdentityTableName = "identity"

// IdentityTable returns the definition of the identity system table. Its
// columns are part of ABI version 1:
//
//	identity   IdentityId (primary key)
//	issuer     String     the token's iss
//	subject    String     the token's sub
//	first_seen Timestamp  the first successful auth
//	last_seen  Timestamp  the latest successful auth
func IdentityTable() TableDef {
	return TableDef{
		Name: IdentityTableName,
		Columns: []ColumnDef{
			{Name: "identity", Type: TypeIdentity, PrimaryKey: true, Identity: true},
			{Name: "issuer", Type: TypeString},
			{Name: "subject", Type: TypeString},
			{Name: "first_seen", Type: TypeTimestamp},
			{Name: "last_seen", Type: TypeTimestamp},
		},
		System: true,
	}
}

// SystemTables returns the tables the host adds to every database, after
// the module's own.
func SystemTables() []TableDef { return []TableDef{IdentityTable()} }

// IsReservedTableName reports whether a module may not name a table name:
// system table names are reserved in any letter case, so that `Identity`
// and `identity` never mean two different tables to a reader.
func IsReservedTableName(name string) bool {
	for _, t := range SystemTables() {
		if strings.EqualFold(t.Name, name) {
			return true
		}
	}
	return false
}

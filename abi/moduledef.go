package abi

import (
	"encoding/json"
	"fmt"
)

// ModuleDef describes a module: its tables, reducers and read grants. A guest
// writes it as JSON from __describe_module__; the host validates it before the
// module may serve.
type ModuleDef struct {
	// ABIVersion is the ABI the module was built against; the host refuses
	// versions it does not speak.
	ABIVersion int          `json:"abi_version"`
	Tables     []TableDef   `json:"tables"`
	Reducers   []ReducerDef `json:"reducers"`
	Grants     []GrantDef   `json:"grants,omitempty"`
}

// TableDef describes one table.
type TableDef struct {
	Name    string      `json:"name"`
	Columns []ColumnDef `json:"columns"`
	// Indexes lists every index of the table, including the ones the primary
	// key and unique columns imply (see [TableDef.ImpliedIndexes]).
	Indexes []IndexDef `json:"indexes,omitempty"`
	// System marks a table the host maintains in every database (see
	// [IdentityTable]). Modules read it like their own tables; row writes
	// from guests fail with [ErrnoReadOnly]. A module may not declare it.
	System bool `json:"system,omitempty"`
}

// ColumnDef describes one column.
type ColumnDef struct {
	Name       string `json:"name"`
	Type       Type   `json:"type"`
	PrimaryKey bool   `json:"primary_key,omitempty"`
	Unique     bool   `json:"unique,omitempty"`
	AutoInc    bool   `json:"autoinc,omitempty"`
	// Identity marks a column linked to the identity table (#[spacetimedb(id)]);
	// it must be an IdentityId.
	Identity bool `json:"identity,omitempty"`
}

// IndexDef describes a B-tree index on one or more columns.
type IndexDef struct {
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
	Unique  bool     `json:"unique,omitempty"`
}

// ReducerDef describes one reducer. Its id in __call_reducer__ is its index in
// ModuleDef.Reducers.
type ReducerDef struct {
	Name   string     `json:"name"`
	Params []ParamDef `json:"params"`
	Return *Type      `json:"return,omitempty"`
	// Lifecycle is "", "init", "client_connected" or "client_disconnected".
	Lifecycle string `json:"lifecycle,omitempty"`
}

// IsAuth reports whether the reducer is the module's auth reducer: named
// auth and returning an IdentityId, which the host binds to the caller
// (DESIGN.md, "Identity and authentication").
func (r *ReducerDef) IsAuth() bool {
	return r.Name == "auth" && r.Return != nil && r.Return.Kind == KindIdentity
}

// ParamDef is a named reducer parameter.
type ParamDef struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
}

// The lifecycle reducer names.
const (
	LifecycleInit               = "init"
	LifecycleClientConnected    = "client_connected"
	LifecycleClientDisconnected = "client_disconnected"
)

// GrantDef is a grant_access statement, kept as written with where it was
// written, so that the host can parse, check and report on it.
type GrantDef struct {
	Table string `json:"table"`
	// To is "public" or "authenticated" for a table-wide grant; empty when
	// Where holds a row filter.
	To string `json:"to,omitempty"`
	// Where is the row filter's source text, for example
	// "sender = :caller or recipient = :caller".
	Where string `json:"where,omitempty"`
	Pos   Pos    `json:"pos"`
}

// Pos is a place in a schema file. Line and Column count from 1.
type Pos struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Column)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// IndexName is the name the schema gives the index on cols of table:
// "Table_col1_col2_idx". Generated code and the host agree on it.
func IndexName(table string, cols ...string) string {
	n := table
	for _, c := range cols {
		n += "_" + c
	}
	return n + "_idx"
}

// Table returns the table named name.
func (m *ModuleDef) Table(name string) (*TableDef, bool) {
	for i := range m.Tables {
		if m.Tables[i].Name == name {
			return &m.Tables[i], true
		}
	}
	return nil, false
}

// Reducer returns the reducer named name and its id.
func (m *ModuleDef) Reducer(name string) (*ReducerDef, uint32, bool) {
	for i := range m.Reducers {
		if m.Reducers[i].Name == name {
			return &m.Reducers[i], uint32(i), true
		}
	}
	return nil, 0, false
}

// Column returns the index of the column named name, or -1.
func (t *TableDef) Column(name string) int {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// ColumnTypes returns the types of the columns in order.
func (t *TableDef) ColumnTypes() []Type {
	ts := make([]Type, len(t.Columns))
	for i, c := range t.Columns {
		ts[i] = c.Type
	}
	return ts
}

// PrimaryKey returns the index of the primary-key column, or -1.
func (t *TableDef) PrimaryKey() int {
	for i := range t.Columns {
		if t.Columns[i].PrimaryKey {
			return i
		}
	}
	return -1
}

// ImpliedIndexes returns the unique indexes that the primary key and unique
// columns imply, named by [IndexName], followed by the declared indexes that
// they do not already cover.
func (t *TableDef) ImpliedIndexes() []IndexDef {
	var out []IndexDef
	seen := map[string]bool{}
	for _, c := range t.Columns {
		if c.PrimaryKey || c.Unique {
			ix := IndexDef{Name: IndexName(t.Name, c.Name), Columns: []string{c.Name}, Unique: true}
			out = append(out, ix)
			seen[ix.Name] = true
		}
	}
	for _, ix := range t.Indexes {
		if !seen[ix.Name] {
			out = append(out, ix)
			seen[ix.Name] = true
		}
	}
	return out
}

// Marshal returns the ModuleDef as JSON.
func (m *ModuleDef) Marshal() ([]byte, error) {
	b, err := marshalNoEscape(m)
	if err != nil {
		return nil, fmt.Errorf("abi: cannot encode the module description: %w", err)
	}
	return b, nil
}

// UnmarshalModuleDef parses a ModuleDef from JSON. It checks only the JSON's
// shape; the host validates the meaning separately.
func UnmarshalModuleDef(data []byte) (*ModuleDef, error) {
	var m ModuleDef
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("abi: module description is not valid JSON: %w", err)
	}
	return &m, nil
}

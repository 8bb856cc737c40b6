package runtime

import (
	"errors"
	"strings"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

func TestValidateDef(t *testing.T) {
	u64 := abi.TypeU64
	str := abi.TypeString
	good := func() *abi.ModuleDef {
		return &abi.ModuleDef{
			ABIVersion: abi.Version,
			Tables: []abi.TableDef{{Name: "User", Columns: []abi.ColumnDef{
				{Name: "id", Type: u64, PrimaryKey: true, AutoInc: true},
				{Name: "name", Type: str, Unique: true},
			}, Indexes: []abi.IndexDef{{Name: "User_name_id_idx", Columns: []string{"name", "id"}}}}},
			Reducers: []abi.ReducerDef{
				{Name: "add", Params: []abi.ParamDef{{Name: "name", Type: str}}, Return: &u64},
				{Name: "init", Lifecycle: abi.LifecycleInit},
			},
			Grants: []abi.GrantDef{{Table: "User", To: "public"}},
		}
	}
	if err := validateDef(good()); err != nil {
		t.Fatalf("a valid def: %v", err)
	}
	withIdentityGrant := good()
	withIdentityGrant.Grants = append(withIdentityGrant.Grants, abi.GrantDef{Table: abi.IdentityTableName, Where: "identity = :caller"})
	if err := validateDef(withIdentityGrant); err != nil {
		t.Fatalf("a grant on the identity system table: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(d *abi.ModuleDef)
		want   string
	}{
		{"abi version", func(d *abi.ModuleDef) { d.ABIVersion = 2 }, "built for ABI version 2"},
		{"table name", func(d *abi.ModuleDef) { d.Tables[0].Name = "1User" }, `name "1User" is not an identifier`},
		{"duplicate table", func(d *abi.ModuleDef) { d.Tables = append(d.Tables, d.Tables[0]) }, "table User is declared twice"},
		{"duplicate column", func(d *abi.ModuleDef) { d.Tables[0].Columns[1].Name = "id" }, "column id is declared twice"},
		{"invalid type", func(d *abi.ModuleDef) { d.Tables[0].Columns[1].Type = abi.Type{} }, "column name has an invalid type"},
		{"two primary keys", func(d *abi.ModuleDef) { d.Tables[0].Columns[1].PrimaryKey = true }, "2 primary-key columns"},
		{"autoinc string", func(d *abi.ModuleDef) { d.Tables[0].Columns[1].AutoInc = true }, "autoinc needs an integer type"},
		{"id not identity", func(d *abi.ModuleDef) { d.Tables[0].Columns[0].Identity = true }, "it must be IdentityId"},
		{"index on unknown column", func(d *abi.ModuleDef) { d.Tables[0].Indexes[0].Columns[1] = "nope" }, "on column nope, which the table does not have"},
		{"duplicate reducer", func(d *abi.ModuleDef) { d.Reducers[1].Name = "add" }, "reducer add is declared twice"},
		{"lifecycle with params", func(d *abi.ModuleDef) { d.Reducers[1].Params = []abi.ParamDef{{Name: "x", Type: u64}} }, "lifecycle reducers take none"},
		{"lifecycle with return", func(d *abi.ModuleDef) { d.Reducers[1].Return = &u64 }, "lifecycle reducers return nothing"},
		{"two inits", func(d *abi.ModuleDef) {
			d.Reducers = append(d.Reducers, abi.ReducerDef{Name: "init2", Lifecycle: abi.LifecycleInit})
		}, "both the init lifecycle reducer"},
		{"unknown lifecycle", func(d *abi.ModuleDef) { d.Reducers[1].Lifecycle = "on_tuesday" }, `unknown lifecycle "on_tuesday"`},
		{"duplicate param", func(d *abi.ModuleDef) { d.Reducers[0].Params = append(d.Reducers[0].Params, d.Reducers[0].Params[0]) }, "parameter name is declared twice"},
		{"grant on unknown table", func(d *abi.ModuleDef) { d.Grants[0].Table = "Ghost" }, "grant_access on table Ghost"},
		{"grant role", func(d *abi.ModuleDef) { d.Grants[0].To = "admins" }, `to "admins"`},
		{"system table name", func(d *abi.ModuleDef) { d.Tables[0].Name = "identity"; d.Grants[0].Table = "identity" }, "reserved for the host's identity system table"},
		{"system table name in another case", func(d *abi.ModuleDef) { d.Tables[0].Name = "Identity"; d.Grants[0].Table = "Identity" }, "table Identity: the name is reserved"},
		{"system flag", func(d *abi.ModuleDef) { d.Tables[0].System = true }, "only the host declares system tables"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			tc.mutate(d)
			err := validateDef(d)
			if !errors.Is(err, ErrInvalidModuleDef) || !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

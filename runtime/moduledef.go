package runtime

import (
	"errors"
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
)

const maxNameLen = 128

func validIdent(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// validateDef checks a module's description: everything the host relies on
// later (reducer ids, types, indexes, lifecycle reducers) is consistent. All
// problems are reported at once.
func validateDef(def *abi.ModuleDef) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if def.ABIVersion != abi.Version {
		bad("the module was built for ABI version %d; this host speaks version %d (rebuild with a matching SDK)", def.ABIVersion, abi.Version)
	}
	tables := map[string]bool{}
	indexes := map[string]string{}
	for ti := range def.Tables {
		t := &def.Tables[ti]
		if !validIdent(t.Name) {
			bad("table %d: name %q is not an identifier (letters, digits and _, not starting with a digit, at most %d bytes)", ti, t.Name, maxNameLen)
		}
		if tables[t.Name] {
			bad("table %s is declared twice", t.Name)
		}
		tables[t.Name] = true
		if abi.IsReservedTableName(t.Name) {
			bad("table %s: the name is reserved for the host's %s system table, which every database has and modules can read; rename the table", t.Name, abi.IdentityTableName)
		}
		if t.System {
			bad("table %s is marked system; only the host declares system tables", t.Name)
		}
		if len(t.Columns) == 0 {
			bad("table %s has no columns", t.Name)
		}
		cols := map[string]bool{}
		pks := 0
		for _, c := range t.Columns {
			if !validIdent(c.Name) {
				bad("table %s: column name %q is not an identifier", t.Name, c.Name)
			}
			if cols[c.Name] {
				bad("table %s: column %s is declared twice", t.Name, c.Name)
			}
			cols[c.Name] = true
			if !c.Type.Valid() {
				bad("table %s: column %s has an invalid type", t.Name, c.Name)
			}
			if c.PrimaryKey {
				pks++
			}
			if c.AutoInc && !c.Type.Kind.IsInteger() {
				bad("table %s: column %s is autoinc but of type %s; autoinc needs an integer type", t.Name, c.Name, c.Type)
			}
			if c.Identity && c.Type.Kind != abi.KindIdentity {
				bad("table %s: column %s is marked id but of type %s; it must be IdentityId", t.Name, c.Name, c.Type)
			}
		}
		if pks > 1 {
			bad("table %s has %d primary-key columns; at most one is allowed", t.Name, pks)
		}
		for _, ix := range t.ImpliedIndexes() {
			if !validIdent(ix.Name) {
				bad("table %s: index name %q is not an identifier", t.Name, ix.Name)
			}
			if other, dup := indexes[ix.Name]; dup {
				bad("index %s is declared on both %s and %s; index names are unique in a module", ix.Name, other, t.Name)
			}
			indexes[ix.Name] = t.Name
			if len(ix.Columns) == 0 {
				bad("table %s: index %s has no columns", t.Name, ix.Name)
			}
			for _, c := range ix.Columns {
				if !cols[c] {
					bad("table %s: index %s is on column %s, which the table does not have", t.Name, ix.Name, c)
				}
			}
		}
	}
	reducers := map[string]bool{}
	lifecycles := map[string]string{}
	for ri := range def.Reducers {
		r := &def.Reducers[ri]
		if !validIdent(r.Name) {
			bad("reducer %d: name %q is not an identifier", ri, r.Name)
		}
		if reducers[r.Name] {
			bad("reducer %s is declared twice", r.Name)
		}
		reducers[r.Name] = true
		params := map[string]bool{}
		for _, p := range r.Params {
			if !validIdent(p.Name) {
				bad("reducer %s: parameter name %q is not an identifier", r.Name, p.Name)
			}
			if params[p.Name] {
				bad("reducer %s: parameter %s is declared twice", r.Name, p.Name)
			}
			params[p.Name] = true
			if !p.Type.Valid() {
				bad("reducer %s: parameter %s has an invalid type", r.Name, p.Name)
			}
		}
		if r.Return != nil && !r.Return.Valid() {
			bad("reducer %s: the return type is invalid", r.Name)
		}
		switch r.Lifecycle {
		case "":
		case abi.LifecycleInit, abi.LifecycleClientConnected, abi.LifecycleClientDisconnected:
			if other, dup := lifecycles[r.Lifecycle]; dup {
				bad("reducers %s and %s are both the %s lifecycle reducer; a module has at most one", other, r.Name, r.Lifecycle)
			}
			lifecycles[r.Lifecycle] = r.Name
			if len(r.Params) > 0 {
				bad("lifecycle reducer %s (%s) takes %d parameters; lifecycle reducers take none", r.Name, r.Lifecycle, len(r.Params))
			}
			if r.Return != nil {
				bad("lifecycle reducer %s (%s) returns %s; lifecycle reducers return nothing", r.Name, r.Lifecycle, *r.Return)
			}
		default:
			bad("reducer %s: unknown lifecycle %q (known: init, client_connected, client_disconnected)", r.Name, r.Lifecycle)
		}
	}
	for _, t := range abi.SystemTables() {
		tables[t.Name] = true // modules may open the system tables with a grant
	}
	for _, g := range def.Grants {
		if !tables[g.Table] {
			bad("%s: grant_access on table %s, which the module does not declare", g.Pos, g.Table)
		}
		switch {
		case g.To != "" && g.Where != "":
			bad("%s: grant_access on %s has both a role (%s) and a where clause", g.Pos, g.Table, g.To)
		case g.To == "" && g.Where == "":
			bad("%s: grant_access on %s has neither a role nor a where clause", g.Pos, g.Table)
		case g.To != "" && g.To != "public" && g.To != "authenticated":
			bad("%s: grant_access on %s to %q; the roles are public and authenticated", g.Pos, g.Table, g.To)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w: %w", ErrInvalidModule, ErrInvalidModuleDef, errors.Join(errs...))
	}
	return nil
}

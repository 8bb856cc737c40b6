// Package schema parses the schema language of schema.spacetimedb files into
// an abi.ModuleDef.
//
// The language, as the tutorial writes it:
//
//	// comments run to the end of the line; /* block comments */ too
//	#[spacetimedb(index(btree, columns = [author, created_at]))]   // multi-column index
//	table Post {
//	    #[spacetimedb(primarykey)]
//	    #[spacetimedb(autoinc)]
//	    post_id: u64,
//	    #[spacetimedb(index(btree))]                                // single-column index
//	    author: IdentityId,
//	    created_at: Timestamp,
//	    tags: Vec<String>,                                          // trailing comma allowed
//	}
//	reducer create_post(content: String);
//	reducer auth(token: String) -> IdentityId;
//	reducer init();                                                 // lifecycle: no parameters
//	grant_access Post to public;
//	grant_access Post where author = :caller;
//
// Column attributes are primarykey, id (an IdentityId linked to the identity
// table), unique, autoinc (integers only) and index(btree). A table-level
// index(btree, columns = [...]) declares an index on several columns. Index
// names follow abi.IndexName ("Post_author_created_at_idx"), and the ModuleDef's
// TableDef.Indexes lists the implied primary-key and unique indexes as well,
// so the host and generated code agree on every name.
//
// grant_access rules are kept as written (abi.GrantDef.Where, comments
// blanked) and compiled here with the host's compiler (query.CompileGrants)
// against the declared tables, so a rule that does not parse, names a table
// or column that does not exist, or compares mismatched types fails at
// generate time with the file, line and column of the mistake. The host
// compiles them again at publish and enforces them.
//
// Errors carry file, line and column and say what was expected; Parse reports
// up to MaxErrors of them, recovering at the next column or statement.
package schema

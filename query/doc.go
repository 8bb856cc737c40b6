// Package query is the query language of subscriptions, one-off queries, the
// SQL endpoint and grant_access rules:
//
//	SELECT * FROM Table [WHERE expr]
//	SELECT col, col FROM Table [WHERE expr]
//	SELECT COUNT(*) FROM Table [WHERE expr]
//
// where expr combines comparisons (= != <> < > <= >=) of columns, literals and
// the caller (:caller) with AND, OR, NOT and parentheses, and the membership
// test `operand IN (SELECT col FROM Table [WHERE expr])`. Keywords are case
// insensitive; identifiers are case sensitive and may be quoted with double
// quotes; strings use single quotes (a doubled quote escapes one).
//
// Parsing gives an AST with positions; Compile checks it against a table's
// schema (columns exist, literal types fit) and gives a Predicate that
// evaluates a decoded row without allocating.
package query

package main

import "github.com/spacetime-go/spacetime/modules/go/stdb"

// AddNote exists; Forgotten, declared in the schema, does not.
func AddNote(ctx *stdb.ReducerContext, text string) error {
	_, err := NoteTable.Insert(Note{Text: text})
	return err
}

package main

import "github.com/spacetime-go/spacetime/modules/go/stdb"

// The reducers the full schema declares, so the golden code compiles.

func Init(*stdb.ReducerContext) error               { return nil }
func ClientConnected(*stdb.ReducerContext) error    { return nil }
func ClientDisconnected(*stdb.ReducerContext) error { return nil }

func Join(ctx *stdb.ReducerContext, name, typ string, friends []stdb.Identity) error {
	_, err := PlayerTable.Insert(Player{Owner: ctx.Caller, Name: name})
	return err
}

func Auth(ctx *stdb.ReducerContext, token string) (stdb.Identity, error) { return ctx.Caller, nil }

func Top(ctx *stdb.ReducerContext, n uint32) ([]*string, error) {
	var out []*string
	for p := range PlayerTable.RangeByRank(stdb.Unbounded[int16](), stdb.Unbounded[int16]()) {
		out = append(out, p.Nickname)
	}
	return out, nil
}

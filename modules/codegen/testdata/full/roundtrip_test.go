package main

import (
	"reflect"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/modules/schema"
)

// TestRoundTrip checks the generated BSATN methods against the abi package's
// dynamic codec, which the host uses: same bytes both ways.
func TestRoundTrip(t *testing.T) {
	def, err := schema.ParseDir(".")
	if err != nil {
		t.Fatal(err)
	}
	td, _ := def.Table("Player")
	nick := "nick"
	one := uint64(1)
	friend := idOf(9)
	path := []*uint64{&one, nil}
	for _, p := range []Player{
		{},
		{ID: 1<<64 - 1, Owner: idOf(3), Rank: -300, Name: "ünï", Avatar: []byte{0, 1}, Joined: -5,
			Nickname: &nick, Scores: []uint32{1, 2}, Friends: []*abi.Identity{&friend, nil}, Online: true,
			Ratio: 1.5, Balance: -2.25, Small: 255, Tiny: -128, Mid: 65535, Wide: -1 << 31, Big: -1 << 63, URLPath: &path},
	} {
		var w abi.Writer
		p.EncodeBSATN(&w)
		vals, err := abi.DecodeRow(td.ColumnTypes(), w.Bytes())
		if err != nil {
			t.Fatalf("host cannot decode generated row: %v", err)
		}
		again, err := abi.EncodeRow(nil, td.ColumnTypes(), vals)
		if err != nil || string(again) != string(w.Bytes()) {
			t.Fatalf("re-encoding differs: %v\n%x\n%x", err, again, w.Bytes())
		}
		var back Player
		r := abi.NewReader(again)
		back.DecodeBSATN(r)
		if r.Err() != nil || r.Remaining() != 0 {
			t.Fatalf("decode: %v, %d left", r.Err(), r.Remaining())
		}
		if !reflect.DeepEqual(back, p) {
			t.Errorf("round trip:\n got %+v\nwant %+v", back, p)
		}
	}
}

func idOf(b byte) abi.Identity { return abi.Identity{0: b, 31: b} }

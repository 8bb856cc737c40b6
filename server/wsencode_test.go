package server

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/abi"
	"github.com/spacetime-go/spacetime/server/subscription"
)

// The ReducerResult fast path must give exactly the bytes of the general
// encoder, or decline.
func TestAppendCommittedResult(t *testing.T) {
	id := abi.Identity{1}
	exp := time.Unix(1700000000, 0).UTC()
	for _, tc := range []struct {
		name string
		out  callOutcome
		fast bool
	}{
		{"number", callOutcome{Status: "committed", Return: json.RawMessage("17"), Offset: 9, DurationUS: 20}, true},
		{"with energy", callOutcome{Status: "committed", Return: json.RawMessage("17"), Offset: 9, DurationUS: 20, EnergyUsed: 123456789}, true},
		{"null, offset 0", callOutcome{Status: "committed", Return: json.RawMessage("null"), DurationUS: 3}, true},
		{"string", callOutcome{Status: "committed", Return: json.RawMessage(`"a \"b\" c"`), Offset: 1}, true},
		{"HTML in a string", callOutcome{Status: "committed", Return: json.RawMessage(`"<b>&"`), Offset: 1}, false},
		{"line separator", callOutcome{Status: "committed", Return: json.RawMessage("\"a\u2028b\""), Offset: 1}, false},
		{"failed", *failed(422, "nope"), false},
		{"after auth", callOutcome{Status: "committed", Return: json.RawMessage(`"00"`), Identity: &id, Token: "t", TokenExpiresAt: &exp}, false},
		{"warning", callOutcome{Status: "committed", Return: json.RawMessage(`"00"`), Identity: &id, Warning: "w"}, false},
		{"no return", callOutcome{Status: "committed"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				RequestID uint32 `json:"request_id"`
				*callOutcome
			}
			want, err := json.Marshal(map[string]any{"ReducerResult": result{RequestID: 4242, callOutcome: &tc.out}})
			if err != nil && tc.fast {
				t.Fatal(err)
			}
			got, ok := appendCommittedResult(nil, 4242, &tc.out)
			if ok != tc.fast {
				t.Fatalf("fast path taken: %v, want %v", ok, tc.fast)
			}
			if ok && string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			general, err := appendMessage(nil, "ReducerResult", result{RequestID: 4242, callOutcome: &tc.out})
			if err == nil && string(general) != string(want) {
				t.Errorf("appendMessage: got %s\nwant %s", general, want)
			}
		})
	}
}

func TestSplitEnvelope(t *testing.T) {
	for _, tc := range []struct {
		in, typ, body string
		ok            bool
	}{
		{`{"CallReducer":{"request_id":1}}`, "CallReducer", `{"request_id":1}`, true},
		{" \n{ \"Subscribe\" :\t{} }\r\n", "Subscribe", "\t{} ", true},
		{`{"A":{},"B":{}}`, "A", `{},"B":{}`, true}, // the body's decoder refuses it
		{`{"Call\"Reducer":{}}`, "", "", false},
		{`{"CallReducer"}`, "", "", false},
		{`{"CallReducer":}`, "CallReducer", "", true},   // so is an empty body
		{`{"CallReducer":{}`, "CallReducer", "{", true}, // and a cut one
		{`["CallReducer",{}]`, "", "", false},
		{``, "", "", false},
		{`{"x`, "", "", false},
	} {
		typ, body, ok := splitEnvelope([]byte(tc.in))
		if typ != tc.typ || string(body) != tc.body || ok != tc.ok {
			t.Errorf("%q: got %q %q %v, want %q %q %v", tc.in, typ, body, ok, tc.typ, tc.body, tc.ok)
		}
	}
}

func TestAppendTransactionUpdate(t *testing.T) {
	row := func(s string) json.RawMessage { return json.RawMessage(s) }
	post := abi.AppendRowJSON(nil, &abi.TableDef{Name: "Post", Columns: []abi.ColumnDef{
		{Name: "post_id", Type: abi.Type{Kind: abi.KindU64}},
		{Name: "content", Type: abi.Type{Kind: abi.KindString}},
	}}, []abi.Value{{Kind: abi.KindU64, Bits: 7}, abi.String("héllo \"world\"\n\t\x01")})
	for _, tc := range []struct {
		name string
		u    subscription.TransactionUpdate
		fast bool
	}{
		{"one row", subscription.TransactionUpdate{Offset: 42, QuerySets: []subscription.QuerySetUpdate{
			{QuerySetID: 1, Tables: []subscription.TableUpdate{{Table: "Post", Inserts: []json.RawMessage{post}}}}}}, true},
		{"several sets and tables", subscription.TransactionUpdate{Offset: 1 << 40, QuerySets: []subscription.QuerySetUpdate{
			{QuerySetID: 1, Tables: []subscription.TableUpdate{{Table: "Post", Inserts: []json.RawMessage{row(`{"a":1}`), row(`{"a":2}`)}, Deletes: []json.RawMessage{row(`{"a":0}`)}}, {Table: "User_2", Deletes: []json.RawMessage{row(`{"b":"x"}`)}}}},
			{QuerySetID: 4294967295, Tables: []subscription.TableUpdate{}}}}, true},
		{"recomputed, no sets", subscription.TransactionUpdate{Offset: 3, Recomputed: true}, true},
		{"HTML in a row", subscription.TransactionUpdate{Offset: 1, QuerySets: []subscription.QuerySetUpdate{
			{QuerySetID: 1, Tables: []subscription.TableUpdate{{Table: "Post", Inserts: []json.RawMessage{row(`{"a":"<b>"}`)}}}}}}, false},
		{"odd table name", subscription.TransactionUpdate{Offset: 1, QuerySets: []subscription.QuerySetUpdate{
			{QuerySetID: 1, Tables: []subscription.TableUpdate{{Table: "we\"ird", Inserts: []json.RawMessage{row(`{}`)}}}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := transactionUpdateJSON(&tc.u)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendTransactionUpdate(nil, &tc.u)
			if ok != tc.fast {
				t.Fatalf("fast path taken: %v, want %v", ok, tc.fast)
			}
			if ok && string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// checkCallFast: when the fast decoder accepts a body, json.Unmarshal must
// accept it too and give the same message.
func checkCallFast(t *testing.T, body string) bool {
	t.Helper()
	var fast, slow callReducerMsg
	if !decodeCallFast([]byte(body), &fast) {
		return false
	}
	if err := json.Unmarshal([]byte(body), &slow); err != nil {
		t.Fatalf("%q: fast path accepted what json.Unmarshal refuses: %v", body, err)
	}
	eq := func(a, b *uint32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	eqs := func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	if !eq(fast.RequestID, slow.RequestID) || !eqs(fast.Reducer, slow.Reducer) || string(fast.Args) != string(slow.Args) {
		t.Fatalf("%q: fast %+v, json %+v", body, fast, slow)
	}
	return true
}

func TestDecodeCallFast(t *testing.T) {
	for _, tc := range []struct {
		body string
		fast bool
	}{
		{`{"request_id":1,"reducer":"incr","args":["k1"]}`, true},
		{` { "args" : [ 1 , {"a":[2,"]"]} ] , "reducer" : "x" , "request_id" : 4294967295 } `, true},
		{`{"request_id":7,"reducer":"noop"}`, true},
		{`{"request_id":7,"reducer":"noop","args":null}`, true},
		{`{"request_id":7,"reducer":"n","args":"x\"y"}`, true},
		{`{"request_id":7,"reducer":"n","args":5}`, true},
		{`{"reducer":"héllo","args":[]}`, true},
		{`{"request_id":4294967296,"reducer":"x"}`, false},
		{`{"request_id":01,"reducer":"x"}`, false},
		{`{"request_id":1.0,"reducer":"x"}`, false},
		{`{"request_id":null,"reducer":"x"}`, false},
		{`{"request_id":1,"request_id":2}`, false},
		{`{"Request_ID":1}`, false},
		{`{"request_id":1,"reducer":"a\"b"}`, false},
		{`{"request_id":1,"reducer":"x","args":[1,]}`, false},
		{`{"request_id":1,"reducer":"x","args":[1}`, false},
		{`{"request_id":1,"extra":2}`, false},
		{`{"request_id":1}x`, false},
		{`{}`, false},
		{`[]`, false},
		{"{\"reducer\":\"\xff\"}", false},
	} {
		if got := checkCallFast(t, tc.body); got != tc.fast {
			t.Errorf("%s: fast path %v, want %v", tc.body, got, tc.fast)
		}
	}
}

func FuzzDecodeCallFast(f *testing.F) {
	for _, s := range []string{
		`{"request_id":1,"reducer":"incr","args":["k1"]}`,
		`{"args":[1,{"a":[2,"]\\"]"]}],"reducer":"x","request_id":42}`,
		`{"request_id":7,"reducer":"n","args":"x\"y"}`,
		`{"request_id":7 , "args":  null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) { checkCallFast(t, body) })
}

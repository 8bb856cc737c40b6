package loadgen

import (
	"testing"
	"time"
)

func TestCallMessage(t *testing.T) {
	for _, tc := range []struct {
		name, reducer, args string
		conn                int
		seq                 uint64
		want                string
	}{
		{"no args", "noop", "[]", 3, 9, `{"CallReducer":{"request_id":7,"reducer":"noop","args":[]}}`},
		{"conn and seq", "incr", `["k{conn}-{seq}"]`, 3, 9, `{"CallReducer":{"request_id":7,"reducer":"incr","args":["k3-9"]}}`},
		{"other braces kept", "set", `[{"a":1}, "{x}", {seq}]`, 0, 42, `{"CallReducer":{"request_id":7,"reducer":"set","args":[{"a":1}, "{x}", 42]}}`},
		{"quoted reducer", `we"ird`, "[]", 0, 0, `{"CallReducer":{"request_id":7,"reducer":"we\"ird","args":[]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(callMessage(nil, 7, tc.reducer, tc.args, tc.conn, tc.seq)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestResultParsing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		msg       string
		id        uint64
		idOK      bool
		committed bool
	}{
		{"committed", `{"ReducerResult":{"request_id":12,"status":"committed","return":3,"offset":9,"duration_us":20}}`, 12, true, true},
		{"failed quoting committed", `{"ReducerResult":{"request_id":1,"status":"failed","error":"x \"status\":\"committed\"","return":null}}`, 1, true, false},
		{"no request id", `{"ReducerResult":{"status":"committed"}}`, 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := uintAfter([]byte(tc.msg), keyRequestID)
			if id != tc.id || ok != tc.idOK {
				t.Errorf("request_id = %d, %v; want %d, %v", id, ok, tc.id, tc.idOK)
			}
			if got := committed([]byte(tc.msg)); got != tc.committed {
				t.Errorf("committed = %v, want %v", got, tc.committed)
			}
		})
	}
	if got := resultError([]byte(`{"ReducerResult":{"request_id":1,"status":"failed","error":"nope"}}`)); got != "nope" {
		t.Errorf("resultError = %q", got)
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarize(d)
	if l.N != 100 || l.P50 != 50*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Errorf("summarize = %+v", l)
	}
	if (summarize(nil) != Latency{}) {
		t.Error("summarize(nil) is not zero")
	}
	if l := summarize([]time.Duration{5}); l.P50 != 5 || l.P99 != 5 {
		t.Errorf("one sample: %+v", l)
	}
}

func TestSubscribeURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:3000", "ws://127.0.0.1:3000/v1/database/db/subscribe"},
		{"https://example.com/", "wss://example.com/v1/database/db/subscribe"},
		{"ftp://x", ""},
	} {
		got, err := Target{URL: tc.url, Database: "db"}.subscribeURL()
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: got %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spacetime-go/spacetime/internal/loadgen"
	"github.com/spacetime-go/spacetime/modules/guesttest"
	"github.com/spacetime-go/spacetime/server"
)

// TestSmoke runs the load generator's commands, small, against a real
// server on a free port with the benchmark module, so that they cannot rot.
// The measurement itself is `spacetime-loadgen suite` (BENCHMARKS.md).
func TestSmoke(t *testing.T) {
	wasm := guesttest.Build(t, "testdata/benchmod")
	ctx := context.Background()
	dir := t.TempDir()
	s, err := server.New(ctx, server.WithDataDir(dir), server.WithListenAddr("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	srv := &suiteServerClient{url: s.URL()}
	if err := srv.publish(ctx, "loadgen", wasm); err != nil {
		t.Fatal(err)
	}

	t.Run("calls", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"calls", "--server", s.URL(), "--db", "loadgen", "--conns", "4", "--inflight", "2", "--calls", "300", "--json"}, &out, &errb)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var res loadgen.CallResult
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		if res.Committed != 300 || res.Failed != 0 || res.Latency.N != 300 || res.PerSecond <= 0 || res.Latency.P99 <= 0 {
			t.Errorf("result: %+v", res)
		}
		// Every call was durable and counted once: the counters add up.
		var got []struct {
			Rows []struct {
				Value uint64 `json:"value"`
			} `json:"rows"`
		}
		srv.sql(t, "loadgen", "SELECT * FROM Counter", &got)
		var sum uint64
		for _, r := range got[0].Rows {
			sum += r.Value
		}
		if len(got[0].Rows) != 4 || sum != 300 {
			t.Errorf("counters: %d rows adding up to %d; want 4 rows, 300", len(got[0].Rows), sum)
		}
	})

	t.Run("calls text", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := run(ctx, []string{"calls", "--server", s.URL(), "--db", "loadgen", "--conns", "2", "--calls", "20"}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(out.String(), "calls/s") || !strings.Contains(out.String(), "p99") {
			t.Errorf("output: %s", out.String())
		}
	})

	for _, reader := range []string{"poll", "goroutines"} {
		t.Run("fanout/"+reader, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(ctx, []string{"fanout", "--server", s.URL(), "--db", "loadgen", "--subscribers", "5", "--txs", "10", "--warmup-txs", "2", "--interval", "0s", "--reader", reader, "--server-pid", strconv.Itoa(os.Getpid()), "--json"}, &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			var res loadgen.FanoutResult
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, out.String())
			}
			if res.ToAll.N != 10 || res.CommitToAll.N != 10 || res.Delivery.N != 50 || res.Call.N != 10 || res.Incomplete != 0 ||
				res.ToAll.P50 < res.Delivery.P50/2 || res.CommitToAll.P50 > res.ToAll.P50 || res.Config.Reader != reader || res.LoadgenCPU <= 0 {
				t.Errorf("result: %+v", res)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"unknown reducer", []string{"calls", "--server", s.URL(), "--db", "loadgen", "--reducer", "nope", "--calls", "3"}, 1, "no reducer"},
			{"unknown database", []string{"calls", "--server", s.URL(), "--db", "nope", "--calls", "3"}, 1, "404"},
			{"bad flag", []string{"calls", "--conns", "x"}, 2, "invalid value"},
			{"unknown command", []string{"bench"}, 2, "unknown command"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := run(ctx, tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String()+out.String(), tc.want) {
					t.Errorf("exit %d (want %d), output:\n%s%s", code, tc.code, out.String(), errb.String())
				}
			})
		}
	})

	t.Run("in process", func(t *testing.T) {
		for _, inflight := range []int{1, 3} {
			res, err := loadgen.InProcess(ctx, loadgen.InProcessConfig{
				Wasm: wasm, Dir: t.TempDir(), Reducer: "incr", Args: `["k{conn}"]`,
				Goroutines: []int{1, 4}, InFlight: inflight, Warmup: 20 * time.Millisecond, Duration: 200 * time.Millisecond,
			})
			if err != nil {
				t.Fatalf("%d in flight: %v", inflight, err)
			}
			for _, r := range res {
				if r.Committed == 0 || r.Latency.P50 <= 0 || r.CPUPerCall <= 0 {
					t.Errorf("%d in flight: %+v", inflight, r)
				}
			}
		}
	})
}

// suiteServerClient is the HTTP side the tests need.
type suiteServerClient struct{ url, token string }

func (c *suiteServerClient) publish(ctx context.Context, name string, wasm []byte) error {
	s := &serverProc{url: c.url}
	err := s.publish(ctx, name, wasm)
	c.token = s.token
	return err
}

func (c *suiteServerClient) sql(t *testing.T, db, q string, v any) {
	t.Helper()
	res, err := http.Post(c.url+"/v1/database/"+db+"/sql", "text/plain", strings.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("sql: %s %s", res.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("sql: %v %s", err, b)
	}
}

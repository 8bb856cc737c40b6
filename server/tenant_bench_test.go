package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkTenantIsolation measures one tenant's durable reducer calls
// (p50/p99 over a WebSocket, one at a time) while another tenant on the
// same server floods it, beside the same tenant alone, in the same run:
//
//   - load=alone: nothing else runs;
//   - load=spin: 8 connections of the other tenant call a reducer that
//     loops forever, each call stopped by its energy budget;
//   - load=writes: 32 connections of the other tenant send durable writes,
//     4 in flight each, and 500 more connections sit open.
//
// go test -run '^$' -bench BenchmarkTenantIsolation -benchtime 400x -count 6 ./server
func BenchmarkTenantIsolation(b *testing.B) {
	s := newServer(b)
	_, op := operator(b, s)
	wasm := buildModule(b, appModule)
	publish(b, s, "quiet", op, wasm, 201)
	publish(b, s, "noisy", op, wasm, 201)
	wsURL := "ws" + strings.TrimPrefix(s.URL(), "http") + "/v1/database/"

	dial := func(db string) (*websocket.Conn, error) {
		d := websocket.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: 10 * time.Second}
		c, _, err := d.Dial(wsURL+db+"/subscribe", nil)
		if err != nil {
			return nil, err
		}
		_, _, err = c.ReadMessage() // InitialConnection
		return c, err
	}
	callMsg := func(id int, reducer string, args ...any) []byte {
		m, _ := json.Marshal(map[string]any{"CallReducer": map[string]any{"request_id": id, "reducer": reducer, "args": args}})
		return m
	}

	// flood runs the other tenant's load until stop closes; it returns the
	// number of calls answered.
	flood := func(kind string, stop <-chan struct{}) (*atomic.Int64, func()) {
		var answered atomic.Int64
		var wg sync.WaitGroup
		var conns []*websocket.Conn
		var mu sync.Mutex
		loop := func(c *websocket.Conn, inFlight int, msg func(i int) []byte) {
			defer wg.Done()
			for i := range inFlight {
				if c.WriteMessage(websocket.TextMessage, msg(i)) != nil {
					return
				}
			}
			for i := inFlight; ; i++ {
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				answered.Add(1)
				select {
				case <-stop:
					return
				default:
				}
				if c.WriteMessage(websocket.TextMessage, msg(i)) != nil {
					return
				}
			}
		}
		start := func(n, inFlight int, msg func(i int) []byte) {
			for range n {
				c, err := dial("noisy")
				if err != nil {
					b.Errorf("noisy connection: %v", err)
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Add(1)
				go loop(c, inFlight, msg)
			}
		}
		switch kind {
		case "spin":
			start(8, 1, func(i int) []byte { return callMsg(i, "spin") })
		case "writes":
			start(32, 4, func(i int) []byte { return callMsg(i, "set_setting", fmt.Sprint("k", i%64), fmt.Sprint("v", i)) })
			for range 500 {
				c, err := dial("noisy")
				if err != nil {
					b.Errorf("idle noisy connection: %v", err)
					break
				}
				conns = append(conns, c)
			}
		}
		return &answered, func() {
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		}
	}

	for _, load := range []string{"alone", "spin", "writes"} {
		b.Run("load="+load, func(b *testing.B) {
			stop := make(chan struct{})
			answered, wait := flood(load, stop)
			c, err := dial("quiet")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			time.Sleep(200 * time.Millisecond) // let the flood reach its pace
			lat := make([]time.Duration, 0, b.N)
			before := answered.Load()
			start := time.Now()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				t0 := time.Now()
				if err := c.WriteMessage(websocket.TextMessage, callMsg(i, "set_setting", "k", fmt.Sprint("v", i))); err != nil {
					b.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				_, data, err := c.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				if !strings.Contains(string(data), `"committed"`) {
					b.Fatalf("quiet call: %s", data)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			elapsed := time.Since(start)
			noise := answered.Load() - before
			close(stop)
			wait()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(noise)/elapsed.Seconds(), "noisy-calls/s")
		})
	}
}

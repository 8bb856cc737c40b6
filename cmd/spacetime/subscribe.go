package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// subprotocol is the WebSocket subprotocol of the JSON protocol.
const subprotocol = "v1.json.spacetime"

// Server messages the CLI reads (DESIGN.md, "Server").
type (
	wsTableRows struct {
		Table   string            `json:"table"`
		Rows    []json.RawMessage `json:"rows"`
		Inserts []json.RawMessage `json:"inserts"`
		Deletes []json.RawMessage `json:"deletes"`
	}
	wsSubscribeApplied struct {
		RequestID  uint32        `json:"request_id"`
		QuerySetID uint32        `json:"query_set_id"`
		Tables     []wsTableRows `json:"tables"`
	}
	wsTransactionUpdate struct {
		Tx        json.RawMessage `json:"tx"`
		Offset    json.RawMessage `json:"offset"`
		QuerySets []struct {
			QuerySetID uint32        `json:"query_set_id"`
			Tables     []wsTableRows `json:"tables"`
		} `json:"query_sets"`
	}
	wsError struct {
		RequestID *uint32 `json:"request_id"`
		Error     string  `json:"error"`
	}
	wsIdentityChanged struct {
		Identity string `json:"identity"`
		Reason   string `json:"reason"`
	}
)

func cmdSubscribe(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("subscribe")
	db := fs.String("db", "", "the database (default: $SPACETIME_DB, the project here, or the only one)")
	count := fs.Int("count", -1, "exit after this many updates (0: print the initial rows and exit; default: until interrupted)")
	timeout := fs.Duration("timeout", 0, "exit after this long (an error if --count updates have not arrived by then)")
	asUser := fs.Bool("as-user", false, "subscribe as the user of the session spacetime call auth saved, under the module's grants")
	anon := fs.Bool("anonymous", false, "subscribe as an anonymous client, under the module's grants")
	queries, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(queries) == 0 {
		return usagef("subscribe needs at least one query: spacetime subscribe [--db NAME] 'SELECT * FROM Post' [--count N] [--timeout 30s]")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	name, err := c.resolveDB(ctx, *db)
	if err != nil {
		return err
	}
	tok, err := c.readToken(name, *asUser, *anon)
	if err != nil {
		return err
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	asOwner := tok != "" && !*asUser
	err = a.subscribe(ctx, c, name, tok, asOwner, queries, *count)
	if errors.Is(err, context.DeadlineExceeded) && *timeout > 0 {
		if *count > 0 {
			return fmt.Errorf("subscribe: %v passed before %d update%s arrived", *timeout, *count, plural(*count))
		}
		return nil
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // interrupted
	}
	return err
}

func (a *app) subscribe(ctx context.Context, c *client, db, token string, asOwner bool, queries []string, count int) error {
	u := "ws" + strings.TrimPrefix(c.base, "http") + dbPath(db, "subscribe")
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	dialer := websocket.Dialer{Subprotocols: []string{subprotocol}, HandshakeTimeout: 10 * time.Second}
	ws, resp, err := dialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			var eb struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
				if resp.StatusCode == http.StatusUnauthorized && token != "" {
					return fmt.Errorf("subscribe to %s: %s (the saved token is not accepted: `spacetime login --new`, or --anonymous)", db, eb.Error)
				}
				return fmt.Errorf("subscribe to %s: %s", db, eb.Error)
			}
			return fmt.Errorf("subscribe to %s: the server refused the WebSocket: %s", db, resp.Status)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.unreachable(err)
	}
	defer ws.Close()
	// Close the socket when the context ends, which unblocks the reader.
	stop := context.AfterFunc(ctx, func() {
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		ws.Close()
	})
	defer stop()

	sub := map[string]any{"Subscribe": map[string]any{"request_id": 1, "query_set_id": 1, "queries": queries}}
	if err := ws.WriteJSON(sub); err != nil {
		return c.unreachable(err)
	}
	updates := 0
	applied := false
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				reason := ce.Text
				if reason == "" {
					reason = "no reason given"
				}
				return fmt.Errorf("subscribe to %s: the server closed the connection (%d: %s)", db, ce.Code, reason)
			}
			return fmt.Errorf("subscribe to %s: the connection broke: %v", db, err)
		}
		var env map[string]json.RawMessage
		if err := json.Unmarshal(data, &env); err != nil || len(env) != 1 {
			continue
		}
		if a.json {
			// One server message per line, as the protocol sends it.
			a.stdout.Write(data)
			fmt.Fprintln(a.stdout)
		}
		for typ, body := range env {
			switch typ {
			case "InitialConnection":
				var m struct {
					Identity string `json:"identity"`
				}
				json.Unmarshal(body, &m)
				if !a.json {
					who := "an anonymous client"
					switch {
					case m.Identity != "" && strings.Trim(m.Identity, "0") != "":
						who = "identity " + m.Identity
					case asOwner:
						who = "the operator (the owner reads every table; --as-user or --anonymous for a client's view)"
					}
					fmt.Fprintf(a.stderr, "Connected to %s as %s\n", db, who)
				}
			case "SubscribeApplied":
				var m wsSubscribeApplied
				if err := json.Unmarshal(body, &m); err != nil {
					return fmt.Errorf("subscribe: unexpected SubscribeApplied: %v", err)
				}
				applied = true
				if !a.json {
					n := 0
					for _, t := range m.Tables {
						n += len(t.Rows)
					}
					fmt.Fprintf(a.stderr, "Subscribed to %s (%d row%s)\n", strings.Join(queries, "; "), n, plural(n))
					for _, t := range m.Tables {
						for _, r := range t.Rows {
							fmt.Fprintf(a.stdout, "%s %s\n", t.Table, r)
						}
					}
				}
				if count == 0 {
					return nil
				}
			case "TransactionUpdate":
				var m wsTransactionUpdate
				if err := json.Unmarshal(body, &m); err != nil {
					return fmt.Errorf("subscribe: unexpected TransactionUpdate: %v", err)
				}
				if !a.json {
					fmt.Fprintf(a.stdout, "-- update (tx %s)\n", txLabel(m.Tx, m.Offset))
					for _, qs := range m.QuerySets {
						for _, t := range qs.Tables {
							for _, r := range t.Deletes {
								fmt.Fprintf(a.stdout, "- %s %s\n", t.Table, r)
							}
							for _, r := range t.Inserts {
								fmt.Fprintf(a.stdout, "+ %s %s\n", t.Table, r)
							}
						}
					}
				}
				updates++
				if count > 0 && updates >= count {
					return nil
				}
			case "SubscriptionError":
				var m wsError
				json.Unmarshal(body, &m)
				if !applied {
					return fmt.Errorf("subscribe to %s: %s", db, m.Error)
				}
				fmt.Fprintf(a.stderr, "subscription error: %s\n", m.Error)
			case "Error":
				var m wsError
				json.Unmarshal(body, &m)
				return fmt.Errorf("subscribe to %s: the server refused a message: %s", db, m.Error)
			case "IdentityChanged":
				var m wsIdentityChanged
				json.Unmarshal(body, &m)
				if !a.json {
					fmt.Fprintf(a.stderr, "Identity changed to %s: %s\n", m.Identity, m.Reason)
				}
			}
		}
	}
}

// txLabel shows a TransactionUpdate's transaction: its offset, whether the
// server sends it bare or as {"offset": N, ...}.
func txLabel(tx, offset json.RawMessage) string {
	if len(tx) == 0 {
		tx = offset
	}
	var o struct {
		Offset     *uint64 `json:"offset"`
		Recomputed bool    `json:"recomputed"`
	}
	if json.Unmarshal(tx, &o) == nil && o.Offset != nil {
		if o.Recomputed {
			return fmt.Sprintf("%d, view recomputed", *o.Offset)
		}
		return fmt.Sprint(*o.Offset)
	}
	return string(tx)
}

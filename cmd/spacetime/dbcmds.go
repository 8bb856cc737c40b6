package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// publishAnswer is PUT /v1/database/:name's answer.
type publishAnswer struct {
	Database    string    `json:"database"`
	ModuleHash  string    `json:"module_hash"`
	Created     bool      `json:"created"`
	PublishedAt time.Time `json:"published_at"`
	AddedTables []string  `json:"added_tables,omitempty"`
	KeptTables  []string  `json:"kept_tables,omitempty"`
	CompileMS   int64     `json:"compile_ms"`
}

func cmdPublish(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("publish")
	project := fs.String("project", "", "the module project to build and publish (default: the current directory)")
	wasmFile := fs.String("wasm", "", "a built .wasm module to publish instead of a project")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("publish takes one database name, got %q", pos)
	}
	if *project != "" && *wasmFile != "" {
		return usagef("publish takes --project DIR or --wasm FILE, not both")
	}
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	var wasm []byte
	switch {
	case *wasmFile != "":
		if wasm, err = a.readFileArg(*wasmFile, "module"); err != nil {
			return err
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(*wasmFile), filepath.Ext(*wasmFile))
		}
	default:
		dir := a.wd
		if *project != "" {
			dir = a.abs(*project)
		} else if !isProject(dir) {
			return usagef("publish needs a module: run it in a project directory, or give --project DIR or --wasm FILE")
		}
		if name == "" {
			if name, err = projectName(dir); err != nil {
				return err
			}
		}
		path, err := a.buildProject(ctx, dir, "")
		if err != nil {
			return err
		}
		if wasm, err = os.ReadFile(path); err != nil {
			return err
		}
	}
	res, err := a.publish(ctx, c, name, wasm)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	a.printPublished(res)
	return nil
}

func (a *app) printPublished(res *publishAnswer) {
	verb := "Updated"
	if res.Created {
		verb = "Created"
	}
	fmt.Fprintf(a.stdout, "%s database %s (module %s)\n", verb, res.Database, short(res.ModuleHash))
	if len(res.AddedTables) > 0 {
		fmt.Fprintf(a.stdout, "  added tables: %s\n", strings.Join(res.AddedTables, ", "))
	}
	if len(res.KeptTables) > 0 {
		fmt.Fprintf(a.stdout, "  kept tables: %s (the module no longer declares them: their rows are kept, unreachable, until a module declares them again or the database is deleted)\n", strings.Join(res.KeptTables, ", "))
	}
}

// publish uploads wasm as database name with the operator's identity.
func (a *app) publish(ctx context.Context, c *client, name string, wasm []byte) (*publishAnswer, error) {
	fmt.Fprintf(a.stderr, "Publishing %s (%.1f MB) to %s...\n", name, float64(len(wasm))/1e6, c.base)
	start := time.Now()
	var res publishAnswer
	err := c.asOperator(ctx, func(tok string) error {
		return c.getJSON(ctx, http.MethodPut, dbPath(name), "application/wasm", wasm, tok, &res)
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			switch ae.Status {
			case http.StatusForbidden:
				return nil, fmt.Errorf("publishing %s: %s; publish under another name (spacetime publish OTHER_NAME) or use the owner's credentials", name, ae.Message)
			case http.StatusConflict:
				return nil, fmt.Errorf("publishing %s: the new module is not compatible with the database's data: %s", name, ae.Message)
			}
			return nil, fmt.Errorf("publishing %s: %s", name, ae.Message)
		}
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Published in %.1fs (server compiled it in %d ms)\n", time.Since(start).Seconds(), res.CompileMS)
	return &res, nil
}

// callAnswer is POST /v1/database/:name/call/:reducer's answer.
type callAnswer struct {
	Status         string          `json:"status"`
	Error          string          `json:"error,omitempty"`
	Return         json.RawMessage `json:"return"`
	Offset         uint64          `json:"offset,omitempty"`
	DurationUS     int64           `json:"duration_us"`
	EnergyUsed     uint64          `json:"energy_used"`
	Identity       string          `json:"identity,omitempty"`
	Token          string          `json:"token,omitempty"`
	TokenExpiresAt *time.Time      `json:"token_expires_at,omitempty"`
	Warning        string          `json:"warning,omitempty"`
}

// ReducerError is a reducer's own failure; its text is the tutorial's.
type ReducerError struct{ Message string }

func (e *ReducerError) Error() string { return fmt.Sprintf("Reducer call failed: %q", e.Message) }

// schemaAnswer is GET /v1/database/:name/schema's answer.
type schemaAnswer struct {
	Database    string         `json:"database"`
	ModuleHash  string         `json:"module_hash"`
	PublishedAt time.Time      `json:"published_at"`
	Owner       string         `json:"owner"`
	Module      *abi.ModuleDef `json:"module"`
}

func (c *client) schema(ctx context.Context, db string) (*schemaAnswer, error) {
	var s schemaAnswer
	if err := c.getJSON(ctx, http.MethodGet, dbPath(db, "schema"), "", nil, "", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// callArgs turns command-line arguments into a JSON array: each is JSON when
// it parses as JSON, else a string; and when the reducer's parameter is a
// String, a value that is not a JSON string is taken as text (so
// `call create_post 42` posts "42").
func callArgs(args []string, params []abi.ParamDef) []byte {
	vals := make([]json.RawMessage, len(args))
	for i, arg := range args {
		str, _ := json.Marshal(arg)
		switch {
		case !json.Valid([]byte(arg)):
			vals[i] = str
		case i < len(params) && params[i].Type.Kind == abi.KindString && !strings.HasPrefix(strings.TrimSpace(arg), `"`):
			vals[i] = str
		default:
			vals[i] = json.RawMessage(strings.TrimSpace(arg))
		}
	}
	b, _ := json.Marshal(vals)
	return b
}

func cmdCall(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("call")
	db := fs.String("db", "", "the database (default: $SPACETIME_DB, the project here, or the only one)")
	anon := fs.Bool("anonymous", false, "call without the session a previous spacetime call auth saved")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("call needs a reducer: spacetime call [--db NAME] REDUCER [ARG...]")
	}
	reducer, rargs := pos[0], pos[1:]
	c, err := a.client()
	if err != nil {
		return err
	}
	name, err := c.resolveDB(ctx, *db)
	if err != nil {
		return err
	}
	var params []abi.ParamDef
	if s, err := c.schema(ctx, name); err == nil && s.Module != nil {
		rd, _, ok := s.Module.Reducer(reducer)
		if !ok {
			var names []string
			for _, r := range s.Module.Reducers {
				if r.Lifecycle == "" {
					names = append(names, r.Name)
				}
			}
			return fmt.Errorf("database %s has no reducer %q; it has: %s (`spacetime describe` shows their parameters)", name, reducer, strings.Join(names, ", "))
		}
		params = rd.Params
	} else if errors.Is(err, ErrServerUnreachable) {
		return err
	}
	body := callArgs(rargs, params)

	creds, err := a.loadCredentials()
	if err != nil {
		return err
	}
	// auth itself runs without the previous session: it is how a user
	// replaces a session, even one the server no longer accepts.
	sess := creds.session(c.base, name)
	if sess == nil && !*anon && reducer != "auth" {
		if s := creds.Servers[c.base]; s != nil && s.Databases[name] != nil && s.Databases[name].ExpiresAt != nil {
			fmt.Fprintf(a.stderr, "Your session for %s expired at %s; calling without it (authenticate again with `spacetime call auth <token>`).\n",
				name, s.Databases[name].ExpiresAt.Local().Format(time.DateTime))
		}
	}
	token := ""
	if sess != nil && !*anon && reducer != "auth" {
		token = sess.Token
	}
	resp, err := c.do(ctx, http.MethodPost, dbPath(name, "call", reducer), "application/json", body, token)
	var ans callAnswer
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			return err
		}
		if json.Unmarshal(ae.Body, &ans) != nil || ans.Status == "" {
			if ae.Status == http.StatusUnauthorized && token != "" {
				delete(creds.server(c.base).Databases, name)
				a.saveCredentials(creds)
				return fmt.Errorf("the server no longer accepts your session for %s (%s); it has been forgotten: authenticate again with `spacetime call auth <token>`, or call without it", name, ae.Message)
			}
			return fmt.Errorf("calling %s on %s: %s", reducer, name, ae.Message)
		}
		if a.json {
			a.stdout.Write(bytes.TrimSpace(ae.Body))
			fmt.Fprintln(a.stdout)
		}
		if ae.Status == http.StatusUnprocessableEntity {
			return &ReducerError{Message: ans.Error}
		}
		return fmt.Errorf("calling %s on %s: %s", reducer, name, ans.Error)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return c.unreachable(err)
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("the server's answer is not JSON: %v", err)
	}
	if ans.Token != "" {
		s := creds.server(c.base)
		s.Databases[name] = &sessionCreds{Identity: ans.Identity, Token: ans.Token, ExpiresAt: ans.TokenExpiresAt}
		if err := a.saveCredentials(creds); err != nil {
			return err
		}
	}
	if a.json {
		a.stdout.Write(bytes.TrimSpace(raw))
		fmt.Fprintln(a.stdout)
		return nil
	}
	switch {
	case ans.Identity != "" && ans.Token != "":
		fmt.Fprintf(a.stdout, "Authenticated as %s\n", ans.Identity)
		exp := ""
		if ans.TokenExpiresAt != nil {
			exp = " until " + ans.TokenExpiresAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(a.stderr, "Later calls to %s on %s run as this identity%s (`--anonymous` to call without it).\n", name, c.base, exp)
	case ans.Identity != "":
		fmt.Fprintf(a.stdout, "Returned identity %s\n", ans.Identity)
	case len(ans.Return) > 0 && string(ans.Return) != "null":
		fmt.Fprintf(a.stdout, "%s\n", ans.Return)
	default:
		fmt.Fprintf(a.stdout, "Committed (%s, %s energy, tx %d)\n", fmtMicros(ans.DurationUS), fmtEnergy(ans.EnergyUsed), ans.Offset)
	}
	if ans.Warning != "" {
		fmt.Fprintln(a.stderr, "warning:", ans.Warning)
	}
	return nil
}

func fmtMicros(us int64) string {
	if us < 1000 {
		return fmt.Sprintf("%d µs", us)
	}
	return fmt.Sprintf("%.1f ms", float64(us)/1000)
}

// readToken is the bearer a read (sql, subscribe) carries: the operator's
// stored token, so the database owner sees every table, like the SQL console
// of SpacetimeDB; --as-user uses the session `call auth` saved instead, to
// see what that user sees; --anonymous sends none.
func (c *client) readToken(db string, asUser, anonymous bool) (string, error) {
	if anonymous {
		return "", nil
	}
	creds, err := c.a.loadCredentials()
	if err != nil {
		return "", err
	}
	if asUser {
		sess := creds.session(c.base, db)
		if sess == nil {
			return "", fmt.Errorf("no session for %s on %s: authenticate first with `spacetime call --db %s auth <token>`", db, c.base, db)
		}
		return sess.Token, nil
	}
	if s := creds.Servers[c.base]; s != nil {
		return s.Token, nil
	}
	return "", nil
}

// sqlResult is one statement's result.
type sqlResult struct {
	Table   string            `json:"table"`
	Columns []string          `json:"columns"`
	Rows    []json.RawMessage `json:"rows"`
	AsOwner bool              `json:"as_owner,omitempty"`
}

func cmdSQL(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("sql")
	db := fs.String("db", "", "the database (default: $SPACETIME_DB, the project here, or the only one)")
	asUser := fs.Bool("as-user", false, "read as the user of the session spacetime call auth saved, under the module's grants")
	anon := fs.Bool("anonymous", false, "read as an anonymous client, under the module's grants")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("sql needs a query: spacetime sql [--db NAME] 'SELECT * FROM Post'")
	}
	query := strings.Join(pos, " ")
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
	resp, err := c.do(ctx, http.MethodPost, dbPath(name, "sql"), "text/plain", []byte(query), tok)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && tok != "" && !*asUser {
		// A stale operator token: read anonymously rather than fail.
		fmt.Fprintf(a.stderr, "The server at %s does not accept the saved operator token (%s); reading as an anonymous client. `spacetime login --new` gets a new identity.\n", c.base, ae.Message)
		resp, err = c.do(ctx, http.MethodPost, dbPath(name, "sql"), "text/plain", []byte(query), "")
	}
	if err != nil {
		if errors.As(err, &ae) {
			return fmt.Errorf("sql on %s: %s", name, ae.Message)
		}
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return c.unreachable(err)
	}
	if a.json {
		a.stdout.Write(bytes.TrimSpace(raw))
		fmt.Fprintln(a.stdout)
		return nil
	}
	var results []sqlResult
	if err := json.Unmarshal(raw, &results); err != nil {
		return fmt.Errorf("the server's answer is not the expected JSON: %v", err)
	}
	// The schema says which columns hold timestamps, which people read
	// better as times than as microseconds. Without it, values print as
	// they came.
	var def *abi.ModuleDef
	if sch, err := c.schema(ctx, name); err == nil {
		def = sch.Module
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(a.stdout)
		}
		printTable(a.stdout, r.Columns, r.Rows, timestampColumns(def, r.Table))
		n := len(r.Rows)
		fmt.Fprintf(a.stderr, "(%d row%s", n, plural(n))
		if r.AsOwner {
			fmt.Fprint(a.stderr, "; read as the database owner: grants do not apply, use --as-user or --anonymous to see what clients see")
		}
		fmt.Fprintln(a.stderr, ")")
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// timestampColumns lists table's Timestamp columns in def (nil-safe).
func timestampColumns(def *abi.ModuleDef, table string) map[string]bool {
	if def == nil {
		return nil
	}
	t, ok := def.Table(table)
	if !ok {
		return nil
	}
	cols := map[string]bool{}
	for _, c := range t.Columns {
		if c.Type.Kind == abi.KindTimestamp {
			cols[c.Name] = true
		}
	}
	return cols
}

// printTable prints rows (JSON objects) as aligned columns; the values of
// the timestamps columns (microseconds since the epoch) print as UTC times.
func printTable(w io.Writer, columns []string, rows []json.RawMessage, timestamps map[string]bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(columns) == 0 && len(rows) > 0 {
		columns = objectKeys(rows[0])
	}
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	under := make([]string, len(columns))
	for i, c := range columns {
		under[i] = strings.Repeat("-", len(c))
	}
	fmt.Fprintln(tw, strings.Join(under, "\t"))
	for _, row := range rows {
		var obj map[string]json.RawMessage
		if json.Unmarshal(row, &obj) != nil {
			fmt.Fprintln(tw, string(row))
			continue
		}
		cells := make([]string, len(columns))
		for i, c := range columns {
			cells[i] = cell(obj[c])
			var us int64
			if timestamps[c] && json.Unmarshal(obj[c], &us) == nil {
				cells[i] = time.UnixMicro(us).UTC().Format("2006-01-02 15:04:05.000000Z")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// objectKeys lists a JSON object's keys in their order.
func objectKeys(obj json.RawMessage) []string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return keys
		}
		k, _ := t.(string)
		keys = append(keys, k)
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return keys
		}
	}
	return keys
}

// cell renders a value for a table: strings without quotes, the rest as JSON.
func cell(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(s)
	}
	if len(v) == 0 {
		return ""
	}
	return string(v)
}

func cmdDescribe(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("describe")
	db := fs.String("db", "", "the database (default: $SPACETIME_DB, the project here, or the only one)")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if *db != "" || len(pos) > 1 {
			return usagef("describe takes one database: spacetime describe [--db NAME]")
		}
		*db = pos[0]
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	name, err := c.resolveDB(ctx, *db)
	if err != nil {
		return err
	}
	s, err := c.schema(ctx, name)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(s)
	}
	w := a.stdout
	fmt.Fprintf(w, "Database %s on %s\n", s.Database, c.base)
	fmt.Fprintf(w, "  module %s, published %s\n", s.ModuleHash, s.PublishedAt.Local().Format(time.DateTime))
	if s.Owner != "" {
		fmt.Fprintf(w, "  owner  %s\n", s.Owner)
	}
	if s.Module == nil {
		return nil
	}
	for _, t := range s.Module.Tables {
		if t.System {
			fmt.Fprintf(w, "\ntable %s (system table: the host writes it, the module reads it)\n", t.Name)
		} else {
			fmt.Fprintf(w, "\ntable %s\n", t.Name)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, col := range t.Columns {
			var attrs []string
			for _, at := range []struct {
				on   bool
				name string
			}{{col.PrimaryKey, "primary key"}, {col.Unique, "unique"}, {col.AutoInc, "autoinc"}, {col.Identity, "identity"}} {
				if at.on {
					attrs = append(attrs, at.name)
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", col.Name, col.Type, strings.Join(attrs, ", "))
		}
		tw.Flush()
		for _, ix := range t.Indexes {
			u := ""
			if ix.Unique {
				u = "unique "
			}
			fmt.Fprintf(w, "  %sindex %s (%s)\n", u, ix.Name, strings.Join(ix.Columns, ", "))
		}
	}
	fmt.Fprintln(w, "\nreducers")
	for _, r := range s.Module.Reducers {
		params := make([]string, len(r.Params))
		for i, p := range r.Params {
			params[i] = p.Name + ": " + p.Type.String()
		}
		line := fmt.Sprintf("  %s(%s)", r.Name, strings.Join(params, ", "))
		if r.Return != nil {
			line += " -> " + r.Return.String()
		}
		if r.Lifecycle != "" {
			line += "  [" + r.Lifecycle + "]"
		}
		fmt.Fprintln(w, line)
	}
	if len(s.Module.Grants) > 0 {
		fmt.Fprintln(w, "\ngrants")
		for _, g := range s.Module.Grants {
			if g.To != "" {
				fmt.Fprintf(w, "  grant_access %s to %s;\n", g.Table, g.To)
			} else {
				fmt.Fprintf(w, "  grant_access %s where %s;\n", g.Table, g.Where)
			}
		}
	}
	return nil
}

func cmdList(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("list")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("list takes no arguments")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	dbs, err := c.databases(ctx)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(map[string]any{"databases": dbs})
	}
	if len(dbs) == 0 {
		fmt.Fprintf(a.stderr, "No databases on %s yet: publish one with `spacetime publish` or `spacetime dev`.\n", c.base)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMODULE\tPUBLISHED\tOWNER")
	for _, d := range dbs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, short(d.ModuleHash), d.PublishedAt.Local().Format(time.DateTime), short(d.Owner))
	}
	return tw.Flush()
}

// logLine is one line of GET /v1/database/:name/logs.
type logLine struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Reducer string    `json:"reducer,omitempty"`
	Caller  string    `json:"caller"`
	Message string    `json:"message"`
	Missed  uint64    `json:"missed,omitempty"`
}

func cmdLogs(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("logs")
	db := fs.String("db", "", "the database (default: $SPACETIME_DB, the project here, or the only one)")
	follow := fs.Bool("f", false, "keep printing new lines until interrupted")
	fs.BoolVar(follow, "follow", false, "same as -f")
	n := fs.Int("n", 100, "how many of the last lines to print first")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("logs takes no arguments (got %q): spacetime logs [--db NAME] [-f]", pos)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	name, err := c.resolveDB(ctx, *db)
	if err != nil {
		return err
	}
	err = c.streamLogs(ctx, name, *n, *follow, nil, func(l logLine, raw []byte) {
		if a.json {
			a.stdout.Write(raw)
			fmt.Fprintln(a.stdout)
			return
		}
		fmt.Fprintln(a.stdout, formatLog(l))
	})
	if err != nil && ctx.Err() != nil {
		return nil // interrupted: the normal end of -f
	}
	return err
}

// streamLogs reads the log of db and hands each line to fn. connected, if
// not nil, is called once the server has accepted the request: from then on
// no new line is missed.
func (c *client) streamLogs(ctx context.Context, db string, n int, follow bool, connected func(), fn func(logLine, []byte)) error {
	q := url.Values{"n": {strconv.Itoa(n)}}
	if follow {
		q.Set("follow", "true")
	}
	return c.asOperator(ctx, func(tok string) error {
		resp, err := c.do(ctx, http.MethodGet, dbPath(db, "logs")+"?"+q.Encode(), "", nil, tok)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
				return fmt.Errorf("reading the logs of %s: %s; only the identity that published it may (see `spacetime login`)", db, ae.Message)
			}
			return err
		}
		defer resp.Body.Close()
		if connected != nil {
			connected()
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			raw := bytes.TrimSpace(sc.Bytes())
			if len(raw) == 0 {
				continue
			}
			var l logLine
			if json.Unmarshal(raw, &l) != nil {
				continue
			}
			fn(l, raw)
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("the log stream of %s ended: %v", db, err)
		}
		return nil
	})
}

func formatLog(l logLine) string {
	if l.Missed > 0 {
		return fmt.Sprintf("%s ... %d lines missed (the log buffer moved on)", l.Time.Local().Format("15:04:05.000"), l.Missed)
	}
	var b strings.Builder
	b.WriteString(l.Time.Local().Format("2006-01-02 15:04:05.000"))
	b.WriteString(" ")
	fmt.Fprintf(&b, "%-5s ", strings.ToUpper(l.Level))
	if l.Reducer != "" {
		b.WriteString(l.Reducer)
		b.WriteString(": ")
	}
	b.WriteString(l.Message)
	return b.String()
}

func cmdLogin(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("login")
	fresh := fs.Bool("new", false, "get a new operator identity even if one is saved (databases stay owned by the old one)")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("login takes no arguments")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	creds, err := a.loadCredentials()
	if err != nil {
		return err
	}
	s := creds.Servers[c.base]
	created := false
	if s == nil || s.Token == "" || *fresh {
		if _, err := c.newOperator(ctx, creds); err != nil {
			return err
		}
		s, created = creds.Servers[c.base], true
	}
	if a.json {
		return a.printJSON(map[string]any{"server": c.base, "identity": s.Identity, "created": created})
	}
	if created {
		fmt.Fprintf(a.stdout, "Logged in to %s as operator %s (saved in %s)\n", c.base, s.Identity, a.credentialsPathOrEmpty())
	} else {
		fmt.Fprintf(a.stdout, "Already logged in to %s as operator %s (`spacetime login --new` for another identity)\n", c.base, s.Identity)
	}
	return nil
}

func cmdDelete(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("delete")
	yes := fs.Bool("yes", false, "confirm: the database and all its data are deleted")
	pos, err := parseFlags(fs, args, false)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("delete takes the database's name: spacetime delete NAME --yes")
	}
	name := pos[0]
	if !*yes {
		return usagef("delete removes database %s and all its data for good; run it again with --yes to confirm", name)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	err = c.asOperator(ctx, func(tok string) error {
		return c.getJSON(ctx, http.MethodDelete, dbPath(name), "", nil, tok, nil)
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return fmt.Errorf("deleting %s: %s", name, ae.Message)
		}
		return err
	}
	// Sessions for a deleted database are meaningless now.
	if creds, err := a.loadCredentials(); err == nil {
		if s := creds.Servers[c.base]; s != nil && s.Databases[name] != nil {
			delete(s.Databases, name)
			a.saveCredentials(creds)
		}
	}
	if a.json {
		return a.printJSON(map[string]any{"database": name, "deleted": true})
	}
	fmt.Fprintf(a.stdout, "Deleted database %s\n", name)
	return nil
}

// fmtEnergy prints energy units briefly: 950, 61.2k, 3.4M, 1.0G.
func fmtEnergy(e uint64) string {
	switch {
	case e < 1000:
		return fmt.Sprint(e)
	case e < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(e)/1e3)
	case e < 1_000_000_000:
		return fmt.Sprintf("%.1fM", float64(e)/1e6)
	}
	return fmt.Sprintf("%.1fG", float64(e)/1e9)
}

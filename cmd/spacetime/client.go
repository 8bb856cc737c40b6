package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spacetime-go/spacetime/modules/schema"
)

const defaultServer = "http://127.0.0.1:3000"

// ErrServerUnreachable is wrapped when no server answers at the URL.
var ErrServerUnreachable = errors.New("cannot reach the server")

// apiError is an error answer of the HTTP API: a status and the server's
// message, which already says what to do.
type apiError struct {
	Status  int
	Message string
	Body    []byte
}

func (e *apiError) Error() string { return e.Message }

// client talks to one server's HTTP API.
type client struct {
	a    *app
	base string
	http *http.Client
}

func (a *app) client() (*client, error) {
	u, err := url.Parse(a.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q is not a server URL: give one such as http://127.0.0.1:3000", a.server)
	}
	return &client{a: a, base: serverKey(a.server), http: &http.Client{}}, nil
}

// unreachable turns a connection failure into advice.
func (c *client) unreachable(err error) error {
	var ne net.Error
	var oe *net.OpError
	if errors.Is(err, syscall.ECONNREFUSED) {
		// The common case needs no detail: nothing listens there.
		return fmt.Errorf("%w at %s: is it running? Start one with `spacetime start` or `spacetime dev`, or point --server (or SPACETIME_SERVER) at a running one", ErrServerUnreachable, c.base)
	}
	if errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, io.EOF) {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w at %s: is it running? Start one with `spacetime start` or `spacetime dev`, or point --server (or SPACETIME_SERVER) at a running one (%v)", ErrServerUnreachable, c.base, err)
	}
	return fmt.Errorf("talking to the server at %s: %w", c.base, err)
}

// do sends a request and returns the response of a 2xx answer; other
// answers become *apiError.
func (c *client) do(ctx context.Context, method, path, contentType string, body []byte, token string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.unreachable(err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(data))
	if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	if msg == "" {
		msg = resp.Status
	}
	return nil, &apiError{Status: resp.StatusCode, Message: msg, Body: data}
}

// getJSON sends a request and decodes a 2xx JSON answer into out.
func (c *client) getJSON(ctx context.Context, method, path, contentType string, body []byte, token string, out any) error {
	resp, err := c.do(ctx, method, path, contentType, body, token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("the server at %s sent an answer that is not the expected JSON (%v): is it a spacetime server?", c.base, err)
	}
	return nil
}

// operatorToken returns the stored operator token for this server, creating
// an operator identity (POST /v1/identity) the first time one is needed.
func (c *client) operatorToken(ctx context.Context) (string, error) {
	creds, err := c.a.loadCredentials()
	if err != nil {
		return "", err
	}
	if s := creds.Servers[c.base]; s != nil && s.Token != "" {
		return s.Token, nil
	}
	id, err := c.newOperator(ctx, creds)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(c.a.stderr, "Created operator identity %s for %s (saved in %s)\n", short(id.Identity), c.base, c.a.credentialsPathOrEmpty())
	return id.Token, nil
}

type identityAnswer struct {
	Identity string `json:"identity"`
	Token    string `json:"token"`
}

func (c *client) newOperator(ctx context.Context, creds *credentials) (*identityAnswer, error) {
	var id identityAnswer
	if err := c.getJSON(ctx, http.MethodPost, "/v1/identity", "", nil, "", &id); err != nil {
		return nil, fmt.Errorf("getting an operator identity: %w", err)
	}
	if id.Token == "" {
		return nil, fmt.Errorf("the server at %s returned no operator token", c.base)
	}
	s := creds.server(c.base)
	s.Identity, s.Token = id.Identity, id.Token
	if err := c.a.saveCredentials(creds); err != nil {
		return nil, err
	}
	return &id, nil
}

func (a *app) credentialsPathOrEmpty() string {
	p, _ := a.credentialsPath()
	return p
}

// asOperator runs fn with the operator token. A 401 means the server no
// longer accepts the stored token (its data directory, and so its key, is
// not the one that signed it): the tool gets a new identity once and says so.
func (c *client) asOperator(ctx context.Context, fn func(token string) error) error {
	tok, err := c.operatorToken(ctx)
	if err != nil {
		return err
	}
	err = fn(tok)
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		return err
	}
	creds, lerr := c.a.loadCredentials()
	if lerr != nil {
		return err
	}
	id, nerr := c.newOperator(ctx, creds)
	if nerr != nil {
		return err
	}
	fmt.Fprintf(c.a.stderr, "The server at %s no longer accepts the stored operator token (was its data directory replaced?); created operator identity %s\n", c.base, short(id.Identity))
	return fn(id.Token)
}

// dbInfo is one entry of GET /v1/database.
type dbInfo struct {
	Name        string    `json:"name"`
	Owner       string    `json:"owner"`
	ModuleHash  string    `json:"module_hash"`
	PublishedAt time.Time `json:"published_at"`
}

func (c *client) databases(ctx context.Context) ([]dbInfo, error) {
	var out struct {
		Databases []dbInfo `json:"databases"`
	}
	if err := c.getJSON(ctx, http.MethodGet, "/v1/database", "", nil, "", &out); err != nil {
		return nil, err
	}
	sort.Slice(out.Databases, func(i, j int) bool { return out.Databases[i].Name < out.Databases[j].Name })
	return out.Databases, nil
}

// resolveDB picks the database a command works on: --db, else
// $SPACETIME_DB, else the module project in the working directory, else the
// only database on the server.
func (c *client) resolveDB(ctx context.Context, flagDB string) (string, error) {
	if flagDB != "" {
		return flagDB, nil
	}
	if env := c.a.getenv("SPACETIME_DB"); env != "" {
		return env, nil
	}
	if isProject(c.a.wd) {
		return projectName(c.a.wd)
	}
	dbs, err := c.databases(ctx)
	if err != nil {
		return "", err
	}
	switch len(dbs) {
	case 0:
		return "", fmt.Errorf("the server at %s has no database yet: publish one (`spacetime publish --project DIR` or `spacetime dev DIR`)", c.base)
	case 1:
		return dbs[0].Name, nil
	}
	names := make([]string, len(dbs))
	for i, d := range dbs {
		names[i] = d.Name
	}
	return "", usagef("the server at %s has %d databases (%s): choose one with --db NAME or SPACETIME_DB, or run the command in a project directory (one with %s)",
		c.base, len(dbs), strings.Join(names, ", "), schema.FileName)
}

func dbPath(db string, rest ...string) string {
	p := "/v1/database/" + url.PathEscape(db)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// short abbreviates a hex identity for people; --json shows it whole.
func short(id string) string {
	if len(id) > 16 {
		return id[:16] + "…"
	}
	return id
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readFileArg reads a file named on the command line.
func (a *app) readFileArg(p, what string) ([]byte, error) {
	data, err := os.ReadFile(a.abs(p))
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", what, err)
	}
	return data, nil
}

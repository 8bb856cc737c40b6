package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAdminEndpoints checks the owner rules of every endpoint the admin page
// uses besides the public API, and what each answers to the owner.
func TestAdminEndpoints(t *testing.T) {
	s := newServer(t)
	ownerID, op := operator(t, s)
	_, other := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), http.StatusCreated)
	alice := mustCall(t, s, "blog", "auth", "", devToken(t, s, "alice"))
	aliceID, aliceSess := alice["identity"].(string), alice["token"].(string)
	mustCall(t, s, "blog", "create_post", aliceSess, "Hello from Alice!")
	mustCall(t, s, "blog", "set_setting", op, "motd", "hello")
	if r := call(t, s, "blog", "fail", "", "nope"); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("fail: %d %s", r.code, r.body)
	}
	// Two open clients: Alice's session and the owner's operator token.
	connect(t, s, "blog", aliceSess)
	connect(t, s, "blog", op)

	routes := []string{"/v1/database/blog/tables", "/v1/database/blog/clients", "/v1/database/blog/stats"}
	refusals := []struct {
		name, token string
		code        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a session token", aliceSess, http.StatusUnauthorized},
		{"another operator", other, http.StatusForbidden},
	}
	for _, route := range routes {
		for _, tc := range refusals {
			t.Run(route+" "+tc.name, func(t *testing.T) {
				r := do(t, s, "GET", route, tc.token, nil)
				if r.code != tc.code {
					t.Fatalf("got %d, want %d: %s", r.code, tc.code, r.body)
				}
				r.errorText(t)
			})
		}
		if r := do(t, s, "GET", strings.Replace(route, "blog", "nope", 1), op, nil); r.code != http.StatusNotFound {
			t.Errorf("%s of an unknown database: %d", route, r.code)
		}
	}

	t.Run("databases", func(t *testing.T) {
		tests := []struct {
			name, token string
			code        int
			want        []string
		}{
			{"owner", op, 200, []string{"blog"}},
			{"another operator", other, 200, []string{}},
			{"no token", "", 401, nil},
			{"a session token", aliceSess, 401, nil},
		}
		for _, tc := range tests {
			r := do(t, s, "GET", "/v1/identity/databases", tc.token, nil)
			if r.code != tc.code {
				t.Fatalf("%s: got %d, want %d: %s", tc.name, r.code, tc.code, r.body)
			}
			if r.code != 200 {
				continue
			}
			var got struct {
				Identity  string `json:"identity"`
				Databases []struct {
					Name  string `json:"name"`
					Owner string `json:"owner"`
				} `json:"databases"`
			}
			json.Unmarshal(r.body, &got)
			if len(got.Identity) != 64 || len(got.Databases) != len(tc.want) {
				t.Fatalf("%s: %s", tc.name, r.body)
			}
			for i, d := range got.Databases {
				if d.Name != tc.want[i] || d.Owner != ownerID {
					t.Errorf("%s: %s", tc.name, r.body)
				}
			}
		}
	})

	_, settings := sql(t, s, "blog", op, "SELECT * FROM Setting") // init writes some too
	t.Run("tables", func(t *testing.T) {
		r := do(t, s, "GET", "/v1/database/blog/tables", op, nil)
		var got struct {
			Tables []struct {
				Name    string   `json:"name"`
				Rows    uint64   `json:"rows"`
				Grants  []string `json:"grants"`
				Indexes []struct {
					Name string `json:"name"`
				} `json:"indexes"`
				Columns []struct {
					Name       string `json:"name"`
					Type       string `json:"type"`
					PrimaryKey bool   `json:"primary_key"`
				} `json:"columns"`
			} `json:"tables"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil || r.code != 200 {
			t.Fatalf("%d %v %s", r.code, err, r.body)
		}
		want := map[string]struct {
			rows   uint64
			grants string
			index  string
		}{
			"User":    {1, "grant_access User where identity_id = :caller;", "User_identity_id_idx"},
			"Post":    {1, "grant_access Post to public;", "Post_post_id_idx"},
			"Setting": {uint64(len(settings)), "", "Setting_key_idx"},
		}
		seen := 0
		for _, tb := range got.Tables {
			w, ok := want[tb.Name]
			if !ok {
				continue
			}
			seen++
			if tb.Rows != w.rows || strings.Join(tb.Grants, " ") != w.grants || len(tb.Indexes) == 0 || tb.Indexes[0].Name != w.index || !tb.Columns[0].PrimaryKey || tb.Columns[0].Type == "" {
				t.Errorf("table %s: %+v", tb.Name, tb)
			}
		}
		if seen != len(want) {
			t.Errorf("tables: %s", r.body)
		}
	})

	t.Run("clients", func(t *testing.T) {
		r := do(t, s, "GET", "/v1/database/blog/clients", op, nil)
		var got struct {
			Clients []adminClient `json:"clients"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil || r.code != 200 || len(got.Clients) != 2 {
			t.Fatalf("%d %v %s", r.code, err, r.body)
		}
		kinds := map[string]bool{}
		for _, c := range got.Clients {
			kinds[c.Identity.String()] = c.Owner
			if len(c.ConnectionID) != 32 || !strings.HasPrefix(c.RemoteAddr, "127.0.0.1:") {
				t.Errorf("client %+v", c)
			}
		}
		if owner, ok := kinds[aliceID]; !ok || owner {
			t.Errorf("alice's connection: %s", r.body)
		}
		if owner, ok := kinds[strings.Repeat("0", 64)]; !ok || !owner {
			t.Errorf("the owner's connection (zero caller, reads all): %s", r.body)
		}
	})

	t.Run("stats", func(t *testing.T) {
		r := do(t, s, "GET", "/v1/database/blog/stats", op, nil)
		var got adminStats
		if err := json.Unmarshal(r.body, &got); err != nil || r.code != 200 {
			t.Fatalf("%d %v %s", r.code, err, r.body)
		}
		by := map[string]reducerStats{}
		for _, rs := range got.Reducers {
			by[rs.Reducer] = rs
		}
		if cp := by["create_post"]; cp.Committed != 1 || cp.Failed != 0 || cp.Count != 1 || len(cp.Buckets) < 2 || cp.Buckets[len(cp.Buckets)-1].LE != nil || cp.Buckets[len(cp.Buckets)-1].Count != 1 {
			t.Errorf("create_post: %+v", cp)
		}
		if cp := by["create_post"]; cp.Energy == 0 || cp.Energy > got.Energy {
			t.Errorf("create_post energy %d of %d", cp.Energy, got.Energy)
		}
		if f := by["fail"]; f.Failed != 1 || f.Committed != 0 {
			t.Errorf("fail: %+v", f)
		}
		if got.Commits < 3 || got.Connections != 2 || got.Energy == 0 || got.Offset == 0 {
			t.Errorf("stats: %s", r.body)
		}
		rows := map[string]uint64{}
		for _, tr := range got.Tables {
			rows[tr.Table] = tr.Rows
		}
		if rows["Post"] != 1 || rows["User"] != 1 || rows["Setting"] != uint64(len(settings)) {
			t.Errorf("rows per table: %v", rows)
		}
	})
}

// TestViewAs checks that ?as= reads exactly what that identity reads with
// its own session, through the same read path, and that only the owner may
// use it.
func TestViewAs(t *testing.T) {
	s := newServer(t)
	_, op := operator(t, s)
	_, other := operator(t, s)
	publish(t, s, "blog", op, buildModule(t, appModule), http.StatusCreated)
	ids, sess := map[string]string{}, map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		m := mustCall(t, s, "blog", "auth", "", devToken(t, s, u))
		ids[u], sess[u] = m["identity"].(string), m["token"].(string)
		mustCall(t, s, "blog", "create_post", sess[u], "post by "+u)
	}
	mustCall(t, s, "blog", "set_setting", op, "motd", "hello")

	for _, u := range []string{"alice", "bob"} {
		for _, q := range []string{"SELECT * FROM Post", "SELECT * FROM User", "SELECT * FROM Setting", "SELECT COUNT(*) FROM Post WHERE author_identity_id = :caller"} {
			t.Run(u+" "+q, func(t *testing.T) {
				own := do(t, s, "POST", "/v1/database/blog/sql", sess[u], []byte(q))
				as := do(t, s, "POST", "/v1/database/blog/sql?as="+ids[u], op, []byte(q))
				if own.code != as.code {
					t.Fatalf("own session %d, view as %d:\n%s\n%s", own.code, as.code, own.body, as.body)
				}
				if own.code == 200 {
					var a, b []sqlResult
					json.Unmarshal(own.body, &a)
					json.Unmarshal(as.body, &b)
					a[0].Offset, b[0].Offset = 0, 0
					ja, _ := json.Marshal(a)
					jb, _ := json.Marshal(b)
					if string(ja) != string(jb) || b[0].AsOwner {
						t.Errorf("own session:\n%s\nview as:\n%s", ja, jb)
					}
					if as.header.Get("Spacetime-Read-As") != ids[u] || as.header.Get("Spacetime-As-Owner") != "" {
						t.Errorf("headers: %v", as.header)
					}
				} else if own.errorText(t) != as.errorText(t) {
					t.Errorf("own session: %s\nview as: %s", own.body, as.body)
				}
			})
		}
	}
	// The private table stays private to every client, view-as included.
	if r := do(t, s, "POST", "/v1/database/blog/sql?as="+ids["alice"], op, []byte("SELECT * FROM Setting")); r.code != http.StatusForbidden {
		t.Errorf("view as alice on a private table: %d %s", r.code, r.body)
	}
	anon := do(t, s, "POST", "/v1/database/blog/sql?as=anonymous", op, []byte("SELECT * FROM Post"))
	if plain := do(t, s, "POST", "/v1/database/blog/sql", "", []byte("SELECT * FROM Post")); anon.code != 200 || plain.code != 200 {
		t.Errorf("view as anonymous: %d %s", anon.code, anon.body)
	}

	refusals := []struct {
		name, token, as string
		code            int
		want            string
	}{
		{"no token", "", ids["alice"], 401, "owner's operator token"},
		{"a session token", sess["alice"], ids["alice"], 401, "owner's operator token"},
		{"another operator", other, ids["alice"], 403, "does not own"},
		{"not hex", op, "alice", 400, "64 hex digits"},
		{"too short", op, "c200", 400, "64 hex digits"},
	}
	for _, tc := range refusals {
		t.Run("sql refused: "+tc.name, func(t *testing.T) {
			r := do(t, s, "POST", "/v1/database/blog/sql?as="+tc.as, tc.token, []byte("SELECT * FROM Post"))
			if r.code != tc.code || !strings.Contains(r.errorText(t), tc.want) {
				t.Fatalf("got %d %s, want %d with %q", r.code, r.body, tc.code, tc.want)
			}
		})
		t.Run("call refused: "+tc.name, func(t *testing.T) {
			r := do(t, s, "POST", "/v1/database/blog/call/whoami?as="+tc.as, tc.token, []byte("[]"))
			if r.code != tc.code || !strings.Contains(r.errorText(t), tc.want) {
				t.Fatalf("got %d %s, want %d with %q", r.code, r.body, tc.code, tc.want)
			}
		})
	}

	// Calling as an identity: the reducer's caller is that identity.
	calls := []struct {
		name, query, want string
	}{
		{"as alice", "?as=" + ids["alice"], ids["alice"]},
		{"as bob, 0x prefix", "?as=0x" + ids["bob"], ids["bob"]},
		{"anonymously", "?as=anonymous", strings.Repeat("0", 64)},
		{"no as: the operator runs unauthenticated", "", strings.Repeat("0", 64)},
	}
	for _, tc := range calls {
		t.Run("call "+tc.name, func(t *testing.T) {
			r := do(t, s, "POST", "/v1/database/blog/call/whoami"+tc.query, op, []byte("[]"))
			if r.code != 200 || r.json(t)["return"] != tc.want {
				t.Fatalf("%d %s, want return %s", r.code, r.body, tc.want)
			}
		})
	}
	// A post made as Alice is hers.
	mustCallAs := do(t, s, "POST", "/v1/database/blog/call/create_post?as="+ids["alice"], op, []byte(`["as alice, by the owner"]`))
	if mustCallAs.code != 200 {
		t.Fatalf("create_post as alice: %d %s", mustCallAs.code, mustCallAs.body)
	}
	if _, rows := sql(t, s, "blog", op, "SELECT * FROM Post WHERE content = 'as alice, by the owner'"); len(rows) != 1 || rows[0]["author_identity_id"] != ids["alice"] {
		t.Fatalf("the post made as alice: %v", rows)
	}
}

// TestAdminPage checks that the page and its assets are served with their
// types, caching and policy (server/adminui tests the details).
func TestAdminPage(t *testing.T) {
	s := newServer(t)
	r := do(t, s, "GET", "/", "", nil)
	if r.code != 200 || r.header.Get("Content-Type") != "text/html; charset=utf-8" || r.header.Get("Cache-Control") != "no-cache" ||
		!strings.Contains(r.header.Get("Content-Security-Policy"), "connect-src 'self' ws://"+s.Addr()) {
		t.Fatalf("GET /: %d %v", r.code, r.header)
	}
	i := strings.Index(string(r.body), `src="/admin/admin.`)
	if i < 0 {
		t.Fatalf("no script in the page:\n%s", r.body)
	}
	src := string(r.body[i+5:])
	src = src[:strings.IndexByte(src, '"')]
	if a := do(t, s, "GET", src, "", nil); a.code != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/javascript") || !strings.Contains(a.header.Get("Cache-Control"), "immutable") {
		t.Fatalf("GET %s: %d %v", src, a.code, a.header)
	}
	if a := do(t, s, "GET", "/admin/nope.css", "", nil); a.code != 404 {
		t.Fatalf("unknown asset: %d", a.code)
	}
}

package server

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
)

// adminRows is how many rows of each table the admin page shows.
const adminRows = 50

var adminPage = template.Must(template.New("admin").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>spacetime</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top;max-width:30em;overflow-wrap:anywhere}
code{font-size:90%}.note{color:#666}
</style>
</head><body>
<h1>spacetime server</h1>
<p>Version {{.Version}}. API under <code>/v1/</code> (docs/http-api.md); metrics at <a href="/metrics">/metrics</a>.
{{if .Token}}Showing every table of the databases this operator token owns.{{else}}Showing the tables opened with <code>grant_access T to public</code>; open this page with <code>?token=&lt;operator token&gt;</code> to see every table of your databases.{{end}}</p>
{{range .Databases}}
<h2>{{.Name}}</h2>
<p class="note">module <code>{{.Hash}}</code>, published {{.Published}}; reducers: {{.Reducers}}. <a href="/v1/database/{{.Name}}/schema">schema</a></p>
{{range .Tables}}
<h3>{{.Name}}{{if .Count}} <span class="note">({{.Count}} rows{{if .More}}, first {{len .Rows}} shown{{end}})</span>{{end}}</h3>
{{if .Error}}<p class="note">{{.Error}}</p>{{else if not .Rows}}<p class="note">no rows</p>{{else}}
<table><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>{{end}}
</table>{{end}}
{{end}}
{{else}}<p>No databases yet: publish one with <code>spacetime publish</code>.</p>{{end}}
</body></html>`))

type adminTable struct {
	Name    string
	Count   int
	More    bool
	Columns []string
	Rows    [][]string
	Error   string
}

type adminDB struct {
	Name, Hash, Published, Reducers string
	Tables                          []adminTable
}

// handleAdmin is the admin page: each database with its tables and their
// first rows, under the same read rule as the SQL route (an operator token
// in ?token= shows the owner everything).
func (s *Server) handleAdmin(w http.ResponseWriter, r *http.Request) {
	p, ok := s.principal(w, r)
	if !ok {
		return
	}
	s.mu.RLock()
	dbs := make([]*database, 0, len(s.dbs))
	for _, d := range s.dbs {
		dbs = append(dbs, d)
	}
	s.mu.RUnlock()
	slices.SortFunc(dbs, func(a, b *database) int { return strings.Compare(a.name, b.name) })

	var out []adminDB
	for _, d := range dbs {
		info, def := d.info(), d.def()
		var reducers []string
		for _, rd := range def.Reducers {
			reducers = append(reducers, rd.Name)
		}
		h := info.ModuleHash
		if len(h) > 12 {
			h = h[:12]
		}
		ad := adminDB{Name: d.name, Hash: h, Published: info.PublishedAt.Format("2006-01-02 15:04:05 MST"), Reducers: strings.Join(reducers, ", ")}
		owner := d.isOwner(p)
		for _, t := range d.rdb.Store().Tables() {
			at := adminTable{Name: t.Name}
			res, _, err := s.runSQL(d, fmt.Sprintf("SELECT * FROM %q", t.Name), p.caller(), owner)
			if err != nil {
				at.Error = err.Error()
				ad.Tables = append(ad.Tables, at)
				continue
			}
			at.Columns, at.Count = res.Columns, len(res.Rows)
			for i, raw := range res.Rows {
				if i == adminRows {
					at.More = true
					break
				}
				var m map[string]json.RawMessage
				json.Unmarshal(raw, &m)
				row := make([]string, len(res.Columns))
				for j, c := range res.Columns {
					row[j] = strings.Trim(string(m[c]), `"`)
				}
				at.Rows = append(at.Rows, row)
			}
			ad.Tables = append(ad.Tables, at)
		}
		out = append(out, ad)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	adminPage.Execute(w, map[string]any{"Version": s.cfg.version, "Databases": out, "Token": !p.Operator.IsZero()})
}

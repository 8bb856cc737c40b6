package server

import (
	"html/template"
	"net/http"
	"slices"
	"strings"
)

var adminPage = template.Must(template.New("admin").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>spacetime</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}code{font-size:90%}</style>
</head><body>
<h1>spacetime server</h1>
<p>Version {{.Version}}. API: <code>/v1/...</code> (see docs/http-api.md), metrics: <a href="/metrics">/metrics</a>.</p>
<h2>Databases</h2>
{{if .Databases}}<table><tr><th>name</th><th>tables</th><th>reducers</th><th>module</th><th>published</th></tr>
{{range .Databases}}<tr><td><a href="/v1/database/{{.Name}}/schema">{{.Name}}</a></td><td>{{.Tables}}</td><td>{{.Reducers}}</td><td><code>{{.Hash}}</code></td><td>{{.Published}}</td></tr>
{{end}}</table>
<p>Read a table with <code>spacetime sql --db NAME "SELECT * FROM Table"</code>.</p>
{{else}}<p>None yet: publish one with <code>spacetime publish</code>.</p>{{end}}
</body></html>`))

// handleAdmin is the admin page: the databases, their tables and reducers.
func (s *Server) handleAdmin(w http.ResponseWriter, r *http.Request) {
	type row struct{ Name, Tables, Reducers, Hash, Published string }
	var rows []row
	s.mu.RLock()
	for _, d := range s.dbs {
		info := d.info()
		def := d.def()
		var tables, reducers []string
		for _, t := range def.Tables {
			tables = append(tables, t.Name)
		}
		for _, rd := range def.Reducers {
			reducers = append(reducers, rd.Name)
		}
		h := info.ModuleHash
		if len(h) > 12 {
			h = h[:12]
		}
		rows = append(rows, row{info.Name, strings.Join(tables, ", "), strings.Join(reducers, ", "), h, info.PublishedAt.Format("2006-01-02 15:04:05 MST")})
	}
	s.mu.RUnlock()
	slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.Name, b.Name) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	adminPage.Execute(w, map[string]any{"Version": s.cfg.version, "Databases": rows})
}

package adminui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var static embed.FS

// AssetPrefix is the URL path under which the page's scripts and styles are
// served; the router sends "GET AssetPrefix{file}" to [UI.ServeAsset].
const AssetPrefix = "/admin/"

// ErrAssets is wrapped by New when the embedded files are not what the page
// needs (a broken build of the binary).
var ErrAssets = errors.New("adminui: embedded assets")

// asset is one file ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
	// immutable marks the content-hashed name: its content never changes.
	immutable bool
}

// UI serves the admin page and its assets. It is safe for concurrent use.
type UI struct {
	index  *asset
	assets map[string]*asset // by file name, hashed and plain
}

// New loads the embedded files, names each script and style after a hash of
// its content and points the page at those names.
func New() (*UI, error) {
	u := &UI{assets: map[string]*asset{}}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAssets, err)
	}
	var page []byte
	renames := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		body, err := fs.ReadFile(static, "static/"+name)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrAssets, err)
		}
		if name == "index.html" {
			page = body
			continue
		}
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])[:12]
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + h + ext
		a := &asset{body: body, ctype: contentType(name), etag: `"` + h + `"`}
		u.assets[name] = a
		u.assets[hashed] = &asset{body: body, ctype: a.ctype, etag: a.etag, immutable: true}
		renames[AssetPrefix+name] = AssetPrefix + hashed
	}
	if page == nil {
		return nil, fmt.Errorf("%w: index.html is missing", ErrAssets)
	}
	for plain, hashed := range renames {
		page = bytes.ReplaceAll(page, []byte(`"`+plain+`"`), []byte(`"`+hashed+`"`))
	}
	sum := sha256.Sum256(page)
	u.index = &asset{body: page, ctype: "text/html; charset=utf-8", etag: `"` + hex.EncodeToString(sum[:])[:12] + `"`}
	return u, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// hostRe is what a Host header may hold to be repeated in the policy: a
// name or address and a port, nothing that could end the directive.
var hostRe = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](:[0-9]+)?$`)

// CSP is the page's Content-Security-Policy for a request to host. Scripts,
// styles, images and fonts come from the page's origin only; no inline
// script or style runs; the page may connect to its own origin and to its
// WebSocket (ws: and wss: of the same host, which older browsers do not
// count as 'self').
func CSP(host string) string {
	connect := "'self'"
	if hostRe.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src " + connect + "; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// ServeIndex answers with the page. Browsers revalidate it on every visit
// (no-cache, with an ETag), so a new server version is picked up at once.
func (u *UI) ServeIndex(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP(r.Host))
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	u.serve(w, r, u.index)
}

// ServeAsset answers GET AssetPrefix{file}. A content-hashed name is cached
// for a year; the plain name is revalidated like the page.
func (u *UI) ServeAsset(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, AssetPrefix)
	a, ok := u.assets[name]
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "{\"error\":%q}\n", "no admin page file "+name+": reload the page (the server may have been upgraded)")
		return
	}
	if a.immutable {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	u.serve(w, r, a)
}

func (u *UI) serve(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(a.body)
	}
}

// etagMatches reads an If-None-Match list (weak comparison, as RFC 9110
// asks for it).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

package adminui

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, u *UI, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", u.ServeIndex)
	mux.HandleFunc("GET "+AssetPrefix+"{file}", u.ServeAsset)
	req := httptest.NewRequest(method, path, nil)
	req.Host = "127.0.0.1:3000"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestPage(t *testing.T) {
	u, err := New()
	if err != nil {
		t.Fatal(err)
	}
	page := serve(t, u, "GET", "/", nil)
	if page.Code != 200 {
		t.Fatalf("GET /: %d", page.Code)
	}
	h := page.Header()
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-cache",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "connect-src 'self' ws://127.0.0.1:3000 wss://127.0.0.1:3000;", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q: %s", want, csp)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows inline code: %s", csp)
	}
	body := page.Body.String()
	// No inline script or style: the policy would block them anyway, and
	// the page must not depend on them.
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script>`), regexp.MustCompile(`<script[^>]*>[^<]+</script>`), regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`https?://[a-z]`)} {
		if bad.MatchString(body) {
			t.Errorf("page has %s", bad)
		}
	}
	if r := serve(t, u, "GET", "/", map[string]string{"If-None-Match": h.Get("ETag")}); r.Code != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", r.Code)
	}

	// Every asset the page names is content-hashed and cached for a year.
	refs := regexp.MustCompile(`"(/admin/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(refs) < 3 {
		t.Fatalf("page references %d assets, want script, style and icon: %v", len(refs), refs)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, ref := range refs {
		path := ref[1]
		if !regexp.MustCompile(`\.[0-9a-f]{12}\.[a-z]+$`).MatchString(path) {
			t.Errorf("%s is not content-hashed", path)
		}
		r := serve(t, u, "GET", path, nil)
		if r.Code != 200 {
			t.Errorf("GET %s: %d", path, r.Code)
			continue
		}
		ext := path[strings.LastIndex(path, "."):]
		if got := r.Header().Get("Content-Type"); got != types[ext] {
			t.Errorf("%s: Content-Type %q, want %q", path, got, types[ext])
		}
		if got := r.Header().Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", path, got)
		}
		if r.Header().Get("X-Content-Type-Options") != "nosniff" || r.Header().Get("ETag") == "" {
			t.Errorf("%s: headers %v", path, r.Header())
		}
		if n := serve(t, u, "GET", path, map[string]string{"If-None-Match": r.Header().Get("ETag")}); n.Code != http.StatusNotModified || n.Body.Len() != 0 {
			t.Errorf("%s revalidated: %d with %d bytes", path, n.Code, n.Body.Len())
		}
		if h := serve(t, u, "HEAD", path, nil); h.Code != 200 || h.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d bytes", path, h.Code, h.Body.Len())
		}
	}
	// The plain name still works (for a page cached before an upgrade), but
	// is revalidated.
	if r := serve(t, u, "GET", "/admin/admin.js", nil); r.Code != 200 || r.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("plain asset name: %d %q", r.Code, r.Header().Get("Cache-Control"))
	}
	if r := serve(t, u, "GET", "/admin/nope.js", nil); r.Code != 404 || !strings.Contains(r.Body.String(), "reload") {
		t.Errorf("unknown asset: %d %s", r.Code, r.Body)
	}
}

func TestCSPHost(t *testing.T) {
	tests := []struct {
		host string
		ws   bool
	}{
		{"127.0.0.1:3000", true},
		{"localhost", true},
		{"[::1]:3000", true},
		{"example.com; script-src *", false},
		{"evil.com'", false},
		{"", false},
	}
	for _, tc := range tests {
		csp := CSP(tc.host)
		if got := strings.Contains(csp, "ws://"); got != tc.ws {
			t.Errorf("CSP(%q) has ws: %v, want %v: %s", tc.host, got, tc.ws, csp)
		}
		if strings.Count(csp, "script-src") != 1 {
			t.Errorf("CSP(%q) was injected into: %s", tc.host, csp)
		}
	}
}

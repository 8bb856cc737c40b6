// Package adminui holds the admin web page that the server serves at "/":
// plain HTML, CSS and JavaScript embedded in the binary, with no build step
// and nothing loaded from another origin.
//
// [UI] serves the files with their content types, caching that lets a
// browser keep the scripts and styles for a year (their URLs carry a hash of
// their content, so a new binary changes the URL) while it revalidates the
// page itself on every visit, and a Content-Security-Policy that allows no
// inline script or style and no connection outside the page's own host.
//
// The page is only a client of the HTTP API: every piece of data it shows
// comes from an endpoint that checks the operator's token on the server, so
// the page can never show more than the token may read.
package adminui

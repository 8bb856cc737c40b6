// Package browsertest holds the admin page's browser test: a real
// `spacetime` server with examples/secure_app published, driven in headless
// Chromium (Debian's chromium) by playwright-core from npm. The Go test
// builds and starts everything and runs testdata/admin.test.mjs with node.
//
// It skips when chromium, node or playwright-core are missing, unless
// SPACETIME_REQUIRE_BROWSER=1 (CI sets it; .ci/run installs them). To set up
// a machine: apt-get install chromium nodejs npm, then npm ci in testdata/.
// SPACETIME_UPDATE_SCREENSHOTS=1 rewrites docs/screenshots/.
package browsertest

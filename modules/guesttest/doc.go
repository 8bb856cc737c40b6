// Package guesttest builds guest modules once per test binary and runs their
// exports under a minimal host: bytes sources and sinks and the log, but no
// tables (table functions report NO_SUCH_TABLE). It lets the modules/
// packages test the SDK's exports — argument decoding, return values,
// failures and panics — before, and independently of, the real runtime,
// whose end-to-end tests cover tables.
package guesttest

// Command spacetime is the project's command-line tool: it creates, builds
// and publishes modules, calls reducers, runs queries and live
// subscriptions, reads module logs, mints dev tokens, and runs the server
// (start, and dev, which also rebuilds and republishes a project when its
// files change).
//
// Apart from start and dev, which embed the server, every command is a
// client of the server's HTTP and WebSocket API (.notes/CONTRACTS.md), so
// the same commands work against a local dev server and a remote one. The
// build and code generation logic lives in modules/build and
// modules/codegen; this package is the command line around them.
//
// Command names, flags and environment variables follow the CLI contract in
// DESIGN.md ("The command-line tool"); RATIONALE.md ("CLI") explains the
// choices. Credentials (the operator token per server, the session an auth
// call returned per server and database) live in $SPACETIME_CONFIG_DIR or
// the user's config directory, in spacetime/credentials.json, mode 0600.
package main

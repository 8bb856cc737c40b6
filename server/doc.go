// Package server is the database server: the HTTP API, the WebSocket protocol
// (v1.json.spacetime), operator and session tokens, metrics and the admin
// page, over one store (Badger), one runtime (wazero) and a subscription
// engine per database.
//
// # Lifecycle
//
// New opens the data directory: the store under data/, the compilation cache
// under cache/, the server key (auth.OpenServerKey) and the operator tokens'
// settings. Every database in the store is reopened with the module binary
// kept in its metadata, so a restart serves exactly what was published.
// Start listens; Close stops accepting, closes WebSockets with a reason, runs
// client_disconnected, and closes the store after its last commit is durable.
//
// # Tokens
//
// Two kinds of bearer tokens reach the server. Operator tokens (POST
// /v1/identity) identify who publishes, deletes and reads logs; they are
// signed by the server key with their own issuer and audience, so that
// neither a module's verifier nor the session check accepts one. Session
// tokens are minted after a successful auth reducer (auth.ServerKey.MintSession)
// and carry the identity the auth reducer returned: a client presents them on
// later HTTP calls and on WebSocket connections.
//
// # Reads
//
// Until row-level grants are enforced everywhere, a client reads a table only
// when the module declares `grant_access T to public`. The database owner,
// presenting its operator token, reads every table; responses say so
// ("as_owner": true) and the server logs it.
package server

// Package auth holds what the server knows about tokens: how an identity is
// derived from a token's issuer and subject, the verifier for trusted
// external issuers, the server's own (dev) issuer and its session tokens.
//
// It imports no other package of the project but abi, so both hostfuncs
// (jwt_verify, identity_from_claims) and the server (bearer tokens) use it.
package auth

// Package auth holds what the server knows about tokens: how an identity is
// derived from a token's issuer and subject, the verifier for trusted
// external issuers, the server's own (dev) issuer and its session tokens.
//
// It imports no other package of the project but abi, so both hostfuncs
// (jwt_verify, identity_from_claims) and the server (bearer tokens) use it.
//
// The pieces:
//
//   - [LoadConfig] reads [[auth.issuers]] and [databases.NAME.auth] from the
//     server's TOML file into [Issuer] values, validated.
//   - [NewVerifiers] builds, from a Config and the server key, the
//     [Verifier] of every database ([Verifiers.For]); server-wide issuers
//     are shared, so their JWKS caches are too. [NewVerifier] builds one
//     verifier from explicit issuers. [Verifier.Verify] is the jwt_verify
//     host function's back end: claims JSON on success, a [*TokenError]
//     whose message is the reason for the guest on failure.
//   - [OpenServerKey] loads or creates the server's ES256 key in the data
//     directory. It mints dev tokens ([ServerKey.Mint], for `spacetime token
//     mint`), is trusted as an issuer through [ServerKey.Issuer], signs
//     session tokens ([ServerKey.MintSession], [ServerKey.VerifySession]) and
//     publishes its public key ([ServerKey.PublicKeyPEM], [ServerKey.JWKS]).
//   - [IdentityFromClaims] is SpacetimeDB's identity derivation.
package auth

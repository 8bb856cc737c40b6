package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// keyFamily groups the algorithms that share one kind of key.
type keyFamily int

const (
	familyHMAC keyFamily = iota + 1
	familyRSA
	familyEC
	familyEdDSA
)

func (f keyFamily) String() string {
	switch f {
	case familyHMAC:
		return "HMAC secret"
	case familyRSA:
		return "RSA key"
	case familyEC:
		return "EC key"
	case familyEdDSA:
		return "Ed25519 key"
	}
	return "unknown key"
}

// algorithms is the allow-list of what an issuer may name. "none" is absent on
// purpose and is refused by name.
var algorithms = map[string]struct {
	family keyFamily
	curve  elliptic.Curve // for EC
}{
	"HS256": {family: familyHMAC}, "HS384": {family: familyHMAC}, "HS512": {family: familyHMAC},
	"RS256": {family: familyRSA}, "RS384": {family: familyRSA}, "RS512": {family: familyRSA},
	"PS256": {family: familyRSA}, "PS384": {family: familyRSA}, "PS512": {family: familyRSA},
	"ES256": {family: familyEC, curve: elliptic.P256()},
	"ES384": {family: familyEC, curve: elliptic.P384()},
	"ES512": {family: familyEC, curve: elliptic.P521()},
	"EdDSA": {family: familyEdDSA},
}

// SupportedAlgorithms lists the algorithm names an issuer may allow.
func SupportedAlgorithms() []string {
	out := make([]string, 0, len(algorithms))
	for a := range algorithms {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// minRSABits refuses keys that are too weak to trust; every mainstream
// identity provider uses 2048 bits or more.
const minRSABits = 2048

// verificationKey is one public key (or HMAC secret) of an issuer. alg, when
// set (from a JWK's "alg"), restricts the key to that algorithm.
type verificationKey struct {
	kid string
	alg string
	key any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte
}

func familyOf(key any) keyFamily {
	switch key.(type) {
	case []byte:
		return familyHMAC
	case *rsa.PublicKey:
		return familyRSA
	case *ecdsa.PublicKey:
		return familyEC
	case ed25519.PublicKey:
		return familyEdDSA
	}
	return 0
}

// fits reports whether k may verify a signature made with alg: the key type
// must match the algorithm (the RSA-public-key-as-HMAC-secret attack), an EC
// key's curve must be the algorithm's, and a JWK's own "alg" must agree.
func (k verificationKey) fits(alg string) bool {
	spec, ok := algorithms[alg]
	if !ok || familyOf(k.key) != spec.family {
		return false
	}
	if k.alg != "" && k.alg != alg {
		return false
	}
	if spec.family == familyEC {
		return k.key.(*ecdsa.PublicKey).Curve == spec.curve
	}
	return true
}

// parsePublicKeyPEM reads every public key in a PEM file: PKIX ("PUBLIC KEY"),
// PKCS#1 ("RSA PUBLIC KEY") and certificates. Private keys are refused so an
// operator does not spread secrets into the server's config by mistake.
func parsePublicKeyPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE") {
				return nil, fmt.Errorf("found a %q block: give the issuer's PUBLIC key, never a private key", block.Type)
			}
			return nil, fmt.Errorf("unsupported PEM block %q: want \"PUBLIC KEY\", \"RSA PUBLIC KEY\" or \"CERTIFICATE\"", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parse %q block: %w", block.Type, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too weak: use at least %d bits", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("EC curve %s is not usable with JWT: use P-256, P-384 or P-521", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported public key type %T: use RSA, ECDSA or Ed25519", key)
	}
	return nil
}

// jwk is the subset of RFC 7517 the verifier reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWK Set. Keys that cannot be used to verify signatures
// (encryption keys, unknown types or curves, weak RSA keys, private-only
// entries) are skipped and reported in skipped, so one odd key published by
// an identity provider does not make the whole set unusable. An empty result
// is an error: a set with nothing to verify with is a configuration mistake.
func parseJWKS(data []byte) (keys []verificationKey, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not a JSON object with a \"keys\" array: %w", err)
	}
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		vk, err := k.verificationKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		keys = append(keys, vk)
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWKS has no usable signature verification key (skipped: %s)", strings.Join(skipped, "; "))
	}
	return keys, skipped, nil
}

func (k jwk) verificationKey() (verificationKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return verificationKey{}, fmt.Errorf("use %q is not \"sig\"", k.Use)
	}
	if k.Alg != "" {
		if _, ok := algorithms[k.Alg]; !ok {
			return verificationKey{}, fmt.Errorf("alg %q is not supported", k.Alg)
		}
	}
	vk := verificationKey{kid: k.Kid, alg: k.Alg}
	switch k.Kty {
	case "RSA":
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return vk, errors.New("RSA key needs base64url \"n\" and \"e\"")
		}
		eInt := int(new(big.Int).SetBytes(e).Int64())
		if eInt < 3 || eInt%2 == 0 {
			return vk, fmt.Errorf("RSA exponent %d is not valid", eInt)
		}
		vk.key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: eInt}
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return vk, fmt.Errorf("EC curve %q is not supported", k.Crv)
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		size := (curve.Params().BitSize + 7) / 8
		if errors.Join(err1, err2) != nil || len(x) != size || len(y) != size {
			return vk, fmt.Errorf("EC key needs base64url \"x\" and \"y\" of %d bytes", size)
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return vk, fmt.Errorf("EC point: %w", err)
		}
		vk.key = pub
	case "OKP":
		if k.Crv != "Ed25519" {
			return vk, fmt.Errorf("OKP curve %q is not supported (only Ed25519)", k.Crv)
		}
		x, err := b64(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return vk, errors.New("Ed25519 key needs a 32-byte base64url \"x\"")
		}
		vk.key = ed25519.PublicKey(x)
	default:
		return vk, fmt.Errorf("kty %q is not supported", k.Kty)
	}
	if err := checkPublicKey(vk.key); err != nil {
		return vk, err
	}
	if vk.alg != "" && !vk.fits(vk.alg) {
		return vk, fmt.Errorf("alg %q does not match its %s", vk.alg, familyOf(vk.key))
	}
	return vk, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// publicJWK renders a public key as a JWK (for GET /v1/identity/public-key and
// JWK thumbprints).
func publicJWK(pub *ecdsa.PublicKey, kid string) map[string]string {
	raw, _ := pub.Bytes() // uncompressed: 0x04 || X || Y
	size := (len(raw) - 1) / 2
	return map[string]string{
		"kty": "EC",
		"crv": pub.Curve.Params().Name,
		"x":   base64.RawURLEncoding.EncodeToString(raw[1 : 1+size]),
		"y":   base64.RawURLEncoding.EncodeToString(raw[1+size:]),
		"kid": kid,
		"alg": "ES256",
		"use": "sig",
	}
}

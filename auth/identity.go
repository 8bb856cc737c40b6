package auth

import (
	"github.com/zeebo/blake3"

	"github.com/spacetime-go/spacetime/abi"
)

// IdentityFromClaims derives the IdentityId of the subject sub of issuer iss,
// exactly as SpacetimeDB does, so identities are portable between the two:
//
//	h  = BLAKE3(iss + "|" + sub)[:26]
//	cs = BLAKE3(0xc2 0x00 ++ h)[:4]
//	id = 0xc2 0x00 ++ cs ++ h        (big-endian: its hex starts with "c200")
//
// The result is never the zero identity.
func IdentityFromClaims(iss, sub string) abi.Identity {
	first := blake3.Sum256([]byte(iss + "|" + sub))
	var checksumInput [28]byte
	checksumInput[0], checksumInput[1] = 0xc2, 0x00
	copy(checksumInput[2:], first[:26])
	checksum := blake3.Sum256(checksumInput[:])

	var id abi.Identity
	id[0], id[1] = 0xc2, 0x00
	copy(id[2:6], checksum[:4])
	copy(id[6:], first[:26])
	return id
}

package stdb

import (
	"time"

	"github.com/spacetime-go/spacetime/abi"
)

// Identity is an IdentityId: 32 bytes, shown as hex. The zero Identity is the
// unauthenticated caller.
type Identity = abi.Identity

// ConnectionID identifies a client connection; zero when the call has none.
type ConnectionID = abi.ConnectionID

// Timestamp is the schema type Timestamp: microseconds since the Unix epoch.
type Timestamp int64

// Micros returns t as microseconds since the Unix epoch.
func (t Timestamp) Micros() int64 { return int64(t) }

// Time returns t as a time.Time in UTC.
func (t Timestamp) Time() time.Time { return time.UnixMicro(int64(t)).UTC() }

func (t Timestamp) String() string { return t.Time().Format(time.RFC3339Nano) }

// TimestampOf converts a time.Time.
func TimestampOf(tm time.Time) Timestamp { return Timestamp(tm.UnixMicro()) }

// ReducerContext is what a reducer knows about its call. It is valid only
// during the call.
type ReducerContext struct {
	// Caller is the identity the calling connection authenticated as; the
	// zero Identity when it has not (check Caller.IsZero()).
	Caller Identity
	// ConnectionID is the calling connection; zero for HTTP calls and
	// lifecycle reducers run by the host.
	ConnectionID ConnectionID
	// Timestamp is when the transaction started. Reducers are deterministic
	// given their inputs: use it instead of the clock.
	Timestamp Timestamp
}

// Authenticated reports whether the caller has an identity.
func (c *ReducerContext) Authenticated() bool { return !c.Caller.IsZero() }

package runtime

import (
	"fmt"

	"github.com/spacetime-go/spacetime/hostfuncs"
)

// callLimits are the host function limits of d's calls: the database's own
// fields over the runtime's.
func (d *Database) callLimits() hostfuncs.Limits {
	l, own := d.rt.cfg.limits, d.cfg.limits
	for _, f := range []struct{ dst, src *int }{
		{&l.MaxHandles, &own.MaxHandles},
		{&l.MaxSinkBytes, &own.MaxSinkBytes},
		{&l.MaxLogBytes, &own.MaxLogBytes},
		{&l.MaxRowsWritten, &own.MaxRowsWritten},
		{&l.MaxBytesWritten, &own.MaxBytesWritten},
		{&l.MaxTokenBytes, &own.MaxTokenBytes},
		{&l.MaxRowBytes, &own.MaxRowBytes},
	} {
		if *f.src > 0 {
			*f.dst = *f.src
		}
	}
	// Every call holds three handles (arguments, return value, error).
	l.MaxHandles = max(l.MaxHandles, 3)
	return l
}

// maxArgs bounds the BSATN arguments of one of d's calls.
func (d *Database) maxArgs() int {
	if d.cfg.maxArgs > 0 {
		return d.cfg.maxArgs
	}
	return d.rt.cfg.maxArgs
}

// argsTooLarge is the error of a call whose arguments pass maxArgs.
func (d *Database) argsTooLarge(reducer string, n int) error {
	return fmt.Errorf("%w: %d bytes of arguments for %s; at most %d are accepted (max_args_bytes under [databases.%s.limits]; server-wide runtime.WithMaxArgsBytes)",
		ErrInvalidArguments, n, reducer, d.maxArgs(), d.name)
}

// withRefusal adds to the error of a call that did not finish the first
// limit its host functions refused it at: a guest that ignored
// LIMIT_EXCEEDED and ran out of energy is told what it ran into.
func withRefusal(err, refused error) error {
	if refused == nil {
		return err
	}
	return fmt.Errorf("%w (before that, %w)", err, refused)
}

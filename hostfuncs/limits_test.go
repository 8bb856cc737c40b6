package hostfuncs

import (
	"errors"
	"strings"
	"testing"

	"github.com/spacetime-go/spacetime/abi"
)

type logLines []string

func (l *logLines) ModuleLog(_ uint32, _ string, _ abi.Identity, msg string) {
	*l = append(*l, msg)
}

// TestWriteLimitNamed: each write limit refuses with LIMIT_EXCEEDED, and the
// call keeps (and logs once) the first refusal, naming the limit, its value
// and the setting that raises it.
func TestWriteLimitNamed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
		rows   []int // sizes written in turn; the last is refused
		want   Limit
		says   string
	}{
		{"rows", Limits{MaxRowsWritten: 2}, []int{1, 1, 1}, LimitRowsWritten, "limit of 2 rows written (inserted, updated or deleted) per transaction; raise max_rows_written"},
		{"bytes", Limits{MaxBytesWritten: 10}, []int{6, 5}, LimitBytesWritten, "limit of 10 bytes of rows written per transaction; raise max_bytes_written"},
		{"row size", Limits{MaxRowBytes: 8}, []int{8, 9}, LimitRowBytes, "limit of 8 bytes in one row; raise max_row_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log logLines
			c := &Call{Limits: tc.limits.WithDefaults(), Log: &log}
			for i, n := range tc.rows {
				k := c.writeLimit(n)
				if last := i == len(tc.rows)-1; (k != 0) != last {
					t.Fatalf("row %d of %d bytes: limit %d", i, n, k)
				}
				if k == 0 {
					c.chargeWrite(n)
					continue
				}
				if e := c.refuse(k, "row_insert"); e != abi.ErrnoLimitExceeded {
					t.Fatalf("errno %s", e)
				}
				c.refuse(LimitHandles, "table_scan") // a later refusal is not the one kept
			}
			var le *LimitError
			if err := c.Refused(); !errors.As(err, &le) || le.Limit != tc.want || !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), tc.says) || !strings.HasPrefix(err.Error(), "row_insert refused") {
				t.Fatalf("Refused() = %v; want limit %d saying %q", err, tc.want, tc.says)
			}
			if len(log) != 1 || log[0] != c.Refused().Error() {
				t.Fatalf("module log %q; want the refusal once", log)
			}
			c.End()
			if c.Refused() != nil {
				t.Fatal("the refusal outlives End")
			}
		})
	}
}

package runtime

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/spacetime-go/spacetime/abi"
)

func TestLogLinesAreCapped(t *testing.T) {
	b := NewLogBuffer(4)
	b.ModuleLog(abi.LogInfo, "r", abi.Identity{}, strings.Repeat("é", MaxLogLine)) // 2 bytes a rune
	got := b.Last(1)[0].Message
	if len(got) > MaxLogLine+64 || !strings.Contains(got, "more bytes dropped]") || !utf8.ValidString(got) {
		t.Fatalf("a %d-byte line was kept as %d bytes (valid UTF-8: %v), ending %q", 2*MaxLogLine, len(got), utf8.ValidString(got), got[len(got)-40:])
	}
	b.ModuleLog(abi.LogInfo, "r", abi.Identity{}, "short")
	if got := b.Last(1)[0].Message; got != "short" {
		t.Fatalf("short line = %q", got)
	}
}

// TestLogBytesPerMinute: past the per-minute budget lines are dropped, and
// the first line the refilled budget allows is preceded by one notice.
func TestLogBytesPerMinute(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewLogBuffer(100)
	b.now = func() time.Time { return now }
	b.SetBytesPerMinute(1000)
	line := strings.Repeat("x", 100)
	for range 25 {
		b.ModuleLog(abi.LogInfo, "r", abi.Identity{}, line)
	}
	if got := len(b.Last(100)); got != 10 {
		t.Fatalf("kept %d lines of 100 bytes within a 1000-byte budget; want 10", got)
	}
	if l, by := b.Dropped(); l != 15 || by != 1500 {
		t.Fatalf("Dropped = %d lines, %d bytes; want 15, 1500", l, by)
	}
	now = now.Add(6 * time.Second) // a tenth of a minute: 100 bytes regained
	b.ModuleLog(abi.LogInfo, "r", abi.Identity{}, line)
	last := b.Last(2)
	if len(last) != 2 || !strings.HasPrefix(last[0].Message, "15 lines (1500 bytes) dropped") || last[0].Level != "warn" || last[1].Message != line {
		t.Fatalf("after the refill: %+v", last)
	}
	if l, _ := b.Dropped(); l != 0 {
		t.Fatalf("the drops were reported but still counted: %d", l)
	}
	for i, l := range b.Last(100) {
		if l.Seq != uint64(i+1) {
			t.Fatalf("line %d has Seq %d: the notice broke the numbering", i, l.Seq)
		}
	}
}

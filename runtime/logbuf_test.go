package runtime

import (
	"strings"
	"testing"
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

package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spacetime-go/spacetime/abi"
)

// LogLine is one line of a module's log.
type LogLine struct {
	// Seq numbers the lines of one database's log from 1, without gaps.
	Seq     uint64       `json:"seq"`
	Time    time.Time    `json:"time"`
	Level   string       `json:"level"`
	Reducer string       `json:"reducer,omitempty"`
	Caller  abi.Identity `json:"caller"`
	Message string       `json:"message"`
}

// LevelName is the name of a console_log level.
func LevelName(level uint32) string {
	switch level {
	case abi.LogError:
		return "error"
	case abi.LogWarn:
		return "warn"
	case abi.LogInfo:
		return "info"
	case abi.LogDebug:
		return "debug"
	case abi.LogTrace:
		return "trace"
	}
	return "unknown"
}

// LogBuffer is a database's module log: the last lines in memory, in a ring.
// Followers read with [LogBuffer.Since] and block in [LogBuffer.Wait]; a
// follower that falls more than the ring's size behind skips the lines it
// missed (Since tells it how many).
type LogBuffer struct {
	mu      sync.Mutex
	ring    []LogLine
	next    uint64 // Seq of the next line
	changed chan struct{}
	closed  bool
	now     func() time.Time
}

// NewLogBuffer returns a buffer keeping the last n lines.
func NewLogBuffer(n int) *LogBuffer {
	if n <= 0 {
		n = DefaultLogLines
	}
	return &LogBuffer{ring: make([]LogLine, n), next: 1, changed: make(chan struct{}), now: time.Now}
}

// ModuleLog appends a line; it implements hostfuncs.LogSink.
func (b *LogBuffer) ModuleLog(level uint32, reducer string, caller abi.Identity, msg string) {
	msg = truncateLogLine(msg)
	b.mu.Lock()
	line := LogLine{Seq: b.next, Time: b.now(), Level: LevelName(level), Reducer: reducer, Caller: caller, Message: msg}
	b.ring[b.next%uint64(len(b.ring))] = line
	b.next++
	ch := b.changed
	b.changed = make(chan struct{})
	b.mu.Unlock()
	close(ch)
}

// Last returns the last n lines, oldest first.
func (b *LogBuffer) Last(n int) []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	after := uint64(0)
	if b.next-1 > uint64(n) {
		after = b.next - 1 - uint64(n)
	}
	lines, _ := b.since(after)
	return lines
}

// Since returns the lines after seq, oldest first, and how many lines after
// seq are no longer kept.
func (b *LogBuffer) Since(seq uint64) (lines []LogLine, missed uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.since(seq)
}

func (b *LogBuffer) since(seq uint64) ([]LogLine, uint64) {
	first := uint64(1)
	if n := uint64(len(b.ring)); b.next > n+1 {
		first = b.next - n
	}
	var missed uint64
	if seq+1 < first {
		missed = first - seq - 1
		seq = first - 1
	}
	if seq+1 >= b.next {
		return nil, missed
	}
	out := make([]LogLine, 0, b.next-seq-1)
	for s := seq + 1; s < b.next; s++ {
		out = append(out, b.ring[s%uint64(len(b.ring))])
	}
	return out, missed
}

// Wait blocks until a line after seq exists, ctx is done, or the buffer is
// closed (then it returns ErrClosed).
func (b *LogBuffer) Wait(ctx context.Context, seq uint64) error {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return ErrClosed
		}
		if b.next-1 > seq {
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close wakes every follower; Wait then returns ErrClosed.
func (b *LogBuffer) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	ch := b.changed
	b.changed = make(chan struct{})
	b.mu.Unlock()
	close(ch)
}

// MaxLogLine is the longest message a log line keeps. The ring counts lines,
// so without it a guest logging its whole per-call budget in one line would
// make every database's ring hold hundreds of megabytes.
const MaxLogLine = 8 << 10

func truncateLogLine(msg string) string {
	if len(msg) <= MaxLogLine {
		return msg
	}
	cut := MaxLogLine
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… [%d more bytes dropped]", msg[:cut], len(msg)-cut)
}

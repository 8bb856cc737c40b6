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

	// The per-minute budget, a token bucket of bytes: perMinute is both
	// its size and what it regains in a minute.
	perMinute    int
	tokens       float64
	refilled     time.Time
	droppedLines uint64
	droppedBytes uint64
}

// DefaultLogBytesPerMinute is a database's module log budget: the bytes of
// messages it may log per minute, in bursts of up to as much. A call's own
// budget (hostfuncs.Limits.MaxLogBytes, 64 KiB) bounds one call; this one
// bounds a database calling many times, so that its lines cannot flush the
// ring within seconds or keep its followers (logs -f) busy.
const DefaultLogBytesPerMinute = 4 << 20

// NewLogBuffer returns a buffer keeping the last n lines.
func NewLogBuffer(n int) *LogBuffer {
	if n <= 0 {
		n = DefaultLogLines
	}
	b := &LogBuffer{ring: make([]LogLine, n), next: 1, changed: make(chan struct{}), now: time.Now}
	b.SetBytesPerMinute(DefaultLogBytesPerMinute)
	return b
}

// SetBytesPerMinute sets the buffer's budget (DefaultLogBytesPerMinute;
// 0 or less keeps it): lines past it are dropped, and when the budget
// allows a line again, one line says how many were dropped.
func (b *LogBuffer) SetBytesPerMinute(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.perMinute, b.tokens, b.refilled = n, float64(n), b.now()
}

// ModuleLog appends a line; it implements hostfuncs.LogSink.
func (b *LogBuffer) ModuleLog(level uint32, reducer string, caller abi.Identity, msg string) {
	msg = truncateLogLine(msg)
	b.mu.Lock()
	now := b.now()
	if b.perMinute > 0 {
		if el := now.Sub(b.refilled); el > 0 {
			b.tokens = min(float64(b.perMinute), b.tokens+el.Minutes()*float64(b.perMinute))
		}
		b.refilled = now
		if float64(len(msg)) > b.tokens {
			b.droppedLines++
			b.droppedBytes += uint64(len(msg))
			b.mu.Unlock()
			return
		}
		b.tokens -= float64(len(msg))
		if b.droppedLines > 0 {
			// The notice itself is not charged: it is one short line per
			// burst of drops.
			b.append(LogLine{Time: now, Level: "warn", Reducer: reducer, Message: fmt.Sprintf(
				"%d lines (%d bytes) dropped: this database logged more than its %d bytes per minute (runtime.DefaultLogBytesPerMinute; set per database with log_bytes_per_minute under [databases.NAME.limits])",
				b.droppedLines, b.droppedBytes, b.perMinute)})
			b.droppedLines, b.droppedBytes = 0, 0
		}
	}
	b.append(LogLine{Time: now, Level: LevelName(level), Reducer: reducer, Caller: caller, Message: msg})
	ch := b.changed
	b.changed = make(chan struct{})
	b.mu.Unlock()
	close(ch)
}

// append adds line to the ring with the next Seq; b.mu is held.
func (b *LogBuffer) append(line LogLine) {
	line.Seq = b.next
	b.ring[b.next%uint64(len(b.ring))] = line
	b.next++
}

// Dropped reports the lines and bytes dropped over the budget and not yet
// reported in the log.
func (b *LogBuffer) Dropped() (lines, bytes uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.droppedLines, b.droppedBytes
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

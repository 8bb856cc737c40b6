package stdb

import (
	"fmt"

	"github.com/spacetime-go/spacetime/abi"
)

// Log writes msg to the database's log at level (abi.LogError ... abi.LogTrace).
// The host adds the reducer's name and caller. A line over the host's log
// limit is dropped; logging never fails a reducer.
func Log(level uint32, msg string) { sysLog(level, msg) }

// Errorf, Warnf, Infof, Debugf and Tracef format and log a line, like the
// tutorial's log! macro.
func Errorf(format string, args ...any) { Log(abi.LogError, fmt.Sprintf(format, args...)) }
func Warnf(format string, args ...any)  { Log(abi.LogWarn, fmt.Sprintf(format, args...)) }
func Infof(format string, args ...any)  { Log(abi.LogInfo, fmt.Sprintf(format, args...)) }
func Debugf(format string, args ...any) { Log(abi.LogDebug, fmt.Sprintf(format, args...)) }
func Tracef(format string, args ...any) { Log(abi.LogTrace, fmt.Sprintf(format, args...)) }

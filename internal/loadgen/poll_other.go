//go:build !linux

package loadgen

import (
	"errors"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

const pollAvailable = false

type poller struct{}

func startPoller(*fanout, []*websocket.Conn, *atomic.Bool) (*poller, error) {
	return nil, errors.New("loadgen: the poll reader needs Linux")
}

func (*poller) stop() error { return nil }

package daemon

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/remedy-run/remedy/engine"
)

// sdNotify tells systemd about remedy's state when it runs under a Type=notify unit
// (NOTIFY_SOCKET is set); otherwise it does nothing.
func sdNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}

// watchdog pings systemd's watchdog (WatchdogSec=) at half its interval, but only while
// the engine loop answers: a hung engine stops the pings and systemd restarts remedy.
func (d *Daemon) watchdog(ctx context.Context) {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return
	}
	every := time.Duration(usec) * time.Microsecond / 2
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// The loop answers a ping (an idle loop at once); a hung one does not.
			qctx, cancel := context.WithTimeout(ctx, every/2)
			if d.query(qctx, func(*engine.Engine) {}) == nil {
				sdNotify("WATCHDOG=1")
			}
			cancel()
		}
	}
}

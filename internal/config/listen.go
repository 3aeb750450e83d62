package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// CheckListen validates a listen address as `remedy run` will bind it: "host:port" where
// host is an IP address (IPv6 in brackets, a zone allowed), "localhost", or empty (every
// address), and port a number from 0 to 65535 (0: one the kernel picks). Names other
// than localhost are refused, as systemd's ListenStream= does: a name can resolve to
// another address on the next start. It does not bind; BindListen does.
func CheckListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080)", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "" || host == "localhost" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: host %q is not an IP address or localhost (remedy binds one address; a name could resolve to another)", addr, host)
	}
	return nil
}

// BindListen checks that addr can be bound now: it listens on it and closes at once
// (`remedy config check --bind`). The error says why not: the address is in use (a
// remedy may already run there), or the machine has no such address.
func BindListen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			err = op.Err
		}
		return fmt.Errorf("cannot listen on %s: %v", addr, err)
	}
	return ln.Close()
}

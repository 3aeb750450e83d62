package config

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
)

// Issue 25: `config check` accepted a listen address `remedy run` then could not bind
// (127.0.0.1:99999). The rule: an address the check accepts fails to bind only for a
// reason of the machine at that moment (in use, not an address of this machine), never
// for its form. Seeded random addresses, each checked and then really bound.
func TestCheckAcceptsOnlyWhatRunCanBind(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 25))
	hosts := []string{"127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.300", "remedy.internal", "127.1", "::ffff:127.0.0.1",
		"fe80::1%lo", "192.0.2.1", " 127.0.0.1", "127.0.0.1 ", "LOCALHOST", "0x7f.0.0.1"}
	ports := []string{"0", "65535", "65536", "99999", "-1", "http", "", "8o80", "+80", "0080", "1e3", " 80"}
	accepted, refused := 0, 0
	for range 300 {
		host, port := hosts[rng.IntN(len(hosts))], ports[rng.IntN(len(ports))]
		if rng.IntN(3) == 0 {
			port = fmt.Sprint(rng.IntN(70000))
		}
		addr := host + ":" + port
		if rng.IntN(2) == 0 {
			addr = net.JoinHostPort(host, port)
		}
		if CheckListen(addr) != nil {
			refused++
			continue
		}
		accepted++
		err := BindListen(addr)
		if err != nil && !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) &&
			!strings.Contains(err.Error(), "address already in use") && !strings.Contains(err.Error(), "cannot assign requested address") {
			t.Fatalf("seed %d: check accepted %q, but binding it fails: %v", seed, addr, err)
		}
	}
	t.Logf("%d addresses accepted (and bound or refused by the machine), %d refused by the check", accepted, refused)
	if err := CheckListen("127.0.0.1:99999"); err == nil {
		t.Fatal("127.0.0.1:99999 accepted")
	}
}

package wafake

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
)

// Trust is what a client in another process needs to use this server: where it listens,
// its TLS certificate, and the root key of its Noise certificate chain.
type Trust struct {
	Addr    string   `json:"addr"`
	CertPEM []byte   `json:"cert_pem"`
	Root    [32]byte `json:"root"`
}

// Trust describes the server for a client in another process (a daemon whose memory is
// measured on its own).
func (s *Server) Trust() Trust {
	return Trust{Addr: s.srv.Listener.Addr().String(), Root: s.root,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})}
}

// Client makes this process trust the server (whatsmeow's certificate root is a process
// global; it is written only if it changes, so calling Client again, or in the process
// that runs the server, does not race a connected client) and returns the HTTP client to
// give whatsmeow: every dial goes to the server. A process trusts one root at a time, so
// a child should use servers of one parent process.
func (t Trust) Client() *http.Client {
	trustRoot(t.Root)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(t.CertPEM)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com", NextProtos: []string{"http/1.1"}},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", t.Addr)
		},
	}
	return &http.Client{Transport: tr}
}

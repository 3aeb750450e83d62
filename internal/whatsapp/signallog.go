package whatsapp

import signallog "go.mau.fi/libsignal/logger"

// libsignal makes its logger at first use, without a lock: two clients (or a client's
// send and receive) encrypting for the first time at once write it together, a data
// race (seen under -race with tests in parallel). Making it here, before any goroutine
// runs, leaves it unchanged afterwards. Its default logger's Debug prints nothing.
func init() { signallog.Debug("") }

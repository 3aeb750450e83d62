package wafake

import signallog "go.mau.fi/libsignal/logger"

// libsignal makes its logger at first use, without a lock: fake servers and phones in
// tests running in parallel would sign and encrypt for the first time at once, a data
// race. Making it here, before any goroutine runs, leaves it unchanged afterwards. Its
// default logger's Debug prints nothing.
func init() { signallog.Debug("") }

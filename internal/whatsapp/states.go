package whatsapp

// States lists every connection state, in the order of their declaration, for a one-hot
// state gauge (remedy_whatsapp_state) that shows each of them from the first scrape.
func States() []State {
	return []State{Unpaired, Pairing, Connecting, Connected, Disconnected, LoggedOut, Replaced, Outdated, Banned, Refused}
}

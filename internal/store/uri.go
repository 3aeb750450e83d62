package store

import "strings"

// FileURI is the SQLite URI ("file:…") of a database path, with the characters SQLite's
// URI syntax gives a meaning ('%', '?', '#') percent-encoded, so a data directory named
// "bot#2" opens bot#2/remedy.db and not "bot" (https://sqlite.org/uri.html). Append
// "?_pragma=…" parameters to it.
func FileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

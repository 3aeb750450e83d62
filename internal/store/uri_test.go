package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A data directory whose name holds URI characters opens the file inside it (before,
// "bot#2/remedy.db" opened a file named "bot" beside it: '#' ended the SQLite URI).
func TestPathsWithURICharacters(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"bot#2", "what?", "100%"} {
		dir := filepath.Join(t.TempDir(), name)
		d, err := OpenData(context.Background(), dir, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, RemedyFile)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

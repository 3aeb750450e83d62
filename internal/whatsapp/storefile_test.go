package whatsapp

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// damage is one way a session store gets damaged on disk.
type damage struct {
	name    string
	corrupt bool // SQLite must see it (a header or a whole file); false: it may or may not
	apply   func(r *rand.Rand, b []byte) []byte
}

var damages = []damage{
	{"intact", false, func(_ *rand.Rand, b []byte) []byte { return b }},
	{"header overwritten", true, func(r *rand.Rand, b []byte) []byte {
		for i := range 16 + r.IntN(84) {
			b[i] = byte(r.Uint32())
		}
		return b
	}},
	{"not a database", true, func(r *rand.Rand, _ []byte) []byte {
		b := make([]byte, 512+r.IntN(16384))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}},
	{"a text file", true, func(_ *rand.Rand, _ []byte) []byte {
		return []byte("{\"session\": \"exported by another tool\"}\n")
	}},
	{"pages overwritten", false, func(r *rand.Rand, b []byte) []byte {
		const page = 4096
		for range 1 + r.IntN(3) {
			if n := len(b) / page; n > 1 {
				p := 1 + r.IntN(n-1)
				for i := p * page; i < (p+1)*page; i++ {
					b[i] = byte(r.Uint32())
				}
			}
		}
		return b
	}},
}

// The kind of fault in b3-11: one damaged file must not stop the whole of remedy. For
// random damage to a paired session store (seeded), Open always succeeds; the store's
// bytes are never lost (left in place or moved to PATH.corrupt-TIME unchanged); a store
// moved aside leaves remedy unpaired with a reset to show and exactly one
// WA_LOGGED_OUT{reason: store_corrupt}; a store left in place is told of by nothing.
func TestDamagedSessionStoreIsMovedAside(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("REMEDY_STORE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (REMEDY_STORE_SEED reruns it)", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	orig, err := os.ReadFile(pairedStore(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		d := damages[r.IntN(len(damages))]
		if i < len(damages) {
			d = damages[i] // each kind at least once
		}
		t.Run(fmt.Sprintf("%d-%s", i, d.name), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "whatsapp.db")
			bad := d.apply(r, bytes.Clone(orig))
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			c, err := Open(context.Background(), Options{StorePath: path, Events: rec.add})
			if err != nil {
				t.Fatalf("seed %d: Open with a store %s: %v", seed, d.name, err)
			}
			defer c.Close()
			reset := c.StoreReset()
			var told []string
			for _, ev := range rec.evs {
				if ev.Code == "WA_LOGGED_OUT" && ev.Labels["reason"] == "store_corrupt" {
					told = append(told, ev.Message)
				}
			}
			if d.corrupt && reset == nil {
				t.Fatalf("seed %d: a store %s was used as it was", seed, d.name)
			}
			if d.name == "intact" && reset != nil {
				t.Fatalf("seed %d: an intact store was moved aside: %+v", seed, reset)
			}
			if reset == nil {
				if len(told) != 0 {
					t.Fatalf("seed %d: told %q of a store left in place", seed, told)
				}
				return
			}
			kept, err := os.ReadFile(reset.Backup)
			if err != nil || !bytes.Equal(kept, bad) {
				t.Fatalf("seed %d: the damaged store was not kept as it was at %s: %v", seed, reset.Backup, err)
			}
			if !strings.HasPrefix(filepath.Base(reset.Backup), "whatsapp.db.corrupt-") {
				t.Fatalf("backup named %s", reset.Backup)
			}
			if st := c.State(); st != Unpaired {
				t.Fatalf("seed %d: state %s after the store was moved aside, want unpaired", seed, st)
			}
			if len(told) != 1 || !strings.Contains(told[0], filepath.Base(reset.Backup)) {
				t.Fatalf("seed %d: want one WA_LOGGED_OUT store_corrupt naming the backup, got %q", seed, told)
			}
			t.Logf("%s: moved aside (%s)", d.name, reset.Reason)
		})
	}
}

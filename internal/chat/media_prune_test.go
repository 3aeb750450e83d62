package chat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Uploads are pruned MediaRetention after their last use unless a queued message or a
// pending dead letter needs them: DATA_DIR/media does not grow with every inline media
// message, and nothing that may still be sent loses its file.
func TestOldUploadsArePrunedUnlessNeeded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, db := sendPipeline(t, ctx, &wire{}, &eventLog{}, SendLimits{})
	save := func(b string) string {
		m, err := p.SaveMedia(ctx, Media{Data: []byte(b), MIME: "application/pdf"})
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	unused, queued, dead, fresh, reused := save("%PDF unused"), save("%PDF queued"), save("%PDF dead"), save("%PDF fresh"), save("%PDF reused")
	// Messages that still need theirs: one queued (the pipeline is not running), one
	// dead-lettered and not replayed.
	if _, err := p.SendMessage(ctx, Outgoing{To: "6281100000001", Media: &Media{ID: queued}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO dead_letters(queue, item_id, payload, reason, attempts, enqueued, dead_at)
		VALUES ('outbound', 999, json_object('id', '3EB0DEAD', 'media', json_object('id', ?)), 'refused: 463', 1, 1, 1)`, dead); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-MediaRetention - time.Hour)
	blobs := map[string]string{}
	for _, id := range []string{unused, queued, dead, fresh, reused} {
		u, err := p.readUpload(id)
		if err != nil {
			t.Fatal(err)
		}
		blobs[id] = u.blob()
		os.Chtimes(filepath.Join(p.mediaDir, u.blob()), old, old)
		if id != fresh {
			os.Chtimes(filepath.Join(p.mediaDir, id+".json"), old, old)
		}
	}
	// Referring to an upload is a use: it is kept another MediaRetention.
	if _, err := p.SendMessage(ctx, Outgoing{To: "6281100000002", Media: &Media{ID: reused}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `DELETE FROM queue_items WHERE json_extract(payload, '$.media.id') = ?`, reused); err != nil {
		t.Fatal(err) // sent meanwhile: no longer queued
	}
	n, err := p.pruneMedia(ctx, time.Now().Add(-MediaRetention))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	for id, want := range map[string]bool{unused: false, queued: true, dead: true, fresh: true, reused: true} {
		_, e1 := os.Stat(filepath.Join(p.mediaDir, blobs[id]))
		_, e2 := os.Stat(filepath.Join(p.mediaDir, id+".json"))
		if (e1 == nil) != want || (e2 == nil) != want {
			t.Errorf("upload %.8s kept %v/%v, want %v", id, e1 == nil, e2 == nil, want)
		}
	}
	if _, err := p.SendMessage(ctx, Outgoing{To: "6281100000001", Media: &Media{ID: unused}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a pruned upload: %v, want ErrInvalid (no such upload)", err)
	}
}

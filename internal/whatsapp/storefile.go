package whatsapp

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	waLog "go.mau.fi/whatsmeow/util/log"

	"github.com/remedy-run/remedy/engine"
	remedystore "github.com/remedy-run/remedy/internal/store"
)

// StoreReset says that the device store could not be read when remedy started and was
// moved aside, so that remedy runs unpaired instead of not at all (field case b3-11: a
// power cut or a bad disk; whatsmeow issue #337). The keys in it are lost to remedy:
// the device must be paired again.
type StoreReset struct {
	Backup string    // where the damaged file now is (PATH.corrupt-TIME)
	Reason string    // SQLite's words: "file is not a database", a quick_check finding
	Time   time.Time // when it was moved
}

// Explain is the sentence the dashboard and the alert show.
func (r StoreReset) Explain() string {
	return fmt.Sprintf("The WhatsApp session store could not be read (%s); remedy moved it aside to %s at %s and started unpaired. Pair the device again (Pair, or remedy pair).",
		r.Reason, filepath.Base(r.Backup), r.Time.UTC().Format(time.RFC3339))
}

// deviceStore is whatsmeow's store opened: the container, its first device, and the
// connector whose connections keep whatsmeow's statements compiled.
type deviceStore struct {
	container *sqlstore.Container
	dev       *store.Device
	stmts     *remedystore.StmtConnector
}

// openStore opens the device store at path and its first device. A store that is not
// a database or whose pages are damaged (remedystore.CheckFile, or a corrupt error from
// whatsmeow's own queries) is moved aside and a fresh one made in its place; the
// returned reset says so (nil when the store was fine). Any other error is returned:
// an unreadable directory or a full disk is not a reason to drop a session.
func openStore(ctx context.Context, path, dsn string, now func() time.Time) (*deviceStore, *StoreReset, error) {
	var reset *StoreReset
	for try := 0; ; try++ {
		ds, err := openContainer(ctx, path, dsn)
		if err == nil {
			return ds, reset, nil
		}
		if try > 0 || !remedystore.IsCorrupt(err) {
			return nil, reset, err
		}
		at := now()
		backup, merr := remedystore.MoveAside(path, at)
		if merr != nil {
			return nil, nil, fmt.Errorf("%w (and it could not be moved aside: %v)", err, merr)
		}
		reset = &StoreReset{Backup: backup, Reason: reason(err), Time: at}
	}
}

// openContainer opens the store through remedystore.StmtConnector, so that whatsmeow's
// statements are compiled once per connection instead of at every use (as with
// sqlstore.New), and brings its schema up to date.
func openContainer(ctx context.Context, path, dsn string) (*deviceStore, error) {
	if err := remedystore.CheckFile(ctx, path); err != nil {
		return nil, err
	}
	stmts, err := remedystore.NewStmtConnector(dsn)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(stmts)
	container := sqlstore.NewWithDB(db, "sqlite", waLog.Noop)
	if err := container.Upgrade(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("failed to upgrade database: %w", err)
	}
	dev, err := container.GetFirstDevice(ctx)
	if err != nil {
		_ = container.Close()
		return nil, err
	}
	return &deviceStore{container: container, dev: dev, stmts: stmts}, nil
}

// reason is the last part of an error chain (errors.Join puts one error a line):
// SQLite's own words, without the wrapping.
func reason(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) && !strings.HasPrefix(s, "database corrupt: quick_check") {
		s = s[i+2:]
	}
	return s
}

// reportReset tells the operator about a store moved aside: an error log and
// WA_LOGGED_OUT{reason: store_corrupt} (the session is gone as surely as after a
// logout), which the default wa-logged-out policy sends as critical on the channels
// that do not need WhatsApp.
func (c *Conn) reportReset(r *StoreReset) {
	c.opts.Logger.Error("the WhatsApp session store was unreadable and has been moved aside; remedy runs unpaired until the device is paired again",
		"backup", r.Backup, "reason", r.Reason)
	c.opts.Events(engine.Event{Time: r.Time, Code: "WA_LOGGED_OUT", Source: "whatsapp",
		Labels: map[string]string{"reason": "store_corrupt", "on_connect": "false"}, Message: r.Explain()})
}

// StoreReset is the device store's reset at open (nil when it opened as it was), kept
// until the device is paired again.
func (c *Conn) StoreReset() *StoreReset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reset
}

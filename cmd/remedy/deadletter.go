package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/remedy-run/remedy/internal/queue"
	"github.com/remedy-run/remedy/internal/store"
)

func runDeadletter(ctx context.Context, args []string, env *cliEnv) int {
	fs := flag.NewFlagSet("deadletter", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	data := fs.String("data", "data", "remedy's data directory")
	q := fs.String("queue", "", "only this queue")
	all := fs.Bool("all", false, "list: also the dead letters already replayed")
	fs.Usage = func() {
		fmt.Fprintln(env.stderr, "Usage: remedy deadletter list [--queue Q] [--all]\n       remedy deadletter replay [--queue Q] [ID...]\n\nLists the items taken out of their queues (failed too often, or cleared as stuck), or puts\nthem back (all pending ones of the queue, or the IDs given). Dead-letter rows are never\ndeleted; replayed ones are marked.")
		fs.PrintDefaults()
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fs.Usage()
		return exitBadInput
	}
	verb := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	path := filepath.Join(*data, store.RemedyFile)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(env.stderr, "remedy deadletter: %v\n", err)
		return exitBadInput
	}
	db, err := store.Open(ctx, store.Options{Path: path, Schema: store.RemedySchema, Readers: 1})
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy deadletter: %v\n", err)
		return exitFailed
	}
	defer db.Close()
	if verb == "list" {
		dls, err := queue.DeadLetters(ctx, db, *q, !*all)
		if err != nil {
			fmt.Fprintf(env.stderr, "remedy deadletter: %v\n", err)
			return exitFailed
		}
		w := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tQUEUE\tITEM\tATTEMPTS\tDEAD SINCE\tREPLAYED\tREASON\tPAYLOAD")
		for _, d := range dls {
			replayed := "-"
			if d.Replayed != 0 {
				replayed = time.UnixMilli(d.Replayed).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", d.ID, d.Queue, d.ItemID, d.Attempts,
				time.UnixMilli(d.DeadAt).UTC().Format(time.RFC3339), replayed, d.Reason, clip(d.Payload, 60))
		}
		w.Flush()
		fmt.Fprintf(env.stdout, "%d dead letter(s)\n", len(dls))
		return exitOK
	}
	var ids []int64
	for _, a := range fs.Args() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			fmt.Fprintf(env.stderr, "remedy deadletter: %q is not an id\n", a)
			return exitBadInput
		}
		ids = append(ids, id)
	}
	n, err := queue.Replay(ctx, db, *q, ids)
	if err != nil {
		fmt.Fprintf(env.stderr, "remedy deadletter: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(env.stdout, "replayed %d item(s); they are back in their queues\n", n)
	return exitOK
}

func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

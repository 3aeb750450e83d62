package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/remedy-run/remedy/internal/config"
	"github.com/remedy-run/remedy/internal/monitor"
)

// FuzzConfig: no configuration file, however broken, panics remedy, and one that
// `remedy config check` accepts also builds and starts a daemon (before, `health_interval:
// 0s` passed the check and panicked in NewTicker). The seeds are the example
// configuration and the bad files of internal/config; `.ci/run` fuzzes briefly.
func FuzzConfig(f *testing.F) {
	seeds, _ := filepath.Glob("../config/testdata/*.yaml")
	seeds = append(seeds, "../../packaging/remedy.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("health_interval: 1s\nsample_interval: 1s\ncheck_interval: 100ms\nreport_schedule: '@every 1s'\nqueues: {inbound: {workers: 1, item_timeout: 1ms}}\n"))
	f.Add([]byte("whatsapp: {enabled: false}\nalerts: {per_minute: {log: 1}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		// What the fuzzer may not touch: the machine (services' commands, files outside
		// a temporary directory, the network beyond loopback).
		dir := t.TempDir()
		cfg.DataDir, cfg.Listen, cfg.Policies, cfg.Services = filepath.Join(dir, "data"), "127.0.0.1:0", "", nil
		cfg.WhatsApp.Store = filepath.Join(dir, "whatsapp.db")
		cfg.Alerts.Webhook, cfg.Alerts.Alertmanager, cfg.WhatsApp.Handler = nil, nil, nil
		ctx, cancel := context.WithCancel(context.Background())
		d, err := New(ctx, cfg, slog.New(slog.DiscardHandler), WithHost(monitor.HealthyHost()))
		if err != nil {
			cancel()
			t.Fatalf("accepted by config.Parse, refused by daemon.New: %v", err)
		}
		cancel() // Run starts every component, then shuts down at once
		if err := d.Run(ctx); err != nil {
			t.Fatalf("run: %v", err)
		}
	})
}

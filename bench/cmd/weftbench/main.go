// Command weftbench runs the side-by-side reverse-proxy benchmark (weft-proxy,
// nginx, HAProxy and a direct baseline) and writes the results table.
//
// bench/run.sh installs the proxies, builds the tools and runs it; see
// bench/README.md. Results go to stdout and to OUT/results-STAMP.md, raw data
// to OUT/results-STAMP.json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/weftmesh/weft/bench/internal/harness"
	"github.com/weftmesh/weft/bench/internal/report"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "weftbench:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	stamp := time.Now()
	opts := cfg.harnessOptions(stamp)
	meta := cfg.meta(stamp, opts)
	fmt.Fprintf(os.Stderr, "weftbench: proxies %v, protocols %v, rates %v, %s per run (+%s warm-up), %d run(s); work dir %s\n",
		opts.Proxies, opts.Protocols, opts.Rates, opts.Duration, opts.Warmup, opts.Runs, opts.RunDir)
	res, runErr := harness.Run(ctx, opts)
	if len(res.Measurements) == 0 {
		return errors.Join(runErr, failures(res.Failures))
	}
	targets := append([]string{report.Direct}, opts.Proxies...)
	doc := report.Document{Meta: meta, Measurements: res.Measurements, Failures: res.Failures,
		Rows: report.Summarize(res.Measurements, opts.Protocols, targets)}
	if runErr != nil {
		doc.Failures = append(doc.Failures, "the run stopped early: "+runErr.Error())
	}
	md := report.Markdown(doc)
	fmt.Print(md)
	if err := writeOutputs(cfg.outDir, stamp, md, doc); err != nil {
		return errors.Join(runErr, err)
	}
	return errors.Join(runErr, failures(res.Failures))
}

// failures makes the run exit non-zero when a cell failed, after the table
// of what did work is written.
func failures(f []string) error {
	if len(f) == 0 {
		return nil
	}
	return fmt.Errorf("%d cell(s) failed (listed in the results)", len(f))
}

func writeOutputs(outDir string, stamp time.Time, md string, doc report.Document) error {
	base := filepath.Join(outDir, "results-"+stamp.Format("20060102-150405"))
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	data, err := json.MarshalIndent(jsonSafe(doc), "", "  ")
	if err != nil {
		return fmt.Errorf("encode results JSON: %w", err)
	}
	if err := os.WriteFile(base+".json", data, 0o644); err != nil {
		return fmt.Errorf("write results JSON: %w", err)
	}
	fmt.Fprintf(os.Stderr, "weftbench: wrote %s.md and %s.json\n", base, base)
	return nil
}

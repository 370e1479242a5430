package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultControlPlaneAddress is weft-control's default --http-address.
const defaultControlPlaneAddress = "127.0.0.1:15014"

// dashboardOptions are the flags of `weft dashboard`.
type dashboardOptions struct {
	address   string
	noBrowser bool
	// open opens a URL in the user's browser.
	open func(url string) error
}

// newDashboardCommand builds `weft dashboard`.
func newDashboardCommand(s streams) *cobra.Command {
	return newDashboardCommandWith(s, openBrowser)
}

// newDashboardCommandWith is newDashboardCommand with the browser opener
// given (tests).
func newDashboardCommandWith(s streams, open func(string) error) *cobra.Command {
	o := dashboardOptions{open: open}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Open weft-control's live mesh dashboard in a browser",
		Long: `Dashboard prints the URL of the live mesh page weft-control serves on its
HTTP address (/dashboard/) and opens it in the default browser.

The page shows the service graph (workloads and services; edges with request
rate, error rate and p99 latency, from the proxies' Istio metrics that
weft-control scrapes itself), and per service its endpoints and their health,
subsets, the VirtualService and DestinationRule in force, configuration
problems and the proxies' sync status. It updates live and needs no internet
access.`,
		Example: `  weft dashboard
  weft dashboard --no-browser
  weft dashboard --control-plane-address 10.0.0.5:15014`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), s)
		},
	}
	cmd.Flags().StringVar(&o.address, "control-plane-address", defaultControlPlaneAddress, "weft-control's HTTP address (its --http-address), host:port or a URL")
	cmd.Flags().BoolVar(&o.noBrowser, "no-browser", false, "print the URL without opening a browser")
	return cmd
}

// run checks that the control plane serves the dashboard, prints its URL
// and opens it.
func (o *dashboardOptions) run(ctx context.Context, s streams) error {
	url := dashboardURL(o.address)
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkDashboard(ctx, url); err != nil {
		return fmt.Errorf("%w\nstart weft-control (weft-control --config-dir DIR), or pass --control-plane-address with its --http-address", err)
	}
	fmt.Fprintln(s.out, url)
	if o.noBrowser {
		return nil
	}
	if err := o.open(url); err != nil {
		fmt.Fprintf(s.err, "could not open a browser (%v): open %s yourself\n", err, url)
	}
	return nil
}

// dashboardURL builds the page's URL from host:port or a URL.
func dashboardURL(addr string) string {
	addr = strings.TrimSuffix(addr, "/")
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/dashboard") + "/dashboard/"
}

// checkDashboard asks for the page once.
func checkDashboard(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--control-plane-address: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("weft-control does not answer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: is this weft-control's --http-address?", url, resp.Status)
	}
	return nil
}

// openBrowser opens url with the platform's opener (xdg-open on Linux and
// the BSDs) and does not wait for the browser.
func openBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap the opener
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/xds"
)

// requestTimeout bounds each HTTP request the CLI makes.
const requestTimeout = 10 * time.Second

// fetch GETs url and returns the body of a 200 answer. what names the
// server for the error; hint says what to do when it cannot be reached.
func fetch(ctx context.Context, url, what, hint string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s at %s: %v\n%s", what, url, unwrapURLError(err), hint)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s to GET %s: %s", what, resp.Status, url, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// unwrapURLError drops net/http's "Get URL:" prefix (the message names
// the URL already).
func unwrapURLError(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// controlPlaneHint says how to point the CLI at weft-control.
func controlPlaneHint(addr string) string {
	return fmt.Sprintf("Is weft-control running with --http-address %s? Point weft at its monitoring address with --control-plane-address HOST:PORT (default %s).",
		addr, controlplane.DefaultHTTPAddress)
}

// syncStatus reads weft-control's /debug/syncz: every connected proxy by
// node id.
func syncStatus(ctx context.Context, addr string) (map[string]xds.ProxyStatus, error) {
	b, err := fetch(ctx, "http://"+addr+xds.SynczPath, "weft-control", controlPlaneHint(addr))
	if err != nil {
		return nil, err
	}
	var st map[string]xds.ProxyStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("weft-control at %s: %s is not sync status JSON: %w", addr, xds.SynczPath, err)
	}
	return st, nil
}

// proxyName is istioctl's name of a proxy: NAME.NAMESPACE of its node
// id.
func proxyName(ps xds.ProxyStatus) string { return ps.Name + "." + ps.Namespace }

// findProxy returns the node id of the proxy that want names: a node id,
// NAME.NAMESPACE, or a NAME that only one proxy has. The error lists the
// connected proxies.
func findProxy(st map[string]xds.ProxyStatus, want, addr string) (string, error) {
	if _, ok := st[want]; ok {
		return want, nil
	}
	var byName []string
	for id, ps := range st {
		if proxyName(ps) == want {
			return id, nil
		}
		if ps.Name == want {
			byName = append(byName, id)
		}
	}
	if len(byName) == 1 {
		return byName[0], nil
	}
	names := make([]string, 0, len(st))
	for _, ps := range st {
		names = append(names, proxyName(ps))
	}
	slices.Sort(names)
	if len(byName) > 1 {
		return "", fmt.Errorf("%q names several proxies: write NAME.NAMESPACE, one of %s", want, strings.Join(names, ", "))
	}
	if len(names) == 0 {
		return "", fmt.Errorf("proxy %q is not connected to weft-control at %s: no proxy is connected", want, addr)
	}
	return "", fmt.Errorf("proxy %q is not connected to weft-control at %s; connected proxies: %s", want, addr, strings.Join(names, ", "))
}

// checkOutput rejects an -o value not in allowed.
func checkOutput(o string, allowed ...string) error {
	if slices.Contains(allowed, o) {
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o %s", o, strings.Join(allowed, ", -o "))
}

// writeStructured prints v as indented JSON or as YAML.
func writeStructured(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeRaw(w, format, b)
}

// writeRaw prints JSON bytes indented, or converted to YAML.
func writeRaw(w io.Writer, format string, js []byte) error {
	if format == "yaml" {
		y, err := yaml.JSONToYAML(js)
		if err != nil {
			return fmt.Errorf("converting to YAML: %w", err)
		}
		_, err = w.Write(y)
		return err
	}
	var buf strings.Builder
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	buf.Write(out)
	buf.WriteByte('\n')
	_, err = io.WriteString(w, buf.String())
	return err
}

// table prints rows under a header, columns aligned as istioctl's
// (tabwriter, three spaces of padding).
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

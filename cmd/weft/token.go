package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/ca"
)

// tokenOptions are the flags of `weft token`.
type tokenOptions struct {
	caDir          string
	namespace      string
	serviceAccount string
	ttl            time.Duration
}

// newTokenCommand builds `weft token`.
func newTokenCommand(s streams) *cobra.Command {
	var o tokenOptions
	defaultDir, _ := ca.DefaultDir()
	cmd := &cobra.Command{
		Use:   "token --namespace NS --service-account SA [--ca-dir DIR] [--ttl 24h]",
		Short: "Mint a bootstrap token with which a workload obtains its certificate",
		Long: `Token prints a local-mode bootstrap token for the workload identity
spiffe://<trust-domain>/ns/NS/sa/SA. weft-control's CA accepts it (gRPC
metadata "authorization: Bearer <token>") and issues certificates for that
identity only, until the token expires.

The token is signed with the key weft-control keeps in its CA directory
(token-key): pass the directory weft-control runs with (--ca-dir, default
weft/ca under the user's configuration directory). weft-control creates
the key on its first start.

A token is a secret: whoever holds it can obtain certificates for its
identity until it expires.`,
		Example: `  weft token --namespace default --service-account web
  weft token --ca-dir /var/lib/weft/ca -n shop --service-account cart --ttl 1h`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return o.run(s) },
	}
	f := cmd.Flags()
	f.StringVar(&o.caDir, "ca-dir", defaultDir, "weft-control's CA directory (holds token-key)")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the workload (required)")
	f.StringVar(&o.serviceAccount, "service-account", "", "service account of the workload (required)")
	f.DurationVar(&o.ttl, "ttl", ca.DefaultTokenTTL, "how long the token is accepted")
	_ = cmd.MarkFlagRequired("namespace")
	_ = cmd.MarkFlagRequired("service-account")
	return cmd
}

// run mints and prints the token.
func (o *tokenOptions) run(s streams) error {
	if o.caDir == "" {
		return fmt.Errorf("no default CA directory: pass --ca-dir")
	}
	if o.ttl <= 0 {
		return fmt.Errorf("--ttl %v: must be positive", o.ttl)
	}
	id := ca.Identity{Namespace: o.namespace, ServiceAccount: o.serviceAccount}
	if err := id.Validate(); err != nil {
		return err
	}
	keys, err := ca.LoadTokenKey(o.caDir, nil)
	if err != nil {
		return err
	}
	tok, err := keys.Mint(id, o.ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(s.out, tok)
	return err
}
